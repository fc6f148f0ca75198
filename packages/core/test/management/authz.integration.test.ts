import { afterAll } from 'vitest';
import { SqlAuditLog } from '../../src/embedded/audit/sql-audit-log.js';
import { SqlAuthorizer } from '../../src/embedded/authz/sql-authorizer.js';
import { PostgresMetadataStore } from '../../src/infra/postgres/postgres-metadata-store.js';
import { readOutbox } from '../../src/infra/sql/outbox.js';
import { authorizerConformance } from '../../src/testing/conformance/authorizer.js';
import { dropSchema, freshSchema, pgUrl } from './pg-env.js';

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
