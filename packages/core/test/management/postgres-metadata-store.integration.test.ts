import { PostgresMetadataStore } from '../../src/infra/postgres/postgres-metadata-store.js';
import { metadataStoreConformance } from '../../src/testing/conformance/metadata-store.js';
import { dropSchema, freshSchema, pgUrl } from './pg-env.js';

metadataStoreConformance('PostgresMetadataStore (peer, schema per test)', async () => {
  const schema = freshSchema('mlplane_meta');
  const open = () => PostgresMetadataStore.connect({ connectionString: pgUrl(), schema });
  return { store: await open(), openAnother: open, cleanup: () => dropSchema(schema) };
});
