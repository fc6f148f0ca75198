import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteMetadataStore } from '../src/metadata-store/sqlite-metadata-store.js';

const run = promisify(execFile);
const child = join(import.meta.dirname, 'fixtures', 'migrate-child.ts');

describe('SqliteMetadataStore across processes', () => {
  let dir: string | undefined;
  afterEach(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('applies each migration once when three processes start together on one file', async () => {
    dir = await mkdtemp(join(tmpdir(), 'mlplane-mp-'));
    const path = join(dir, 'metadata.sqlite');
    // Leave time for every child to boot tsx before the common start instant.
    const startAt = String(Date.now() + 4000);
    const outputs = await Promise.all(
      [0, 1, 2].map(() =>
        run(process.execPath, ['--import', 'tsx', child, path, startAt], {
          cwd: join(import.meta.dirname, '..', '..'),
        }),
      ),
    );
    const applied = outputs.flatMap((o) => JSON.parse(o.stdout) as string[]);
    expect(applied.sort()).toEqual([
      '20260101T000000_create_log',
      '20260102T000000_a',
      '20260103T000000_b',
      '20260104T000000_c',
    ]);
    const store = await SqliteMetadataStore.open({ path });
    try {
      const log = await store.db().selectFrom('log').select('name').orderBy('name').execute();
      expect(log.map((r) => r.name)).toEqual(['a', 'b', 'c']);
    } finally {
      await store.close();
    }
  }, 30_000);
});
