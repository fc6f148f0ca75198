import type { Readable } from 'node:stream';
import { z } from 'zod';
import { validateMediaType } from '../infra/validation/media-type.js';
import { definePort } from '../kernel/port.js';
import { createServiceRef } from '../kernel/service-ref.js';
import { describeValue } from './errors.js';
import { createArtifactStoreHooks, guardArtifactStore } from './guards/artifact-store.js';
import { fromValidator, integerBetween, limitedString, oneOf } from './input-schemas.js';
import { pageToken } from './paging.js';
import { type PortInputs, portArg, portInput } from './port-inputs.js';

export { ConflictError, NotFoundError, UnavailableError, ValidationError } from './errors.js';

/** What a backend can do beyond the common contract; callers check before using optional methods. */
export interface ArtifactStoreCapabilities {
  /** `presign` returns URLs a client can use without credentials. */
  readonly presignedUrls: boolean;
  /** Large bodies are uploaded in parts (resumable, parallel). */
  readonly multipart: boolean;
  /** `get` honours byte ranges. */
  readonly rangeReads: boolean;
  /** Identical content is stored once (content-addressed). */
  readonly deduplicates: boolean;
}

export interface ArtifactInfo {
  /** The key as given to `put`: slash-separated, no leading slash, no `.` or `..` segments. */
  readonly key: string;
  readonly size: number;
  /** Hex sha256 of the content, computed while streaming the upload. */
  readonly sha256: string;
  readonly contentType: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly createdAt: Date;
}

/** Bodies are streamed; buffers and strings are accepted for small payloads. */
export type ArtifactBody = Readable | AsyncIterable<Uint8Array> | Uint8Array | string;

export interface PutArtifactOptions {
  /** A media type (`validateMediaType`: `type/subtype; name=value`, at most 255 chars); default `application/octet-stream`. */
  readonly contentType?: string;
  /** Names and values together at most ARTIFACT_METADATA_MAX_BYTES bytes in UTF-8 (S3's user-metadata limit). */
  readonly metadata?: Record<string, string>;
  /** When set, the upload fails with ValidationError and stores nothing unless the content hashes to this. */
  readonly expectedSha256?: string;
  /** When true, the put fails with ConflictError if the key already exists. */
  readonly ifNotExists?: boolean;
}

export interface GetArtifactOptions {
  /** Inclusive byte range; needs `capabilities.rangeReads`. */
  readonly range?: { readonly start: number; readonly end?: number };
}

export interface ListArtifactsOptions {
  readonly prefix?: string;
  /** With '/', keys below the next slash are rolled up into `prefixes` (one directory level). */
  readonly delimiter?: '/';
  /** At most 1000. */
  readonly pageSize?: number;
  readonly pageToken?: string;
}

export interface ArtifactPage {
  /** Sorted by key (byte order). */
  readonly items: readonly ArtifactInfo[];
  readonly prefixes: readonly string[];
  readonly nextPageToken?: string;
}

export interface ArtifactStore {
  readonly capabilities: ArtifactStoreCapabilities;
  /** Stores the body under `key`, replacing what was there (unless `ifNotExists`). Atomic: readers see old or new, never partial. */
  put(key: string, body: ArtifactBody, options?: PutArtifactOptions): Promise<ArtifactInfo>;
  /** Streams the content; NotFoundError when the key does not exist. */
  get(key: string, options?: GetArtifactOptions): Promise<{ info: ArtifactInfo; body: Readable }>;
  /** Metadata only; NotFoundError when the key does not exist. */
  head(key: string): Promise<ArtifactInfo>;
  exists(key: string): Promise<boolean>;
  list(options?: ListArtifactsOptions): Promise<ArtifactPage>;
  /** Idempotent: deleting a missing key succeeds. */
  delete(key: string): Promise<void>;
  /**
   * The location of `key` as a URI: `s3://bucket/prefix/key` on S3, `file:///absolute/path` on local disk.
   * Always absolute with a scheme, so that URIs recorded elsewhere (a run's `artifactUri`, a model version's
   * `source`) mean the same whichever backend wrote them. It names the object; it is not a credential and
   * not necessarily something another process can open directly (use `presign` for that). Pure: no I/O, and
   * the key need not exist. ValidationError for a key that breaks the key rules.
   */
  uri(key: string): string;
  /** Needs `capabilities.presignedUrls`; `expiresInSeconds` from 1 to ARTIFACT_PRESIGN_MAX_SECONDS. */
  presign?(key: string, options: { method: 'GET' | 'PUT'; expiresInSeconds: number }): Promise<string>;
}

export const artifactStoreRef = createServiceRef<ArtifactStore>({ id: 'core.artifactStore' });

/**
 * The port as the kernel knows it: its hooks (`artifact.beforePut`, under `platform.hooks.artifact`) and the guard that makes
 * them fire for whichever provider is chosen. Providers never fire these hooks themselves.
 */
export const artifactStorePort = definePort({
  ref: artifactStoreRef,
  hooksKey: 'artifact',
  createHooks: createArtifactStoreHooks,
  guard: guardArtifactStore,
});

/** Rules every implementation enforces on keys, so keys move between backends unchanged. */
export const ARTIFACT_KEY_MAX_BYTES = 1024;
export const ARTIFACT_LIST_MAX_PAGE = 1000;
/** User metadata of one artifact: names plus values in UTF-8 bytes, S3's limit for user-defined metadata. */
export const ARTIFACT_METADATA_MAX_BYTES = 2048;
/** Longest life of a presigned URL: seven days, the most an S3 signature (SigV4) allows. */
export const ARTIFACT_PRESIGN_MAX_SECONDS = 604_800;

/**
 * What is wrong with `key` under the rules every ArtifactStore shares, as a predicate that follows the key in a
 * message (`must not start with '/'...`); undefined for a valid key. `validateArtifactKey` and the `artifactKey`
 * schema both apply it, so a key accepted by one is accepted everywhere.
 */
export function artifactKeyProblem(key: string): string | undefined {
  if (key.length === 0) return 'must not be empty';
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > ARTIFACT_KEY_MAX_BYTES) {
    return `is ${bytes} bytes in UTF-8; the limit is ${ARTIFACT_KEY_MAX_BYTES} bytes`;
  }
  // Lone surrogates have no UTF-8 form: two different such keys would collapse into one stored name.
  if (Buffer.from(key, 'utf8').toString('utf8') !== key) return 'is not valid Unicode (it contains a lone surrogate)';
  if (key.startsWith('/')) {
    return "must not start with '/': keys are relative, e.g. 'models/fraud/3/model.onnx'";
  }
  if (key.includes('\0') || key.includes('\\')) {
    return "must not contain NUL or backslash characters; separate segments with '/'";
  }
  if (key.split('/').some((segment) => segment === '' || segment === '.' || segment === '..')) {
    return "must not contain empty, '.' or '..' segments (look for '//', a trailing '/' or a relative part)";
  }
  return undefined;
}

// ---------------------------------------------------------------- argument schemas

/** A key under `artifactKeyProblem`'s rules. */
export const artifactKey = z.string().check((ctx) => {
  const problem = artifactKeyProblem(ctx.value);
  if (problem) ctx.issues.push({ code: 'custom', input: ctx.value, message: problem });
});

/** A body as `put` takes it: checked for its kind only, never read. */
export const artifactBody = z.custom<ArtifactBody>(
  (body) =>
    typeof body === 'string' ||
    body instanceof Uint8Array ||
    (typeof body === 'object' && body !== null && Symbol.asyncIterator in body),
  {
    error: (issue) =>
      `must be a stream, an async iterable of Uint8Array, a Uint8Array or a string, got ${describeValue(issue.input)}`,
  },
);

/** PutArtifactOptions with their limits. */
export const putArtifactOptions = z.object({
  // A media type within MEDIA_TYPE_MAX_LENGTH (255), as every store checks it: it is served back as a header.
  contentType: z
    .string()
    .check(fromValidator((contentType: string) => validateMediaType(contentType)))
    .optional(),
  metadata: z
    .record(z.string(), z.string(), { error: (issue) => `must be an object, got ${describeValue(issue.input)}` })
    .check((ctx) => {
      let bytes = 0;
      for (const [name, value] of Object.entries(ctx.value))
        bytes += Buffer.byteLength(name) + Buffer.byteLength(value);
      if (bytes > ARTIFACT_METADATA_MAX_BYTES) {
        ctx.issues.push({
          code: 'custom',
          input: ctx.value,
          message: `holds ${bytes} bytes of names and values; the ARTIFACT_METADATA_MAX_BYTES limit is ${ARTIFACT_METADATA_MAX_BYTES}`,
        });
      }
    })
    .optional(),
  expectedSha256: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/, { error: 'must be 64 hex characters (a sha256 digest)' })
    .optional(),
  ifNotExists: z.boolean().optional(),
});

const key = portArg('key', artifactKey);

/**
 * The arguments of every ArtifactStore operation; `validatePortInputs(store, artifactStoreInputs)` applies them at
 * the port's boundary. Bodies are checked for their kind only; whether a range fits the object is the store's.
 */
export const artifactStoreInputs = {
  put: z.tuple([key, portArg('body', artifactBody), portInput('options', putArtifactOptions).optional()]),
  get: z.tuple([
    key,
    portInput(
      'options',
      z.object({
        range: z
          .object({
            start: integerBetween(0, Number.MAX_SAFE_INTEGER, 'a byte offset'),
            end: integerBetween(0, Number.MAX_SAFE_INTEGER, 'a byte offset').optional(),
          })
          .refine((r) => r.end === undefined || r.end >= r.start, {
            error: 'must not end before it starts (end is inclusive)',
          })
          .optional(),
      }),
    ).optional(),
  ]),
  head: z.tuple([key]),
  exists: z.tuple([key]),
  list: z.tuple([
    portInput(
      'options',
      z.object({
        prefix: limitedString('ARTIFACT_KEY_MAX_BYTES', ARTIFACT_KEY_MAX_BYTES).optional(),
        delimiter: z.literal('/', { error: "must be '/'" }).optional(),
        pageSize: integerBetween(1, ARTIFACT_LIST_MAX_PAGE).optional(),
        pageToken: pageToken.optional(),
      }),
    ).optional(),
  ]),
  delete: z.tuple([key]),
  uri: z.tuple([key]),
  presign: z.tuple([
    key,
    portInput(
      'options',
      z.object({
        method: oneOf(['GET', 'PUT']),
        expiresInSeconds: integerBetween(1, ARTIFACT_PRESIGN_MAX_SECONDS),
      }),
    ),
  ]),
} satisfies PortInputs<ArtifactStore>;
