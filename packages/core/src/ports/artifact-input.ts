// Input rules of the ArtifactStore port shared by every adapter, so that an input one store accepts every store
// accepts, and a bad one fails with the same ValidationError (and field) before any I/O. The rules are S3's, where
// S3 is the strictest: metadata travels as HTTP headers, content types too, presigned URLs live at most 7 days.
import { Readable } from 'node:stream';
import { quoteArtifactKey, validateArtifactKey } from './artifact-key.js';
import {
  ARTIFACT_CONTENT_TYPE_MAX_LENGTH,
  ARTIFACT_DELETE_MANY_MAX,
  ARTIFACT_LIST_PAGE,
  ARTIFACT_MAX_PARTS,
  ARTIFACT_MAX_SINGLE_PUT_BYTES,
  ARTIFACT_METADATA_MAX_BYTES,
  ARTIFACT_PRESIGN_MAX_SECONDS,
  ARTIFACT_RESERVED_METADATA_PREFIX,
} from './artifact-limits.js';
import type { ListArtifactsOptions } from './artifact-store.js';
import { ValidationError } from './errors.js';
import { resolveMaxResults } from './paging.js';

const SHA256_HEX = /^[0-9a-fA-F]{64}$/;
// S3 lowercases metadata names (they are HTTP headers), so only lowercase names come back as given.
const METADATA_NAME = /^[a-z0-9][a-z0-9._-]{0,127}$/;
// HTTP trims a header value's outer spaces and S3 mangles non-ASCII values, so only these round-trip.
const METADATA_VALUE = /^(?:[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?$/;
const CONTENT_TYPE = /^[\x21-\x7e]+\/[\x20-\x7e]+$/;

/** Lowercase hex of a sha256 given in either case; ValidationError (with `field`) unless 64 hex characters. */
export function normalizeSha256(value: unknown, field: string, what: string): string {
  if (typeof value !== 'string' || !SHA256_HEX.test(value)) {
    throw new ValidationError(`${field} for ${what} must be 64 hex characters (a sha256), got ${describe(value)}`, {
      field,
    });
  }
  return value.toLowerCase();
}

/**
 * A copy of user metadata after checking the rules every store keeps: names of lowercase letters, digits and
 * `. _ -` (at most 128, not starting with `mlplane-`, which the stores use), values of printable ASCII without outer
 * spaces, all names and values together at most ARTIFACT_METADATA_MAX_BYTES.
 */
export function validateArtifactMetadata(key: string, metadata: unknown): Record<string, string> {
  if (metadata === undefined) return {};
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) {
    throw new ValidationError(`metadata of ${quoteArtifactKey(key)} must be an object of strings`, {
      field: 'metadata',
    });
  }
  const out: Record<string, string> = {};
  let bytes = 0;
  for (const [name, value] of Object.entries(metadata)) {
    if (!METADATA_NAME.test(name)) {
      throw new ValidationError(
        `metadata name ${JSON.stringify(name)} of ${quoteArtifactKey(key)} must be 1 to 128 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit (S3 lowercases names)`,
        { field: `metadata.${name}` },
      );
    }
    if (name.startsWith(ARTIFACT_RESERVED_METADATA_PREFIX)) {
      throw new ValidationError(
        `metadata name ${JSON.stringify(name)} of ${quoteArtifactKey(key)} is reserved: names starting with '${ARTIFACT_RESERVED_METADATA_PREFIX}' belong to the artifact stores`,
        { field: `metadata.${name}` },
      );
    }
    if (typeof value !== 'string') {
      throw new ValidationError(
        `metadata '${name}' of ${quoteArtifactKey(key)} must be a string, got ${typeof value}`,
        {
          field: `metadata.${name}`,
        },
      );
    }
    if (!METADATA_VALUE.test(value)) {
      throw new ValidationError(
        `metadata '${name}' of ${quoteArtifactKey(key)} must be printable ASCII without leading or trailing spaces (it travels as an HTTP header); encode other text, e.g. as base64 or percent-encoding`,
        { field: `metadata.${name}` },
      );
    }
    bytes += name.length + value.length;
    out[name] = value;
  }
  if (bytes > ARTIFACT_METADATA_MAX_BYTES) {
    throw new ValidationError(
      `metadata of ${quoteArtifactKey(key)} is ${bytes} bytes (names and values together); the limit is ${ARTIFACT_METADATA_MAX_BYTES}`,
      { field: 'metadata' },
    );
  }
  return out;
}

/** The content type to store: `application/octet-stream` when absent; ValidationError unless `type/subtype` ASCII. */
export function validateContentType(key: string, contentType: unknown): string {
  if (contentType === undefined) return 'application/octet-stream';
  if (
    typeof contentType !== 'string' ||
    contentType.length > ARTIFACT_CONTENT_TYPE_MAX_LENGTH ||
    !CONTENT_TYPE.test(contentType)
  ) {
    throw new ValidationError(
      `contentType for ${quoteArtifactKey(key)} must be a media type such as 'application/json' (printable ASCII, at most ${ARTIFACT_CONTENT_TYPE_MAX_LENGTH} characters), got ${describe(contentType)}`,
      { field: 'contentType' },
    );
  }
  return contentType;
}

/** Checks the shape of a range; whether it lies within the object is the backend's to say. */
export function validateByteRange(
  key: string,
  range: { readonly start: number; readonly end?: number } | undefined,
): { start: number; end: number | undefined } | undefined {
  if (range === undefined) return undefined;
  const { start, end } = range ?? {};
  if (!Number.isSafeInteger(start) || start < 0 || (end !== undefined && (!Number.isSafeInteger(end) || end < start))) {
    throw new ValidationError(
      `range for ${quoteArtifactKey(key)} must have an integer start >= 0 and an inclusive end >= start, got ${JSON.stringify(range)}`,
      { field: 'range' },
    );
  }
  return { start, end };
}

/** Checks presign options; the conditions (content type, length, sha256) apply to PUT only. */
export function validatePresignOptions(
  key: string,
  options: unknown,
): {
  method: 'GET' | 'PUT';
  expiresInSeconds: number;
  contentType: string | undefined;
  contentLength: number | undefined;
  sha256: string | undefined;
} {
  const o = (options ?? {}) as Record<string, unknown>;
  if (o.method !== 'GET' && o.method !== 'PUT') {
    throw new ValidationError(
      `presign method for ${quoteArtifactKey(key)} must be 'GET' or 'PUT', got ${describe(o.method)}`,
      {
        field: 'method',
      },
    );
  }
  const expiresInSeconds = validateExpiry(o.expiresInSeconds);
  if (o.method === 'GET') {
    for (const field of ['contentType', 'contentLength', 'sha256']) {
      if (o[field] !== undefined) {
        throw new ValidationError(`${field} is a condition on uploads: presign it with method 'PUT', not 'GET'`, {
          field,
        });
      }
    }
  }
  const contentType = o.contentType === undefined ? undefined : validateContentType(key, o.contentType);
  const contentLength =
    o.contentLength === undefined ? undefined : validateLength(o.contentLength, ARTIFACT_MAX_SINGLE_PUT_BYTES);
  const sha256 = o.sha256 === undefined ? undefined : normalizeSha256(o.sha256, 'sha256', quoteArtifactKey(key));
  return { method: o.method, expiresInSeconds, contentType, contentLength, sha256 };
}

/** Whole seconds from 1 to ARTIFACT_PRESIGN_MAX_SECONDS. */
export function validateExpiry(value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > ARTIFACT_PRESIGN_MAX_SECONDS) {
    throw new ValidationError(
      `expiresInSeconds must be whole seconds from 1 to ${ARTIFACT_PRESIGN_MAX_SECONDS} (7 days), got ${describe(value)}`,
      { field: 'expiresInSeconds' },
    );
  }
  return value;
}

function validateLength(value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new ValidationError(`contentLength must be an integer from 0 to ${max}, got ${describe(value)}`, {
      field: 'contentLength',
    });
  }
  return value;
}

/** List options with defaults applied; ValidationError (with `field`) for a bad one. */
export interface ResolvedListOptions {
  readonly prefix: string;
  readonly delimiter: '/' | undefined;
  readonly maxResults: number;
  readonly pageToken: string | undefined;
  readonly withSha256: boolean;
  readonly withMetadata: boolean;
}

export function resolveListOptions(options: ListArtifactsOptions | undefined): ResolvedListOptions {
  const o = options ?? {};
  const prefix = o.prefix ?? '';
  if (typeof prefix !== 'string') {
    throw new ValidationError(`list prefix must be a string, got ${describe(prefix)}`, { field: 'prefix' });
  }
  if (o.delimiter !== undefined && o.delimiter !== '/') {
    throw new ValidationError(`list delimiter must be '/', got ${describe(o.delimiter)}`, { field: 'delimiter' });
  }
  const include = o.include ?? [];
  if (!Array.isArray(include) || include.some((f) => f !== 'sha256' && f !== 'metadata')) {
    throw new ValidationError(
      `list include must be an array of 'sha256' and 'metadata', got ${JSON.stringify(include)}`,
      {
        field: 'include',
      },
    );
  }
  if (o.pageToken !== undefined && (typeof o.pageToken !== 'string' || o.pageToken === '')) {
    throw new ValidationError('pageToken must be the nextPageToken of a previous page', { field: 'pageToken' });
  }
  return {
    prefix,
    delimiter: o.delimiter,
    maxResults: resolveMaxResults(o.maxResults, ARTIFACT_LIST_PAGE),
    pageToken: o.pageToken,
    withSha256: include.includes('sha256'),
    withMetadata: include.includes('metadata'),
  };
}

/** The keys of a `deleteMany` call, each validated, without duplicates; ValidationError above the limit. */
export function validateKeyBatch(keys: unknown, maxKeyBytes: number): string[] {
  if (!Array.isArray(keys)) throw new ValidationError('keys must be an array of artifact keys', { field: 'keys' });
  if (keys.length > ARTIFACT_DELETE_MANY_MAX) {
    throw new ValidationError(
      `deleteMany takes at most ${ARTIFACT_DELETE_MANY_MAX} keys per call, got ${keys.length}; split the batch`,
      { field: 'keys' },
    );
  }
  for (const key of keys) validateArtifactKey(key, maxKeyBytes);
  return [...new Set(keys as string[])];
}

/** A part number from 1 to ARTIFACT_MAX_PARTS. */
export function validatePartNumber(partNumber: unknown): number {
  if (
    typeof partNumber !== 'number' ||
    !Number.isInteger(partNumber) ||
    partNumber < 1 ||
    partNumber > ARTIFACT_MAX_PARTS
  ) {
    throw new ValidationError(
      `partNumber must be an integer from 1 to ${ARTIFACT_MAX_PARTS}, got ${describe(partNumber)}`,
      {
        field: 'partNumber',
      },
    );
  }
  return partNumber;
}

/**
 * Normalizes every accepted body shape into an async iterable of byte chunks, so a store reads any body the same
 * way; ValidationError (field `body`) for anything else, thrown before reading or by the first bad chunk.
 */
export function artifactBodyChunks(key: string, body: unknown): AsyncIterable<Uint8Array> {
  if (typeof body === 'string') return Readable.from([Buffer.from(body, 'utf8')]);
  if (body instanceof Uint8Array) return Readable.from([body]);
  if (body === null || typeof body !== 'object' || !(Symbol.asyncIterator in body)) {
    throw new ValidationError(
      `body for ${quoteArtifactKey(key)} must be a Readable, an async iterable of Uint8Array, a Uint8Array or a string`,
      { field: 'body' },
    );
  }
  const iterable = body as AsyncIterable<unknown>;
  return (async function* () {
    for await (const chunk of iterable) {
      if (chunk instanceof Uint8Array) yield chunk;
      else if (typeof chunk === 'string') yield Buffer.from(chunk, 'utf8');
      else {
        throw new ValidationError(
          `body for ${quoteArtifactKey(key)} yielded a ${typeof chunk}; chunks must be Uint8Array`,
          { field: 'body' },
        );
      }
    }
  })();
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 37)}...` : value);
  return value === null ? 'null' : typeof value === 'number' ? String(value) : typeof value;
}
