import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isPermission, ValidationError } from '@mlplane/core';
import { authorizerConformance } from '@mlplane/core/testing';
import { SqliteMetadataStore } from '@mlplane/defaults';
import { describe, expect, it } from 'vitest';
import { PORT_PERMISSIONS, permissionFor } from '../src/authz/port-permissions.js';
import { SqlAuthorizer } from '../src/authz/sql-authorizer.js';
import { readOutbox } from '../src/outbox/outbox.js';
import { auditSurroundings } from './audit-fixture.js';
import { floodFailedChecksOn } from './failed-check-flood.js';

authorizerConformance('SqlAuthorizer on SQLite (temp dir)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-authz-'));
  const store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
  const surroundings = await auditSurroundings();
  const audit = await surroundings.open(store);
  const authorizer = await SqlAuthorizer.open({ store, audit });
  return {
    authorizer,
    audit,
    events: async () => (await readOutbox(store.db(), { limit: 1_000_000 })).map((e) => e.event),
    flushAudit: () => authorizer.close(),
    cleanup: async () => {
      await audit.close();
      await store.close();
      await surroundings.remove();
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

describe('SqlAuthorizer failed token checks', () => {
  it('writes a bounded number of audit entries for 10,000 failed checks, whose counts add up', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mlplane-authz-'));
    const store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
    try {
      await floodFailedChecksOn(store);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
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

describe('SqlAuthorizer validation', () => {
  const bad = (value: unknown) => value as never;

  it('refuses every malformed input with ValidationError naming the field', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mlplane-authz-'));
    const store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
    try {
      const authz = await SqlAuthorizer.open({ store });
      await authz.grant('owner', 'p', 'editor');
      const owner = await authz.getPrincipal('owner');
      const token = {
        principal: owner,
        name: 't',
        projects: ['p'],
        roles: ['viewer'],
        expiresAt: new Date(Date.now() + 60_000),
      };
      const resource = { project: 'p', kind: 'model' as const };
      const cases: [string, () => Promise<unknown>, string, string][] = [
        ['principal id', () => authz.getPrincipal(''), 'id', 'id must be a non-empty string'],
        ['principal kind', () => authz.getPrincipal('x', bad('robot')), 'kind', 'kind must be user, token or service'],
        [
          'principal not an object',
          () => authz.authorize(bad(null), 'model.read', resource),
          'principal',
          'principal must be an object',
        ],
        [
          'principal id on a principal',
          () => authz.authorize(bad({ id: '', roles: {} }), 'model.read', resource),
          'principal.id',
          'non-empty string',
        ],
        [
          'resource not an object',
          () => authz.authorize(owner, 'model.read', bad(undefined)),
          'resource',
          'resource must be an object',
        ],
        [
          'resource id',
          () => authz.authorize(owner, 'model.read', { ...resource, id: bad(3) }),
          'resource.id',
          'resource.id must be a string',
        ],
        [
          'token project',
          () => authz.createToken({ ...token, projects: ['bad project'] }),
          'projects[0]',
          'is not a project name',
        ],
        [
          'token role not a string',
          () => authz.createToken({ ...token, roles: [bad(1)] }),
          'roles[0]',
          'must be a role name',
        ],
        [
          'token principal',
          () => authz.createToken({ ...token, principal: bad({ id: 'x' }) }),
          'principal.roles',
          'principal.roles',
        ],
        ['revoke token id', () => authz.revokeToken(''), 'id', 'token id must be a non-empty string'],
        ['list owner', () => authz.listTokens({ ownerId: '' }), 'ownerId', 'ownerId must be a non-empty string'],
        [
          'role description',
          () => authz.defineRole({ name: 'r', permissions: ['model.read'], description: bad(1) }),
          'description',
          'description must be a string',
        ],
        ['delete role name', () => authz.deleteRole('Bad Name'), 'name', 'role name'],
        ['grant role not a string', () => authz.grant('x', 'p', bad(1)), 'role', 'role must be a role name'],
        ['revoke project', () => authz.revoke('x', 'bad project', 'viewer'), 'project', 'is not a project name'],
        ['revoke role not a string', () => authz.revoke('x', 'p', bad(1)), 'role', 'role must be a role name'],
      ];
      for (const [label, call, field, message] of cases) {
        const err = await call().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, label).toBeInstanceOf(ValidationError);
        expect((err as ValidationError).field, label).toBe(field);
        expect((err as Error).message, label).toContain(message);
      }
      expect(await authz.listTokens()).toEqual([]);
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
