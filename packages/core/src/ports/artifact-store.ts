import type { Readable } from 'node:stream';
import { definePort } from '../kernel/port.js';
import { createServiceRef } from '../kernel/service-ref.js';
import { createArtifactStoreHooks, guardArtifactStore } from './guards/artifact-store.js';

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
  readonly contentType?: string;
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
  /** Needs `capabilities.presignedUrls`. */
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
