import type { DomainEvent, Logger, Page, PageOptions } from '@mlplane/core';
import {
  type CreateModelInput,
  type CreateVersionInput,
  type ModelLineage,
  type ModelRegistry,
  type ModelStage,
  type ModelVersion,
  parseModelUri,
  type RegisteredModel,
  type SearchModelsOptions,
  type SearchVersionsOptions,
  type SetAliasInput,
  type StageTransition,
  type TransitionStageInput,
} from '@mlplane/core';
import type { Invalidation, InvalidationRule } from './cache-invalidation.js';
import type { CacheCodec, RedisCache } from './redis-cache.js';

/** Cache keys of the registry's hot reads; names are URI-encoded so that `:` in a name cannot collide. */
export const registryCacheKeys = Object.freeze({
  /** Alias -> the ModelVersion it points at. */
  alias: (name: string, alias: string) => `registry:alias:${enc(name)}:${enc(alias)}`,
  /** Version -> the ModelVersion (source artifact URI, stage, tags, aliases). */
  version: (name: string, version: number) => `registry:version:${enc(name)}:${version}`,
  /** Stage -> the highest ModelVersion in it (`models:/<name>/<stage>`). */
  stage: (name: string, stage: ModelStage) => `registry:stage:${enc(name)}:${stage}`,
  /** The highest ModelVersion (`models:/<name>/latest`). */
  latest: (name: string) => `registry:latest:${enc(name)}`,
  /** Tag on every entry of one model, to drop them all at once. */
  model: (name: string) => `registry:model:${enc(name)}`,
});

function enc(part: string): string {
  return encodeURIComponent(part);
}

const versionCodec: CacheCodec<ModelVersion> = Object.freeze({
  encode: (v: ModelVersion) => JSON.stringify(v),
  decode: (text: string) => {
    const raw = JSON.parse(text) as ModelVersion & { createdAt: string; updatedAt: string };
    return { ...raw, createdAt: new Date(raw.createdAt), updatedAt: new Date(raw.updatedAt) };
  },
});

/**
 * What each registry event makes stale, for `subscribeCacheInvalidation`. Every cached entry is a whole
 * ModelVersion, whose stage, tags, description and alias list any change to its model may alter, so every event
 * that touches versions or aliases drops all entries of the model (writes are rare next to reads); a rename drops
 * both names. Events about the registered model alone change nothing cached.
 */
export const modelRegistryInvalidation: InvalidationRule = (event: DomainEvent): Invalidation | undefined => {
  if (!event.type.startsWith('model.')) return undefined;
  const p = (event.payload ?? {}) as Record<string, unknown>;
  if (typeof p.name !== 'string') return undefined;
  switch (event.type) {
    case 'model.created':
    case 'model.updated':
    case 'model.tag.set':
    case 'model.tag.deleted':
      return undefined;
    case 'model.renamed':
      return {
        tags: [
          registryCacheKeys.model(p.name),
          ...(typeof p.previousName === 'string' ? [registryCacheKeys.model(p.previousName)] : []),
        ],
      };
    default:
      return { tags: [registryCacheKeys.model(p.name)] };
  }
};

export interface CachedModelRegistryOptions {
  readonly registry: ModelRegistry;
  readonly cache: RedisCache;
  /** TTL of cached entries (default: the cache's). */
  readonly ttlMs?: number;
  /** Receives invalidation failures after writes, which never fail a write that committed. */
  readonly logger?: Logger;
}

/**
 * A ModelRegistry decorator that serves the hot read path from a RedisCache, one Redis round trip per hit:
 * `getVersionByAlias`, `getVersion`, and `resolve` of every `models:/` URI form, each cached as the whole
 * ModelVersion (with its source artifact URI).
 * Writes go to the wrapped registry and then drop every cached entry of the model they touched; changes made by
 * other processes arrive as domain events (`subscribeCacheInvalidation` with `modelRegistryInvalidation`), and
 * entry TTLs bound staleness if an event is ever missed. NotFound answers are not cached.
 */
export class CachedModelRegistry implements ModelRegistry {
  readonly #inner: ModelRegistry;
  readonly #cache: RedisCache;
  readonly #ttl: { readonly ttlMs?: number };
  readonly #logger: Logger | undefined;

  constructor(options: CachedModelRegistryOptions) {
    this.#inner = options.registry;
    this.#cache = options.cache;
    this.#ttl = options.ttlMs === undefined ? {} : { ttlMs: options.ttlMs };
    this.#logger = options.logger?.child({ component: 'cached-model-registry' });
  }

  get capabilities() {
    return this.#inner.capabilities;
  }

  // ---------------------------------------------------------------- cached reads

  getVersion(name: string, version: number): Promise<ModelVersion> {
    return this.#cached(name, registryCacheKeys.version(name, version), () => this.#inner.getVersion(name, version));
  }

  getVersionByAlias(name: string, alias: string): Promise<ModelVersion> {
    return this.#cached(name, registryCacheKeys.alias(name, alias), () => this.#inner.getVersionByAlias(name, alias));
  }

  async resolve(modelUri: string): Promise<ModelVersion> {
    const uri = parseModelUri(modelUri);
    if (uri.kind === 'version') return this.getVersion(uri.name, uri.version);
    if (uri.kind === 'alias') return this.getVersionByAlias(uri.name, uri.alias);
    const key =
      uri.kind === 'stage' ? registryCacheKeys.stage(uri.name, uri.stage) : registryCacheKeys.latest(uri.name);
    return this.#cached(uri.name, key, () => this.#inner.resolve(modelUri));
  }

  #cached(name: string, key: string, load: () => Promise<ModelVersion>): Promise<ModelVersion> {
    return this.#cache.getOrLoad(key, load, {
      ...this.#ttl,
      tags: [registryCacheKeys.model(name)],
      codec: versionCodec,
    });
  }

  // ---------------------------------------------------------------- writes: delegate, then invalidate the model
  // (changes to the registered model alone leave every cached ModelVersion as it was)

  async #wrote<T>(names: readonly string[], result: T): Promise<T> {
    try {
      await this.#cache.invalidateTags(names.map((n) => registryCacheKeys.model(n)));
    } catch (err) {
      // The write committed; its domain event invalidates again once Redis is back, and TTLs bound the rest.
      this.#logger?.warn({ err, models: names }, 'could not invalidate cached registry entries after a write');
    }
    return result;
  }

  async createModel(input: CreateModelInput): Promise<RegisteredModel> {
    return this.#inner.createModel(input);
  }

  async updateModel(name: string, changes: { readonly description: string }): Promise<RegisteredModel> {
    return this.#inner.updateModel(name, changes);
  }

  async renameModel(name: string, newName: string): Promise<RegisteredModel> {
    return this.#wrote([name, newName], await this.#inner.renameModel(name, newName));
  }

  async deleteModel(name: string): Promise<void> {
    return this.#wrote([name], await this.#inner.deleteModel(name));
  }

  async createVersion(input: CreateVersionInput): Promise<ModelVersion> {
    return this.#wrote([input.name], await this.#inner.createVersion(input));
  }

  async updateVersion(name: string, version: number, changes: { readonly description: string }): Promise<ModelVersion> {
    return this.#wrote([name], await this.#inner.updateVersion(name, version, changes));
  }

  async deleteVersion(name: string, version: number): Promise<void> {
    return this.#wrote([name], await this.#inner.deleteVersion(name, version));
  }

  async transitionStage(input: TransitionStageInput): Promise<ModelVersion> {
    return this.#wrote([input.name], await this.#inner.transitionStage(input));
  }

  async setAlias(input: SetAliasInput): Promise<void> {
    return this.#wrote([input.name], await this.#inner.setAlias(input));
  }

  async deleteAlias(name: string, alias: string): Promise<void> {
    return this.#wrote([name], await this.#inner.deleteAlias(name, alias));
  }

  async setModelTag(name: string, key: string, value: string): Promise<void> {
    return this.#inner.setModelTag(name, key, value);
  }

  async deleteModelTag(name: string, key: string): Promise<void> {
    return this.#inner.deleteModelTag(name, key);
  }

  async setVersionTag(name: string, version: number, key: string, value: string): Promise<void> {
    return this.#wrote([name], await this.#inner.setVersionTag(name, version, key, value));
  }

  async deleteVersionTag(name: string, version: number, key: string): Promise<void> {
    return this.#wrote([name], await this.#inner.deleteVersionTag(name, version, key));
  }

  // ---------------------------------------------------------------- uncached reads

  getModel(name: string): Promise<RegisteredModel> {
    return this.#inner.getModel(name);
  }

  searchModels(options?: SearchModelsOptions): Promise<Page<RegisteredModel>> {
    return this.#inner.searchModels(options);
  }

  searchVersions(options?: SearchVersionsOptions): Promise<Page<ModelVersion>> {
    return this.#inner.searchVersions(options);
  }

  getLatestVersions(name: string, stages?: readonly ModelStage[]): Promise<readonly ModelVersion[]> {
    return this.#inner.getLatestVersions(name, stages);
  }

  getTransitionHistory(name: string, version?: number, options?: PageOptions): Promise<Page<StageTransition>> {
    return this.#inner.getTransitionHistory(name, version, options);
  }

  getLineage(name: string, version: number): Promise<ModelLineage> {
    return this.#inner.getLineage(name, version);
  }
}
