import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { dropSchema, freshSchema, pgUrl } from '../../../test-support/pg-env.js';
import { limitsSuite } from './limits/limits-suite.js';

limitsSuite('PostgreSQL (peer)', async () => {
  const schema = freshSchema('mlplane_limits');
  const store = await PostgresMetadataStore.connect({ connectionString: pgUrl(), schema });
  return {
    store,
    close: async () => {
      await store.close();
      await dropSchema(schema);
    },
  };
});
