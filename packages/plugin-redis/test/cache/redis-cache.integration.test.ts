// RedisCache and event-driven invalidation against the Redis peer (`scripts/peers up redis`).

import { InProcessEventBus } from '@mlplane/defaults';
import { domainEvent } from '@mlplane/sql';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisUrl, uniqueName } from '../../../../test-support/peers-env.js';
import { waitFor } from '../../../../test-support/wait.js';
import { subscribeCacheInvalidation } from '../../src/cache/cache-invalidation.js';
import { RedisCache } from '../../src/cache/redis-cache.js';

let redis: Redis;
const prefix = `${uniqueName('mlplane:it:cache')}:`;

beforeAll(async () => {
  redis = new Redis(redisUrl(), { lazyConnect: true });
  await redis.connect();
});

afterAll(async () => {
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
});

function cache(options: { defaultTtlMs?: number; fillWindowMs?: number } = {}): RedisCache {
  return new RedisCache({ redis, keyPrefix: prefix, ...options });
}

/** A loader that counts its calls and answers `value` after `ms`. */
function counting<T>(value: () => T, ms = 0) {
  const loader = async () => {
    loader.calls++;
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
    return value();
  };
  loader.calls = 0;
  return loader;
}

describe('RedisCache on the Redis peer', () => {
  it('misses once, then serves hits from Redis; JSON values round-trip', async () => {
    const c = cache();
    const load = counting(() => ({ uri: 's3://models/fraud/3', version: 3, tags: ['a'] }));
    expect(await c.get('k1')).toBeUndefined();
    expect(await c.getOrLoad('k1', load)).toEqual({ uri: 's3://models/fraud/3', version: 3, tags: ['a'] });
    expect(await c.getOrLoad('k1', load)).toEqual({ uri: 's3://models/fraud/3', version: 3, tags: ['a'] });
    // Another instance (another process) sees the same entry.
    expect(await cache().getOrLoad('k1', load)).toEqual({ uri: 's3://models/fraud/3', version: 3, tags: ['a'] });
    expect(load.calls).toBe(1);
    expect(await c.get('k1')).toEqual({ uri: 's3://models/fraud/3', version: 3, tags: ['a'] });
  });

  it('expires entries after their TTL', async () => {
    const c = cache();
    const load = counting(() => 'v');
    await c.getOrLoad('ttl', load, { ttlMs: 100 });
    await c.getOrLoad('ttl', load, { ttlMs: 100 });
    expect(load.calls).toBe(1);
    const pttl = await redis.pttl(`${prefix}v:ttl`);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(100);
    await new Promise((r) => setTimeout(r, 150));
    await c.getOrLoad('ttl', load, { ttlMs: 100 });
    expect(load.calls).toBe(2);
  });

  it('loads once for 50 concurrent misses of one key (single flight), and shares a loader error', async () => {
    const c = cache();
    const load = counting(() => 42, 50);
    const results = await Promise.all(Array.from({ length: 50 }, () => c.getOrLoad('flight', load)));
    expect(results).toEqual(Array(50).fill(42));
    expect(load.calls).toBe(1);
    let failures = 0;
    const failing = async () => {
      failures++;
      await new Promise((r) => setTimeout(r, 20));
      throw new Error('source down');
    };
    const settled = await Promise.allSettled(Array.from({ length: 10 }, () => c.getOrLoad('flight-err', failing)));
    expect(settled.every((s) => s.status === 'rejected' && (s.reason as Error).message === 'source down')).toBe(true);
    expect(failures).toBe(1);
    expect(await c.get('flight-err')).toBeUndefined();
  });

  it('delete() and invalidateTags() drop entries so the next read loads again', async () => {
    const c = cache();
    let value = 1;
    const load = counting(() => value);
    expect(await c.getOrLoad('a', load, { tags: ['model:x'] })).toBe(1);
    expect(await c.getOrLoad('b', load, { tags: ['model:x'] })).toBe(1);
    expect(await c.getOrLoad('c', load, { tags: ['model:y'] })).toBe(1);
    value = 2;
    await c.delete('a');
    expect(await c.getOrLoad('a', load, { tags: ['model:x'] })).toBe(2);
    value = 3;
    await c.invalidateTags(['model:x']);
    expect(await c.getOrLoad('a', load, { tags: ['model:x'] })).toBe(3);
    expect(await c.getOrLoad('b', load, { tags: ['model:x'] })).toBe(3);
    expect(await c.getOrLoad('c', load, { tags: ['model:y'] })).toBe(1);
  });

  it('invalidates tags on a caller client that has its own ioredis keyPrefix', async () => {
    const client = new Redis(redisUrl(), { lazyConnect: true, keyPrefix: `${prefix}client:` });
    await client.connect();
    try {
      const c = new RedisCache({ redis: client, keyPrefix: 'app:' });
      let value = 1;
      const load = counting(() => value);
      expect(await c.getOrLoad('a', load, { tags: ['model:x'] })).toBe(1);
      expect(await redis.exists(`${prefix}client:app:v:a`)).toBe(1);
      value = 2;
      await c.invalidateTags(['model:x']);
      expect(await redis.exists(`${prefix}client:app:v:a`)).toBe(0);
      expect(await c.getOrLoad('a', load, { tags: ['model:x'] })).toBe(2);
      await c.close();
    } finally {
      client.disconnect();
    }
  });

  it('does not store a value loaded before an invalidation that landed while it loaded', async () => {
    const c = cache();
    const other = cache();
    let value = 'old';
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const slow = async () => {
      const read = value;
      await gate;
      return read;
    };
    const pending = c.getOrLoad('race', slow, { tags: ['t'] });
    await new Promise((r) => setTimeout(r, 30));
    value = 'new';
    // The write commits and another process invalidates, all while the stale load is in flight.
    await other.invalidateTags(['t']);
    release();
    expect(await pending).toBe('old');
    expect(await c.get('race')).toBeUndefined();
    expect(await c.getOrLoad('race', async () => value)).toBe('new');
  });

  it('drops keys named by domain events through a consumer on the bus', async () => {
    const c = cache();
    const bus = new InProcessEventBus();
    const sub = await subscribeCacheInvalidation({
      bus,
      cache: c,
      types: ['model.*'],
      rule: (e) => {
        const p = e.payload as { name: string; alias: string };
        return e.type === 'model.alias.set' ? { keys: [`alias:${p.name}:${p.alias}`] } : undefined;
      },
    });
    try {
      let version = 3;
      const load = counting(() => version);
      expect(await c.getOrLoad('alias:fraud:champion', load)).toBe(3);
      version = 4;
      await bus.publish(domainEvent('model.alias.set', 'model:fraud', { name: 'fraud', alias: 'champion', version }));
      await waitFor('invalidation', async () => (await c.get('alias:fraud:champion')) === undefined, 5_000);
      expect(await c.getOrLoad('alias:fraud:champion', load)).toBe(4);
      expect(load.calls).toBe(2);
    } finally {
      await sub.close();
      await bus.close();
    }
  });

  it('a cache it connects itself closes its client', async () => {
    const owned = await RedisCache.connect(redisUrl(), { keyPrefix: prefix });
    expect(await owned.getOrLoad('owned', async () => 'x')).toBe('x');
    await owned.close();
    expect(await owned.getOrLoad('owned', async () => 'y')).toBe('y');
  });
});
