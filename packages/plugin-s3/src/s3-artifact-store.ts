import { createHash } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  HeadObjectCommand,
  type HeadObjectCommandOutput,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type PutObjectCommandOutput,
  S3Client,
  type S3ClientConfig,
  UploadPartCommand,
  UploadPartCopyCommand,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import {
  ARTIFACT_KEY_MAX_BYTES,
  ARTIFACT_LIST_PAGE,
  ARTIFACT_MAX_PARTS,
  ARTIFACT_RESERVED_METADATA_PREFIX,
  type ArtifactBody,
  type ArtifactInfo,
  type ArtifactListing,
  type ArtifactStore,
  type ArtifactStoreCapabilities,
  type ArtifactSummary,
  artifactBodyChunks,
  type CompletedPart,
  type CompleteMultipartUploadOptions,
  ConflictError,
  type CreateMultipartUploadOptions,
  decodePageToken,
  encodePageToken,
  foreignPageToken,
  type GetArtifactOptions,
  type ListArtifactsOptions,
  type ListMultipartUploadsOptions,
  type MultipartUpload,
  malformedPageToken,
  NotFoundError,
  normalizeSha256,
  type Page,
  type PresignedRequest,
  type PresignOptions,
  type PresignPartOptions,
  type PutArtifactOptions,
  quoteArtifactKey,
  resolveListOptions,
  resolveMaxResults,
  type StoredArtifact,
  type UploadedPart,
  type UploadPartOptions,
  ValidationError,
  validateArtifactKey,
  validateArtifactMetadata,
  validateByteRange,
  validateContentType,
  validateExpiry,
  validateKeyBatch,
  validatePartNumber,
  validatePresignOptions,
} from '@mlplane/core';
import { base64ToHex, checkedPart, hexToBase64 } from './checksums.js';
import { type S3Config, type S3ConfigInput, s3ConfigSchema } from './config.js';
import { type S3Context, s3Failure, where } from './errors.js';

const MiB = 1024 * 1024;
/** The user metadata name under which the whole-object sha256 of an upload in parts is recorded. */
export const SHA256_METADATA = `${ARTIFACT_RESERVED_METADATA_PREFIX}sha256`;
const SHA256_HEX = /^[0-9a-f]{64}$/;
/** HEAD requests in flight at once when a listing asks for sha256 or metadata. */
const LIST_HEAD_CONCURRENCY = 16;
/** The response's Date header, which S3 sends on every answer; PUT answers carry no Last-Modified. */
const RESPONSE_DATE = Symbol('mlplane.s3.responseDate');

type Described = { readonly [RESPONSE_DATE]?: Date };

/**
 * ArtifactStore on any S3-compatible object store, through the AWS SDK v3.
 *
 * - `put` streams: a body up to one part is sent in one PutObject with its sha256 as S3's own
 *   x-amz-checksum-sha256 (the server rejects a body that differs); a larger one goes through lib-storage's
 *   `Upload` in parts of `partSizeMiB`, `concurrency` at a time, each with its own server-checked SHA-256, while the
 *   store hashes the whole body on the way. S3 has no whole-object SHA-256 for uploads in parts, so the hash is kept
 *   in the object's metadata (`mlplane-sha256`): set when the upload starts if `expectedSha256` is given (and
 *   compared before completing), otherwise recorded right after completing by a copy of the object onto itself with
 *   new metadata (server-side; a metadata update on most S3-compatible servers, a server-side rewrite on AWS).
 *   A failed upload in parts is aborted, so no parts are left behind unless the server is unreachable (the error
 *   then names the upload id, and `listMultipartUploads` finds it).
 * - Retries are the SDK's (`maxAttempts`, `retryMode`): throttling, 5xx and transient network errors, with backoff.
 */
export class S3ArtifactStore implements ArtifactStore {
  readonly capabilities: ArtifactStoreCapabilities;
  readonly config: S3Config;
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #endpoint: string;
  readonly #partSize: number;

  /** Builds a store and checks that the bucket answers (NotFoundError, PermissionDeniedError, UnavailableError). */
  static async connect(config: S3ConfigInput): Promise<S3ArtifactStore> {
    const store = new S3ArtifactStore(config);
    try {
      await store.check();
      return store;
    } catch (err) {
      store.close();
      throw err;
    }
  }

  constructor(config: S3ConfigInput) {
    const parsed = s3ConfigSchema.safeParse(config);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new ValidationError(`s3 config ${issue.path.join('.')}: ${issue.message}`, {
        field: issue.path.join('.'),
      });
    }
    this.config = parsed.data;
    const c = this.config;
    this.#bucket = c.bucket;
    this.#prefix = c.prefix;
    this.#endpoint = c.endpoint ?? `the AWS S3 endpoint of ${c.region}`;
    this.#partSize = c.partSizeMiB * MiB;
    this.capabilities = Object.freeze({
      presignedUrls: true,
      multipart: true,
      rangeReads: true,
      deduplicates: false,
      maxKeyBytes: ARTIFACT_KEY_MAX_BYTES - Buffer.byteLength(c.prefix),
    });
    // Enough sockets for every part in flight of several concurrent uploads; keep-alive saves a handshake per part.
    const agent = { keepAlive: true, maxSockets: Math.max(50, c.concurrency * 8) };
    const clientConfig: S3ClientConfig = {
      region: c.region,
      forcePathStyle: c.forcePathStyle,
      maxAttempts: c.maxAttempts,
      retryMode: c.retryMode,
      // The store names its checksum (SHA-256) on every upload itself; the SDK's default would otherwise add a CRC32
      // to presigned PUTs, computed over no body, that no client's upload could match.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      requestHandler: {
        connectionTimeout: c.connectTimeoutMs,
        requestTimeout: c.socketTimeoutMs,
        httpAgent: new HttpAgent(agent),
        httpsAgent: new HttpsAgent(agent),
      },
      ...(c.endpoint ? { endpoint: c.endpoint } : {}),
      ...(c.credentials ? { credentials: c.credentials } : {}),
    };
    this.#client = new S3Client(clientConfig);
    // Keeps the Date header of each response with its output: PutObject and CompleteMultipartUpload answer no
    // Last-Modified, and the server's own clock is what `lastModified` promises.
    this.#client.middlewareStack.add(
      (next) => async (args) => {
        const result = await next(args);
        const date = (result.response as { headers?: Record<string, string> }).headers?.date;
        if (date && result.output && typeof result.output === 'object') {
          Object.defineProperty(result.output, RESPONSE_DATE, { value: new Date(date), enumerable: false });
        }
        return result;
      },
      { step: 'deserialize', name: 'mlplaneResponseDate', priority: 'low' },
    );
    // A body sent whole carries its SHA-256 in the signed x-amz-checksum-sha256 header, which the server checks
    // against the bytes; SigV4 would have the server hash the same bytes a second time for x-amz-content-sha256.
    // UNSIGNED-PAYLOAD (what the SDK itself sends with trailing checksums) leaves integrity to the checksum and saves
    // that pass: about 15% of the server's CPU per upload, measured on versitygw.
    this.#client.middlewareStack.add(
      (next) => async (args) => {
        const request = args.request as { headers?: Record<string, string>; body?: unknown };
        if (request.headers?.['x-amz-checksum-sha256'] && ArrayBuffer.isView(request.body)) {
          request.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
        }
        return next(args);
      },
      // Low priority in the build step: after the SDK's checksum middleware has set the checksum header.
      { step: 'build', priority: 'low', name: 'mlplaneChecksumCarriesIntegrity' },
    );
  }

  /** The SDK client, for what the port does not cover (bucket policies, lifecycle rules). */
  get client(): S3Client {
    return this.#client;
  }

  /** Asks the bucket for one key under the prefix: the cheapest request that checks bucket, credentials and reach. */
  async check(): Promise<void> {
    await this.#call(this.#at('checking the bucket'), (s3) =>
      s3.send(new ListObjectsV2Command({ Bucket: this.#bucket, Prefix: this.#prefix, MaxKeys: 1 })),
    );
  }

  /** Closes the SDK client's sockets. */
  close(): void {
    this.#client.destroy();
  }

  uri(key: string): string {
    this.#validateKey(key);
    return `s3://${this.#bucket}/${this.#prefix}${key}`;
  }

  // ------------------------------------------------------------------ put

  async put(key: string, body: ArtifactBody, options: PutArtifactOptions = {}): Promise<StoredArtifact> {
    this.#validateKey(key);
    const expected =
      options.expectedSha256 === undefined
        ? undefined
        : normalizeSha256(options.expectedSha256, 'expectedSha256', quoteArtifactKey(key));
    const contentType = validateContentType(key, options.contentType);
    const metadata = validateArtifactMetadata(key, options.metadata);
    const chunks = artifactBodyChunks(key, body);
    const { signal } = options;
    signal?.throwIfAborted();
    // Fail fast before streaming a large body; the server checks again atomically (If-None-Match).
    if (options.ifNotExists && (await this.exists(key))) throw this.#conflict(key);

    const source = chunks[Symbol.asyncIterator]();
    const hash = createHash('sha256');
    const first: Uint8Array[] = [];
    let size = 0;
    let ended = false;
    try {
      // Up to one part is read ahead to choose between one request and an upload in parts.
      while (size <= this.#partSize) {
        const next = await abortable(source.next(), signal);
        if (next.done) {
          ended = true;
          break;
        }
        hash.update(next.value);
        first.push(next.value);
        size += next.value.byteLength;
      }
    } catch (err) {
      await source.return?.().catch(() => undefined);
      throw signal?.aborted ? signal.reason : err;
    }
    const put = { key, contentType, metadata, expected, ifNotExists: options.ifNotExists === true, signal };
    if (ended) return this.#putOnce(put, Buffer.concat(first), hash.digest('hex'));
    return this.#putInParts(put, first, source, hash, size);
  }

  async #putOnce(put: PutRequest, payload: Buffer, sha256: string): Promise<StoredArtifact> {
    const context: S3Context = { ...this.#at('put', put.key), checksumField: 'expectedSha256' };
    // With expectedSha256 the server checks the body against it, so a mismatch is refused by S3 itself.
    const checksum = put.expected ?? sha256;
    let output: PutObjectCommandOutput;
    try {
      output = await this.#client.send(
        new PutObjectCommand({
          Bucket: this.#bucket,
          Key: this.#s3Key(put.key),
          Body: payload,
          ContentLength: payload.byteLength,
          ContentType: put.contentType,
          Metadata: put.metadata,
          ChecksumSHA256: hexToBase64(checksum),
          ...(put.ifNotExists ? { IfNoneMatch: '*' } : {}),
        }),
        put.signal ? { abortSignal: put.signal } : {},
      );
    } catch (err) {
      if (put.signal?.aborted) throw put.signal.reason;
      if (put.expected !== undefined && put.expected !== sha256)
        throw this.#mismatch(put.key, sha256, put.expected, err);
      throw s3Failure(err, context);
    }
    return {
      key: put.key,
      size: payload.byteLength,
      etag: output.ETag ?? '""',
      lastModified: responseDate(output),
      sha256,
      contentType: put.contentType,
      metadata: { ...put.metadata },
    };
  }

  async #putInParts(
    put: PutRequest,
    first: Uint8Array[],
    source: AsyncIterator<Uint8Array>,
    hash: ReturnType<typeof createHash>,
    firstSize: number,
  ): Promise<StoredArtifact> {
    const { key, signal, expected } = put;
    let size = firstSize;
    let sha256: string | undefined;
    const mismatch = (actual: string) => this.#mismatch(key, actual, expected!);
    // The rest of the body, hashed on its way to lib-storage's part buffer; a mismatch with expectedSha256 fails the
    // stream before its last part is handed over, so the upload is never completed.
    const body = Readable.from(
      (async function* () {
        yield* first;
        first.length = 0;
        for (;;) {
          const next = await abortable(source.next(), signal);
          if (next.done) break;
          hash.update(next.value);
          size += next.value.byteLength;
          yield next.value;
        }
        sha256 = hash.digest('hex');
        if (expected !== undefined && sha256 !== expected) throw mismatch(sha256);
      })(),
      { objectMode: true, highWaterMark: 1 },
    );
    const upload = new Upload({
      client: this.#client,
      params: {
        Bucket: this.#bucket,
        Key: this.#s3Key(key),
        Body: body,
        ContentType: put.contentType,
        Metadata: expected === undefined ? put.metadata : { ...put.metadata, [SHA256_METADATA]: expected },
        ChecksumAlgorithm: 'SHA256',
        ...(put.ifNotExists ? { IfNoneMatch: '*' } : {}),
      },
      partSize: this.#partSize,
      queueSize: this.config.concurrency,
      // The store aborts the upload itself, so that the error it reports is the one that failed the upload.
      leavePartsOnError: true,
    });
    let output: Awaited<ReturnType<Upload['done']>>;
    try {
      output = await upload.done();
    } catch (err) {
      await source.return?.().catch(() => undefined);
      const leftover = await this.#abandon(key, upload.uploadId);
      if (signal?.aborted) throw signal.reason;
      throw withLeftover(this.#uploadFailure(err, key, size), leftover);
    }
    const etag = output.ETag ?? '""';
    const stored: StoredArtifact = {
      key,
      size,
      etag,
      lastModified: responseDate(output),
      sha256: sha256!,
      contentType: put.contentType,
      metadata: { ...put.metadata },
    };
    if (expected !== undefined) return stored;
    return this.#recordSha256(stored);
  }

  /**
   * Records the sha256 of an object uploaded in parts by copying it onto itself with the hash added to its metadata,
   * if it is still the version this put stored (If-Match on the etag); a newer version needs no record from us.
   */
  async #recordSha256(stored: StoredArtifact): Promise<StoredArtifact> {
    const metadata = { ...stored.metadata, [SHA256_METADATA]: stored.sha256 };
    try {
      const copied = await this.#copyObject(stored.key, stored.key, {
        size: stored.size,
        etag: stored.etag,
        replace: { contentType: stored.contentType, metadata },
      });
      return { ...stored, etag: copied.etag, lastModified: copied.lastModified };
    } catch (err) {
      // Replaced or deleted since: this put's version is gone, and what is there is someone else's to describe.
      if (err instanceof ConflictError || err instanceof NotFoundError) return stored;
      throw appendMessage(
        err as Error,
        `; the content of ${quoteArtifactKey(stored.key)} was stored but its sha256 is not recorded: put it again`,
      );
    }
  }

  /** Aborts an upload in parts after a failure; resolves to the upload id when its parts could not be removed. */
  async #abandon(key: string, uploadId: string | undefined): Promise<string | undefined> {
    if (uploadId === undefined) return undefined;
    try {
      await this.#client.send(
        new AbortMultipartUploadCommand({ Bucket: this.#bucket, Key: this.#s3Key(key), UploadId: uploadId }),
      );
      return undefined;
    } catch (err) {
      return (err as { name?: string }).name === 'NoSuchUpload' ? undefined : uploadId;
    }
  }

  #uploadFailure(err: unknown, key: string, size: number): Error {
    const message = (err as Error | undefined)?.message ?? '';
    if (message.startsWith('Exceeded 10000 parts')) {
      return new ValidationError(
        `body for ${quoteArtifactKey(key)} needs more than ${ARTIFACT_MAX_PARTS} parts of ${this.config.partSizeMiB} MiB (read ${size} bytes so far): raise the s3 plugin's partSizeMiB`,
        { field: 'body', cause: err },
      );
    }
    return s3Failure(err, { ...this.#at('put', key), checksumField: 'expectedSha256' });
  }

  // ------------------------------------------------------------------ read

  async get(key: string, options: GetArtifactOptions = {}): Promise<{ info: ArtifactInfo; body: Readable }> {
    this.#validateKey(key);
    const range = validateByteRange(key, options.range);
    const { signal } = options;
    signal?.throwIfAborted();
    const request = new AbortController();
    const cancel = () => request.abort(signal?.reason);
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      // A ranged GET carries no full-object checksum, so the object is described by a HEAD of the same version.
      const described = range === undefined ? undefined : await this.head(key);
      const output: GetObjectCommandOutput = await this.#call(this.#at('get', key), (s3) =>
        s3.send(
          new GetObjectCommand({
            Bucket: this.#bucket,
            Key: this.#s3Key(key),
            ChecksumMode: 'ENABLED',
            ...(range === undefined
              ? {}
              : { Range: `bytes=${range.start}-${range.end ?? ''}`, IfMatch: described!.etag }),
          }),
          request.signal ? { abortSignal: request.signal } : {},
        ),
      );
      const info = described ?? this.#describe(key, output);
      const body = output.Body as Readable;
      if (signal) {
        signal.removeEventListener('abort', cancel);
        const destroy = () => body.destroy(signal.reason);
        signal.addEventListener('abort', destroy, { once: true });
        body.once('close', () => signal.removeEventListener('abort', destroy));
      }
      return { info, body };
    } catch (err) {
      signal?.removeEventListener('abort', cancel);
      if (signal?.aborted) throw signal.reason;
      // The object was replaced between the HEAD and the ranged GET: read the new version.
      if (err instanceof ConflictError && range !== undefined) return this.get(key, options);
      throw err;
    }
  }

  async head(key: string): Promise<ArtifactInfo> {
    this.#validateKey(key);
    const output = await this.#call(this.#at('head', key), (s3) =>
      s3.send(new HeadObjectCommand({ Bucket: this.#bucket, Key: this.#s3Key(key), ChecksumMode: 'ENABLED' })),
    );
    return this.#describe(key, output);
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.head(key);
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }

  async list(options?: ListArtifactsOptions): Promise<ArtifactListing> {
    const { prefix, delimiter, maxResults, pageToken, withSha256, withMetadata } = resolveListOptions(options);
    let continuation: string | undefined;
    if (pageToken !== undefined) {
      const state = decodePageToken<{ p?: unknown; d?: unknown; c?: unknown }>(pageToken);
      if (!state || typeof state !== 'object' || typeof state.c !== 'string' || state.c === '') {
        throw malformedPageToken();
      }
      if (state.p !== prefix || state.d !== (delimiter ?? '')) throw foreignPageToken('prefix and delimiter');
      continuation = state.c;
    }
    const output = await this.#call(this.#at('list'), (s3) =>
      s3.send(
        new ListObjectsV2Command({
          Bucket: this.#bucket,
          Prefix: this.#prefix + prefix,
          MaxKeys: maxResults,
          ...(delimiter ? { Delimiter: delimiter } : {}),
          ...(continuation ? { ContinuationToken: continuation } : {}),
        }),
      ),
    );
    const listed: ArtifactSummary[] = (output.Contents ?? []).map((o) => ({
      key: this.#keyOf(o.Key!),
      size: o.Size ?? 0,
      etag: o.ETag ?? '""',
      lastModified: o.LastModified ?? new Date(0),
    }));
    const items = withSha256 || withMetadata ? await this.#withHeads(listed, withSha256, withMetadata) : listed;
    const prefixes = (output.CommonPrefixes ?? []).map((p) => this.#keyOf(p.Prefix!));
    const next = output.IsTruncated ? output.NextContinuationToken : undefined;
    return next
      ? { items, prefixes, nextPageToken: encodePageToken({ p: prefix, d: delimiter ?? '', c: next }) }
      : { items, prefixes };
  }

  /** Adds what only a HEAD tells; a key deleted since the listing leaves the page, as a later listing would. */
  async #withHeads(items: ArtifactSummary[], sha256: boolean, metadata: boolean): Promise<ArtifactSummary[]> {
    const out: (ArtifactSummary | undefined)[] = new Array(items.length);
    let next = 0;
    const worker = async () => {
      while (next < items.length) {
        const i = next++;
        const item = items[i]!;
        try {
          const info = await this.head(item.key);
          out[i] = {
            ...item,
            ...(sha256 && info.sha256 !== undefined ? { sha256: info.sha256 } : {}),
            ...(metadata ? { contentType: info.contentType, metadata: info.metadata } : {}),
          };
        } catch (err) {
          if (!(err instanceof NotFoundError)) throw err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(LIST_HEAD_CONCURRENCY, items.length) }, worker));
    return out.filter((i): i is ArtifactSummary => i !== undefined);
  }

  // ------------------------------------------------------------------ copy and delete

  async copy(from: string, to: string): Promise<ArtifactInfo> {
    this.#validateKey(from);
    this.#validateKey(to);
    const source = await this.head(from);
    // S3 refuses a copy onto itself that changes nothing; the content is already where it is asked to be.
    if (from === to) return source;
    // A single-part source's hash is S3's own checksum, which a multipart copy would not carry: keep it in metadata.
    const replace =
      source.size > this.config.multipartCopyThresholdMiB * MiB
        ? {
            contentType: source.contentType,
            metadata: source.sha256 ? { ...source.metadata, [SHA256_METADATA]: source.sha256 } : source.metadata,
          }
        : undefined;
    const copied = await this.#copyObject(from, to, { size: source.size, etag: source.etag, replace });
    return { ...source, key: to, etag: copied.etag, lastModified: copied.lastModified };
  }

  /**
   * Server-side copy of one version (If-Match on its etag) of `from` to `to`: CopyObject up to the multipart copy
   * threshold (S3's limit is 5 GiB), UploadPartCopy in parts above. `replace` sets new metadata; without it the
   * source's is kept. ConflictError when `from` changed since `etag` was read.
   */
  async #copyObject(
    from: string,
    to: string,
    source: {
      size: number;
      etag: string;
      replace: { contentType: string; metadata: Record<string, string> } | undefined;
    },
  ): Promise<{ etag: string; lastModified: Date }> {
    const copySource = `${this.#bucket}/${encodeKey(this.#s3Key(from))}`;
    const context = this.#at('copy', from);
    if (source.size <= this.config.multipartCopyThresholdMiB * MiB) {
      const output = await this.#call(context, (s3) =>
        s3.send(
          new CopyObjectCommand({
            Bucket: this.#bucket,
            Key: this.#s3Key(to),
            CopySource: copySource,
            CopySourceIfMatch: source.etag,
            // S3 computes a full-object SHA-256 of the copy, so a copy of a single-part object keeps its checksum.
            ChecksumAlgorithm: 'SHA256',
            ...(source.replace
              ? {
                  MetadataDirective: 'REPLACE',
                  ContentType: source.replace.contentType,
                  Metadata: source.replace.metadata,
                }
              : { MetadataDirective: 'COPY' }),
          }),
        ),
      );
      return {
        etag: output.CopyObjectResult?.ETag ?? source.etag,
        lastModified: output.CopyObjectResult?.LastModified ?? responseDate(output),
      };
    }
    const replace = source.replace ?? { contentType: 'application/octet-stream', metadata: {} };
    const created = await this.#call(context, (s3) =>
      s3.send(
        new CreateMultipartUploadCommand({
          Bucket: this.#bucket,
          Key: this.#s3Key(to),
          ContentType: replace.contentType,
          Metadata: replace.metadata,
        }),
      ),
    );
    const uploadId = created.UploadId!;
    try {
      const partSize = Math.max(this.#partSize, Math.ceil(source.size / ARTIFACT_MAX_PARTS));
      const count = Math.ceil(source.size / partSize);
      const parts: { PartNumber: number; ETag: string }[] = new Array(count);
      let next = 0;
      const worker = async () => {
        while (next < count) {
          const i = next++;
          const start = i * partSize;
          const end = Math.min(source.size, start + partSize) - 1;
          const output = await this.#call({ ...context, uploadId }, (s3) =>
            s3.send(
              new UploadPartCopyCommand({
                Bucket: this.#bucket,
                Key: this.#s3Key(to),
                UploadId: uploadId,
                PartNumber: i + 1,
                CopySource: copySource,
                CopySourceIfMatch: source.etag,
                CopySourceRange: `bytes=${start}-${end}`,
              }),
            ),
          );
          parts[i] = { PartNumber: i + 1, ETag: output.CopyPartResult!.ETag! };
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.config.concurrency, count) }, worker));
      const output = await this.#call({ ...context, uploadId }, (s3) =>
        s3.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.#bucket,
            Key: this.#s3Key(to),
            UploadId: uploadId,
            MultipartUpload: { Parts: parts },
          }),
        ),
      );
      return { etag: output.ETag ?? source.etag, lastModified: responseDate(output) };
    } catch (err) {
      const leftover = await this.#abandon(to, uploadId);
      throw withLeftover(err as Error, leftover);
    }
  }

  async delete(key: string): Promise<void> {
    this.#validateKey(key);
    await this.#call(this.#at('delete', key), (s3) =>
      s3.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#s3Key(key) })),
    );
  }

  async deleteMany(keys: readonly string[]): Promise<void> {
    const unique = validateKeyBatch(keys, this.capabilities.maxKeyBytes);
    if (unique.length === 0) return;
    const output = await this.#call(this.#at('deleteMany'), (s3) =>
      s3.send(
        new DeleteObjectsCommand({
          Bucket: this.#bucket,
          Delete: { Objects: unique.map((k) => ({ Key: this.#s3Key(k) })), Quiet: true },
        }),
      ),
    );
    const refused = output.Errors ?? [];
    if (refused.length === 0) return;
    const first = refused[0]!;
    const names = refused
      .slice(0, 5)
      .map((e) => `${quoteArtifactKey(this.#keyOf(e.Key ?? ''))} (${e.Code ?? 'error'})`)
      .join(', ');
    // The rest were deleted; the error names what was not, typed after the first refusal.
    throw s3Failure(
      Object.assign(new Error(`${refused.length} of ${unique.length} keys were not deleted: ${names}`), {
        name: first.Code ?? 'InternalError',
        $metadata: { httpStatusCode: first.Code === 'AccessDenied' ? 403 : 500 },
      }),
      this.#at('deleteMany'),
    );
  }

  // ------------------------------------------------------------------ presigned URLs

  async presign(key: string, options: PresignOptions): Promise<PresignedRequest> {
    this.#validateKey(key);
    const o = validatePresignOptions(key, options);
    const expiresAt = new Date(Date.now() + o.expiresInSeconds * 1000);
    if (o.method === 'GET') {
      const url = await getSignedUrl(
        this.#client,
        new GetObjectCommand({ Bucket: this.#bucket, Key: this.#s3Key(key) }),
        { expiresIn: o.expiresInSeconds },
      );
      return { url, method: 'GET', headers: {}, expiresAt };
    }
    const headers: Record<string, string> = {};
    if (o.contentType !== undefined) headers['content-type'] = o.contentType;
    if (o.sha256 !== undefined) headers['x-amz-checksum-sha256'] = hexToBase64(o.sha256);
    const url = await getSignedUrl(
      this.#client,
      new PutObjectCommand({
        Bucket: this.#bucket,
        Key: this.#s3Key(key),
        ...(o.contentType !== undefined ? { ContentType: o.contentType } : {}),
        ...(o.contentLength !== undefined ? { ContentLength: o.contentLength } : {}),
        ...(o.sha256 !== undefined ? { ChecksumSHA256: headers['x-amz-checksum-sha256'] } : {}),
      }),
      signedConditions(o.expiresInSeconds, {
        contentType: o.contentType !== undefined,
        contentLength: o.contentLength !== undefined,
        checksum: o.sha256 !== undefined,
      }),
    );
    return { url, method: 'PUT', headers, expiresAt };
  }

  // ------------------------------------------------------------------ multipart

  async createMultipartUpload(key: string, options: CreateMultipartUploadOptions = {}): Promise<MultipartUpload> {
    this.#validateKey(key);
    const contentType = validateContentType(key, options.contentType);
    const metadata = validateArtifactMetadata(key, options.metadata);
    const output = await this.#call(this.#at('createMultipartUpload', key), (s3) =>
      s3.send(
        new CreateMultipartUploadCommand({
          Bucket: this.#bucket,
          Key: this.#s3Key(key),
          ContentType: contentType,
          Metadata: metadata,
          // Every part then carries a SHA-256 the server verifies, and completing names each part's.
          ChecksumAlgorithm: 'SHA256',
        }),
      ),
    );
    return { key, uploadId: output.UploadId! };
  }

  async uploadPart(
    upload: MultipartUpload,
    partNumber: number,
    body: ArtifactBody,
    options: UploadPartOptions = {},
  ): Promise<UploadedPart> {
    const { key, uploadId } = this.#validateUpload(upload);
    validatePartNumber(partNumber);
    const context: S3Context = { ...this.#at('uploadPart', key), uploadId, checksumField: 'sha256' };
    options.signal?.throwIfAborted();
    const common = { Bucket: this.#bucket, Key: this.#s3Key(key), UploadId: uploadId, PartNumber: partNumber };
    if (typeof body === 'string' || body instanceof Uint8Array) {
      const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
      if (options.size !== undefined && options.size !== bytes.byteLength)
        throw sizeMismatch(key, options.size, bytes.byteLength);
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      const output = await this.#call(context, (s3) =>
        s3.send(
          new UploadPartCommand({
            ...common,
            Body: bytes,
            ContentLength: bytes.byteLength,
            ChecksumSHA256: hexToBase64(sha256),
          }),
          options.signal ? { abortSignal: options.signal } : {},
        ),
      ).catch((err: unknown) => {
        throw options.signal?.aborted ? options.signal.reason : err;
      });
      return { partNumber, etag: output.ETag!, sha256, size: bytes.byteLength };
    }
    const size = options.size;
    if (size === undefined || !Number.isSafeInteger(size) || size < 0) {
      throw new ValidationError(
        `size of part ${partNumber} of ${quoteArtifactKey(key)} must be given for a streamed body: S3 needs the length before the bytes`,
        { field: 'size' },
      );
    }
    let failure: Error | undefined;
    // A body that fails or has the wrong size ends the request, which would otherwise wait for the missing bytes.
    const request = new AbortController();
    const cancel = () => request.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', cancel, { once: true });
    const { stream, result } = checkedPart(artifactBodyChunks(key, body), size, (problem) => {
      failure ??= problem instanceof Error ? problem : sizeMismatch(key, size, problem);
      request.abort(failure);
    });
    let etag: string | undefined;
    try {
      // The SDK hashes the streamed part into a trailing x-amz-checksum-sha256 that the server verifies.
      const output = await this.#client.send(
        new UploadPartCommand({ ...common, Body: stream, ContentLength: size, ChecksumAlgorithm: 'SHA256' }),
        { abortSignal: request.signal },
      );
      etag = output.ETag;
    } catch (err) {
      if (options.signal?.aborted) throw options.signal.reason;
      throw failure ?? s3Failure(err, context);
    } finally {
      options.signal?.removeEventListener('abort', cancel);
    }
    if (failure) throw failure;
    return { partNumber, etag: etag!, sha256: result.sha256!, size };
  }

  async presignPart(
    upload: MultipartUpload,
    partNumber: number,
    options: PresignPartOptions,
  ): Promise<PresignedRequest> {
    const { key, uploadId } = this.#validateUpload(upload);
    validatePartNumber(partNumber);
    const expiresInSeconds = validateExpiry(options?.expiresInSeconds);
    const sha256 = normalizeSha256(options?.sha256, 'sha256', `part ${partNumber} of ${quoteArtifactKey(key)}`);
    const o = validatePresignOptions(key, {
      method: 'PUT',
      expiresInSeconds,
      ...(options.contentLength === undefined ? {} : { contentLength: options.contentLength }),
    });
    const checksum = hexToBase64(sha256);
    const url = await getSignedUrl(
      this.#client,
      new UploadPartCommand({
        Bucket: this.#bucket,
        Key: this.#s3Key(key),
        UploadId: uploadId,
        PartNumber: partNumber,
        ChecksumSHA256: checksum,
        ...(o.contentLength !== undefined ? { ContentLength: o.contentLength } : {}),
      }),
      signedConditions(expiresInSeconds, {
        contentType: false,
        contentLength: o.contentLength !== undefined,
        checksum: true,
      }),
    );
    return {
      url,
      method: 'PUT',
      headers: { 'x-amz-checksum-sha256': checksum },
      expiresAt: new Date(Date.now() + expiresInSeconds * 1000),
    };
  }

  async completeMultipartUpload(
    upload: MultipartUpload,
    parts: readonly CompletedPart[],
    options: CompleteMultipartUploadOptions = {},
  ): Promise<ArtifactInfo> {
    const { key, uploadId } = this.#validateUpload(upload);
    const checked = validateParts(key, parts);
    await this.#call({ ...this.#at('completeMultipartUpload', key), uploadId }, (s3) =>
      s3.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.#bucket,
          Key: this.#s3Key(key),
          UploadId: uploadId,
          MultipartUpload: {
            Parts: checked.map((p) => ({
              PartNumber: p.partNumber,
              ETag: p.etag,
              ChecksumSHA256: hexToBase64(p.sha256),
            })),
          },
          ...(options.ifNotExists ? { IfNoneMatch: '*' } : {}),
        }),
      ),
    );
    return this.head(key);
  }

  async abortMultipartUpload(upload: MultipartUpload): Promise<void> {
    const { key, uploadId } = this.#validateUpload(upload);
    try {
      await this.#call({ ...this.#at('abortMultipartUpload', key), uploadId }, (s3) =>
        s3.send(new AbortMultipartUploadCommand({ Bucket: this.#bucket, Key: this.#s3Key(key), UploadId: uploadId })),
      );
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }

  async listMultipartUploads(options: ListMultipartUploadsOptions = {}): Promise<Page<MultipartUpload>> {
    const prefix = options.prefix ?? '';
    if (typeof prefix !== 'string') throw new ValidationError('prefix must be a string', { field: 'prefix' });
    const maxResults = resolveMaxResults(options.maxResults, ARTIFACT_LIST_PAGE);
    let markers: { KeyMarker: string; UploadIdMarker: string } | undefined;
    if (options.pageToken !== undefined) {
      const state = decodePageToken<{ p?: unknown; k?: unknown; u?: unknown }>(options.pageToken);
      if (!state || typeof state !== 'object' || typeof state.k !== 'string' || typeof state.u !== 'string') {
        throw malformedPageToken();
      }
      if (state.p !== prefix) throw foreignPageToken('prefix');
      markers = { KeyMarker: state.k, UploadIdMarker: state.u };
    }
    const output = await this.#call(this.#at('listMultipartUploads'), (s3) =>
      s3.send(
        new ListMultipartUploadsCommand({
          Bucket: this.#bucket,
          Prefix: this.#prefix + prefix,
          MaxUploads: maxResults,
          ...markers,
        }),
      ),
    );
    const items: MultipartUpload[] = (output.Uploads ?? []).map((u) => ({
      key: this.#keyOf(u.Key!),
      uploadId: u.UploadId!,
      ...(u.Initiated ? { initiated: u.Initiated } : {}),
    }));
    return output.IsTruncated && output.NextKeyMarker !== undefined
      ? {
          items,
          nextPageToken: encodePageToken({ p: prefix, k: output.NextKeyMarker, u: output.NextUploadIdMarker ?? '' }),
        }
      : { items };
  }

  // ------------------------------------------------------------------ helpers

  #validateKey(key: string): void {
    validateArtifactKey(key, this.capabilities.maxKeyBytes);
  }

  #validateUpload(upload: MultipartUpload): MultipartUpload {
    if (!upload || typeof upload !== 'object' || typeof upload.uploadId !== 'string' || upload.uploadId === '') {
      throw new ValidationError('upload must be the MultipartUpload that createMultipartUpload returned', {
        field: 'upload',
      });
    }
    this.#validateKey(upload.key);
    return upload;
  }

  #s3Key(key: string): string {
    return this.#prefix + key;
  }

  #keyOf(s3Key: string): string {
    return s3Key.startsWith(this.#prefix) ? s3Key.slice(this.#prefix.length) : s3Key;
  }

  #at(action: string, key?: string): S3Context {
    return { bucket: this.#bucket, endpoint: this.#endpoint, action, ...(key === undefined ? {} : { key }) };
  }

  /** Runs one SDK request, turning its failure into the port's error for `context`. */
  async #call<T>(context: S3Context, request: (client: S3Client) => Promise<T>): Promise<T> {
    try {
      return await request(this.#client);
    } catch (err) {
      throw s3Failure(err, context);
    }
  }

  #describe(key: string, output: HeadObjectCommandOutput | GetObjectCommandOutput): ArtifactInfo {
    const metadata: Record<string, string> = {};
    let recorded: string | undefined;
    for (const [name, value] of Object.entries(output.Metadata ?? {})) {
      if (name === SHA256_METADATA) recorded = SHA256_HEX.test(value) ? value : undefined;
      else if (!name.startsWith(ARTIFACT_RESERVED_METADATA_PREFIX)) metadata[name] = value;
    }
    // S3's own full-object checksum was verified by the server on upload, so it wins over the recorded one.
    const native = output.ChecksumType === 'COMPOSITE' ? undefined : base64ToHex(output.ChecksumSHA256);
    const sha256 = native ?? recorded;
    const size = totalSize(output);
    return {
      key,
      size,
      etag: output.ETag ?? '""',
      lastModified: output.LastModified ?? new Date(0),
      ...(sha256 ? { sha256 } : {}),
      contentType: output.ContentType ?? 'application/octet-stream',
      metadata,
    };
  }

  #mismatch(key: string, actual: string, expected: string, cause?: unknown): ValidationError {
    return new ValidationError(
      `content uploaded for ${quoteArtifactKey(key)} hashes to sha256 ${actual}, not the expected ${expected}; nothing was stored (${where(this.#at('put'))})`,
      { field: 'expectedSha256', ...(cause === undefined ? {} : { cause }) },
    );
  }

  #conflict(key: string): ConflictError {
    return new ConflictError(
      `artifact ${quoteArtifactKey(key)} already exists in ${where(this.#at('put'))}; put without ifNotExists to replace it`,
    );
  }
}

interface PutRequest {
  readonly key: string;
  readonly contentType: string;
  readonly metadata: Record<string, string>;
  readonly expected: string | undefined;
  readonly ifNotExists: boolean;
  readonly signal: AbortSignal | undefined;
}

/** Resolves with the promise, or rejects with the signal's reason as soon as it aborts. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

function responseDate(output: object): Date {
  return (output as Described)[RESPONSE_DATE] ?? new Date();
}

/** The object's size: the total of a ranged answer's Content-Range, else its length. */
function totalSize(output: HeadObjectCommandOutput | GetObjectCommandOutput): number {
  const range = 'ContentRange' in output ? output.ContentRange : undefined;
  const total = range ? /\/(\d+)$/.exec(range)?.[1] : undefined;
  return total === undefined ? (output.ContentLength ?? 0) : Number(total);
}

/** CopySource is `bucket/key`, URL-encoded except for the slashes, as S3 wants it. */
function encodeKey(key: string): string {
  return key
    .split('/')
    .map((segment) =>
      encodeURIComponent(segment).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`),
    )
    .join('/');
}

/**
 * Presigning options that make the conditions part of the signature: Content-Type and Content-Length as signed
 * headers, the checksum as a header too (the presigner would otherwise move it into the query string, where a
 * client could not send it as the header S3 checks).
 */
function signedConditions(
  expiresIn: number,
  conditions: { contentType: boolean; contentLength: boolean; checksum: boolean },
) {
  const signed = [
    ...(conditions.contentType ? ['content-type'] : []),
    ...(conditions.contentLength ? ['content-length'] : []),
  ];
  return {
    expiresIn,
    ...(signed.length ? { signableHeaders: new Set(signed) } : {}),
    ...(conditions.checksum ? { unhoistableHeaders: new Set(['x-amz-checksum-sha256']) } : {}),
  };
}

function validateParts(key: string, parts: readonly CompletedPart[]): CompletedPart[] {
  if (!Array.isArray(parts) || parts.length === 0) {
    throw new ValidationError(`parts of ${quoteArtifactKey(key)} must be a non-empty array`, { field: 'parts' });
  }
  let previous = 0;
  return parts.map((part, i) => {
    const partNumber = validatePartNumber(part?.partNumber);
    if (partNumber <= previous) {
      throw new ValidationError(
        `parts of ${quoteArtifactKey(key)} must be in ascending part-number order without repeats: part ${partNumber} follows part ${previous}`,
        { field: 'parts' },
      );
    }
    previous = partNumber;
    if (typeof part.etag !== 'string' || part.etag === '') {
      throw new ValidationError(`part ${partNumber} of ${quoteArtifactKey(key)} needs the etag its upload returned`, {
        field: `parts.${i}.etag`,
      });
    }
    const sha256 = normalizeSha256(part.sha256, `parts.${i}.sha256`, `part ${partNumber} of ${quoteArtifactKey(key)}`);
    return { partNumber, etag: part.etag, sha256 };
  });
}

function sizeMismatch(key: string, expected: number, actual: number): ValidationError {
  return new ValidationError(
    `size of the part of ${quoteArtifactKey(key)} was given as ${expected} bytes but the body ${actual > expected ? 'is longer' : `has ${actual}`}`,
    { field: 'size' },
  );
}

/** Adds to an error's message the upload whose parts stay on the server because aborting it failed too. */
function withLeftover(err: Error, uploadId: string | undefined): Error {
  if (uploadId === undefined) return err;
  return appendMessage(
    err,
    `; the parts of multipart upload ${uploadId} could not be removed: abortMultipartUpload it, or let a lifecycle rule expire it`,
  );
}

/** Errors made by this store are its own to annotate; anything else is wrapped so the caller's object is untouched. */
function appendMessage(err: Error, text: string): Error {
  err.message += text;
  return err;
}
