import { authorizerConformance } from '@mlplane/core/testing';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { afterAll } from 'vitest';
import { dropSchema, freshSchema, pgUrl } from '../../../test-support/pg-env.js';
import { SqlAuditLog } from '../src/audit/sql-audit-log.js';
import { SqlAuthorizer } from '../src/authz/sql-authorizer.js';
import { readOutbox } from '../src/outbox/outbox.js';

// One schema for this file: principals, projects and roles carry a random tag, so tests share it safely.
const schema = freshSchema('mlplane_authz');
let shared: Promise<{ store: PostgresMetadataStore; audit: SqlAuditLog; authorizer: SqlAuthorizer }> | undefined;

function open() {
  shared ??= (async () => {
    const store = await PostgresMetadataStore.connect({ connectionString: pgUrl(), schema });
    const audit = await SqlAuditLog.open({ store });
    const authorizer = await SqlAuthorizer.open({ store, audit });
    return { store, audit, authorizer };
  })();
  return shared;
}

afterAll(async () => {
  await (await shared)?.store.close();
  await dropSchema(schema);
});

authorizerConformance('SqlAuthorizer on PostgreSQL (peer)', async () => {
  const { store, audit, authorizer } = await open();
  return {
    authorizer,
    audit,
    events: async () => (await readOutbox(store.db(), { limit: 1_000_000 })).map((e) => e.event),
  };
});
