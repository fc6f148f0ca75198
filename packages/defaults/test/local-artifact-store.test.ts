import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ConflictError, ValidationError } from '@mlplane/core';
import { artifactStoreConformance, readAll } from '@mlplane/core/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalArtifactStore } from '../src/artifact-store/local-artifact-store.js';

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

  it('names each key by the file:// URL of the root joined with the key, percent-encoded', () => {
    expect(store.uri('experiments/1/model.onnx')).toBe(`file://${resolve(root)}/experiments/1/model.onnx`);
    const odd = 'runs/a b/x#1?.txt';
    const uri = store.uri(odd);
    expect(uri).toMatch(/^file:\/\/\/.*\/runs\/a%20b\/x%231%3F\.txt$/);
    // The URL decodes back to the root joined with the key: nothing of the key is lost or altered.
    expect(fileURLToPath(uri)).toBe(join(resolve(root), odd));
    // A relative root is made absolute once, when the store is created.
    expect(new LocalArtifactStore({ root: 'rel/artifacts' }).uri('k')).toBe(`file://${resolve('rel/artifacts')}/k`);
  });

  it('refuses to name a key that breaks the key rules', () => {
    for (const key of ['', '/abs', 'a//b', 'a/../b']) {
      expect(() => store.uri(key)).toThrow(ValidationError);
    }
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
    await store.close();
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

describe('LocalArtifactStore ownership and file modes', () => {
  let root: string;
  const stores: LocalArtifactStore[] = [];
  const open = (options = { root }) => {
    const store = new LocalArtifactStore(options);
    stores.push(store);
    return store;
  };

  beforeEach(async () => {
    root = join(await mkdtemp(join(tmpdir(), 'mlplane-owner-')), 'artifacts');
  });
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((s) => s.close()));
    await rm(join(root, '..'), { recursive: true, force: true });
  });

  it('lets one store write to a root at a time, so a second cannot reclaim blobs the first references', async () => {
    const first = open();
    const second = open();
    await first.put('first/model', 'shared content');
    // Without ownership the second store would count this blob once, delete it with its own key, and break `first`.
    const err = await second.put('second/model', 'shared content').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toMatch(
      new RegExp(
        `^local artifact store ${root} is in use by process ${process.pid} on host .+ \\(since .+, this process\\): one process writes to it at a time`,
      ),
    );
    await expect(second.delete('first/model')).rejects.toBeInstanceOf(ConflictError);
    await expect(second.gc()).rejects.toBeInstanceOf(ConflictError);
    // Reads take no lock.
    expect((await readAll((await second.get('first/model')).body)).toString()).toBe('shared content');
    expect(await second.exists('second/model')).toBe(false);

    await first.close();
    await second.put('second/model', 'shared content');
    await second.delete('second/model');
    expect((await readAll((await second.get('first/model')).body)).toString()).toBe('shared content');
    // The closed store claims the root again on its next write, and now it is the one refused.
    await expect(first.put('first/other', 'x')).rejects.toBeInstanceOf(ConflictError);
  });

  it('open() claims the root up front', async () => {
    await LocalArtifactStore.open({ root }).then((s) => stores.push(s));
    await expect(LocalArtifactStore.open({ root })).rejects.toThrow(/is in use by process/);
  });

  it('names the owning process of another pid, and the root is free again once that process dies', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, 'fixtures', 'artifact-owner-child.ts'), root],
      { cwd: join(import.meta.dirname, '..', '..'), stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      await new Promise<void>((ready, fail) => {
        child.stdout.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && ready());
        child.once('exit', (code) => fail(new Error(`child exited with ${code} before taking the root`)));
      });
      const err = await open()
        .put('mine', 'shared content')
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConflictError);
      expect((err as Error).message).toContain(`is in use by process ${child.pid} on host`);
      expect((err as Error).message).not.toContain('this process');
    } finally {
      const exited = new Promise((done) => child.once('exit', done));
      // SIGKILL: no cleanup runs in the child, so only the OS can release the lock.
      child.kill('SIGKILL');
      await exited;
    }
    const after = open();
    await after.put('mine', 'shared content');
    await after.delete('mine');
    expect((await readAll((await after.get('owned-by-child')).body)).toString()).toBe('shared content');
  }, 30_000);

  it('creates its directories 0700, blobs 0400 and ref and lock files 0600', async () => {
    const store = open();
    await store.put('models/fraud/model.onnx', 'weights');
    const sha256 = sha('weights');
    const mode = async (path: string) => (await stat(path)).mode & 0o777;
    for (const dir of ['', 'refs', 'refs/models', 'refs/models/fraud', 'blobs', 'blobs/sha256', 'tmp']) {
      expect(await mode(join(root, dir)), dir || 'root').toBe(0o700);
    }
    expect(await mode(join(root, 'blobs', 'sha256', sha256.slice(0, 2)))).toBe(0o700);
    expect(await mode(join(root, 'blobs', 'sha256', sha256.slice(0, 2), sha256.slice(2)))).toBe(0o400);
    expect(await mode(join(root, 'refs', 'models', 'fraud', 'model.onnx.json'))).toBe(0o600);
    expect(await mode(join(root, 'owner.lock'))).toBe(0o600);
  });
});
