import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  ARTIFACT_DELETE_MANY_MAX,
  ARTIFACT_KEY_MAX_BYTES,
  ARTIFACT_LIST_PAGE,
  ARTIFACT_METADATA_MAX_BYTES,
  ARTIFACT_MIN_PART_BYTES,
  ARTIFACT_PRESIGN_MAX_SECONDS,
  type ArtifactInfo,
  type ArtifactStore,
  type ArtifactSummary,
  artifactStoreInputs,
  ConflictError,
  type ListArtifactsOptions,
  NotFoundError,
  type PresignedRequest,
  ValidationError,
} from '../../ports/artifact-store.js';
import { validatePortInputs } from '../../ports/port-inputs.js';
import { delay, hashStream, readAll, rejects, sha256Hex, uniqueTag } from './support.js';

export interface ArtifactStoreFixture {
  readonly store: ArtifactStore;
  /** Removes what the store created (a temp dir, a bucket prefix); runs after each test. */
  readonly cleanup?: () => Promise<void>;
  /**
   * True when the backend keeps each key as a file path, as S3-compatible servers on a plain filesystem do
   * (versitygw's posix backend): a key cannot also start other keys (`a` and `a/b`; such a put must fail with
   * ConflictError) and no segment may exceed the filesystem's 255-byte name limit. The port allows both; AWS S3
   * and the local store hold both. The cases then use keys such a backend can hold. Default false.
   */
  readonly keysAsFiles?: boolean;
}

const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const MiB = 1024 * 1024;

/** `put` stamps lastModified from the response where the backend returns none (S3), so it may be a second off. */
function expectSameInfo(actual: ArtifactInfo, expected: ArtifactInfo): void {
  const { lastModified: a, ...restA } = actual;
  const { lastModified: b, ...restB } = expected;
  expect(restA).toEqual(restB);
  expect(a).toBeInstanceOf(Date);
  expect(Math.abs(a.getTime() - b.getTime())).toBeLessThanOrEqual(2_000);
}

/** Sends a presigned request as a client without credentials would. */
function send(request: PresignedRequest, body?: string | Uint8Array): Promise<Response> {
  return fetch(request.url, {
    method: request.method,
    headers: request.headers,
    ...(body === undefined ? {} : { body }),
  });
}

/** Bytes made on the fly, `chunk` at a time, hashed on the way: a large body the test never holds whole. */
function generated(
  size: number,
  chunk = MiB,
): { body: AsyncIterable<Uint8Array>; result: { sha256: string; size: number } } {
  const result = { sha256: '', size: 0 };
  const hash = createHash('sha256');
  async function* body() {
    for (let sent = 0; sent < size; sent += chunk) {
      const bytes = randomBytes(Math.min(chunk, size - sent));
      hash.update(bytes);
      result.size += bytes.length;
      yield bytes;
    }
    result.sha256 = hash.digest('hex');
  }
  return { body: body(), result };
}

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
    const nestedKeys = !(probe.keysAsFiles ?? false);
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
          expectSameInfo(got.info, info);
          expectSameInfo(await store.head(key(label)), info);
          expect(await store.exists(key(label))).toBe(true);
        }
      });

      it('describes a stored object with an etag that changes with its content', async () => {
        const first = await store.put(key('versioned'), 'one');
        expect(first.etag).toMatch(/^".+"$/);
        const same = await store.head(key('versioned'));
        expect(same.etag).toBe(first.etag);
        const second = await store.put(key('versioned'), 'two');
        expect(second.etag).not.toBe(first.etag);
        expect((await store.head(key('versioned'))).etag).toBe(second.etag);
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

      it('stamps lastModified with the time of the put', async () => {
        const before = Date.now();
        const info = await store.put(key('dated'), 'x');
        const after = Date.now();
        expect(info.lastModified).toBeInstanceOf(Date);
        // Allow for clock granularity (S3 keeps whole seconds) and a remote server's clock skew.
        expect(info.lastModified.getTime()).toBeGreaterThanOrEqual(before - 5_000);
        expect(info.lastModified.getTime()).toBeLessThanOrEqual(after + 5_000);
        expect((await store.head(key('dated'))).lastModified.getTime()).toBeGreaterThanOrEqual(before - 5_000);
      });

      it('rejects metadata and content types that would not survive every backend, storing nothing', async () => {
        const bad: [Record<string, unknown>, string][] = [
          [{ Upper: 'x' }, 'metadata.Upper'],
          [{ 'has space': 'x' }, 'metadata.has space'],
          [{ '': 'x' }, 'metadata.'],
          [{ 'mlplane-sha256': 'x' }, 'metadata.mlplane-sha256'],
          [{ note: 'héllo' }, 'metadata.note'],
          [{ note: ' padded ' }, 'metadata.note'],
          [{ note: 'line\nbreak' }, 'metadata.note'],
          [{ count: 3 }, 'metadata.count'],
          [{ big: 'x'.repeat(ARTIFACT_METADATA_MAX_BYTES) }, 'metadata'],
        ];
        for (const [metadata, field] of bad) {
          const err = await rejects(
            store.put(key('meta'), 'x', { metadata: metadata as Record<string, string> }),
            ValidationError,
            /metadata/,
          );
          expect(err.field).toBe(field);
        }
        for (const contentType of ['', 'json', 'text/plain\r\nx-evil: 1', 'a/'.padEnd(300, 'b')]) {
          const err = await rejects(store.put(key('meta'), 'x', { contentType }), ValidationError, /contentType/);
          expect(err.field).toBe('contentType');
        }
        expect(await store.exists(key('meta'))).toBe(false);
        // What the rules allow comes back as given.
        const ok = { 'run.id': 'r-1', stage_2: 'a b', empty: '' };
        await store.put(key('meta'), 'x', { metadata: ok, contentType: 'text/plain; charset=utf-8' });
        expect(await store.head(key('meta'))).toMatchObject({ metadata: ok, contentType: 'text/plain; charset=utf-8' });
      });

      it('stores an empty body', async () => {
        const info = await store.put(key('empty'), new Uint8Array(0));
        expect(info).toMatchObject({ size: 0, sha256: EMPTY_SHA256 });
        expect((await content(key('empty'))).length).toBe(0);
      });

      it('streams a 64 MiB body in and out intact and records its sha256', { timeout: 180_000 }, async () => {
        const size = 64 * MiB;
        const { body, result } = generated(size);
        const info = await store.put(key('large.bin'), body, { contentType: 'application/x-model' });
        expect(result.size).toBe(size);
        expect(info).toMatchObject({ size, sha256: result.sha256, contentType: 'application/x-model' });
        const { info: read, body: content } = await store.get(key('large.bin'));
        expect(await hashStream(content)).toEqual({ sha256: result.sha256, size });
        // Recorded, not only returned: a later reader learns the hash without reading the bytes.
        expect(read.sha256).toBe(result.sha256);
        expect((await store.head(key('large.bin'))).sha256).toBe(result.sha256);
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
        async function* numbers() {
          yield Buffer.from('ok so far');
          yield 42 as unknown as Uint8Array;
        }
        const err = await rejects(store.put(key('bad-body'), numbers()), ValidationError, /chunks must be Uint8Array/);
        expect(err.field).toBe('body');
        expect(await store.exists(key('bad-body'))).toBe(false);
      });
    });

    describe('abort signals', () => {
      it('an aborted put rejects with the signal reason and stores nothing', { timeout: 60_000 }, async () => {
        const before = new AbortController();
        before.abort(new Error('cancelled before starting'));
        await expect(store.put(key('aborted'), 'x', { signal: before.signal })).rejects.toThrow(
          'cancelled before starting',
        );

        // Aborted mid-body: 24 MiB are offered, the abort comes after the first 12.
        const during = new AbortController();
        let offered = 0;
        async function* body() {
          for (let i = 0; i < 24; i++) {
            if (i === 12) during.abort(new Error('cancelled by the caller'));
            offered += MiB;
            yield randomBytes(MiB);
          }
        }
        await expect(store.put(key('aborted'), body(), { signal: during.signal })).rejects.toThrow(
          'cancelled by the caller',
        );
        expect(offered).toBeGreaterThanOrEqual(12 * MiB);
        expect(await store.exists(key('aborted'))).toBe(false);

        // An abort of a replacing put leaves the old content.
        await store.put(key('aborted'), 'kept');
        const replace = new AbortController();
        replace.abort(new Error('never mind'));
        await expect(store.put(key('aborted'), 'replacement', { signal: replace.signal })).rejects.toThrow(
          'never mind',
        );
        expect((await content(key('aborted'))).toString()).toBe('kept');
      });

      it('aborting a get ends its body stream with the signal reason', async () => {
        await store.put(key('read-me'), randomBytes(4 * MiB));
        const before = new AbortController();
        before.abort(new Error('not needed'));
        await expect(store.get(key('read-me'), { signal: before.signal })).rejects.toThrow('not needed');

        const controller = new AbortController();
        const { body } = await store.get(key('read-me'), { signal: controller.signal });
        let received = 0;
        const reading = (async () => {
          for await (const chunk of body) {
            received += (chunk as Uint8Array).byteLength;
            if (received > 0 && !controller.signal.aborted) controller.abort(new Error('stop reading'));
          }
        })();
        await expect(reading).rejects.toThrow('stop reading');
        expect(received).toBeLessThan(4 * MiB);
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
        // Uppercase hex is the same hash.
        await store.put(key('upper'), 'payload', { expectedSha256: sha256Hex('payload').toUpperCase() });
        const malformed = await rejects(
          store.put(key('malformed'), 'payload', { expectedSha256: 'abc' }),
          ValidationError,
          /64 hex/,
        );
        expect(malformed.field).toBe('expectedSha256');
      });

      it('expectedSha256 guards a large streamed body too: a mismatch found at its end stores nothing', {
        timeout: 120_000,
      }, async () => {
        const { body, result } = generated(12 * MiB);
        const err = await rejects(
          store.put(key('large-mismatch'), body, { expectedSha256: sha256Hex('not this') }),
          ValidationError,
          /sha256/i,
        );
        expect(err.field).toBe('expectedSha256');
        expect(result.size).toBe(12 * MiB);
        expect(await store.exists(key('large-mismatch'))).toBe(false);

        const good = generated(12 * MiB);
        const chunks: Uint8Array[] = [];
        for await (const chunk of good.body) chunks.push(chunk);
        const info = await store.put(key('large-match'), Readable.from(chunks), { expectedSha256: good.result.sha256 });
        expect(info.sha256).toBe(good.result.sha256);
        expect((await store.head(key('large-match'))).sha256).toBe(good.result.sha256);
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
        ['over the store limit', () => 'k'.repeat(caps.maxKeyBytes + 1), /bytes in UTF-8; the limit is/],
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
            () => store.deleteMany([k]),
            () => store.copy(k, key('fine')),
            () => store.copy(key('fine'), k),
            async () => store.uri(k),
            ...(caps.presignedUrls ? [() => store.presign!(k, { method: 'GET', expiresInSeconds: 60 })] : []),
            ...(caps.multipart ? [() => store.createMultipartUpload!(k)] : []),
          ];
          for (const call of calls) {
            const err = await call().catch((e: unknown) => e);
            expect(err).toBeInstanceOf(ValidationError);
            expect((err as Error).message).toMatch(message);
          }
        });
      }

      it('accepts keys at the limits and keeps look-alike keys apart', async () => {
        expect(caps.maxKeyBytes).toBeLessThanOrEqual(ARTIFACT_KEY_MAX_BYTES);
        const room = caps.maxKeyBytes - Buffer.byteLength(key(''));
        // Where keys are file paths, the longest key is made of 200-byte segments instead of one long name.
        const filler = nestedKeys
          ? 'x'.repeat(room)
          : 'x'.repeat(room).replace(/x{200}(?=x)/g, (m) => `${m.slice(1)}/`);
        const longest = key(filler);
        expect(Buffer.byteLength(longest)).toBe(caps.maxKeyBytes);
        const multibyte = nestedKeys
          ? key(`${'é'.repeat(200)}/${'ß'.repeat(200)}`)
          : key(`${'é'.repeat(100)}/${'é'.repeat(100)}/${'ß'.repeat(100)}/${'ß'.repeat(100)}`);
        const keys = [
          longest,
          multibyte,
          key('Model'),
          key('model'),
          key('a'),
          ...(nestedKeys ? [key('a/b'), key('a/b/c'), key('x.json/y')] : [key('b/c')]),
          key('x.json'),
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

      it.skipIf(nestedKeys)('refuses a key that would nest with an existing one with ConflictError', async () => {
        await store.put(key('n'), 'leaf');
        await rejects(store.put(key('n/below'), 'x'), ConflictError, key('n/below'));
        await store.put(key('m/below'), 'x');
        await rejects(store.put(key('m'), 'leaf'), ConflictError, key('m'));
        expect((await content(key('n'))).toString()).toBe('leaf');
        expect(await store.exists(key('m'))).toBe(false);
      });
    });

    describe('list', () => {
      it('lists keys in UTF-8 byte order and filters by prefix', async () => {
        // Byte order differs from JS string order: 'a-b' < 'a/b', 'Z' < 'a', U+FF5E < U+1F600.
        // 'p/a0' instead of 'p/a' where a key cannot also start other keys: the order is still '-' < '/' < '0'.
        const pa0 = nestedKeys ? 'p/a' : 'p/a0';
        const names = [pa0, 'p/a/b', 'p/a-b', 'p/B', 'p/z', 'p/é', 'p/\u{1F600}', 'p/\uFF5E', 'q/1'];
        await putMany(names.map(key));
        const all = await store.list({ prefix: ns });
        expect(all.items.map((i) => i.key)).toEqual(names.map(key).sort(byteOrder));
        expect(all.prefixes).toEqual([]);
        expect(all.nextPageToken).toBeUndefined();

        const pa = await store.list({ prefix: key('p/a') });
        expect(pa.items.map((i) => i.key)).toEqual([key(pa0), key('p/a-b'), key('p/a/b')].sort(byteOrder));
        // A plain listing has what S3's ListObjectsV2 gives: no hash, content type or metadata.
        const item = pa.items.find((i) => i.key === key(pa0))!;
        expect(Object.keys(item).sort()).toEqual(['etag', 'key', 'lastModified', 'size']);
        expect(item).toMatchObject({ size: Buffer.byteLength(key(pa0)), etag: (await store.head(key(pa0))).etag });
        expect(item.lastModified).toBeInstanceOf(Date);

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
        expect(first.items).toHaveLength(ARTIFACT_LIST_PAGE.default);
        expect(first.nextPageToken).toBeTypeOf('string');

        const sizes: number[] = [];
        const seen: string[] = [];
        let pageToken: string | undefined;
        do {
          const page = await store.list({
            prefix: key('many/'),
            maxResults: 1000,
            ...(pageToken ? { pageToken } : {}),
          });
          sizes.push(page.items.length);
          seen.push(...page.items.map((i: ArtifactSummary) => i.key));
          pageToken = page.nextPageToken;
        } while (pageToken);
        expect(sizes).toEqual([1000, 1000, 500]);
        expect(seen).toEqual(keys);

        const small = await listAll({ prefix: key('many/'), maxResults: 97 });
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
            maxResults: 1,
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

      it('adds the recorded sha256, content type and metadata when asked to', async () => {
        await store.put(key('inc/a'), 'alpha', { contentType: 'text/plain', metadata: { run: 'r-1' } });
        await store.put(key('inc/b'), 'beta');
        const both = await store.list({ prefix: key('inc/'), include: ['sha256', 'metadata'] });
        expect(both.items.map((i) => ({ ...i, lastModified: undefined, etag: undefined }))).toEqual([
          {
            key: key('inc/a'),
            size: 5,
            sha256: sha256Hex('alpha'),
            contentType: 'text/plain',
            metadata: { run: 'r-1' },
            lastModified: undefined,
            etag: undefined,
          },
          {
            key: key('inc/b'),
            size: 4,
            sha256: sha256Hex('beta'),
            contentType: 'application/octet-stream',
            metadata: {},
            lastModified: undefined,
            etag: undefined,
          },
        ]);
        const hashes = await store.list({ prefix: key('inc/'), include: ['sha256'] });
        expect(hashes.items.map((i) => [i.sha256, i.metadata, i.contentType])).toEqual([
          [sha256Hex('alpha'), undefined, undefined],
          [sha256Hex('beta'), undefined, undefined],
        ]);
        await expect(store.list({ prefix: ns, include: ['owner' as 'sha256'] })).rejects.toBeInstanceOf(
          ValidationError,
        );
      });

      it('rejects a page size outside 1..1000 and tokens of another listing with ValidationError', async () => {
        for (const maxResults of [0, -1, 1.5, ARTIFACT_LIST_PAGE.max + 1]) {
          const err = await rejects(store.list({ prefix: ns, maxResults }), ValidationError, /maxResults/);
          expect(err.field).toBe('maxResults');
        }
        await putMany(['t/1', 't/2', 't/3'].map(key));
        const first = await store.list({ prefix: key('t/'), maxResults: 1 });
        expect(first.nextPageToken).toBeTypeOf('string');
        for (const other of [{ prefix: key('u/') }, { prefix: key('t/'), delimiter: '/' as const }]) {
          const err = await rejects(
            store.list({ ...other, pageToken: first.nextPageToken! }),
            ValidationError,
            /pageToken/,
          );
          expect(err.field).toBe('pageToken');
        }
        const bad = await rejects(
          store.list({ prefix: key('t/'), pageToken: '!!not-a-token' }),
          ValidationError,
          /pageToken/,
        );
        expect(bad.field).toBe('pageToken');
        await expect(store.list({ prefix: ns, delimiter: ':' as '/' })).rejects.toBeInstanceOf(ValidationError);
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

    describe('deleteMany', () => {
      it('deletes every listed key, missing ones included, and leaves the others', async () => {
        await putMany(['b/1', 'b/2', 'b/3', 'b/keep'].map(key));
        await store.deleteMany([key('b/1'), key('b/2'), key('b/3'), key('b/never'), key('b/1')]);
        expect((await listAll({ prefix: key('b/') })).keys).toEqual([key('b/keep')]);
        await store.deleteMany([]);
        await store.deleteMany([key('b/1')]);
      });

      it('validates the whole batch before deleting anything', async () => {
        await store.put(key('b/safe'), 'x');
        const bad = await rejects(store.deleteMany([key('b/safe'), 'a//b']), ValidationError, /segment/);
        expect(bad.field).toBe('key');
        const tooMany = Array.from({ length: ARTIFACT_DELETE_MANY_MAX + 1 }, (_, i) => key(`b/${i}`));
        await rejects(store.deleteMany([key('b/safe'), ...tooMany]), ValidationError, /at most 1000/);
        expect(await store.exists(key('b/safe'))).toBe(true);
      });

      it('deletes a full batch of 1000 keys', { timeout: 120_000 }, async () => {
        const keys = Array.from({ length: ARTIFACT_DELETE_MANY_MAX }, (_, i) => key(`full/${i}`));
        await putMany(keys);
        await store.deleteMany(keys);
        expect((await store.list({ prefix: key('full/') })).items).toEqual([]);
      });
    });

    describe('copy', () => {
      it('copies content, content type, metadata and sha256, replacing the target', async () => {
        const source = await store.put(key('c/from'), 'model bytes', {
          contentType: 'application/onnx',
          metadata: { run: 'r-9' },
        });
        await store.put(key('c/to'), 'older content', { metadata: { stale: 'yes' } });
        const copied = await store.copy(key('c/from'), key('c/to'));
        expect(copied).toMatchObject({
          key: key('c/to'),
          size: source.size,
          sha256: source.sha256,
          contentType: 'application/onnx',
          metadata: { run: 'r-9' },
        });
        expectSameInfo(await store.head(key('c/to')), copied);
        expect((await content(key('c/to'))).toString()).toBe('model bytes');
        // The copy is independent of its source.
        await store.delete(key('c/from'));
        expect((await content(key('c/to'))).toString()).toBe('model bytes');
        // A key copied onto itself keeps its content.
        expect((await store.copy(key('c/to'), key('c/to'))).sha256).toBe(source.sha256);
        expect((await content(key('c/to'))).toString()).toBe('model bytes');
      });

      it('copies a large object and keeps its recorded sha256', { timeout: 120_000 }, async () => {
        const { body, result } = generated(24 * MiB);
        await store.put(key('c/large'), body);
        const copied = await store.copy(key('c/large'), key('c/large-copy'));
        expect(copied).toMatchObject({ size: 24 * MiB, sha256: result.sha256 });
        expect(await hashStream((await store.get(key('c/large-copy'))).body)).toEqual({
          sha256: result.sha256,
          size: 24 * MiB,
        });
      });

      it('fails with NotFoundError naming a missing source and creates nothing', async () => {
        const err = await rejects(store.copy(key('c/none'), key('c/target')), NotFoundError, key('c/none'));
        expect(err).toBeInstanceOf(NotFoundError);
        expect(await store.exists(key('c/target'))).toBe(false);
      });
    });

    describe('uri', () => {
      it("names each key's location with the store's scheme, without I/O", () => {
        const a = store.uri(key('models/a b/model.onnx'));
        const b = store.uri(key('models/a b/model.onnx2'));
        expect(a).toMatch(/^(s3|file):\/\//);
        expect(a).not.toBe(b);
        expect(store.uri(key('models/a b/model.onnx'))).toBe(a);
        expect(() => store.uri('/absolute')).toThrow(ValidationError);
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
      it('refuses what every store refuses, with the same field and words, before the store sees it', async () => {
        const boundary = validatePortInputs(store, artifactStoreInputs);
        const cases: [() => Promise<unknown>, string, string][] = [
          [
            () => boundary.put(key('meta'), 'x', { metadata: { note: 'n'.repeat(ARTIFACT_METADATA_MAX_BYTES) } }),
            'metadata',
            `the limit is ${ARTIFACT_METADATA_MAX_BYTES}`,
          ],
          [
            () => boundary.put(key('meta'), 'x', { contentType: `text/${'x'.repeat(300)}` }),
            'contentType',
            'media type',
          ],
          [
            () => boundary.put(key('meta'), { not: 'a body' } as never),
            'body',
            'must be a Readable, an async iterable of Uint8Array, a Uint8Array or a string',
          ],
          [() => boundary.put('a//b', 'x'), 'key', "must not contain empty, '.' or '..' segments"],
          [() => boundary.copy(key('meta'), '/abs'), 'to', "must not start with '/'"],
          [() => boundary.get(key('meta'), { range: { start: 4, end: 2 } }), 'range', 'inclusive end >= start'],
          [
            () => boundary.list({ prefix: ns, maxResults: ARTIFACT_LIST_PAGE.max + 1 }),
            'maxResults',
            `from 1 to ${ARTIFACT_LIST_PAGE.max}`,
          ],
          [() => boundary.deleteMany([key('a'), 42 as never]), 'key', 'must be a string'],
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
          expect((err as ValidationError).field, message).toBe(field);
          expect((err as Error).message).toContain(message);
          expect((err as Error).message.length).toBeLessThan(400);
        }
        expect(await store.exists(key('meta'))).toBe(false);
      });

      it('passes valid calls through: metadata of exactly ARTIFACT_METADATA_MAX_BYTES is stored', async () => {
        const metadata = { note: 'n'.repeat(ARTIFACT_METADATA_MAX_BYTES - 4) };
        const info = await validatePortInputs(store, artifactStoreInputs).put(key('full-meta'), 'x', { metadata });
        expect(info.metadata).toEqual(metadata);
        expect((await store.head(key('full-meta'))).metadata).toEqual(metadata);
      });
    });

    describe('presigned URLs', () => {
      it.skipIf(!caps.presignedUrls)('a presigned GET URL serves the content without credentials', async () => {
        await store.put(key('shared.txt'), 'public for a while');
        const before = Date.now();
        const request = await store.presign!(key('shared.txt'), { method: 'GET', expiresInSeconds: 300 });
        expect(request.method).toBe('GET');
        expect(request.expiresAt.getTime()).toBeGreaterThanOrEqual(before + 299_000);
        const response = await send(request);
        expect(response.status).toBe(200);
        expect(await response.text()).toBe('public for a while');
      });

      it.skipIf(!caps.presignedUrls)('a presigned PUT URL stores content readable through the store', async () => {
        const request = await store.presign!(key('uploaded.txt'), { method: 'PUT', expiresInSeconds: 300 });
        const response = await send(request, 'sent by a client');
        expect(response.ok).toBe(true);
        expect((await content(key('uploaded.txt'))).toString()).toBe('sent by a client');
      });

      it.skipIf(!caps.presignedUrls)(
        'a presigned PUT enforces its content type, length and sha256 and records them',
        async () => {
          const body = 'exactly this body';
          const conditions = {
            method: 'PUT' as const,
            expiresInSeconds: 300,
            contentType: 'text/plain',
            contentLength: Buffer.byteLength(body),
            sha256: sha256Hex(body),
          };
          const request = await store.presign!(key('conditioned.txt'), conditions);
          expect(request.headers).toMatchObject({ 'content-type': 'text/plain' });
          // Each broken condition is refused and stores nothing.
          const wrongType = await fetch(request.url, {
            method: 'PUT',
            headers: { ...request.headers, 'content-type': 'text/html' },
            body,
          });
          expect(wrongType.ok).toBe(false);
          expect((await send(request, `${body}!`)).ok).toBe(false);
          expect((await send(request, body.replace('this', 'that'))).ok).toBe(false);
          expect(await store.exists(key('conditioned.txt'))).toBe(false);

          expect((await send(request, body)).ok).toBe(true);
          expect(await store.head(key('conditioned.txt'))).toMatchObject({
            size: Buffer.byteLength(body),
            contentType: 'text/plain',
            sha256: sha256Hex(body),
          });
        },
      );

      it.skipIf(!caps.presignedUrls)('rejects presign options it cannot honour with ValidationError', async () => {
        const bad: [Parameters<NonNullable<ArtifactStore['presign']>>[1], string][] = [
          [{ method: 'GET', expiresInSeconds: 0 }, 'expiresInSeconds'],
          [{ method: 'GET', expiresInSeconds: ARTIFACT_PRESIGN_MAX_SECONDS + 1 }, 'expiresInSeconds'],
          [{ method: 'GET', expiresInSeconds: 1.5 }, 'expiresInSeconds'],
          [{ method: 'DELETE' as 'GET', expiresInSeconds: 60 }, 'method'],
          [{ method: 'GET', expiresInSeconds: 60, contentType: 'text/plain' }, 'contentType'],
          [{ method: 'PUT', expiresInSeconds: 60, contentLength: -1 }, 'contentLength'],
          [{ method: 'PUT', expiresInSeconds: 60, sha256: 'abc' }, 'sha256'],
        ];
        for (const [options, field] of bad) {
          const err = await rejects(store.presign!(key('x'), options), ValidationError, new RegExp(field));
          expect(err.field).toBe(field);
        }
      });
    });

    describe('multipart uploads', () => {
      const part = (fill: number, size = ARTIFACT_MIN_PART_BYTES) => Buffer.alloc(size, fill);

      it.skipIf(!caps.multipart)('uploads parts, lists the upload while open, completes atomically', async () => {
        const upload = await store.createMultipartUpload!(key('mp/model.bin'), {
          contentType: 'application/x-model',
          metadata: { run: 'r-7' },
        });
        expect(upload).toMatchObject({ key: key('mp/model.bin') });
        const one = await store.uploadPart!(upload, 1, part(1));
        // Streamed bodies say their size up front; the last part may be small.
        const two = await store.uploadPart!(upload, 2, Readable.from([Buffer.from('tail')]), { size: 4 });
        expect(one).toMatchObject({ partNumber: 1, size: ARTIFACT_MIN_PART_BYTES, sha256: sha256Hex(part(1)) });
        expect(two).toMatchObject({ partNumber: 2, size: 4, sha256: sha256Hex('tail') });

        const open = await store.listMultipartUploads!({ prefix: key('mp/') });
        expect(open.items.map((u) => u.uploadId)).toEqual([upload.uploadId]);
        expect(await store.exists(key('mp/model.bin'))).toBe(false);

        const info = await store.completeMultipartUpload!(upload, [one, two]);
        expect(info).toMatchObject({
          key: key('mp/model.bin'),
          size: ARTIFACT_MIN_PART_BYTES + 4,
          contentType: 'application/x-model',
          metadata: { run: 'r-7' },
        });
        expect((await content(key('mp/model.bin'))).equals(Buffer.concat([part(1), Buffer.from('tail')]))).toBe(true);
        expect((await store.listMultipartUploads!({ prefix: key('mp/') })).items).toEqual([]);
      });

      it.skipIf(!caps.multipart)('abort discards the parts, idempotently; the upload is then gone', async () => {
        const upload = await store.createMultipartUpload!(key('mp/aborted'));
        await store.uploadPart!(upload, 1, part(2));
        await store.abortMultipartUpload!(upload);
        await store.abortMultipartUpload!(upload);
        expect((await store.listMultipartUploads!({ prefix: key('mp/') })).items).toEqual([]);
        await rejects(store.uploadPart!(upload, 2, 'late'), NotFoundError, upload.uploadId);
        expect(await store.exists(key('mp/aborted'))).toBe(false);
      });

      it.skipIf(!caps.multipart)('refuses bad parts with ValidationError and keeps the upload usable', async () => {
        const upload = await store.createMultipartUpload!(key('mp/checked'));
        try {
          const one = await store.uploadPart!(upload, 1, part(3));
          const two = await store.uploadPart!(upload, 2, part(4));
          const small = await store.uploadPart!(upload, 3, 'small');
          const four = await store.uploadPart!(upload, 4, part(6));
          await rejects(store.uploadPart!(upload, 0, 'x'), ValidationError, /partNumber/);
          await rejects(store.uploadPart!(upload, 5, Readable.from([Buffer.from('x')])), ValidationError, /size/);
          await rejects(
            store.uploadPart!(upload, 5, Readable.from([Buffer.from('xy')]), { size: 3 }),
            ValidationError,
            /size/,
          );
          // A wrong receipt, a part too small before the last, parts out of order.
          await rejects(
            store.completeMultipartUpload!(upload, [{ ...one, etag: two.etag }, two]),
            ValidationError,
            /part/i,
          );
          await rejects(store.completeMultipartUpload!(upload, [one, small, four]), ValidationError, /part/i);
          await rejects(store.completeMultipartUpload!(upload, [two, one]), ValidationError, /order/i);
          expect(await store.exists(key('mp/checked'))).toBe(false);
          await store.completeMultipartUpload!(upload, [one, two, small]);
          expect((await store.head(key('mp/checked'))).size).toBe(2 * ARTIFACT_MIN_PART_BYTES + 5);
        } finally {
          await store.abortMultipartUpload!(upload);
        }
      });

      it.skipIf(!caps.multipart)('ifNotExists is checked when completing', async () => {
        const upload = await store.createMultipartUpload!(key('mp/once'));
        const one = await store.uploadPart!(upload, 1, 'only part');
        await store.put(key('mp/once'), 'got there first');
        await rejects(
          store.completeMultipartUpload!(upload, [one], { ifNotExists: true }),
          ConflictError,
          key('mp/once'),
        );
        expect((await content(key('mp/once'))).toString()).toBe('got there first');
        await store.abortMultipartUpload!(upload);
      });

      it.skipIf(!caps.multipart || !caps.presignedUrls)(
        'presigned part URLs let a client without credentials upload the parts',
        async () => {
          const upload = await store.createMultipartUpload!(key('mp/by-client'));
          const parts = [part(5), Buffer.from('client tail')];
          const completed = [];
          for (const [i, bytes] of parts.entries()) {
            const request = await store.presignPart!(upload, i + 1, {
              expiresInSeconds: 300,
              sha256: sha256Hex(bytes),
              contentLength: bytes.length,
            });
            // A part that does not match its signed sha256 is refused.
            if (i === 1) expect((await send(request, Buffer.from('client tAil'))).ok).toBe(false);
            const response = await send(request, bytes);
            expect(response.status).toBe(200);
            completed.push({ partNumber: i + 1, etag: response.headers.get('etag')!, sha256: sha256Hex(bytes) });
          }
          await store.completeMultipartUpload!(upload, completed);
          expect((await content(key('mp/by-client'))).equals(Buffer.concat(parts))).toBe(true);
        },
      );
    });
  });
}
