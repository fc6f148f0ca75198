import { z } from 'zod';

// S3's bucket naming rules (general purpose buckets): 3 to 63 lowercase letters, digits, dots and hyphens.
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** `plugins.s3` (or the `s3` section of mlplane.yaml); secrets may be `${secret:name}` references. */
export const s3ConfigSchema = z.object({
  /** The bucket holding the artifacts; it must exist (the store checks at start). */
  bucket: z.string().regex(BUCKET, 'must be an S3 bucket name: 3 to 63 lowercase letters, digits, dots or hyphens'),
  /** Put before every key, e.g. `mlplane/` (ending in '/'); `uri(key)` is `s3://<bucket>/<prefix><key>`. */
  prefix: z
    .string()
    .default('')
    .refine(
      (p) => p === '' || (p.endsWith('/') && !p.startsWith('/') && !p.split('/').slice(0, -1).some(badSegment)),
      "must be empty or relative segments ending in '/', e.g. 'mlplane/artifacts/'",
    )
    .refine((p) => Buffer.byteLength(p) <= 512, 'must be at most 512 bytes: it shortens every key'),
  /** Signing region; S3-compatible servers usually accept any (`us-east-1`). */
  region: z.string().min(1).default('us-east-1'),
  /** The server's URL for an S3-compatible store (`http://127.0.0.1:9000`); absent for AWS S3. */
  endpoint: z.url({ protocol: /^https?$/ }).optional(),
  /** Path-style URLs (`<endpoint>/<bucket>/<key>`), which most S3-compatible servers need. */
  forcePathStyle: z.boolean().default(false),
  /** Static credentials; absent means the SDK's default chain (environment, profile, instance role...). */
  credentials: z
    .object({
      accessKeyId: z.string().min(1),
      secretAccessKey: z.string().min(1),
      sessionToken: z.string().min(1).optional(),
    })
    .optional(),
  /**
   * Bodies larger than one part go up in parts of this size (5 MiB to 5 GiB), as the AWS CLI's 8 MB default. S3
   * allows 10,000 parts per object, so the default caps an object at 78 GiB: raise it for larger ones.
   */
  partSizeMiB: z.number().int().min(5).max(5120).default(8),
  /** Parts in flight at once per upload; memory per upload is about (concurrency + 1) x part size. */
  concurrency: z.number().int().min(1).max(64).default(4),
  /** Objects above this are copied with UploadPartCopy in parts (S3's CopyObject stops at 5 GiB). */
  multipartCopyThresholdMiB: z.number().int().min(5).max(5120).default(5120),
  /** Attempts per request (the first and its retries), through the SDK's retry strategy. */
  maxAttempts: z.number().int().min(1).max(20).default(4),
  /**
   * The SDK's retry strategy: `standard` retries throttling, 5xx and transient network errors with exponential
   * backoff and jitter; `adaptive` also slows the client down when the server throttles.
   */
  retryMode: z.enum(['standard', 'adaptive']).default('standard'),
  /** How long to wait for a TCP connection. */
  connectTimeoutMs: z.number().int().positive().default(5_000),
  /** A request whose socket stays idle this long fails (and is retried). */
  socketTimeoutMs: z.number().int().positive().default(120_000),
});

export type S3Config = z.output<typeof s3ConfigSchema>;
export type S3ConfigInput = z.input<typeof s3ConfigSchema>;

function badSegment(segment: string): boolean {
  return segment === '' || segment === '.' || segment === '..' || segment.includes('\\') || segment.includes('\0');
}
