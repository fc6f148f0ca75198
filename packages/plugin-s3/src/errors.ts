// Turns what the AWS SDK throws into the port's typed errors, with a message naming the bucket and the endpoint,
// so that a caller switches on the error class and a user reading the message knows which store to look at.
import {
  ConflictError,
  isMlplaneError,
  NotFoundError,
  PermissionDeniedError,
  quoteArtifactKey,
  UnavailableError,
  ValidationError,
} from '@mlplane/core';

/** Where a failed request went and what it was for. */
export interface S3Context {
  readonly bucket: string;
  /** The configured endpoint, or the AWS region's. */
  readonly endpoint: string;
  /** What was being done, for the message: `put`, `list`... */
  readonly action: string;
  /** The artifact key (without the store's prefix), when there is one. */
  readonly key?: string;
  readonly uploadId?: string;
  /** The field a checksum mismatch is about: `expectedSha256` for put, `sha256` for a part. */
  readonly checksumField?: string;
}

interface SdkError {
  readonly name?: string;
  readonly code?: string;
  readonly message?: string;
  readonly $fault?: 'client' | 'server';
  readonly $metadata?: { readonly httpStatusCode?: number; readonly attempts?: number };
}

// Network failures the SDK surfaces as Node errors (after its retries).
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'UND_ERR_SOCKET',
]);
// The server's answer to credentials it does not know or a signature it cannot verify (versitygw answers an
// unknown access key with its own XAdminUserNotFound).
const CREDENTIAL_CODES = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'XAdminUserNotFound',
  'InvalidToken',
  'ExpiredToken',
  'TokenRefreshRequired',
  'AuthorizationHeaderMalformed',
  'CredentialsProviderError',
]);
const DENIED_CODES = new Set(['AccessDenied', 'AllAccessDisabled', 'AccountProblem', 'InvalidObjectState']);
const INVALID_CODES = new Set([
  'EntityTooSmall',
  'EntityTooLarge',
  'InvalidPart',
  'InvalidPartOrder',
  'InvalidArgument',
  'InvalidRequest',
  'MetadataTooLarge',
  'MalformedXML',
  'InvalidBucketName',
]);
const CHECKSUM_CODES = new Set([
  'BadDigest',
  'InvalidDigest',
  'XAmzContentSHA256Mismatch',
  'XAmzContentChecksumMismatch',
]);

/** Describes the store for messages: `bucket 'b' at http://127.0.0.1:9000`. */
export function where(context: Pick<S3Context, 'bucket' | 'endpoint'>): string {
  return `bucket '${context.bucket}' at ${context.endpoint}`;
}

function what(context: S3Context): string {
  return context.key === undefined ? context.action : `${context.action} of ${quoteArtifactKey(context.key)}`;
}

/** The S3 error code (`NoSuchKey`) or Node error code (`ECONNREFUSED`) of an SDK failure, looking into its cause. */
export function errorCodeOf(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && typeof e === 'object' && depth < 5; depth++) {
    const code = (e as SdkError).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return code;
    const name = (e as SdkError).name;
    if (typeof name === 'string' && name !== 'Error' && depth === 0 && (e as SdkError).$metadata) return name;
    e = (e as { cause?: unknown }).cause;
  }
  return (err as SdkError | undefined)?.name;
}

function statusOf(err: unknown): number | undefined {
  return (err as SdkError | undefined)?.$metadata?.httpStatusCode;
}

function attemptsOf(err: unknown): string {
  const attempts = (err as SdkError | undefined)?.$metadata?.attempts;
  return attempts && attempts > 1 ? ` after ${attempts} attempts` : '';
}

function detail(err: unknown): string {
  const code = errorCodeOf(err);
  const message = (err as SdkError | undefined)?.message;
  const status = statusOf(err);
  const parts = [
    code && code !== 'Unknown' ? code : undefined,
    message && message !== 'UnknownError' ? message : undefined,
  ];
  const text = parts.filter(Boolean).join(': ');
  return status ? `${text || 'no error body'} (HTTP ${status})` : text || String(err);
}

/** True when the failure means the server could not be reached or failed on its side (worth retrying later). */
export function isUnavailable(err: unknown): boolean {
  const code = errorCodeOf(err);
  if (code !== undefined && NETWORK_CODES.has(code)) return true;
  const name = (err as SdkError | undefined)?.name;
  if (name === 'TimeoutError' || name === 'RequestTimeout' || name === 'SlowDown' || name === 'ServiceUnavailable') {
    return true;
  }
  const status = statusOf(err);
  return (status !== undefined && status >= 500) || (status === undefined && (err as SdkError)?.$fault !== 'client');
}

/** The port error for an SDK failure; errors that are already the port's pass through unchanged. */
export function s3Failure(err: unknown, context: S3Context): Error {
  if (isMlplaneError(err)) return err;
  const code = errorCodeOf(err);
  const status = statusOf(err);
  const options = { cause: err };
  const at = where(context);

  if (code === 'NoSuchBucket') {
    return new NotFoundError(
      `${at} does not exist (${what(context)}): create the bucket or fix the s3 plugin's bucket or endpoint`,
      options,
    );
  }
  if (code === 'NoSuchUpload') {
    return new NotFoundError(
      `multipart upload ${context.uploadId ?? ''}${context.key === undefined ? '' : ` of ${quoteArtifactKey(context.key)}`} does not exist in ${at}: it was completed or aborted`,
      options,
    );
  }
  if (code === 'NoSuchKey' || (status === 404 && (code === 'NotFound' || code === 'Unknown'))) {
    return new NotFoundError(
      context.key === undefined
        ? `${what(context)} found nothing in ${at}`
        : `artifact ${quoteArtifactKey(context.key)} does not exist (${at})`,
      options,
    );
  }
  if (code !== undefined && CREDENTIAL_CODES.has(code)) {
    return new PermissionDeniedError(
      `${at} rejected the credentials for ${what(context)}: ${detail(err)}; check the s3 plugin's credentials (or the SDK's default chain)`,
      options,
    );
  }
  if ((code !== undefined && DENIED_CODES.has(code)) || status === 403) {
    return new PermissionDeniedError(
      `${at} denied ${what(context)}: ${detail(err)}; the credentials are wrong or lack the permission`,
      options,
    );
  }
  if (code !== undefined && CHECKSUM_CODES.has(code)) {
    return new ValidationError(
      `${at} rejected the content of ${what(context)}: it does not hash to the sha256 it was sent with (${detail(err)}); nothing was stored`,
      { ...options, field: context.checksumField ?? 'body' },
    );
  }
  if (code === 'KeyTooLongError') {
    return new ValidationError(
      `${at} refused the key of ${what(context)} as too long (${detail(err)}); servers that keep keys as files limit each segment to 255 bytes`,
      { ...options, field: 'key' },
    );
  }
  if (code === 'ObjectParentIsFile' || code === 'ExistingObjectIsDirectory') {
    return new ConflictError(
      `${at} cannot hold ${what(context)}: it stores keys as files and directories, so a key cannot also be the start of other keys ('a' and 'a/b'); ${detail(err)}`,
      options,
    );
  }
  if (code === 'PreconditionFailed' || code === 'ConditionalRequestConflict' || status === 412) {
    return new ConflictError(
      `${context.key === undefined ? 'the object' : `artifact ${quoteArtifactKey(context.key)}`} already exists or changed during ${context.action} (${at})`,
      options,
    );
  }
  if (code === 'InvalidRange' || status === 416) {
    return new ValidationError(`range of ${what(context)} is beyond the end of the object (${at})`, {
      ...options,
      field: 'range',
    });
  }
  if (code === 'InvalidPartOrder') {
    return new ValidationError(`parts of ${what(context)} must be in ascending part-number order (${detail(err)})`, {
      ...options,
      field: 'parts',
    });
  }
  if (code !== undefined && INVALID_CODES.has(code)) {
    const field = code.startsWith('Entity') || code.startsWith('InvalidPart') ? 'parts' : undefined;
    return new ValidationError(`${at} refused ${what(context)}: ${detail(err)}`, {
      ...options,
      ...(field ? { field } : {}),
    });
  }
  if (isUnavailable(err)) {
    return new UnavailableError(`${at} is unavailable for ${what(context)}${attemptsOf(err)}: ${detail(err)}`, options);
  }
  return new ValidationError(`${at} refused ${what(context)}: ${detail(err)}`, options);
}
