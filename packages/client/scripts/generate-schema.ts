// Rewrites src/schema.ts from the server's route table: run after changing a route (`pnpm --filter @mlplane/client
// generate`); test/schema.test.ts fails while the committed file differs from what this writes.
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { renderSchema, SCHEMA_FILE } from './schema.js';

const target = fileURLToPath(new URL(`../${SCHEMA_FILE}`, import.meta.url));
await writeFile(target, await renderSchema());
console.log(`wrote ${target}`);
