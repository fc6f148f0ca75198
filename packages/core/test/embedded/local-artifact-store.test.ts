import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalArtifactStore } from '../../src/embedded/artifact-store/local-artifact-store.js';
import { ValidationError } from '../../src/ports/errors.js';
import { artifactStoreConformance } from '../../src/testing/conformance/artifact-store.js';
import { readAll } from '../../src/testing/conformance/support.js';

artifactStoreConformance('LocalArtifactStore', async () => {
  const root = await mkdtemp(join(tmpdir(), 'mlplane-artifacts-'));
  return { store: new LocalArtifactStore({ root }), cleanup: () => rm(root, { recursive: true, force: true }) };
});

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** Every regular file under `dir`, relative to it. */
async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (entry.isFile()) out.push(relative(dir, join(entry.parentPath, entry.name)));
  }
  return out.sort();
}

describe('LocalArtifactStore specifics', () => {
  let root: string;
  let store: LocalArtifactStore;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), 'mlplane-artifacts-'));
    store = new LocalArtifactStore({ root });
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('declares a deduplicating store with range reads and no presigned URLs or multipart', () => {
    expect(store.capabilities).toEqual({
      presignedUrls: false,
      multipart: false,
      rangeReads: true,
      deduplicates: true,
      maxKeyBytes: 1024,
    });
    expect('presign' in store).toBe(false);
    expect('createMultipartUpload' in store).toBe(false);
  });

  it('gives file URIs under the resolved root', () => {
    const relativeStore = new LocalArtifactStore({ root: 'relative/artifacts' });
    expect(relativeStore.uri('models/a b/m.onnx')).toBe(
      pathToFileURL(join(process.cwd(), 'relative/artifacts', 'models/a b/m.onnx')).href,
    );
    expect(store.uri('x/y')).toBe(`file://${root}/x/y`);
  });

  it('a copy shares the blob: no bytes are written, and deleting either key keeps the other', async () => {
    await store.put('a', 'shared by copy');
    await store.copy('a', 'b');
    expect(await files(join(root, 'blobs'))).toHaveLength(1);
    await store.delete('a');
    expect((await readAll((await store.get('b')).body)).toString()).toBe('shared by copy');
    await store.delete('b');
    expect(await files(join(root, 'blobs'))).toEqual([]);
  });

  it('an aborted put leaves no temp file behind', async () => {
    const controller = new AbortController();
    async function* slow() {
      yield Buffer.alloc(1024 * 1024, 1);
      controller.abort(new Error('stop'));
      yield Buffer.alloc(1024 * 1024, 2);
    }
    await expect(store.put('k', slow(), { signal: controller.signal })).rejects.toThrow('stop');
    expect(await files(join(root, 'tmp'))).toEqual([]);
    expect(await files(join(root, 'blobs'))).toEqual([]);
  });

  it('stores a blob under blobs/sha256/<2 hex>/<62 hex> and a JSON ref per key', async () => {
    const info = await store.put('models/fraud/3/model.onnx', 'weights', { metadata: { run: 'r1' } });
    expect(await files(join(root, 'blobs'))).toEqual([
      join('sha256', sha('weights').slice(0, 2), sha('weights').slice(2)),
    ]);
    const ref = JSON.parse(await readFile(join(root, 'refs', 'models', 'fraud', '3', 'model.onnx.json'), 'utf8'));
    expect(ref).toMatchObject({
      key: 'models/fraud/3/model.onnx',
      sha256: info.sha256,
      size: 7,
      metadata: { run: 'r1' },
    });
    // Blobs are immutable once stored.
    const blob = join(root, 'blobs', 'sha256', sha('weights').slice(0, 2), sha('weights').slice(2));
    expect((await stat(blob)).mode & 0o222).toBe(0);
  });

  it('stores identical content once and reclaims the blob when its last key is deleted', async () => {
    await store.put('a/one', 'shared content');
    await store.put('b/two', 'shared content');
    expect(await files(join(root, 'blobs'))).toHaveLength(1);

    await store.delete('a/one');
    expect(await files(join(root, 'blobs'))).toHaveLength(1);
    expect((await readAll((await store.get('b/two')).body)).toString()).toBe('shared content');

    await store.delete('b/two');
    expect(await files(join(root, 'blobs'))).toEqual([]);
    expect(await files(join(root, 'refs'))).toEqual([]);
    // Empty key directories are pruned too.
    expect(await readdir(join(root, 'refs'))).toEqual([]);
  });

  it('reclaims the old blob when a key is overwritten', async () => {
    await store.put('k', 'old');
    await store.put('k', 'new');
    expect(await files(join(root, 'blobs'))).toEqual([join('sha256', sha('new').slice(0, 2), sha('new').slice(2))]);
  });

  it('leaves no temp file and no blob after a hash mismatch or a failing body', async () => {
    await expect(store.put('k', 'data', { expectedSha256: sha('other') })).rejects.toBeInstanceOf(ValidationError);
    async function* failing() {
      yield Buffer.from('partial');
      throw new Error('source broke');
    }
    await expect(store.put('k2', failing())).rejects.toThrow('source broke');
    expect(await files(join(root, 'blobs'))).toEqual([]);
    expect(await files(join(root, 'tmp'))).toEqual([]);
    expect(await files(join(root, 'refs'))).toEqual([]);
  });

  it('rejects a malformed expectedSha256 before reading the body', async () => {
    await expect(store.put('k', 'x', { expectedSha256: 'abc' })).rejects.toThrow(/64 hex characters/);
  });

  it('rejects keys that are not valid Unicode', async () => {
    await expect(store.put('bad-\uD800', 'x')).rejects.toThrow(/lone surrogate/);
  });

  it('keeps data across instances on the same root', async () => {
    await store.put('kept', 'persisted', { contentType: 'text/plain' });
    await store.put('dup-1', 'same');
    const reopened = new LocalArtifactStore({ root });
    expect(await reopened.head('kept')).toMatchObject({ size: 9, contentType: 'text/plain' });
    // Counts are rebuilt from disk, so a shared blob survives deleting one of its keys.
    await reopened.put('dup-2', 'same');
    await reopened.delete('dup-1');
    expect((await readAll((await reopened.get('dup-2')).body)).toString()).toBe('same');
  });

  it('gc removes unreferenced blobs and stale temp files but keeps referenced ones', async () => {
    await store.put('live', 'alive');
    const orphanSha = sha('orphan');
    const orphan = join(root, 'blobs', 'sha256', orphanSha.slice(0, 2), orphanSha.slice(2));
    await mkdir(join(orphan, '..'), { recursive: true });
    await writeFile(orphan, 'orphan');
    await writeFile(join(root, 'tmp', 'crashed.upload'), 'half');
    const old = new Date(Date.now() - 2 * 60 * 60 * 1000);
    await utimes(orphan, old, old);
    await utimes(join(root, 'tmp', 'crashed.upload'), old, old);

    expect(await store.gc()).toEqual({ blobsRemoved: 1, tempFilesRemoved: 1 });
    expect(await files(join(root, 'blobs'))).toEqual([join('sha256', sha('alive').slice(0, 2), sha('alive').slice(2))]);
    expect(await files(join(root, 'tmp'))).toEqual([]);
    expect((await readAll((await store.get('live')).body)).toString()).toBe('alive');
  });

  it('gc keeps recent unreferenced files, which may belong to an upload in progress', async () => {
    await mkdir(join(root, 'tmp'), { recursive: true });
    await writeFile(join(root, 'tmp', 'in-progress.upload'), 'partial');
    expect(await store.gc()).toEqual({ blobsRemoved: 0, tempFilesRemoved: 0 });
    expect(await store.gc({ olderThanMs: 0 })).toEqual({ blobsRemoved: 0, tempFilesRemoved: 1 });
  });

  it('ignores stray files in the refs tree', async () => {
    await store.put('dir/a', 'x');
    await writeFile(join(root, 'refs', 'dir', 'README'), 'not a ref');
    await writeFile(join(root, 'refs', 'dir', 'UPPER.json'), '{}');
    const page = await store.list({});
    expect(page.items.map((i) => i.key)).toEqual(['dir/a']);
  });

  it('keeps every file name under 255 bytes for a 1024-byte single-segment key', async () => {
    const key = 'É'.repeat(512);
    await store.put(key, 'long');
    for (const path of await files(join(root, 'refs'))) {
      for (const name of path.split('/')) expect(Buffer.byteLength(name)).toBeLessThan(255);
    }
    expect((await store.list({ prefix: 'ÉÉ' })).items.map((i) => i.key)).toEqual([key]);
  });

  it('reports a blob removed behind its back as damage naming the missing file', async () => {
    await store.put('k', 'content');
    await rm(join(root, 'blobs'), { recursive: true });
    await expect(store.get('k')).rejects.toThrow(/is missing from .*restore it or delete the key/);
  });

  it('rejects an unknown page token', async () => {
    await expect(store.list({ pageToken: '!!not-a-token' })).rejects.toThrow(/pageToken/);
    await expect(store.list({ pageToken: Buffer.from('last-key').toString('base64url') })).rejects.toThrow(/pageToken/);
  });
});
