// The client's types cannot drift from the server: src/schema.ts must be exactly what the generator writes from the
// route table as it is now.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { renderSchema, SCHEMA_FILE } from '../scripts/schema.js';

describe('src/schema.ts', () => {
  it('is the OpenAPI document of the current route table (else run `pnpm --filter @mlplane/client generate`)', async () => {
    const committed = await readFile(fileURLToPath(new URL(`../${SCHEMA_FILE}`, import.meta.url)), 'utf8');
    const current = await renderSchema();
    expect(current).toContain('"/api/v1/projects/{project}/runs/{runId}/log-batch"');
    expect(
      committed === current,
      'src/schema.ts differs from the route table: run `pnpm --filter @mlplane/client generate`',
    ).toBe(true);
  });
});
