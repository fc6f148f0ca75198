import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqlAuditLog } from '../../src/embedded/audit/sql-audit-log.js';
import { PORT_PERMISSIONS, permissionFor } from '../../src/embedded/authz/port-permissions.js';
import { SqlAuthorizer } from '../../src/embedded/authz/sql-authorizer.js';
import { SqliteMetadataStore } from '../../src/embedded/metadata-store/sqlite-metadata-store.js';
import { readOutbox } from '../../src/infra/sql/outbox.js';
import { isPermission } from '../../src/ports/authorizer.js';
import { ValidationError } from '../../src/ports/errors.js';
import { authorizerConformance } from '../../src/testing/conformance/authorizer.js';

authorizerConformance('SqlAuthorizer on SQLite (temp dir)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-authz-'));
  const store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
  const audit = await SqlAuditLog.open({ store });
  const authorizer = await SqlAuthorizer.open({ store, audit });
  return {
    authorizer,
    audit,
    events: async () => (await readOutbox(store.db(), { limit: 1_000_000 })).map((e) => e.event),
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('SqlAuthorizer storage', () => {
  it('stores only the sha256 of a token secret', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mlplane-authz-'));
    const store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
    try {
      const authz = await SqlAuthorizer.open({ store });
      await authz.grant('owner', 'p', 'editor');
      const created = await authz.createToken({
        principal: await authz.getPrincipal('owner'),
        name: 'ci',
        projects: ['p'],
        roles: ['viewer'],
        expiresAt: new Date(Date.now() + 60_000),
      });
      const rows = await store.db().selectFrom('authz_tokens').selectAll().execute();
      const text = JSON.stringify(rows);
      expect(text).not.toContain(created.secret);
      expect(rows[0]?.secret_hash).toBe(createHash('sha256').update(created.secret).digest('hex'));
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('PORT_PERMISSIONS', () => {
  it('declares a known permission for every tracker, registry, audit and authorizer operation', () => {
    expect(Object.isFrozen(PORT_PERMISSIONS)).toBe(true);
    for (const [operation, permission] of Object.entries(PORT_PERMISSIONS)) {
      expect(isPermission(permission), operation).toBe(true);
    }
    expect(permissionFor('experimentTracker.createRun')).toBe('experiment.write');
    expect(permissionFor('modelRegistry.transitionStage')).toBe('model.promote');
    expect(permissionFor('modelRegistry.setAlias')).toBe('model.promote');
    expect(permissionFor('auditLog.verify')).toBe('audit.read');
    expect(permissionFor('authorizer.createToken')).toBe('token.write');
    expect(() => permissionFor('modelRegistry.fly')).toThrow(ValidationError);
    expect(() => permissionFor('authorizer.verifyToken')).toThrow("'authorizer.verifyToken' is not a port operation");
  });
});
