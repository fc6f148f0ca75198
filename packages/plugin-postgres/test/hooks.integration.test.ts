// The hooks suite on the SQL management layer over PostgreSQL (peer, a schema per platform): the same guarded
// tracker and registry as on SQLite, whichever MetadataStore is chosen.
import { platformHooksConformance } from '@mlplane/core/testing';
import { startTestPlatform } from '@mlplane/defaults/testing';
import { afterAll } from 'vitest';
import { dropSchema, freshSchema, pgUrl } from '../../../test-support/pg-env.js';
import { postgresPlugin } from '../src/plugin.js';

const schemas: string[] = [];
afterAll(async () => {
  for (const schema of schemas) await dropSchema(schema);
});

platformHooksConformance('SQL management layer on PostgreSQL (peer)', async () => {
  const schema = freshSchema('mlplane_hooks');
  schemas.push(schema);
  return { platform: await startTestPlatform({ plugins: [postgresPlugin({ connectionString: pgUrl(), schema })] }) };
});
