import { authorizerConformance } from '@mlplane/core/testing';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { afterAll, describe, it } from 'vitest';
import { dropSchema, freshSchema, pgUrl } from '../../../test-support/pg-env.js';
import type { SqlAuditLog } from '../src/audit/sql-audit-log.js';
import { SqlAuthorizer } from '../src/authz/sql-authorizer.js';
import { readOutbox } from '../src/outbox/outbox.js';
import { type AuditSurroundings, auditSurroundings } from './audit-fixture.js';
import { floodFailedChecksOn } from './failed-check-flood.js';

// One schema for this file: principals, projects and roles carry a random tag, so tests share it safely.
const schema = freshSchema('mlplane_authz');
let shared:
  | Promise<{
      store: PostgresMetadataStore;
      surroundings: AuditSurroundings;
      audit: SqlAuditLog;
      authorizer: SqlAuthorizer;
    }>
  | undefined;

function open() {
  shared ??= (async () => {
    const store = await PostgresMetadataStore.connect({ connectionString: pgUrl(), schema });
    const surroundings = await auditSurroundings();
    const audit = await surroundings.open(store);
    const authorizer = await SqlAuthorizer.open({ store, audit });
    return { store, surroundings, audit, authorizer };
  })();
  return shared;
}

afterAll(async () => {
  const opened = await shared;
  await opened?.audit.close();
  await opened?.store.close();
  await opened?.surroundings.remove();
  await dropSchema(schema);
});

authorizerConformance('SqlAuthorizer on PostgreSQL (peer)', async () => {
  const { store, audit, authorizer } = await open();
  return {
    authorizer,
    audit,
    events: async () => (await readOutbox(store.db(), { limit: 1_000_000 })).map((e) => e.event),
    flushAudit: () => authorizer.close(),
  };
});

describe('SqlAuthorizer failed token checks on PostgreSQL', () => {
  it('writes a bounded number of audit entries for 10,000 failed checks, whose counts add up', async () => {
    // A schema of its own: the check counts every token.verify entry in the log.
    const own = freshSchema('mlplane_authz_flood');
    const store = await PostgresMetadataStore.connect({ connectionString: pgUrl(), schema: own });
    try {
      await floodFailedChecksOn(store);
    } finally {
      await store.close();
      await dropSchema(own);
    }
  }, 180_000);
});
