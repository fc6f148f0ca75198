import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, type Dirent } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import {
  ARTIFACT_KEY_MAX_BYTES,
  type ArtifactBody,
  type ArtifactInfo,
  type ArtifactListing,
  type ArtifactStore,
  type ArtifactStoreCapabilities,
  type ArtifactSummary,
  artifactBodyChunks,
  ConflictError,
  decodePageToken,
  encodePageToken,
  foreignPageToken,
  type GetArtifactOptions,
  type ListArtifactsOptions,
  malformedPageToken,
  NotFoundError,
  normalizeSha256,
  type PutArtifactOptions,
  quoteArtifactKey as quoteKey,
  resolveListOptions,
  type StoredArtifact,
  UnavailableError,
  ValidationError,
  validateArtifactKey,
  validateArtifactMetadata,
  validateByteRange,
  validateContentType,
  validateKeyBatch,
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
 *
 * `uri(key)` is `file://<root>/<key>`: the key's place in the store's namespace. Content lives once per hash
 * under `blobs/`, so no file sits at that path; read through the store.
 */
export class LocalArtifactStore implements ArtifactStore {
  readonly capabilities: ArtifactStoreCapabilities = Object.freeze({
    presignedUrls: false,
    multipart: false,
    rangeReads: true,
    deduplicates: true,
    maxKeyBytes: ARTIFACT_KEY_MAX_BYTES,
  });

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
    this.#root = resolve(options.root);
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

  uri(key: string): string {
    validateArtifactKey(key);
    return pathToFileURL(join(this.#root, key)).href;
  }

  async put(key: string, body: ArtifactBody, options: PutArtifactOptions = {}): Promise<StoredArtifact> {
    validateArtifactKey(key);
    const expected =
      options.expectedSha256 === undefined
        ? undefined
        : normalizeSha256(options.expectedSha256, 'expectedSha256', quoteKey(key));
    const contentType = validateContentType(key, options.contentType);
    // A media type, never free text: it is served back as a Content-Type header, where CR/LF would add headers.
    validateMediaType(contentType);
    const metadata = validateArtifactMetadata(key, options.metadata);
    const chunks = artifactBodyChunks(key, body);
    options.signal?.throwIfAborted();
    // Fail fast before streaming a large body; the check is repeated under the key lock.
    if (options.ifNotExists && (await this.exists(key))) throw conflict(key);

    await this.#ensureRefCounts();
    // The whole upload holds the shared lock so that gc never mistakes its temp file for a leftover.
    return this.#sweepLock.shared(async () => {
      const upload = await this.#receive(key, chunks, options.signal);
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
          // Past this point the put completes: an abort now would leave the caller unsure what is stored.
          options.signal?.throwIfAborted();
          await this.#adoptBlob(upload.tempPath!, upload.sha256);
          upload.tempPath = undefined;
          try {
            await this.#writeRef(key, ref);
          } catch (err) {
            await this.#releaseBlob(upload.sha256);
            throw err;
          }
          if (previous) await this.#releaseBlob(previous.sha256);
          return toStored(ref);
        });
      } finally {
        if (upload.tempPath !== undefined) await unlink(upload.tempPath).catch(() => undefined);
      }
    });
  }

  async get(key: string, options: GetArtifactOptions = {}): Promise<{ info: ArtifactInfo; body: Readable }> {
    validateArtifactKey(key);
    const range = validateByteRange(key, options.range);
    options.signal?.throwIfAborted();
    // A concurrent overwrite may reclaim the blob between reading the ref and opening the blob; the ref is then re-read.
    let missing: string | undefined;
    for (;;) {
      const ref = await this.#readRef(key);
      const span = clampRange(key, ref.size, range);
      const path = this.#blobPath(ref.sha256);
      try {
        const handle = await open(path, 'r');
        const body = handle.createReadStream(span);
        if (options.signal) destroyOnAbort(body, options.signal);
        return { info: toInfo(ref), body };
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

  async list(options?: ListArtifactsOptions): Promise<ArtifactListing> {
    const { prefix, delimiter, maxResults, pageToken, withSha256, withMetadata } = resolveListOptions(options);
    const after = pageToken === undefined ? undefined : decodeListToken(pageToken, prefix, delimiter);

    const entries = await this.#collect(prefix, delimiter === '/');
    const remaining = after === undefined ? entries : entries.filter((e) => Buffer.compare(e.bytes, after) > 0);
    const page = remaining.slice(0, maxResults);
    const refs = await Promise.all(
      page.map((e) => (e.refPath === undefined ? undefined : this.#readRefFile(e.refPath, e.key))),
    );
    const items: ArtifactSummary[] = [];
    const prefixes: string[] = [];
    page.forEach((entry, i) => {
      const ref = refs[i];
      if (entry.refPath === undefined) prefixes.push(entry.key);
      // A key deleted between the directory walk and the read is simply absent from the page.
      else if (ref !== undefined) items.push(toSummary(ref, withSha256, withMetadata));
    });
    const last = page.at(-1);
    if (remaining.length <= maxResults || !last) return { items, prefixes };
    const nextPageToken = encodePageToken({ p: prefix, d: delimiter ?? '', a: last.bytes.toString('base64url') });
    return { items, prefixes, nextPageToken };
  }

  /** A new ref to the same blob: no bytes move, whatever the size. */
  async copy(from: string, to: string): Promise<ArtifactInfo> {
    validateArtifactKey(from);
    validateArtifactKey(to);
    await this.#ensureRefCounts();
    return this.#sweepLock.shared(async () => {
      for (;;) {
        const source = await this.#readRef(from);
        const done = await this.#keyLocks.run(to, async () => {
          // Counting the blob first keeps it alive even if `from` is overwritten or deleted meanwhile.
          if (!(await this.#retainBlob(source.sha256))) return undefined;
          const previous = await this.#readRefOrUndefined(to);
          const ref: RefFile = { ...source, key: to, createdAt: new Date().toISOString() };
          try {
            await this.#writeRef(to, ref);
          } catch (err) {
            await this.#releaseBlob(source.sha256);
            throw err;
          }
          if (previous) await this.#releaseBlob(previous.sha256);
          return toInfo(ref);
        });
        // The source's blob was reclaimed between reading its ref and counting it: read the ref again.
        if (done) return done;
      }
    });
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

  async deleteMany(keys: readonly string[]): Promise<void> {
    const unique = validateKeyBatch(keys, this.capabilities.maxKeyBytes);
    for (let i = 0; i < unique.length; i += 16) {
      await Promise.all(unique.slice(i, i + 16).map((key) => this.delete(key)));
    }
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

  /** Counts one more ref of an existing blob; false when the blob is gone (its last ref was released meanwhile). */
  async #retainBlob(sha256: string): Promise<boolean> {
    return this.#blobLocks.run(sha256, async () => {
      const counts = this.#refCounts!;
      const current = counts.get(sha256) ?? 0;
      if (current === 0) return false;
      counts.set(sha256, current + 1);
      return true;
    });
  }

  /** Streams the body through sha256 into a fresh temp file; nothing is buffered beyond one chunk. */
  async #receive(
    key: string,
    source: AsyncIterable<Uint8Array>,
    signal: AbortSignal | undefined,
  ): Promise<{ tempPath: string | undefined; sha256: string; size: number }> {
    this.#tmpReady ??= mkdirOrUnavailable(this.#tmp).catch((err: unknown) => {
      this.#tmpReady = undefined;
      throw err;
    });
    await this.#tmpReady;
    const tempPath = join(this.#tmp, `${randomBytes(12).toString('hex')}.upload`);
    const hash = createHash('sha256');
    let size = 0;
    // Blobs are never modified in place, so they are created read-only; `flush` makes them durable before rename.
    const file = createWriteStream(tempPath, { flags: 'wx', mode: 0o400, flush: true });
    try {
      const hashing = async function* (chunks: AsyncIterable<Uint8Array>) {
        for await (const chunk of chunks) {
          hash.update(chunk);
          size += chunk.byteLength;
          yield chunk;
        }
      };
      await (signal ? pipeline(source, hashing, file, { signal }) : pipeline(source, hashing, file));
    } catch (err) {
      // An abort settles the pipeline before the file is closed (and maybe before it is created): wait, then remove.
      if (!file.closed) await new Promise<void>((resolve) => file.once('close', () => resolve()));
      await unlink(tempPath).catch(() => undefined);
      if (signal?.aborted) throw signal.reason;
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

function toSummary(ref: RefFile, withSha256: boolean, withMetadata: boolean): ArtifactSummary {
  return {
    key: ref.key,
    size: ref.size,
    etag: `"${ref.sha256}"`,
    lastModified: new Date(ref.createdAt),
    ...(withSha256 ? { sha256: ref.sha256 } : {}),
    ...(withMetadata ? { contentType: ref.contentType, metadata: { ...ref.metadata } } : {}),
  };
}

function toInfo(ref: RefFile): ArtifactInfo {
  return toStored(ref);
}

function toStored(ref: RefFile): StoredArtifact {
  return {
    key: ref.key,
    size: ref.size,
    etag: `"${ref.sha256}"`,
    lastModified: new Date(ref.createdAt),
    sha256: ref.sha256,
    contentType: ref.contentType,
    metadata: { ...ref.metadata },
  };
}

/** Ends the body with the signal's reason when the caller aborts while it flows. */
function destroyOnAbort(body: Readable, signal: AbortSignal): void {
  const abort = () => body.destroy(signal.reason);
  signal.addEventListener('abort', abort, { once: true });
  body.once('close', () => signal.removeEventListener('abort', abort));
}

/** The read span of a validated range; a start past the end is the caller's error, an end past it is clamped. */
function clampRange(
  key: string,
  size: number,
  range: { start: number; end: number | undefined } | undefined,
): { start?: number; end?: number } {
  if (range === undefined) return {};
  if (range.start >= size) {
    throw new ValidationError(`range start ${range.start} is beyond the end of ${quoteKey(key)} (${size} bytes)`, {
      field: 'range',
    });
  }
  return { start: range.start, end: Math.min(range.end ?? size - 1, size - 1) };
}

/** The last key of the previous page, from a token issued for the same prefix and delimiter. */
function decodeListToken(token: string, prefix: string, delimiter: '/' | undefined): Buffer {
  const state = decodePageToken<{ p?: unknown; d?: unknown; a?: unknown }>(token);
  if (!state || typeof state !== 'object' || typeof state.a !== 'string' || state.a === '') throw malformedPageToken();
  if (state.p !== prefix || state.d !== (delimiter ?? '')) throw foreignPageToken('prefix and delimiter');
  const bytes = Buffer.from(state.a, 'base64url');
  if (bytes.toString('base64url') !== state.a) throw malformedPageToken();
  return bytes;
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
