import { AsyncLocalStorage } from 'node:async_hooks';
import { callVetoHook, vetoHook } from '../../kernel/hooks.js';
import { type GuardContext, intercept } from '../../kernel/port.js';
import type { ArtifactBody, ArtifactStore } from '../artifact-store.js';

/** What `artifact.beforePut` judges: where the content goes and what is known of it before it is stored. */
export interface ArtifactPutRequest {
  /** The store key; for a run artifact logged through the tracker, the path below the run's artifact root. */
  readonly key: string;
  readonly contentType: string | undefined;
  readonly metadata: Readonly<Record<string, string>>;
  /** Known up front for buffered bodies, copies and presigned uploads with a length condition. */
  readonly size: number | undefined;
  /** How the content arrives: a put, a copy of another key, a multipart upload, or a presigned upload URL. */
  readonly via: 'put' | 'copy' | 'multipart' | 'presign';
  /** Set when the put is a run artifact logged through the ExperimentTracker. */
  readonly runId?: string;
}

export function createArtifactStoreHooks() {
  return Object.freeze({
    /** Policy gate before content is stored under a key (size, type, naming rules): every put, copy and upload. */
    beforePut: vetoHook<[ArtifactPutRequest]>(['request']),
  });
}
export type ArtifactStoreHooks = ReturnType<typeof createArtifactStoreHooks>;

// Set while a guard further out (the tracker's, for logArtifact) has judged the put already, so it is judged once.
const judged = new AsyncLocalStorage<true>();

/** Runs `fn` with the artifact puts it makes counted as judged by `artifact.beforePut` already. */
export function withPutJudged<T>(fn: () => Promise<T>): Promise<T> {
  return judged.run(true, fn);
}

/** Judges a put with `artifact.beforePut`; VetoedError when a policy refuses. */
export async function judgePut(hooks: ArtifactStoreHooks, request: ArtifactPutRequest): Promise<void> {
  if (judged.getStore()) return;
  const what = request.runId ? `artifact '${request.key}' of run ${request.runId}` : `artifact '${request.key}'`;
  await callVetoHook(hooks.beforePut, `${request.via} of ${what}`, request);
}

export function sizeOf(body: ArtifactBody): number | undefined {
  if (typeof body === 'string') return Buffer.byteLength(body);
  if (body instanceof Uint8Array) return body.byteLength;
  return undefined;
}

/** Fires `artifact.beforePut` before every way content can land in the store. */
export function guardArtifactStore(store: ArtifactStore, { hooks }: GuardContext<ArtifactStoreHooks>): ArtifactStore {
  const s = store;
  return intercept<ArtifactStore>(s, {
    async put(key, body, options) {
      await judgePut(hooks, {
        key,
        contentType: options?.contentType,
        metadata: options?.metadata ?? {},
        size: sizeOf(body),
        via: 'put',
      });
      return s.put(key, body, options);
    },
    async copy(from, to) {
      const source = await s.head(from);
      await judgePut(hooks, {
        key: to,
        contentType: source.contentType,
        metadata: source.metadata ?? {},
        size: source.size,
        via: 'copy',
      });
      return s.copy(from, to);
    },
    async createMultipartUpload(key, options) {
      await judgePut(hooks, {
        key,
        contentType: options?.contentType,
        metadata: options?.metadata ?? {},
        size: undefined,
        via: 'multipart',
      });
      return s.createMultipartUpload!(key, options);
    },
    async presign(key, options) {
      if (options.method === 'PUT') {
        await judgePut(hooks, {
          key,
          contentType: options.contentType,
          metadata: {},
          size: options.contentLength,
          via: 'presign',
        });
      }
      return s.presign!(key, options);
    },
  });
}
