// RedisCache without a reachable Redis: it must degrade to the loader, never fail reads.
import { createServer } from 'node:net';
import { UnavailableError, ValidationError } from '@mlplane/core';
import { createEmbeddedTelemetry } from '@mlplane/defaults';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { captureLogger } from '../../../../test-support/wait.js';
import { RedisCache } from '../../src/cache/redis-cache.js';

/** A loopback port with nothing listening. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

describe('RedisCache with Redis unreachable', () => {
  it('connect() raises UnavailableError', async () => {
    await expect(
      RedisCache.connect(`redis://127.0.0.1:${await deadPort()}`, { redis: { retryStrategy: () => null } }),
    ).rejects.toThrow(UnavailableError);
  });

  it('serves reads from the loader, logs the outage once, counts errors, and fails invalidation with UnavailableError', async () => {
    const redis = new Redis(`redis://127.0.0.1:${await deadPort()}`, {
      lazyConnect: true,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    redis.on('error', () => {});
    const logger = captureLogger();
    const telemetry = createEmbeddedTelemetry({ logger });
    const cache = new RedisCache({ redis, telemetry });
    let calls = 0;
    const load = async () => ++calls;
    expect(await cache.getOrLoad('k', load)).toBe(1);
    expect(await cache.getOrLoad('k', load)).toBe(2);
    expect(await cache.get('k')).toBeUndefined();
    await expect(cache.delete('k')).rejects.toThrow(UnavailableError);
    await expect(cache.invalidateTags(['t'])).rejects.toThrow(/cannot invalidate cache tags: Redis is unreachable/);
    expect(logger.lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    expect(await telemetry.metrics.metricsText()).toMatch(/mlplane_cache_requests_total\{result="error"\} 2/);
    redis.disconnect();
  });

  it('validates keys and TTLs', async () => {
    const redis = new Redis({ lazyConnect: true });
    expect(() => new RedisCache({ redis, defaultTtlMs: 0 })).toThrow(ValidationError);
    expect(() => new RedisCache({ redis, defaultTtlMs: 0 })).toThrow(
      'defaultTtlMs must be a positive integer of milliseconds, got 0',
    );
    expect(() => new RedisCache({ redis, fillWindowMs: 2.5 })).toThrow(
      'fillWindowMs must be a positive integer of milliseconds, got 2.5',
    );
    const cache = new RedisCache({ redis });
    await expect(cache.getOrLoad('', async () => 1)).rejects.toThrow(ValidationError);
    await expect(cache.getOrLoad('', async () => 1)).rejects.toThrow(
      'cache key must be a string of 1 to 1024 characters',
    );
    await expect(cache.getOrLoad('k', async () => 1, { tags: [''] })).rejects.toThrow(
      'cache tag must be a string of 1 to 1024 characters',
    );
    await expect(cache.getOrLoad('k', async () => 1, { ttlMs: -5 })).rejects.toThrow(
      'ttlMs must be a positive integer of milliseconds, got -5',
    );
    await expect(cache.delete(['ok', 'x'.repeat(1025)])).rejects.toThrow(ValidationError);
    await expect(cache.invalidateTags([''])).rejects.toThrow('cache tag must be a string of 1 to 1024 characters');
    redis.disconnect();
  });

  it('validates near-cache options before opening anything, naming the field', () => {
    const redis = new Redis({ lazyConnect: true });
    const refusal = (nearCache: { maxEntries?: number; maxAgeMs?: number }) => {
      try {
        new RedisCache({ redis, nearCache });
      } catch (err) {
        return err as ValidationError;
      }
      throw new Error('accepted');
    };
    const noEntries = refusal({ maxEntries: 0 });
    expect(noEntries).toBeInstanceOf(ValidationError);
    expect(noEntries.field).toBe('nearCache.maxEntries');
    expect(noEntries.message).toBe('nearCache.maxEntries must be a positive integer, got 0');
    expect(refusal({ maxEntries: 2.5 }).field).toBe('nearCache.maxEntries');
    const negativeAge = refusal({ maxAgeMs: -1 });
    expect(negativeAge).toBeInstanceOf(ValidationError);
    expect(negativeAge.field).toBe('nearCache.maxAgeMs');
    expect(negativeAge.message).toBe('nearCache.maxAgeMs must be a positive integer of milliseconds, got -1');
    expect(redis.status).toBe('wait');
  });

  it('with a near cache and no Redis, every read goes to the loader and none is kept in the process', async () => {
    const redis = new Redis(`redis://127.0.0.1:${await deadPort()}`, {
      lazyConnect: true,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    redis.on('error', () => {});
    const telemetry = createEmbeddedTelemetry({ logger: captureLogger() });
    const cache = new RedisCache({ redis, telemetry, nearCache: {} });
    let calls = 0;
    const load = async () => ++calls;
    for (let i = 1; i <= 5; i++) expect(await cache.getOrLoad('k', load)).toBe(i);
    expect(await telemetry.metrics.metricsText()).toMatch(/mlplane_cache_requests_total\{result="error"\} 5/);
    expect(await telemetry.metrics.metricsText()).not.toMatch(/result="near_hit"/);
    await cache.close();
    redis.disconnect();
  });
});
