import type { DomainEvent, EventBus, Subscription } from '@mlplane/core';
import type { RedisCache } from './redis-cache.js';

/** What one event makes stale: cache keys and tags to drop. */
export interface Invalidation {
  readonly keys?: readonly string[];
  readonly tags?: readonly string[];
}

/** Maps a domain event to what it invalidates; undefined when it changes nothing cached. */
export type InvalidationRule = (event: DomainEvent) => Invalidation | undefined;

export interface CacheInvalidationOptions {
  readonly bus: EventBus;
  readonly cache: RedisCache;
  readonly rule: InvalidationRule;
  /**
   * Consumer group (default `cache-invalidation`). The cache is shared through Redis, so every process joins
   * the same group and each event is applied once, by whichever process receives it.
   */
  readonly group?: string;
  /** Event type filters handed to the bus (`model.*`); every event when absent. */
  readonly types?: readonly string[];
}

/**
 * Subscribes a consumer that deletes what each event invalidates. A Redis failure fails the handler, so the bus
 * retries it with backoff (and dead-letters it after its attempts; entry TTLs bound the staleness then).
 */
export function subscribeCacheInvalidation(options: CacheInvalidationOptions): Promise<Subscription> {
  const { cache, rule } = options;
  return options.bus.subscribe({
    group: options.group ?? 'cache-invalidation',
    ...(options.types ? { types: options.types } : {}),
    maxAttempts: 10,
    backoff: { initialMs: 100, maxMs: 10_000 },
    handler: async (event) => {
      const stale = rule(event);
      if (!stale) return;
      if (stale.keys && stale.keys.length > 0) await cache.delete(stale.keys);
      if (stale.tags && stale.tags.length > 0) await cache.invalidateTags(stale.tags);
    },
  });
}
