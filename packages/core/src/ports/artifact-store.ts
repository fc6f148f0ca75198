import type { Readable } from 'node:stream';
import { z } from 'zod';
import { validateMediaType } from '../infra/validation/media-type.js';
import { definePort } from '../kernel/port.js';
import { createServiceRef } from '../kernel/service-ref.js';
import {
  normalizeSha256,
  resolveListOptions,
  validateArtifactMetadata,
  validateByteRange,
  validateContentType,
  validateExpiry,
  validateKeyBatch,
  validatePartNumber,
  validatePresignOptions,
} from './artifact-input.js';
import { validateArtifactKey } from './artifact-key.js';
import {
  ARTIFACT_KEY_MAX_BYTES,
  ARTIFACT_LIST_PAGE,
  ARTIFACT_MAX_PART_BYTES,
  ARTIFACT_MAX_PARTS,
} from './artifact-limits.js';
import { describeValue } from './errors.js';
import { createArtifactStoreHooks, guardArtifactStore } from './guards/artifact-store.js';
import { fromValidator, integerBetween, limitedString } from './input-schemas.js';
import { type Page, type PageOptions, pageOptions } from './paging.js';
import { type PortInputs, portArg, portInput, synchronous } from './port-inputs.js';

export {
  artifactBodyChunks,
  normalizeSha256,
  type ResolvedListOptions,
  resolveListOptions,
  validateArtifactMetadata,
  validateByteRange,
  validateContentType,
  validateExpiry,
  validateKeyBatch,
  validatePartNumber,
  validatePresignOptions,
} from './artifact-input.js';
export { compareArtifactKeys, quoteArtifactKey, validateArtifactKey } from './artifact-key.js';
export * from './artifact-limits.js';
export {
  ConflictError,
  NotFoundError,
  PermissionDeniedError,
  UnavailableError,
  ValidationError,
} from './errors.js';

/**
 * The ArtifactStore contract, shaped after what S3 gives natively so that an object store implements it without
 * emulation; docs/ports/artifact-store.md has the same contract operation by operation.
 *
 * Errors every operation may throw, besides those it names: ValidationError (`field` names the input) for a bad key
 * (see `validateArtifactKey`) or option, before any I/O; UnavailableError (with the cause) when the backend cannot be
 * reached or fails, after the backend's own retries; PermissionDeniedError when the backend refuses the credentials or
 * the operation. Nothing is partially visible after a failed write.
 */

/** What a backend can do beyond the common contract; callers check before using optional methods. */
export interface ArtifactStoreCapabilities {
  /** `presign` (and `presignPart` where `multipart` too) return URLs a client can use without credentials. */
  readonly presignedUrls: boolean;
  /** The multipart methods exist: one object uploaded in parts, in parallel, possibly from several clients. */
  readonly multipart: boolean;
  /** `get` honours byte ranges. */
  readonly rangeReads: boolean;
  /** Identical content is stored once (content-addressed). */
  readonly deduplicates: boolean;
  /**
   * The longest key this store accepts, in UTF-8 bytes: ARTIFACT_KEY_MAX_BYTES less what the backend puts before
   * every key (an S3 store's key prefix), so a key that fits here fits every store without a prefix.
   */
  readonly maxKeyBytes: number;
}

/** What `list` gives per object: what S3's ListObjectsV2 returns, plus the fields `include` asks for. */
export interface ArtifactSummary {
  /** The key as given to `put`: slash-separated, no leading slash, no empty, `.` or `..` segments. */
  readonly key: string;
  /** Bytes. */
  readonly size: number;
  /**
   * Opaque, in double quotes like an HTTP ETag; changes whenever the content is replaced with different bytes.
   * It tells versions apart; it is not a content hash (S3's is MD5-based and `-<parts>` for uploads in parts).
   */
  readonly etag: string;
  /** When the current content was stored, by the backend's clock (S3 keeps whole seconds). */
  readonly lastModified: Date;
  /** With `include: ['sha256']`, when the backend recorded one (see ArtifactInfo.sha256). */
  readonly sha256?: string;
  /** With `include: ['metadata']`. */
  readonly contentType?: string;
  /** With `include: ['metadata']`. */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** What `head`, `get`, `put` and `copy` describe: the summary plus content type and metadata. */
export interface ArtifactInfo extends ArtifactSummary {
  /**
   * Hex sha256 of the whole content. Every `put` and `copy` of a store records it; it is absent only for objects
   * that reached the backend another way (a presigned PUT without the `sha256` condition, another tool writing
   * the bucket) and for objects completed through the multipart methods, whose bytes the store never saw whole.
   */
  readonly sha256?: string;
  readonly contentType: string;
  readonly metadata: Readonly<Record<string, string>>;
}

/** A `put` result: the store hashed every byte on the way, so the sha256 is always there. */
export interface StoredArtifact extends ArtifactInfo {
  readonly sha256: string;
}

/** Bodies are streamed; buffers and strings are accepted for small payloads. */
export type ArtifactBody = Readable | AsyncIterable<Uint8Array> | Uint8Array | string;

export interface PutArtifactOptions {
  /** Printable ASCII with a '/', at most 255 characters; `application/octet-stream` when absent. */
  readonly contentType?: string;
  /** User metadata; the rules of `validateArtifactMetadata` (lowercase names, printable ASCII values, 1536 bytes). */
  readonly metadata?: Readonly<Record<string, string>>;
  /**
   * Hex sha256 the whole content must hash to. On a mismatch the put fails with ValidationError
   * (field `expectedSha256`), stores nothing and leaves the previous content in place. It is checked before the
   * content becomes visible, by the backend where it can: S3 receives it as the object's x-amz-checksum-sha256
   * and rejects a body that differs; for a body sent in parts S3 checks each part's checksum and the store compares
   * the whole-object hash before completing the upload.
   */
  readonly expectedSha256?: string;
  /** When true, the put fails with ConflictError if the key exists; of concurrent such puts exactly one wins. */
  readonly ifNotExists?: boolean;
  /**
   * Aborting stops reading the body; the put rejects with the signal's reason and stores nothing, unless the abort
   * races with the backend's commit (then the content may be stored although the put rejected).
   */
  readonly signal?: AbortSignal;
}

export interface GetArtifactOptions {
  /** Inclusive byte range; needs `capabilities.rangeReads`. An end past the last byte is clamped, as in HTTP. */
  readonly range?: { readonly start: number; readonly end?: number };
  /** Aborting cancels the request, or destroys the body stream with the signal's reason once it flows. */
  readonly signal?: AbortSignal;
}

/** Fields `list` leaves out unless asked, because S3 needs one HEAD request per object for them. */
export type ArtifactListField = 'sha256' | 'metadata';

export interface ListArtifactsOptions extends PageOptions {
  /** Only keys starting with this string (any string; it need not end at a '/'). */
  readonly prefix?: string;
  /** With '/', keys with a '/' after the prefix are rolled up into `prefixes` (one directory level). */
  readonly delimiter?: '/';
  /** `sha256` adds each item's recorded sha256; `metadata` adds its content type and metadata. */
  readonly include?: readonly ArtifactListField[];
}

/**
 * One page of keys, sorted by UTF-8 byte order (S3's order), with the rolled-up prefixes of the same page in
 * `prefixes`; keys and prefixes together count toward `maxResults` (ARTIFACT_LIST_PAGE).
 */
export interface ArtifactListing extends Page<ArtifactSummary> {
  readonly prefixes: readonly string[];
}

export interface PresignOptions {
  readonly method: 'GET' | 'PUT';
  /** Whole seconds from 1 to ARTIFACT_PRESIGN_MAX_SECONDS (7 days, SigV4's limit). */
  readonly expiresInSeconds: number;
  /** PUT only: the upload must send exactly this Content-Type, which becomes the object's. */
  readonly contentType?: string;
  /** PUT only: the body must be exactly this many bytes. */
  readonly contentLength?: number;
  /** PUT only: hex sha256 the body must hash to; the backend rejects other bodies and records it as the sha256. */
  readonly sha256?: string;
}

/** A request a client without credentials can make until `expiresAt`. */
export interface PresignedRequest {
  readonly url: string;
  readonly method: 'GET' | 'PUT';
  /**
   * Headers the client must send exactly as given (the signed conditions: content type, checksum). A body of the
   * signed length needs no header of its own: every HTTP client sends its Content-Length.
   */
  readonly headers: Readonly<Record<string, string>>;
  readonly expiresAt: Date;
}

/** An upload in parts in progress; its parts are invisible until completed and take storage until aborted. */
export interface MultipartUpload {
  readonly key: string;
  readonly uploadId: string;
  /** When the upload was created, where the backend says (`listMultipartUploads` does). */
  readonly initiated?: Date;
}

export interface CreateMultipartUploadOptions {
  readonly contentType?: string;
  readonly metadata?: Readonly<Record<string, string>>;
}

export interface CompleteMultipartUploadOptions {
  /** When true, completing fails with ConflictError if the key exists by then (the backend checks atomically). */
  readonly ifNotExists?: boolean;
}

export interface UploadPartOptions {
  /** Bytes in the part; required for a streamed body (S3 needs the length up front), checked against it. */
  readonly size?: number;
  readonly signal?: AbortSignal;
}

/** What `completeMultipartUpload` needs of each part: the backend's receipt for it and its checksum. */
export interface CompletedPart {
  /** 1 to ARTIFACT_MAX_PARTS. */
  readonly partNumber: number;
  /** As the backend returned it (the ETag header of a presigned part upload). */
  readonly etag: string;
  /** Hex sha256 of the part, as the backend verified it on upload. */
  readonly sha256: string;
}

export interface UploadedPart extends CompletedPart {
  readonly size: number;
}

export interface PresignPartOptions {
  readonly expiresInSeconds: number;
  /** Hex sha256 of the part: the backend verifies every part and needs each part's checksum to complete. */
  readonly sha256: string;
  /** The part must be exactly this many bytes. */
  readonly contentLength?: number;
}

export interface ListMultipartUploadsOptions extends PageOptions {
  readonly prefix?: string;
}

export interface ArtifactStore {
  readonly capabilities: ArtifactStoreCapabilities;

  /**
   * The location of `key` as a URI: `s3://bucket/prefix/key` on S3, `file:///absolute/path` on local disk.
   * Computed without I/O; the key need not exist. ValidationError for a bad key.
   */
  uri(key: string): string;

  /**
   * Stores the body under `key`, replacing what was there (unless `ifNotExists`), streaming it (never holding the
   * whole body) and hashing it on the way. Atomic: readers see the old or the new content, never a part of it.
   * ValidationError for a body of the wrong type or a sha256 mismatch; ConflictError with `ifNotExists`.
   * Not idempotent in effect on `lastModified` and `etag` (a repeated put is a new version).
   */
  put(key: string, body: ArtifactBody, options?: PutArtifactOptions): Promise<StoredArtifact>;

  /** Streams the content. NotFoundError when the key does not exist; ValidationError for a range past the end. */
  get(key: string, options?: GetArtifactOptions): Promise<{ info: ArtifactInfo; body: Readable }>;

  /** Describes the object without its content. NotFoundError when the key does not exist. */
  head(key: string): Promise<ArtifactInfo>;

  exists(key: string): Promise<boolean>;

  /**
   * Keys under `prefix` in UTF-8 byte order. Page size `maxResults` per ARTIFACT_LIST_PAGE (default and maximum
   * 1000, S3's MaxKeys); tokens follow ports/paging.ts (ValidationError for one from another prefix or delimiter).
   * Keys written while paging may or may not appear.
   */
  list(options?: ListArtifactsOptions): Promise<ArtifactListing>;

  /**
   * Copies content, content type, metadata and the recorded sha256 from `from` to `to`, replacing `to`; `from` may
   * equal `to`. NotFoundError when `from` does not exist.
   */
  copy(from: string, to: string): Promise<ArtifactInfo>;

  /** Idempotent: deleting a missing key succeeds. */
  delete(key: string): Promise<void>;

  /**
   * Deletes up to ARTIFACT_DELETE_MANY_MAX keys (S3's DeleteObjects limit; ValidationError above), each
   * idempotently. Every key is validated before anything is deleted. When the backend refuses some keys the rest
   * are still deleted and the error names the refused ones.
   */
  deleteMany(keys: readonly string[]): Promise<void>;

  /** A URL to GET or PUT `key` without credentials. Needs `capabilities.presignedUrls`. */
  presign?(key: string, options: PresignOptions): Promise<PresignedRequest>;

  /**
   * Starts an upload in parts (needs `capabilities.multipart`). Parts are 1 to ARTIFACT_MAX_PARTS, each at least
   * ARTIFACT_MIN_PART_BYTES except the last, at most ARTIFACT_MAX_PART_BYTES. Complete or abort every upload: parts
   * take storage until then (`listMultipartUploads` finds forgotten ones).
   */
  createMultipartUpload?(key: string, options?: CreateMultipartUploadOptions): Promise<MultipartUpload>;

  /**
   * Uploads one part, hashing it on the way; the backend verifies the part against that sha256. Uploading a part
   * number again replaces that part. NotFoundError when the upload does not exist (completed or aborted).
   */
  uploadPart?(
    upload: MultipartUpload,
    partNumber: number,
    body: ArtifactBody,
    options?: UploadPartOptions,
  ): Promise<UploadedPart>;

  /** A URL a client PUTs one part to (needs `presignedUrls` and `multipart`); the response's ETag names the part. */
  presignPart?(upload: MultipartUpload, partNumber: number, options: PresignPartOptions): Promise<PresignedRequest>;

  /**
   * Makes the parts, in ascending part-number order (gaps allowed), the content of the key, atomically, and ends the
   * upload. ValidationError for parts out of order, too small (all but the last), or with another etag or sha256
   * than uploaded; ConflictError with `ifNotExists`; NotFoundError when the upload does not exist. The upload stays
   * open after an error, to be completed again or aborted. The result has no sha256 (see ArtifactInfo.sha256).
   */
  completeMultipartUpload?(
    upload: MultipartUpload,
    parts: readonly CompletedPart[],
    options?: CompleteMultipartUploadOptions,
  ): Promise<ArtifactInfo>;

  /** Discards the upload and its parts. Idempotent: aborting a finished or unknown upload succeeds. */
  abortMultipartUpload?(upload: MultipartUpload): Promise<void>;

  /** Uploads in progress under `prefix`, by key then initiation time; page limits as `list`. */
  listMultipartUploads?(options?: ListMultipartUploadsOptions): Promise<Page<MultipartUpload>>;
}

export const artifactStoreRef = createServiceRef<ArtifactStore>({ id: 'core.artifactStore' });

/**
 * The port as the kernel knows it: its hooks (`artifact.beforePut`, under `platform.hooks.artifact`) and the guard
 * that makes them fire for whichever provider is chosen. Providers never fire these hooks themselves.
 */
export const artifactStorePort = definePort({
  ref: artifactStoreRef,
  hooksKey: 'artifact',
  createHooks: createArtifactStoreHooks,
  guard: guardArtifactStore,
});

// ---------------------------------------------------------------- argument schemas

/**
 * A key under `validateArtifactKey`'s rules (at most ARTIFACT_KEY_MAX_BYTES; a store with a key prefix checks its
 * smaller `capabilities.maxKeyBytes` itself). The field is the argument's name (`key`, `from`, `to`).
 */
export const artifactKey = z
  .string({ error: (issue) => `must be an artifact key (a string), got ${describeValue(issue.input)}` })
  .check(fromValidator((key: string) => validateArtifactKey(key), { field: 'path' }));

/** A body as `put` and `uploadPart` take it: checked for its kind only, never read. */
export const artifactBody = z.custom<ArtifactBody>(
  (body) =>
    typeof body === 'string' ||
    body instanceof Uint8Array ||
    (typeof body === 'object' && body !== null && Symbol.asyncIterator in body),
  {
    error: (issue) =>
      `must be a Readable, an async iterable of Uint8Array, a Uint8Array or a string, got ${describeValue(issue.input)}`,
  },
);

const signal = z.custom<AbortSignal>((s) => s instanceof AbortSignal, { error: 'must be an AbortSignal' });
const options = z.record(z.string(), z.unknown(), {
  error: (issue) => `must be an object of options, got ${describeValue(issue.input)}`,
});
type Options = Readonly<Record<string, unknown>> | undefined;

/** PutArtifactOptions' shape; their rules need the key (messages name it), so `put`'s tuple applies them. */
export const putArtifactOptions = z.object({
  contentType: z.string().optional(),
  metadata: z.record(z.string(), z.string()).optional(),
  expectedSha256: z.string().optional(),
  ifNotExists: z.boolean().optional(),
  signal: signal.optional(),
});

/**
 * The rules of `put` and `createMultipartUpload` options (content type, metadata, expected sha256), by the validators
 * every store uses; ValidationError naming the option. Exported for ports that pass such options on (`logArtifact`).
 */
export function validateWriteOptions(
  key: string,
  o: { readonly contentType?: unknown; readonly metadata?: unknown; readonly expectedSha256?: unknown } | undefined,
): void {
  if (o?.contentType !== undefined) validateMediaType(validateContentType(key, o.contentType));
  validateArtifactMetadata(key, o?.metadata);
  if (o?.expectedSha256 !== undefined) normalizeSha256(o.expectedSha256, 'expectedSha256', key);
}

const key = portArg('key', artifactKey);
const upload = portArg(
  'upload',
  z.object({
    key: artifactKey,
    uploadId: limitedString('uploadIdLength', 1024, { nonEmpty: true }),
    initiated: z.date().optional(),
  }),
);
const partNumber = portArg(
  'partNumber',
  z.number({ error: 'must be a part number' }).check(fromValidator((n: number) => validatePartNumber(n))),
);

/**
 * The arguments of every ArtifactStore operation, applying the port's own validators (`validateArtifactKey`,
 * `validateArtifactMetadata`, `validateContentType`, `validatePresignOptions`...), so the boundary refuses exactly
 * what every store refuses, with the same words; `validatePortInputs(store, artifactStoreInputs)` applies them.
 * Bodies are checked for their kind only; whether a range fits the object is the store's.
 */
export const artifactStoreInputs = {
  uri: synchronous(z.tuple([key])),
  put: z
    .tuple([key, portArg('body', artifactBody), portInput('options', putArtifactOptions).optional()])
    .check(fromValidator(([k, , o]: readonly [string, unknown, Options?]) => validateWriteOptions(k, o))),
  get: z
    .tuple([
      key,
      portInput(
        'options',
        z.object({
          range: z.object({ start: z.number(), end: z.number().optional() }).optional(),
          signal: signal.optional(),
        }),
      ).optional(),
    ])
    .check(
      fromValidator(([k, o]: readonly [string, { range?: { start: number; end?: number } }?]) => {
        validateByteRange(k, o?.range);
      }),
    ),
  head: z.tuple([key]),
  exists: z.tuple([key]),
  list: z.tuple([
    portInput(
      'options',
      options.check(fromValidator((o: Readonly<Record<string, unknown>>) => resolveListOptions(o))),
    ).optional(),
  ]),
  copy: z.tuple([portArg('from', artifactKey), portArg('to', artifactKey)]),
  delete: z.tuple([key]),
  deleteMany: z.tuple([
    portArg(
      'keys',
      z
        .array(z.unknown())
        .check(
          fromValidator((keys: unknown[]) => validateKeyBatch(keys, ARTIFACT_KEY_MAX_BYTES)),
        ) as unknown as z.ZodType<readonly string[]>,
    ),
  ]),
  presign: z
    .tuple([key, portInput('options', options as unknown as z.ZodType<PresignOptions>)])
    .check(fromValidator(([k, o]: readonly [string, PresignOptions]) => validatePresignOptions(k, o))),
  createMultipartUpload: z
    .tuple([key, portInput('options', options).optional()])
    .check(fromValidator(([k, o]: readonly [string, Options?]) => validateWriteOptions(k, o))),
  uploadPart: z.tuple([
    upload,
    partNumber,
    portArg('body', artifactBody),
    portInput(
      'options',
      z.object({ size: integerBetween(0, ARTIFACT_MAX_PART_BYTES).optional(), signal: signal.optional() }),
    ).optional(),
  ]),
  presignPart: z.tuple([
    upload,
    partNumber,
    portInput(
      'options',
      z.object({
        expiresInSeconds: z.number().check(fromValidator((n: number) => validateExpiry(n))),
        sha256: z.string().check(fromValidator((h: string) => normalizeSha256(h, 'sha256', 'the part'))),
        contentLength: integerBetween(0, ARTIFACT_MAX_PART_BYTES).optional(),
      }),
    ),
  ]),
  completeMultipartUpload: z.tuple([
    upload,
    portArg(
      'parts',
      z
        .array(
          z.object({
            partNumber: z.number().check(fromValidator((n: number) => validatePartNumber(n))),
            etag: limitedString('etagLength', 1024, { nonEmpty: true }),
            sha256: z.string().check(fromValidator((h: string) => normalizeSha256(h, 'sha256', 'the part'))),
          }),
        )
        .max(ARTIFACT_MAX_PARTS, { error: `holds more parts than ARTIFACT_MAX_PARTS (${ARTIFACT_MAX_PARTS})` }),
    ),
    portInput('options', z.object({ ifNotExists: z.boolean().optional() })).optional(),
  ]),
  abortMultipartUpload: z.tuple([upload]),
  listMultipartUploads: z.tuple([
    portInput(
      'options',
      pageOptions(ARTIFACT_LIST_PAGE).extend({
        prefix: limitedString('ARTIFACT_KEY_MAX_BYTES', ARTIFACT_KEY_MAX_BYTES).optional(),
      }),
    ).optional(),
  ]),
} satisfies PortInputs<ArtifactStore>;
