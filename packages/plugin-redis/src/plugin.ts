import { coreServices, definePlugin, eventBusRef, modelRegistryRef, telemetryRef } from '@mlplane/core';
import { z } from 'zod';
import { subscribeCacheInvalidation } from './cache/cache-invalidation.js';
import { CachedModelRegistry, modelRegistryInvalidation } from './cache/cached-model-registry.js';
import { RedisCache } from './cache/redis-cache.js';
import { RedisStreamsEventBus } from './streams/redis-streams-event-bus.js';

const redisUrl = z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL');

/** The EventBus on Redis Streams: durable, consumer groups, per-subject order through one reader per group. */
export const redisStreamsPlugin = definePlugin({
  id: 'redis-streams',
  configSchema: z.object({
    url: redisUrl,
    stream: z.string().min(1).default('mlplane:events'),
    maxLen: z.number().int().positive().default(100_000),
    publishTimeoutMs: z.number().int().positive().default(10_000),
  }),
  register(env) {
    env.provide(eventBusRef, {
      deps: { logger: coreServices.logger },
      factory: ({ config, logger }) => new RedisStreamsEventBus({ ...config, logger }),
      dispose: (bus) => bus.close(),
    });
  },
});

/**
 * Caches hot registry reads (alias -> version -> artifact URI) in Redis, invalidated on writes and by registry
 * events from other processes. It wraps whichever ModelRegistry is chosen (the SQL registry, MLflow's...), so it
 * needs that registry's domain events on the EventBus to learn of writes made by other processes.
 *
 * `nearCache` (on by default) also keeps hits in the process, so that a hot alias costs no Redis round trip.
 * Redis tells every process of every change to a cached value (client-side caching, Redis 6 or later), so another
 * process's write reaches this one's near tier as fast as that message travels; while the connection that carries
 * those messages is down, the near tier is emptied and bypassed. On an older Redis it stays off after one warning.
 * Memory: at most `maxEntries` values (10,000 by default) of the size of a cached ModelVersion.
 */
export const redisCachePlugin = definePlugin({
  id: 'redis-cache',
  configSchema: z.object({
    url: redisUrl,
    keyPrefix: z.string().default('mlplane:cache:'),
    ttlMs: z.number().int().positive().default(60_000),
    commandTimeoutMs: z.number().int().positive().default(500),
    nearCache: z
      .object({
        enabled: z.boolean().default(true),
        maxEntries: z.number().int().positive().default(10_000),
        /** Longest a value is served from the process without asking Redis; `ttlMs` when absent. */
        maxAgeMs: z.number().int().positive().optional(),
      })
      .default({ enabled: true, maxEntries: 10_000 }),
  }),
  register(env) {
    env.decorate(modelRegistryRef, {
      deps: {
        bus: eventBusRef,
        telemetry: telemetryRef,
        logger: coreServices.logger,
        lifecycle: coreServices.lifecycle,
      },
      decorate: async ({ service: registry, config, bus, telemetry, logger, lifecycle }) => {
        const cache = await RedisCache.connect(config.url, {
          keyPrefix: config.keyPrefix,
          defaultTtlMs: config.ttlMs,
          commandTimeoutMs: config.commandTimeoutMs,
          telemetry,
          ...(config.nearCache.enabled
            ? { nearCache: { maxEntries: config.nearCache.maxEntries, maxAgeMs: config.nearCache.maxAgeMs } }
            : {}),
        });
        const invalidation = await subscribeCacheInvalidation({
          bus,
          cache,
          rule: modelRegistryInvalidation,
          types: ['model.*'],
        });
        lifecycle.addShutdownHook(async () => {
          await invalidation.close();
          await cache.close();
        }, 'registry cache');
        return new CachedModelRegistry({ registry, cache, ttlMs: config.ttlMs, logger });
      },
    });
  },
});
