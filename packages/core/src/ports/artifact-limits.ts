import type { PageLimits } from './paging.js';

/** Rules every implementation enforces on keys, so keys move between backends unchanged. */
export const ARTIFACT_KEY_MAX_BYTES = 1024;
/** `list` and `listMultipartUploads` page sizes: S3 returns at most 1000 keys per request. */
export const ARTIFACT_LIST_PAGE: PageLimits = Object.freeze({ default: 1000, max: 1000 });
/** Keys per `deleteMany` call, S3's DeleteObjects limit. */
export const ARTIFACT_DELETE_MANY_MAX = 1000;
/** Sum of the UTF-8 bytes of metadata names and values; S3 allows 2 KiB, the rest is kept for the stores' own. */
export const ARTIFACT_METADATA_MAX_BYTES = 1536;
/** Metadata names with this prefix belong to the stores (S3 records the sha256 of uploads in parts there). */
export const ARTIFACT_RESERVED_METADATA_PREFIX = 'mlplane-';
/** Longest content type accepted, in characters. */
export const ARTIFACT_CONTENT_TYPE_MAX_LENGTH = 255;
/** SigV4's longest presigned URL lifetime. */
export const ARTIFACT_PRESIGN_MAX_SECONDS = 7 * 24 * 3600;
/** S3's part limits: every part but the last at least 5 MiB, each at most 5 GiB, at most 10,000 parts. */
export const ARTIFACT_MIN_PART_BYTES = 5 * 1024 * 1024;
export const ARTIFACT_MAX_PART_BYTES = 5 * 1024 * 1024 * 1024;
export const ARTIFACT_MAX_PARTS = 10_000;
/** The largest body a presigned PUT accepts: S3 takes up to 5 GiB in one request. */
export const ARTIFACT_MAX_SINGLE_PUT_BYTES = 5 * 1024 * 1024 * 1024;
