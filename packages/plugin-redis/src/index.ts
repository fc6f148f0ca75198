/**
 * @mlplane/plugin-redis: Redis for production platforms: the EventBus on Redis Streams, a registry read cache with a
 * coherent near cache (wrapping whichever ModelRegistry is chosen), and leases.
 */

export type { CacheInvalidationOptions, Invalidation, InvalidationRule } from './cache/cache-invalidation.js';
export { subscribeCacheInvalidation } from './cache/cache-invalidation.js';
export type { CachedModelRegistryOptions } from './cache/cached-model-registry.js';
export { CachedModelRegistry, modelRegistryInvalidation, registryCacheKeys } from './cache/cached-model-registry.js';
export type { CacheCodec, LoadOptions, NearCacheOptions, RedisCacheOptions } from './cache/redis-cache.js';
export { jsonCodec, RedisCache } from './cache/redis-cache.js';
export type { RedisLeaseManagerOptions } from './leases/redis-lease.js';
export { RedisLeaseManager } from './leases/redis-lease.js';
export { redisCachePlugin, redisStreamsPlugin } from './plugin.js';
export { RedisStreamsEventBus, type RedisStreamsEventBusOptions } from './streams/redis-streams-event-bus.js';
