import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { dropSchema, freshSchema, pgUrl } from '../../../test-support/pg-env.js';
import { outboxConformance } from '../src/testing/index.js';

outboxConformance('PostgreSQL (peer, schema per test)', async () => {
  const schema = freshSchema('mlplane_outbox');
  return {
    store: await PostgresMetadataStore.connect({ connectionString: pgUrl(), schema }),
    cleanup: () => dropSchema(schema),
  };
});
