import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ARTIFACT_KEY_MAX_BYTES,
  ARTIFACT_LIST_MAX_PAGE,
  ARTIFACT_METADATA_MAX_BYTES,
  ARTIFACT_PRESIGN_MAX_SECONDS,
  type ArtifactInfo,
  type ArtifactStore,
  artifactStoreInputs,
  ConflictError,
  type ListArtifactsOptions,
  NotFoundError,
  ValidationError,
} from '../../ports/artifact-store.js';
import { validatePortInputs } from '../../ports/port-inputs.js';
import { delay, hashStream, readAll, sha256Hex, uniqueTag } from './support.js';

export interface ArtifactStoreFixture {
  readonly store: ArtifactStore;
  /** Removes what the store created (a temp dir, a bucket prefix); runs after each test. */
  readonly cleanup?: () => Promise<void>;
}

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

/**
 * The contract every ArtifactStore meets, run against a fresh store from `factory` per test.
 * Keys live under a random prefix per test, so a shared backend (one bucket) works too.
 * Capability-gated cases are skipped when the store does not declare the capability.
 */
export function artifactStoreConformance(name: string, factory: () => Promise<ArtifactStoreFixture>): void {
  describe(`ArtifactStore conformance: ${name}`, async () => {
    // Capabilities decide which cases exist, so one store is created at collection time to read them.
    const probe = await factory();
    const caps = probe.store.capabilities;
    await probe.cleanup?.();

    let fixture: ArtifactStoreFixture;
    let store: ArtifactStore;
    let ns: string;
    const key = (rest: string) => ns + rest;

    beforeEach(async () => {
      fixture = await factory();
      store = fixture.store;
      ns = `conformance-${uniqueTag()}/`;
    });
    afterEach(async () => {
      await fixture?.cleanup?.();
    });

    async function content(k: string): Promise<Buffer> {
      return readAll((await store.get(k)).body);
    }

    async function listAll(
      options: ListArtifactsOptions,
    ): Promise<{ keys: string[]; prefixes: string[]; pages: number }> {
      const keys: string[] = [];
      const prefixes: string[] = [];
      let pageToken: string | undefined;
      let pages = 0;
      do {
        const page = await store.list({ ...options, ...(pageToken ? { pageToken } : {}) });
        pages++;
        keys.push(...page.items.map((i) => i.key));
        prefixes.push(...page.prefixes);
        pageToken = page.nextPageToken;
        if (pages > 1000) throw new Error('list did not terminate after 1000 pages');
      } while (pageToken);
      return { keys, prefixes, pages };
    }

    async function putMany(keys: readonly string[], concurrency = 32): Promise<void> {
      let next = 0;
      const worker = async () => {
        while (next < keys.length) {
          const k = keys[next++]!;
          await store.put(k, k);
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
    }

    const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

    describe('put and get', () => {
      it('round-trips every body shape with the sha256 and size of the content', async () => {
        const text = 'héllo, artifacts ✓';
        const bytes = randomBytes(4096);
        const bodies: [string, () => Parameters<ArtifactStore['put']>[1], Buffer][] = [
          ['string', () => text, Buffer.from(text, 'utf8')],
          ['uint8array', () => new Uint8Array(bytes), bytes],
          ['readable', () => Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]), bytes],
          [
            'async-iterable',
            () =>
              (async function* () {
                yield bytes.subarray(0, 10);
                yield bytes.subarray(10);
              })(),
            bytes,
          ],
        ];
        for (const [label, body, expected] of bodies) {
          const info = await store.put(key(label), body());
          expect(info.key).toBe(key(label));
          expect(info.size).toBe(expected.length);
          expect(info.sha256).toBe(sha256Hex(expected));
          const got = await store.get(key(label));
          expect(got.info.sha256).toBe(info.sha256);
          expect((await readAll(got.body)).equals(expected)).toBe(true);
          expect(await store.head(key(label))).toEqual(info);
          expect(await store.exists(key(label))).toBe(true);
        }
      });

      it('records content type and metadata, with defaults when absent', async () => {
        const info = await store.put(key('with-meta.json'), '{}', {
          contentType: 'application/json',
          metadata: { run: 'r-1', stage: 'train' },
        });
        expect(info.contentType).toBe('application/json');
        expect(info.metadata).toEqual({ run: 'r-1', stage: 'train' });
        expect(await store.head(key('with-meta.json'))).toMatchObject({
          contentType: 'application/json',
          metadata: { run: 'r-1', stage: 'train' },
        });

        const plain = await store.put(key('plain'), 'x');
        expect(plain.contentType).toBe('application/octet-stream');
        expect(plain.metadata).toEqual({});
      });

      it('refuses a content type that is not a media type, CR/LF included, storing nothing', async () => {
        for (const contentType of ['text/plain\r\nX-Injected: 1', 'text/plain\n', 'text', 'text/pl ain', '']) {
          const err = await store.put(key('typed'), 'x', { contentType }).then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(err, JSON.stringify(contentType)).toBeInstanceOf(ValidationError);
          expect((err as ValidationError).field).toBe('contentType');
        }
        expect(await store.exists(key('typed'))).toBe(false);
        const info = await store.put(key('typed'), 'a,b', { contentType: 'text/csv; charset=utf-8' });
        expect(info.contentType).toBe('text/csv; charset=utf-8');
      });

      it('stamps createdAt with the time of the put', async () => {
        const before = Date.now();
        const info = await store.put(key('dated'), 'x');
        const after = Date.now();
        expect(info.createdAt).toBeInstanceOf(Date);
        // Allow for clock granularity and a remote server's clock skew.
        expect(info.createdAt.getTime()).toBeGreaterThanOrEqual(before - 5_000);
        expect(info.createdAt.getTime()).toBeLessThanOrEqual(after + 5_000);
      });

      it('stores an empty body', async () => {
        const info = await store.put(key('empty'), new Uint8Array(0));
        expect(info).toMatchObject({ size: 0, sha256: EMPTY_SHA256 });
        expect((await content(key('empty'))).length).toBe(0);
      });

      it('streams a 64 MiB body in and out intact', { timeout: 180_000 }, async () => {
        const chunkSize = 1 << 20;
        const chunks = 64;
        const generated = { hash: '', size: 0 };
        const hash = createHash('sha256');
        // The body is produced chunk by chunk and hashed on the way, so the test never holds 64 MiB.
        async function* body() {
          for (let i = 0; i < chunks; i++) {
            const chunk = randomBytes(chunkSize);
            hash.update(chunk);
            generated.size += chunk.length;
            yield chunk;
          }
          generated.hash = hash.digest('hex');
        }
        const info = await store.put(key('large.bin'), body());
        expect(generated.size).toBe(chunks * chunkSize);
        expect(info.size).toBe(chunks * chunkSize);
        expect(info.sha256).toBe(generated.hash);
        const read = await hashStream((await store.get(key('large.bin'))).body);
        expect(read).toEqual({ sha256: generated.hash, size: chunks * chunkSize });
      });

      it('stores nothing when the body stream fails', async () => {
        async function* failing() {
          yield Buffer.from('partial');
          throw new Error('source broke');
        }
        await expect(store.put(key('broken'), failing())).rejects.toThrow();
        expect(await store.exists(key('broken'))).toBe(false);
      });

      it('rejects a body that is not bytes with ValidationError', async () => {
        await expect(store.put(key('bad-body'), 42 as unknown as string)).rejects.toBeInstanceOf(ValidationError);
        expect(await store.exists(key('bad-body'))).toBe(false);
      });
    });

    describe('overwrite and conditional writes', () => {
      it('replaces content, content type and metadata on overwrite', async () => {
        await store.put(key('model.bin'), 'version one', { contentType: 'text/plain', metadata: { v: '1', old: 'x' } });
        const second = await store.put(key('model.bin'), 'version two!', { metadata: { v: '2' } });
        expect(second.sha256).toBe(sha256Hex('version two!'));
        expect((await content(key('model.bin'))).toString()).toBe('version two!');
        const head = await store.head(key('model.bin'));
        expect(head).toMatchObject({ size: 12, contentType: 'application/octet-stream', metadata: { v: '2' } });
      });

      it('ifNotExists fails with ConflictError on an existing key and keeps its content', async () => {
        await store.put(key('once'), 'first');
        const err = await store.put(key('once'), 'second', { ifNotExists: true }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ConflictError);
        expect((err as Error).message).toContain(key('once'));
        expect((await content(key('once'))).toString()).toBe('first');
        // A new key is written normally.
        await store.put(key('fresh'), 'x', { ifNotExists: true });
        expect((await content(key('fresh'))).toString()).toBe('x');
      });

      it('ifNotExists lets exactly one of concurrent writers win', async () => {
        const writers = Array.from({ length: 8 }, (_, i) =>
          store.put(key('race'), `writer ${i}`, { ifNotExists: true }).then(
            () => i,
            (err: unknown) => err,
          ),
        );
        const outcomes = await Promise.all(writers);
        const winners = outcomes.filter((o): o is number => typeof o === 'number');
        expect(winners).toHaveLength(1);
        for (const o of outcomes) if (typeof o !== 'number') expect(o).toBeInstanceOf(ConflictError);
        expect((await content(key('race'))).toString()).toBe(`writer ${winners[0]}`);
      });

      it('expectedSha256 accepts matching content and stores nothing on a mismatch', async () => {
        const good = await store.put(key('checked'), 'payload', { expectedSha256: sha256Hex('payload') });
        expect(good.sha256).toBe(sha256Hex('payload'));

        const err = await store
          .put(key('mismatch'), 'payload', { expectedSha256: sha256Hex('something else') })
          .catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ValidationError);
        expect((err as Error).message).toMatch(/sha256/i);
        expect(await store.exists(key('mismatch'))).toBe(false);

        // A mismatch on an existing key leaves the old content in place.
        await expect(
          store.put(key('checked'), 'replacement', { expectedSha256: sha256Hex('nope') }),
        ).rejects.toBeInstanceOf(ValidationError);
        expect((await content(key('checked'))).toString()).toBe('payload');
      });

      it('concurrent writers to one key: readers never see partial content, the last state is one of the writes', {
        timeout: 60_000,
      }, async () => {
        const size = 256 * 1024;
        const versions = Array.from({ length: 8 }, (_, i) => Buffer.alloc(size, i + 1));
        const initial = Buffer.alloc(size, 0xee);
        const known = new Set([initial, ...versions].map((b) => sha256Hex(b)));
        await store.put(key('contended'), initial);

        let writing = true;
        const writers = Promise.all(
          versions.map(async (v) => {
            // Several chunks with pauses keep each upload open long enough to overlap with reads.
            async function* slow() {
              for (let off = 0; off < v.length; off += 64 * 1024) {
                yield v.subarray(off, off + 64 * 1024);
                await delay(1);
              }
            }
            await store.put(key('contended'), slow());
          }),
        ).finally(() => {
          writing = false;
        });
        const seen: string[] = [];
        const reader = async () => {
          while (writing) {
            const { info, body } = await store.get(key('contended'));
            const got = await hashStream(body);
            expect(got.size).toBe(size);
            expect(got.sha256).toBe(info.sha256);
            expect(known.has(got.sha256)).toBe(true);
            seen.push(got.sha256);
          }
        };
        await Promise.all([writers, reader(), reader()]);
        expect(seen.length).toBeGreaterThan(0);
        const final = await hashStream((await store.get(key('contended'))).body);
        expect(versions.map((v) => sha256Hex(v))).toContain(final.sha256);
        expect((await store.head(key('contended'))).sha256).toBe(final.sha256);
      });
    });

    describe('missing keys', () => {
      it('get and head throw NotFoundError naming the key; exists is false', async () => {
        const missing = key('no/such/artifact');
        for (const call of [() => store.get(missing), () => store.head(missing)]) {
          const err = await call().catch((e: unknown) => e);
          expect(err).toBeInstanceOf(NotFoundError);
          expect((err as Error).message).toContain(missing);
        }
        expect(await store.exists(missing)).toBe(false);
      });
    });

    describe('keys', () => {
      const invalid: [string, () => string, RegExp][] = [
        ['empty', () => '', /empty/i],
        ['over 1024 bytes', () => 'k'.repeat(ARTIFACT_KEY_MAX_BYTES + 1), /1024/],
        // 513 two-byte characters: under 1024 characters but over 1024 bytes.
        ['over 1024 UTF-8 bytes', () => 'é'.repeat(513), /1024/],
        ['leading slash', () => '/abs/path', /start with '\/'/],
        ['empty segment', () => 'a//b', /segment/i],
        ['trailing slash', () => 'a/b/', /segment/i],
        ['dot segment', () => 'a/./b', /segment/i],
        ['dot-dot segment', () => 'a/../b', /segment/i],
        ['only dot-dot', () => '..', /segment/i],
        ['NUL', () => 'a\0b', /NUL/],
        ['backslash', () => 'a\\b', /backslash/i],
      ];
      for (const [label, make, message] of invalid) {
        it(`rejects a key with ${label} in every operation`, async () => {
          const k = make();
          const calls: (() => Promise<unknown>)[] = [
            () => store.put(k, 'x'),
            () => store.get(k),
            () => store.head(k),
            () => store.exists(k),
            () => store.delete(k),
          ];
          for (const call of calls) {
            const err = await call().catch((e: unknown) => e);
            expect(err).toBeInstanceOf(ValidationError);
            expect((err as Error).message).toMatch(message);
          }
        });
      }

      it('accepts keys at the limits and keeps look-alike keys apart', async () => {
        const filler = 'x'.repeat(ARTIFACT_KEY_MAX_BYTES - Buffer.byteLength(key('')));
        const longest = key(filler);
        expect(Buffer.byteLength(longest)).toBe(ARTIFACT_KEY_MAX_BYTES);
        const multibyte = key(`${'é'.repeat(200)}/${'ß'.repeat(200)}`);
        const keys = [
          longest,
          multibyte,
          key('Model'),
          key('model'),
          key('a'),
          key('a/b'),
          key('a/b/c'),
          key('x.json'),
          key('x.json/y'),
          key('x'),
          key('.hidden/...'),
          key('with space/and+plus%20=&?#'),
          key('emoji/😀'),
        ];
        for (const k of keys) await store.put(k, `content of ${k}`);
        for (const k of keys) {
          expect((await content(k)).toString()).toBe(`content of ${k}`);
          expect((await store.head(k)).key).toBe(k);
        }
        const listed = await listAll({ prefix: ns });
        expect(listed.keys).toEqual([...keys].sort(byteOrder));
      });
    });

    describe('list', () => {
      it('lists keys in UTF-8 byte order and filters by prefix', async () => {
        // Byte order differs from JS string order: 'a-b' < 'a/b', 'Z' < 'a', U+FF5E < U+1F600.
        const names = ['p/a', 'p/a/b', 'p/a-b', 'p/B', 'p/z', 'p/é', 'p/\u{1F600}', 'p/\uFF5E', 'q/1'];
        await putMany(names.map(key));
        const all = await store.list({ prefix: ns });
        expect(all.items.map((i) => i.key)).toEqual(names.map(key).sort(byteOrder));
        expect(all.prefixes).toEqual([]);
        expect(all.nextPageToken).toBeUndefined();

        const pa = await store.list({ prefix: key('p/a') });
        expect(pa.items.map((i) => i.key)).toEqual([key('p/a'), key('p/a-b'), key('p/a/b')]);
        const item = pa.items[0]!;
        expect(item).toMatchObject({ size: Buffer.byteLength(key('p/a')), sha256: sha256Hex(key('p/a')) });

        expect((await store.list({ prefix: key('nothing-here/') })).items).toEqual([]);
      });

      it('rolls up one directory level with the / delimiter', async () => {
        await putMany(['d/1', 'd/2/x', 'd/2/y/z', 'd/3', 'd/30/q', 'd/4/w', 'e'].map(key));
        const page = await store.list({ prefix: key('d/'), delimiter: '/' });
        expect(page.items.map((i) => i.key)).toEqual([key('d/1'), key('d/3')]);
        expect(page.prefixes).toEqual([key('d/2/'), key('d/30/'), key('d/4/')]);

        const partial = await store.list({ prefix: key('d/3'), delimiter: '/' });
        expect(partial.items.map((i) => i.key)).toEqual([key('d/3')]);
        expect(partial.prefixes).toEqual([key('d/30/')]);

        const top = await store.list({ prefix: ns, delimiter: '/' });
        expect(top.items.map((i) => i.key)).toEqual([key('e')]);
        expect(top.prefixes).toEqual([key('d/')]);
      });

      it('paginates 2,500 keys in pages of at most 1000 with no duplicates or gaps', { timeout: 180_000 }, async () => {
        const keys = Array.from({ length: 2500 }, (_, i) => key(`many/${String(i).padStart(5, '0')}`));
        await putMany(keys);
        const first = await store.list({ prefix: key('many/') });
        expect(first.items).toHaveLength(ARTIFACT_LIST_MAX_PAGE);
        expect(first.nextPageToken).toBeTypeOf('string');

        const sizes: number[] = [];
        const seen: string[] = [];
        let pageToken: string | undefined;
        do {
          const page = await store.list({ prefix: key('many/'), pageSize: 1000, ...(pageToken ? { pageToken } : {}) });
          sizes.push(page.items.length);
          seen.push(...page.items.map((i: ArtifactInfo) => i.key));
          pageToken = page.nextPageToken;
        } while (pageToken);
        expect(sizes).toEqual([1000, 1000, 500]);
        expect(seen).toEqual(keys);

        const small = await listAll({ prefix: key('many/'), pageSize: 97 });
        expect(small.keys).toEqual(keys);
        expect(small.pages).toBe(Math.ceil(2500 / 97));
      });

      it('counts rolled-up prefixes toward the page size when paginating', async () => {
        await putMany(['d/1', 'd/2/x', 'd/2/y', 'd/3', 'd/4/w'].map(key));
        const walked: string[] = [];
        let pageToken: string | undefined;
        let pages = 0;
        do {
          const page = await store.list({
            prefix: key('d/'),
            delimiter: '/',
            pageSize: 1,
            ...(pageToken ? { pageToken } : {}),
          });
          pages++;
          expect(page.items.length + page.prefixes.length).toBe(1);
          walked.push(...page.items.map((i) => i.key), ...page.prefixes);
          pageToken = page.nextPageToken;
        } while (pageToken);
        expect(walked).toEqual([key('d/1'), key('d/2/'), key('d/3'), key('d/4/')]);
        expect(pages).toBe(4);
      });

      it('rejects a page size outside 1..1000 with ValidationError', async () => {
        for (const pageSize of [0, -1, 1.5, ARTIFACT_LIST_MAX_PAGE + 1]) {
          await expect(store.list({ prefix: ns, pageSize })).rejects.toBeInstanceOf(ValidationError);
        }
      });
    });

    describe('delete', () => {
      it('removes the key everywhere and is idempotent', async () => {
        await store.put(key('doomed'), 'bye');
        await store.delete(key('doomed'));
        expect(await store.exists(key('doomed'))).toBe(false);
        await expect(store.get(key('doomed'))).rejects.toBeInstanceOf(NotFoundError);
        await expect(store.head(key('doomed'))).rejects.toBeInstanceOf(NotFoundError);
        expect((await store.list({ prefix: ns })).items).toEqual([]);
        await store.delete(key('doomed'));
        await store.delete(key('never-existed'));
        // The key can be written again after a delete.
        await store.put(key('doomed'), 'back');
        expect((await content(key('doomed'))).toString()).toBe('back');
      });

      it('deleting one key keeps another key with identical content readable', async () => {
        await store.put(key('twin-1'), 'same bytes');
        await store.put(key('twin-2'), 'same bytes');
        await store.delete(key('twin-1'));
        expect((await content(key('twin-2'))).toString()).toBe('same bytes');
        // Overwriting keeps the other twin intact too.
        await store.put(key('twin-3'), 'same bytes');
        await store.put(key('twin-2'), 'different');
        expect((await content(key('twin-3'))).toString()).toBe('same bytes');
      });

      it('a deleted directory-like prefix disappears from delimiter listings', async () => {
        await store.put(key('dir/only'), 'x');
        await store.delete(key('dir/only'));
        const page = await store.list({ prefix: ns, delimiter: '/' });
        expect(page.prefixes).toEqual([]);
        expect(page.items).toEqual([]);
      });
    });

    describe('range reads', () => {
      it.skipIf(!caps.rangeReads)('returns the inclusive byte range and the full-object info', async () => {
        const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
        await store.put(key('ranged'), data);
        const read = async (range: { start: number; end?: number }) => {
          const { info, body } = await store.get(key('ranged'), { range });
          expect(info.size).toBe(1000);
          return readAll(body);
        };
        expect((await read({ start: 10, end: 19 })).equals(data.subarray(10, 20))).toBe(true);
        expect((await read({ start: 0, end: 0 })).equals(data.subarray(0, 1))).toBe(true);
        expect((await read({ start: 990 })).equals(data.subarray(990))).toBe(true);
        // An end past the last byte is clamped, as HTTP ranges are.
        expect((await read({ start: 995, end: 5000 })).equals(data.subarray(995))).toBe(true);
      });

      it.skipIf(!caps.rangeReads)('rejects an unsatisfiable range with ValidationError', async () => {
        await store.put(key('ranged'), 'ten bytes!');
        for (const range of [{ start: 10 }, { start: 5, end: 4 }, { start: -1, end: 3 }]) {
          await expect(store.get(key('ranged'), { range })).rejects.toBeInstanceOf(ValidationError);
        }
      });
    });

    describe('inputs at the port boundary (validatePortInputs, as the kernel wraps every provider)', () => {
      it('refuses metadata beyond ARTIFACT_METADATA_MAX_BYTES, a content type that is not a media type, a body of another kind', async () => {
        const boundary = validatePortInputs(store, artifactStoreInputs);
        const cases: [() => Promise<unknown>, string, string][] = [
          [
            () => boundary.put(key('meta'), 'x', { metadata: { note: 'n'.repeat(ARTIFACT_METADATA_MAX_BYTES) } }),
            'metadata',
            'ARTIFACT_METADATA_MAX_BYTES',
          ],
          [
            () => boundary.put(key('meta'), 'x', { contentType: `text/${'x'.repeat(300)}` }),
            'contentType',
            'is not a media type',
          ],
          [() => boundary.put(key('meta'), { not: 'a body' } as never), 'body', 'must be a stream'],
          [() => boundary.get(key('meta'), { range: { start: 4, end: 2 } }), 'range', 'end before it starts'],
          [
            () => boundary.list({ prefix: ns, pageSize: ARTIFACT_LIST_MAX_PAGE + 1 }),
            'pageSize',
            `from 1 to ${ARTIFACT_LIST_MAX_PAGE}`,
          ],
        ];
        if (caps.presignedUrls) {
          cases.push([
            () => boundary.presign!(key('meta'), { method: 'GET', expiresInSeconds: ARTIFACT_PRESIGN_MAX_SECONDS + 1 }),
            'expiresInSeconds',
            `from 1 to ${ARTIFACT_PRESIGN_MAX_SECONDS}`,
          ]);
        }
        for (const [call, field, message] of cases) {
          const err = await call().catch((e: unknown) => e);
          expect(err, field).toBeInstanceOf(ValidationError);
          expect((err as ValidationError).field).toBe(field);
          expect((err as Error).message).toContain(message);
        }
        expect(await store.exists(key('meta'))).toBe(false);
      });

      it('stores the metadata a store must accept: ARTIFACT_METADATA_MAX_BYTES of names and values', async () => {
        const metadata = { note: 'n'.repeat(ARTIFACT_METADATA_MAX_BYTES - 4) };
        const info = await validatePortInputs(store, artifactStoreInputs).put(key('full-meta'), 'x', { metadata });
        expect(info.metadata).toEqual(metadata);
        expect((await store.head(key('full-meta'))).metadata).toEqual(metadata);
      });
    });

    describe('presigned URLs', () => {
      it.skipIf(!caps.presignedUrls)('a presigned GET URL serves the content without credentials', async () => {
        await store.put(key('shared.txt'), 'public for a while');
        const url = await store.presign!(key('shared.txt'), { method: 'GET', expiresInSeconds: 300 });
        const response = await fetch(url);
        expect(response.status).toBe(200);
        expect(await response.text()).toBe('public for a while');
      });

      it.skipIf(!caps.presignedUrls)('a presigned PUT URL stores content readable through the store', async () => {
        const url = await store.presign!(key('uploaded.txt'), { method: 'PUT', expiresInSeconds: 300 });
        const response = await fetch(url, { method: 'PUT', body: 'sent by a client' });
        expect(response.ok).toBe(true);
        expect((await content(key('uploaded.txt'))).toString()).toBe('sent by a client');
      });
    });
  });
}
