import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { dropSchema, freshSchema, pgUrl } from '../../../../test-support/pg-env.js';
import { retentionSuite } from './retention-suite.js';

retentionSuite('PostgreSQL (peer)', async () => {
  const schema = freshSchema('mlplane_retention');
  const store = await PostgresMetadataStore.connect({ connectionString: pgUrl(), schema });
  return {
    store,
    close: async () => {
      await store.close();
      await dropSchema(schema);
    },
  };
});
