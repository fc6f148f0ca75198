// docs/plugin-authoring.md walks through the example plugin by showing its source: the page must show the file as it is.
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';

const read = (path: string) => readFile(new URL(`../../${path}`, import.meta.url), 'utf8');

describe('docs/plugin-authoring.md', () => {
  it('shows examples/src/promotion-webhook.ts exactly as the file is', async () => {
    const source = await read('examples/src/promotion-webhook.ts');
    expect(await read('docs/plugin-authoring.md')).toContain(`\`\`\`ts\n${source}\`\`\``);
  });
});
