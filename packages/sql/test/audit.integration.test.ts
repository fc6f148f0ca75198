import { auditLogConformance } from '@mlplane/core/testing';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { dropSchema, freshSchema, pgUrl } from '../../../test-support/pg-env.js';
import { sqlAuditFixture } from './audit-fixture.js';

// The log is one chain per schema, so every test gets a schema of its own.
auditLogConformance('SqlAuditLog on PostgreSQL (peer)', async () => {
  const schema = freshSchema('mlplane_audit');
  const connect = () => PostgresMetadataStore.connect({ connectionString: pgUrl(), schema });
  return sqlAuditFixture({ store: await connect(), openStore: connect, dropDatabase: () => dropSchema(schema) });
});
