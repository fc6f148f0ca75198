import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, type Dirent } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import {
  ARTIFACT_LIST_MAX_PAGE,
  ARTIFACT_METADATA_MAX_BYTES,
  type ArtifactBody,
  type ArtifactInfo,
  type ArtifactPage,
  type ArtifactStore,
  type ArtifactStoreCapabilities,
  ConflictError,
  type GetArtifactOptions,
  type ListArtifactsOptions,
  NotFoundError,
  type PutArtifactOptions,
  quoteKey,
  UnavailableError,
  ValidationError,
  validateArtifactKey,
  validateMediaType,
} from '@mlplane/core';
import { describeHolder, FileLock, readLockHolder } from '../file-lock.js';
import { KeyedMutex, SharedExclusiveLock } from './locks.js';
import { dirPathOf, parseRefName, REF_SUFFIX, refPathOf } from './ref-paths.js';

export interface LocalArtifactStoreOptions {
  /** Directory the store owns; created (mode 0700) on first write. */
  readonly root: string;
}

export interface GcOptions {
  /** Only unreferenced blobs and temp files older than this are removed (default one hour). */
  readonly olderThanMs?: number;
}

export interface GcResult {
  readonly blobsRemoved: number;
  readonly tempFilesRemoved: number;
}

/** On-disk shape of `<root>/refs/<key>.json`. */
interface RefFile {
  readonly v: 1;
  readonly key: string;
  readonly sha256: string;
  readonly size: number;
  readonly contentType: string;
  readonly metadata: Record<string, string>;
  readonly createdAt: string;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
const DEFAULT_CONTENT_TYPE = 'application/octet-stream';
const DEFAULT_GC_AGE_MS = 60 * 60 * 1000;

function errorCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * ArtifactStore on the local filesystem, content-addressed by sha256.
 *
 * Layout under `root`: `blobs/sha256/ab/cdef...` holds each distinct content once, `refs/`
 * holds one small JSON file per key (see ref-paths.ts), `tmp/` holds uploads in progress.
 * Bodies stream through the hash into a temp file and are renamed into place, so a blob is
 * either complete or absent, and ref files are replaced by rename, so readers see the old or
 * the new version, never a partial one.
 *
 * Blob reclamation uses reference counting: the count of refs per blob is built from the ref
 * files on the first write or delete, kept in memory, and a blob is unlinked when its count
 * drops to zero. A crash can only leave unreferenced blobs or temp files behind (never a ref
 * without its blob); `gc()` sweeps those and runs once when the counts are first built.
 * The counts live in memory, so one store writes to a root at a time: the first write, delete or gc
 * (or `open`) takes an OS lock on `<root>/owner.lock` and records the process id there; a second store, in
 * this process or another, gets a ConflictError naming that process until the owner calls `close()` or
 * exits (the OS drops the lock of a process that dies, so no stale lock is left). Readers (get, head,
 * exists, list) take no lock and are safe from any process.
 *
 * Files are private to the owner: directories are created 0700, blobs 0400 and ref files 0600.
 */
export class LocalArtifactStore implements ArtifactStore {
  readonly capabilities: ArtifactStoreCapabilities = Object.freeze({
    presignedUrls: false,
    multipart: false,
    rangeReads: true,
    deduplicates: true,
  });

  /** Absolute path of the root, the base of `uri`. */
  readonly #rootPath: string;
  readonly #root: string;
  readonly #refs: string;
  readonly #blobs: string;
  readonly #tmp: string;
  readonly #keyLocks = new KeyedMutex();
  readonly #blobLocks = new KeyedMutex();
  /** Shared by writes and deletes, exclusive for gc, which rebuilds the counts from disk. */
  readonly #sweepLock = new SharedExclusiveLock();
  #refCounts: Map<string, number> | undefined;
  #refCountsLoading: Promise<void> | undefined;
  #tmpReady: Promise<void> | undefined;
  #owner: Promise<FileLock> | undefined;

  constructor(options: LocalArtifactStoreOptions) {
    if (typeof options?.root !== 'string' || options.root === '') {
      throw new ValidationError('LocalArtifactStore needs a root directory', { field: 'root' });
    }
    // Resolved once, so that URIs stay the same if the process later changes its working directory.
    this.#rootPath = resolve(options.root);
    this.#root = options.root;
    this.#refs = join(options.root, 'refs');
    this.#blobs = join(options.root, 'blobs', 'sha256');
    this.#tmp = join(options.root, 'tmp');
  }

  /**
   * A store that owns its root from the start, so that a root in use by another store fails here rather than at
   * the first write: ConflictError naming the process that holds it.
   */
  static async open(options: LocalArtifactStoreOptions): Promise<LocalArtifactStore> {
    const store = new LocalArtifactStore(options);
    await store.#claim();
    return store;
  }

  /**
   * Gives up ownership of the root (after the writes in flight), so another store may write to it. A later write
   * through this store claims the root again. Idempotent.
   */
  async close(): Promise<void> {
    await this.#sweepLock.exclusive(async () => {
      const owner = this.#owner;
      this.#owner = undefined;
      this.#refCounts = undefined;
      this.#refCountsLoading = undefined;
      if (owner) await (await owner.catch(() => undefined))?.release();
    });
  }

  async put(key: string, body: ArtifactBody, options: PutArtifactOptions = {}): Promise<ArtifactInfo> {
    validateArtifactKey(key);
    const expected =
      typeof options.expectedSha256 === 'string' ? options.expectedSha256.toLowerCase() : options.expectedSha256;
    if (expected !== undefined && !SHA256_HEX.test(expected)) {
      throw new ValidationError(`expectedSha256 for ${quoteKey(key)} must be 64 hex characters`, {
        field: 'expectedSha256',
      });
    }
    const contentType = options.contentType ?? DEFAULT_CONTENT_TYPE;
    // A media type, never free text: it is served back as a Content-Type header, where CR/LF would add headers.
    validateMediaType(contentType);
    const metadata = copyMetadata(key, options.metadata);
    // Fail fast before streaming a large body; the check is repeated under the key lock.
    if (options.ifNotExists && (await this.exists(key))) throw conflict(key);

    await this.#ensureRefCounts();
    // The whole upload holds the shared lock so that gc never mistakes its temp file for a leftover.
    return this.#sweepLock.shared(async () => {
      const upload = await this.#receive(key, body);
      try {
        if (expected !== undefined && upload.sha256 !== expected) {
          throw new ValidationError(
            `content uploaded for ${quoteKey(key)} hashes to sha256 ${upload.sha256}, not the expected ${expected}; nothing was stored`,
            { field: 'expectedSha256' },
          );
        }
        return await this.#keyLocks.run(key, async () => {
          const previous = await this.#readRefOrUndefined(key);
          if (previous && options.ifNotExists) throw conflict(key);
          const ref: RefFile = {
            v: 1,
            key,
            sha256: upload.sha256,
            size: upload.size,
            contentType,
            metadata,
            createdAt: new Date().toISOString(),
          };
          await this.#adoptBlob(upload.tempPath!, upload.sha256);
          upload.tempPath = undefined;
          try {
            await this.#writeRef(key, ref);
          } catch (err) {
            await this.#releaseBlob(upload.sha256);
            throw err;
          }
          if (previous) await this.#releaseBlob(previous.sha256);
          return toInfo(ref);
        });
      } finally {
        if (upload.tempPath !== undefined) await unlink(upload.tempPath).catch(() => undefined);
      }
    });
  }

  async get(key: string, options: GetArtifactOptions = {}): Promise<{ info: ArtifactInfo; body: Readable }> {
    validateArtifactKey(key);
    // A concurrent overwrite may reclaim the blob between reading the ref and opening the blob; the ref is then re-read.
    let missing: string | undefined;
    for (;;) {
      const ref = await this.#readRef(key);
      const span = resolveRange(key, ref.size, options.range);
      const path = this.#blobPath(ref.sha256);
      try {
        const handle = await open(path, 'r');
        return { info: toInfo(ref), body: handle.createReadStream(span) };
      } catch (err) {
        if (errorCode(err) !== 'ENOENT') {
          throw new UnavailableError(`cannot open the content of artifact ${quoteKey(key)}: ${messageOf(err)}`, {
            cause: err,
          });
        }
        // The same ref twice without its blob is damage, not a race: say what is missing instead of looping.
        if (missing === ref.sha256) {
          throw new UnavailableError(
            `the content of artifact ${quoteKey(key)} (sha256 ${ref.sha256}) is missing from ${path}; restore it or delete the key`,
            { cause: err },
          );
        }
        missing = ref.sha256;
      }
    }
  }

  async head(key: string): Promise<ArtifactInfo> {
    validateArtifactKey(key);
    return toInfo(await this.#readRef(key));
  }

  async exists(key: string): Promise<boolean> {
    validateArtifactKey(key);
    return (await this.#readRefOrUndefined(key)) !== undefined;
  }

  /**
   * The `file://` URL of the store's root joined with the key, percent-encoded as Node encodes file URLs
   * (`file:///data/artifacts/experiments/1/a%20b.txt`). It names the artifact; the bytes live in the
   * content-addressed `blobs/` directory, so read them with `get`, not from this path.
   */
  uri(key: string): string {
    validateArtifactKey(key);
    return pathToFileURL(join(this.#rootPath, key)).href;
  }

  async list(options: ListArtifactsOptions = {}): Promise<ArtifactPage> {
    const prefix = options.prefix ?? '';
    if (typeof prefix !== 'string') throw new ValidationError('list prefix must be a string', { field: 'prefix' });
    if (options.delimiter !== undefined && options.delimiter !== '/') {
      throw new ValidationError(`list delimiter must be '/', got ${JSON.stringify(options.delimiter)}`, {
        field: 'delimiter',
      });
    }
    const pageSize = options.pageSize ?? ARTIFACT_LIST_MAX_PAGE;
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > ARTIFACT_LIST_MAX_PAGE) {
      throw new ValidationError(
        `list pageSize must be an integer from 1 to ${ARTIFACT_LIST_MAX_PAGE}, got ${pageSize}`,
        {
          field: 'pageSize',
        },
      );
    }
    const after = options.pageToken === undefined ? undefined : decodePageToken(options.pageToken);

    const entries = await this.#collect(prefix, options.delimiter === '/');
    const remaining = after === undefined ? entries : entries.filter((e) => Buffer.compare(e.bytes, after) > 0);
    const page = remaining.slice(0, pageSize);
    const refs = await Promise.all(
      page.map((e) => (e.refPath === undefined ? undefined : this.#readRefFile(e.refPath, e.key))),
    );
    const items: ArtifactInfo[] = [];
    const prefixes: string[] = [];
    page.forEach((entry, i) => {
      const ref = refs[i];
      if (entry.refPath === undefined) prefixes.push(entry.key);
      // A key deleted between the directory walk and the read is simply absent from the page.
      else if (ref !== undefined) items.push(toInfo(ref));
    });
    const last = page.at(-1);
    return remaining.length > pageSize && last
      ? { items, prefixes, nextPageToken: last.bytes.toString('base64url') }
      : { items, prefixes };
  }

  async delete(key: string): Promise<void> {
    validateArtifactKey(key);
    await this.#ensureRefCounts();
    await this.#sweepLock.shared(() =>
      this.#keyLocks.run(key, async () => {
        const previous = await this.#readRefOrUndefined(key);
        if (!previous) return;
        const path = refPathOf(this.#refs, key);
        try {
          await unlink(path);
        } catch (err) {
          if (errorCode(err) === 'ENOENT') return;
          throw new UnavailableError(`cannot delete artifact ${quoteKey(key)}: ${messageOf(err)}`, { cause: err });
        }
        await this.#pruneEmptyDirs(dirname(path));
        await this.#releaseBlob(previous.sha256);
      }),
    );
  }

  /**
   * Rebuilds the reference counts from the ref files and removes blobs no ref points to and
   * leftover temp files, both only when older than `olderThanMs` (uploads in flight elsewhere
   * are younger). Safe to call at any time; writes wait while it runs.
   */
  async gc(options: GcOptions = {}): Promise<GcResult> {
    const olderThanMs = options.olderThanMs ?? DEFAULT_GC_AGE_MS;
    await this.#claim();
    return this.#sweepLock.exclusive(() => this.#sweep(olderThanMs));
  }

  /** Takes the owner lock of the root once; ConflictError naming the holder when another store has it. */
  #claim(): Promise<FileLock> {
    this.#owner ??= (async () => {
      await mkdirOrUnavailable(this.#root);
      const path = join(this.#root, 'owner.lock');
      const lock = await FileLock.tryAcquire(path);
      if (lock) return lock;
      throw new ConflictError(
        `local artifact store ${this.#root} is in use by ${describeHolder(await readLockHolder(path))}: one ` +
          'process writes to it at a time, because it keeps the reference counts of blobs in memory; stop that ' +
          'process or close its store, or use another directory',
      );
    })().catch((err: unknown) => {
      this.#owner = undefined;
      throw err;
    });
    return this.#owner;
  }

  async #ensureRefCounts(): Promise<void> {
    await this.#claim();
    if (this.#refCounts) return;
    this.#refCountsLoading ??= this.gc().then(
      () => undefined,
      (err: unknown) => {
        this.#refCountsLoading = undefined;
        throw err;
      },
    );
    await this.#refCountsLoading;
  }

  async #sweep(olderThanMs: number): Promise<GcResult> {
    const counts = new Map<string, number>();
    const entries = await this.#walk(this.#refs, Buffer.alloc(0), Buffer.alloc(0), false);
    for (let i = 0; i < entries.length; i += 64) {
      const batch = entries.slice(i, i + 64);
      for (const ref of await Promise.all(batch.map((e) => this.#readRefFile(e.refPath!, e.key)))) {
        if (ref) counts.set(ref.sha256, (counts.get(ref.sha256) ?? 0) + 1);
      }
    }
    this.#refCounts = counts;
    const cutoff = Date.now() - olderThanMs;
    let blobsRemoved = 0;
    for (const fanout of await readdirOrEmpty(this.#blobs)) {
      for (const rest of await readdirOrEmpty(join(this.#blobs, fanout))) {
        const sha = fanout + rest;
        if (!SHA256_HEX.test(sha) || counts.has(sha)) continue;
        if (await removeIfOlder(join(this.#blobs, fanout, rest), cutoff)) blobsRemoved++;
      }
    }
    let tempFilesRemoved = 0;
    for (const name of await readdirOrEmpty(this.#tmp)) {
      if (await removeIfOlder(join(this.#tmp, name), cutoff)) tempFilesRemoved++;
    }
    return { blobsRemoved, tempFilesRemoved };
  }

  /** Streams the body through sha256 into a fresh temp file; nothing is buffered beyond one chunk. */
  async #receive(
    key: string,
    body: ArtifactBody,
  ): Promise<{ tempPath: string | undefined; sha256: string; size: number }> {
    const source = toChunks(key, body);
    this.#tmpReady ??= mkdirOrUnavailable(this.#tmp).catch((err: unknown) => {
      this.#tmpReady = undefined;
      throw err;
    });
    await this.#tmpReady;
    const tempPath = join(this.#tmp, `${randomBytes(12).toString('hex')}.upload`);
    const hash = createHash('sha256');
    let size = 0;
    try {
      await pipeline(
        source,
        async function* (chunks: AsyncIterable<Uint8Array>) {
          for await (const chunk of chunks) {
            hash.update(chunk);
            size += chunk.byteLength;
            yield chunk;
          }
        },
        // Blobs are never modified in place, so they are created read-only; `flush` makes them durable before rename.
        createWriteStream(tempPath, { flags: 'wx', mode: 0o400, flush: true }),
      );
    } catch (err) {
      await unlink(tempPath).catch(() => undefined);
      if (err instanceof ValidationError) throw err;
      if (errorCode(err)?.startsWith('E') && (err as { syscall?: unknown }).syscall !== undefined) {
        throw new UnavailableError(`cannot store the content of artifact ${quoteKey(key)}: ${messageOf(err)}`, {
          cause: err,
        });
      }
      // The caller's own stream failed: its error is the one to act on.
      throw err;
    }
    return { tempPath, sha256: hash.digest('hex'), size };
  }

  /** Moves an upload into the blob store and counts the new ref. */
  async #adoptBlob(tempPath: string, sha256: string): Promise<void> {
    await this.#blobLocks.run(sha256, async () => {
      // Renaming over an existing blob replaces identical bytes atomically, so no existence check is needed.
      await renameCreatingDir(tempPath, this.#blobPath(sha256));
      const counts = this.#refCounts!;
      counts.set(sha256, (counts.get(sha256) ?? 0) + 1);
    });
  }

  /** Uncounts one ref of a blob and unlinks the blob when none is left. */
  async #releaseBlob(sha256: string): Promise<void> {
    await this.#blobLocks.run(sha256, async () => {
      const counts = this.#refCounts!;
      const left = (counts.get(sha256) ?? 1) - 1;
      if (left > 0) {
        counts.set(sha256, left);
        return;
      }
      counts.delete(sha256);
      // A failed unlink leaves an unreferenced blob, which the next gc removes; the delete itself succeeded.
      await unlink(this.#blobPath(sha256)).catch(() => undefined);
    });
  }

  async #writeRef(key: string, ref: RefFile): Promise<void> {
    const target = refPathOf(this.#refs, key);
    const tempPath = join(this.#tmp, `${randomBytes(12).toString('hex')}.ref`);
    try {
      await writeFile(tempPath, JSON.stringify(ref), { flag: 'wx', mode: 0o600, flush: true });
      await renameCreatingDir(tempPath, target);
    } catch (err) {
      await unlink(tempPath).catch(() => undefined);
      throw new UnavailableError(`cannot record artifact ${quoteKey(key)} under ${this.#refs}: ${messageOf(err)}`, {
        cause: err,
      });
    }
  }

  async #readRef(key: string): Promise<RefFile> {
    const ref = await this.#readRefOrUndefined(key);
    if (!ref) throw new NotFoundError(`artifact ${quoteKey(key)} does not exist`);
    return ref;
  }

  #readRefOrUndefined(key: string): Promise<RefFile | undefined> {
    return this.#readRefFile(refPathOf(this.#refs, key), key);
  }

  async #readRefFile(path: string, key: string): Promise<RefFile | undefined> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (err) {
      const code = errorCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return undefined;
      throw new UnavailableError(`cannot read artifact ${quoteKey(key)}: ${messageOf(err)}`, { cause: err });
    }
    try {
      const ref = JSON.parse(text) as RefFile;
      if (ref.v !== 1 || ref.key !== key || !SHA256_HEX.test(ref.sha256)) throw new Error('unexpected ref contents');
      return ref;
    } catch (err) {
      throw new UnavailableError(`the record of artifact ${quoteKey(key)} at ${path} is corrupted`, { cause: err });
    }
  }

  #blobPath(sha256: string): string {
    return join(this.#blobs, sha256.slice(0, 2), sha256.slice(2));
  }

  /** Every key (and, with a delimiter, every rolled-up prefix) under `prefix`, sorted by byte order. */
  async #collect(prefix: string, rollUp: boolean): Promise<ListEntry[]> {
    const dirPrefix = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    const start = dirPathOf(this.#refs, dirPrefix);
    if (start === undefined) return [];
    const entries = await this.#walk(start, Buffer.from(dirPrefix, 'utf8'), Buffer.from(prefix, 'utf8'), rollUp);
    return entries.sort((a, b) => Buffer.compare(a.bytes, b.bytes));
  }

  async #walk(dir: string, soFar: Buffer, prefix: Buffer, rollUp: boolean): Promise<ListEntry[]> {
    const out: ListEntry[] = [];
    for (const dirent of await readdirOrEmpty(dir, true)) {
      const parsed = parseRefName(dirent.name, dirent.isDirectory());
      if (!parsed) continue;
      const bytes = Buffer.concat([soFar, parsed.bytes]);
      const path = join(dir, dirent.name);
      const n = Math.min(bytes.length, prefix.length);
      if (Buffer.compare(bytes.subarray(0, n), prefix.subarray(0, n)) !== 0) continue;
      if (parsed.kind === 'ref') {
        if (bytes.length < prefix.length) continue;
        if (rollUp && bytes.indexOf(0x2f, prefix.length) !== -1) continue;
        out.push({ bytes, key: bytes.toString('utf8'), refPath: path });
        continue;
      }
      // A directory whose name completes the first segment after the prefix becomes one rolled-up prefix.
      if (rollUp && parsed.kind === 'segment' && bytes.length > prefix.length) {
        if (bytes.indexOf(0x2f, prefix.length) === bytes.length - 1 && (await this.#hasRef(path))) {
          out.push({ bytes, key: bytes.toString('utf8'), refPath: undefined });
        }
        continue;
      }
      out.push(...(await this.#walk(path, bytes, prefix, rollUp)));
    }
    return out;
  }

  async #hasRef(dir: string): Promise<boolean> {
    for (const dirent of await readdirOrEmpty(dir, true)) {
      if (!dirent.isDirectory() && dirent.name.endsWith(REF_SUFFIX)) return true;
      if (dirent.isDirectory() && (await this.#hasRef(join(dir, dirent.name)))) return true;
    }
    return false;
  }

  /** Removes directories left empty by a delete, up to the refs root; a non-empty one stops the climb. */
  async #pruneEmptyDirs(dir: string): Promise<void> {
    let current = dir;
    while (current.length > this.#refs.length && current.startsWith(this.#refs)) {
      try {
        await rmdir(current);
      } catch {
        return;
      }
      current = dirname(current);
    }
  }
}

interface ListEntry {
  readonly bytes: Buffer;
  readonly key: string;
  /** Undefined for a rolled-up prefix. */
  readonly refPath: string | undefined;
}

function conflict(key: string): ConflictError {
  return new ConflictError(`artifact ${quoteKey(key)} already exists; put without ifNotExists to replace it`);
}

function toInfo(ref: RefFile): ArtifactInfo {
  return {
    key: ref.key,
    size: ref.size,
    sha256: ref.sha256,
    contentType: ref.contentType,
    metadata: { ...ref.metadata },
    createdAt: new Date(ref.createdAt),
  };
}

function copyMetadata(key: string, metadata: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  let bytes = 0;
  for (const [name, value] of Object.entries(metadata ?? {})) {
    if (typeof value !== 'string') {
      throw new ValidationError(
        `metadata ${quoteKey(name)} of ${quoteKey(key)} must be a string, got ${typeof value}`,
        { field: `metadata.${name}` },
      );
    }
    bytes += Buffer.byteLength(name, 'utf8') + Buffer.byteLength(value, 'utf8');
    out[name] = value;
  }
  // The same bound as S3's user metadata, so an artifact stored here can move to any backend.
  if (bytes > ARTIFACT_METADATA_MAX_BYTES) {
    throw new ValidationError(
      `metadata of ${quoteKey(key)} holds ${bytes} bytes of names and values; the ARTIFACT_METADATA_MAX_BYTES limit is ${ARTIFACT_METADATA_MAX_BYTES}`,
      { field: 'metadata' },
    );
  }
  return out;
}

function resolveRange(key: string, size: number, range: GetArtifactOptions['range']): { start?: number; end?: number } {
  if (range === undefined) return {};
  const { start, end } = range;
  if (!Number.isInteger(start) || start < 0 || (end !== undefined && (!Number.isInteger(end) || end < start))) {
    throw new ValidationError(
      `range for ${quoteKey(key)} must have an integer start >= 0 and an inclusive end >= start, got ${JSON.stringify(range)}`,
      { field: 'range' },
    );
  }
  if (start >= size) {
    throw new ValidationError(`range start ${start} is beyond the end of ${quoteKey(key)} (${size} bytes)`, {
      field: 'range',
    });
  }
  return { start, end: Math.min(end ?? size - 1, size - 1) };
}

function decodePageToken(token: string): Buffer {
  const bytes = typeof token === 'string' ? Buffer.from(token, 'base64url') : Buffer.alloc(0);
  if (bytes.length === 0 || bytes.toString('base64url') !== token) {
    throw new ValidationError('pageToken is not one this store returned; pass nextPageToken from the previous page', {
      field: 'pageToken',
    });
  }
  return bytes;
}

/** Normalizes every accepted body shape into an async iterable of byte chunks. */
function toChunks(key: string, body: ArtifactBody): AsyncIterable<Uint8Array> {
  if (typeof body === 'string') return Readable.from([Buffer.from(body, 'utf8')]);
  if (body instanceof Uint8Array) return Readable.from([body]);
  if (body === null || typeof body !== 'object' || !(Symbol.asyncIterator in body)) {
    throw new ValidationError(
      `body for ${quoteKey(key)} must be a Readable, an async iterable of Uint8Array, a Uint8Array or a string`,
      { field: 'body' },
    );
  }
  const iterable = body as AsyncIterable<unknown>;
  return (async function* () {
    for await (const chunk of iterable) {
      if (chunk instanceof Uint8Array) yield chunk;
      else if (typeof chunk === 'string') yield Buffer.from(chunk, 'utf8');
      else {
        throw new ValidationError(`body for ${quoteKey(key)} yielded a ${typeof chunk}; chunks must be Uint8Array`, {
          field: 'body',
        });
      }
    }
  })();
}

async function readdirOrEmpty(dir: string): Promise<string[]>;
async function readdirOrEmpty(dir: string, withTypes: true): Promise<Dirent[]>;
async function readdirOrEmpty(dir: string, withTypes?: true): Promise<string[] | Dirent[]> {
  try {
    return withTypes ? await readdir(dir, { withFileTypes: true }) : await readdir(dir);
  } catch (err) {
    const code = errorCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw new UnavailableError(`cannot read directory ${dir}: ${messageOf(err)}`, { cause: err });
  }
}

/**
 * Renames into a directory that may not exist yet. A concurrent delete may prune an empty
 * directory between mkdir and rename, so a missing directory is recreated a few times.
 */
async function renameCreatingDir(from: string, to: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await rename(from, to);
      return;
    } catch (err) {
      if (errorCode(err) !== 'ENOENT' || attempt >= 5) {
        throw new UnavailableError(`cannot move ${from} to ${to}: ${messageOf(err)}`, { cause: err });
      }
      await mkdir(dirname(to), { recursive: true, mode: 0o700 });
    }
  }
}

async function mkdirOrUnavailable(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new UnavailableError(`cannot create directory ${dir}: ${messageOf(err)}`, { cause: err });
  }
}

async function removeIfOlder(path: string, cutoffMs: number): Promise<boolean> {
  try {
    const info = await stat(path);
    if (info.mtimeMs > cutoffMs) return false;
    await unlink(path);
    return true;
  } catch {
    return false;
  }
}
