// RedisCache's near tier against the Redis peer: hits served in process, and every way another process (another
// RedisCache on its own connections) can change a value reaching this one's near tier within a short deadline.
// Faults (killed connections, FLUSHALL, a paused server, an ACL without CLIENT TRACKING) are in
// redis-near-cache-faults.integration.test.ts, on a private Redis.
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { redisUrl, uniqueName } from '../../../../test-support/peers-env.js';
import { waitFor } from '../../../../test-support/wait.js';
import { RedisCache, type RedisCacheOptions } from '../../src/cache/redis-cache.js';
import { type Observed, observed, untilNearHit } from './near-support.js';

/** How soon another process's change must be seen: invalidation messages take well under a millisecond here. */
const PROMPTLY_MS = 1_000;

let admin: Redis;
const prefix = `${uniqueName('mlplane:it:near')}:`;
const opened: RedisCache[] = [];

beforeAll(async () => {
  admin = new Redis(redisUrl(), { lazyConnect: true });
  await admin.connect();
});

afterEach(async () => {
  for (const cache of opened.splice(0)) await cache.close();
});

afterAll(async () => {
  const keys = await admin.keys(`${prefix}*`);
  if (keys.length > 0) await admin.del(...keys);
  admin.disconnect();
});

/** A cache as another process would have it: its own connections, a near tier, its own counters. */
async function processCache(
  options: Partial<Omit<RedisCacheOptions, 'redis'>> = {},
): Promise<{ cache: RedisCache; seen: Observed }> {
  const seen = observed();
  const cache = await RedisCache.connect(redisUrl(), {
    keyPrefix: prefix,
    nearCache: {},
    telemetry: seen.telemetry,
    ...options,
  });
  opened.push(cache);
  return { cache, seen };
}

describe('RedisCache near tier on the Redis peer', () => {
  it('serves repeated hits in process without Redis, counted as near_hit, a fresh object per caller', async () => {
    const { cache, seen } = await processCache();
    let loads = 0;
    const load = async () => {
      loads++;
      return { uri: 's3://models/fraud/3', tags: ['a'] };
    };
    await untilNearHit(seen, () => cache.getOrLoad('fresh', load));
    const redisHits = await seen.count('hit');
    const nearHits = await seen.count('near_hit');
    const first = await cache.getOrLoad('fresh', load);
    first.tags.push('changed by one caller');
    for (let i = 0; i < 99; i++) {
      expect(await cache.getOrLoad('fresh', load)).toEqual({ uri: 's3://models/fraud/3', tags: ['a'] });
    }
    expect(await cache.get('fresh')).toEqual({ uri: 's3://models/fraud/3', tags: ['a'] });
    expect(await seen.count('near_hit')).toBe(nearHits + 100);
    expect(await seen.count('hit')).toBe(redisHits);
    expect(loads).toBe(1);
  });

  it("another process's delete reaches the near tier promptly", async () => {
    const a = await processCache();
    const b = await processCache();
    let value = 'old';
    await untilNearHit(a.seen, () => a.cache.getOrLoad('deleted', async () => value));
    value = 'new';
    await b.cache.delete('deleted');
    await waitFor(
      'A to drop the deleted key',
      async () => (await a.cache.getOrLoad('deleted', async () => value)) === 'new',
      PROMPTLY_MS,
    );
  });

  it("another process's tag invalidation reaches the near tier promptly, and only the tag's keys", async () => {
    const a = await processCache();
    const b = await processCache();
    let value = 1;
    const read = (key: string, tag: string) => a.cache.getOrLoad(key, async () => value, { tags: [tag] });
    await untilNearHit(a.seen, () => read('tagged-1', 'model:x'));
    await untilNearHit(a.seen, () => read('tagged-2', 'model:x'));
    await untilNearHit(a.seen, () => read('untagged', 'model:y'));
    value = 2;
    await b.cache.invalidateTags(['model:x']);
    await waitFor(
      'A to drop the invalidated tag',
      async () => (await read('tagged-1', 'model:x')) === 2 && (await read('tagged-2', 'model:x')) === 2,
      PROMPTLY_MS,
    );
    const nearHits = await a.seen.count('near_hit');
    expect(await read('untagged', 'model:y')).toBe(1);
    expect(await a.seen.count('near_hit')).toBe(nearHits + 1);
  });

  it("a value leaves the near tier when its Redis key expires, not at the near tier's own age limit", async () => {
    const { cache, seen } = await processCache({ defaultTtlMs: 60_000 });
    let value = 'first';
    const read = () => cache.getOrLoad('expiring', async () => value, { ttlMs: 400 });
    const filled = performance.now();
    await untilNearHit(seen, read);
    value = 'second';
    await waitFor('the expired value to be reloaded', async () => (await read()) === 'second', 400 + PROMPTLY_MS);
    expect(performance.now() - filled).toBeGreaterThanOrEqual(390);
  });

  it("this process's own delete and invalidateTags are visible when they return", async () => {
    const { cache, seen } = await processCache();
    let value = 'old';
    const read = (key: string) => cache.getOrLoad(key, async () => value, { tags: ['model:own'] });
    await untilNearHit(seen, () => read('own-delete'));
    await untilNearHit(seen, () => read('own-tag'));
    value = 'new';
    await cache.delete('own-delete');
    expect(await read('own-delete')).toBe('new');
    await cache.invalidateTags(['model:own']);
    expect(await read('own-tag')).toBe('new');
  });

  it("near caches sharing a caller's client each get their own invalidations, and leave that client untouched", async () => {
    const client = new Redis(redisUrl(), { lazyConnect: true });
    await client.connect();
    const seenOne = observed();
    const seenTwo = observed();
    const one = new RedisCache({
      redis: client,
      keyPrefix: `${prefix}one:`,
      nearCache: {},
      telemetry: seenOne.telemetry,
    });
    const two = new RedisCache({
      redis: client,
      keyPrefix: `${prefix}two:`,
      nearCache: {},
      telemetry: seenTwo.telemetry,
    });
    const writer = await processCache({ keyPrefix: `${prefix}one:` });
    const writerTwo = await processCache({ keyPrefix: `${prefix}two:` });
    try {
      let value = 'old';
      await untilNearHit(seenOne, () => one.getOrLoad('shared', async () => value));
      await untilNearHit(seenTwo, () => two.getOrLoad('shared', async () => value));
      expect(await client.client('INFO')).toMatch(/ flags=N /);
      value = 'new';
      await writer.cache.delete('shared');
      await writerTwo.cache.delete('shared');
      await waitFor(
        'both caches to drop the key',
        async () => {
          const [a, b] = await Promise.all([
            one.getOrLoad('shared', async () => value),
            two.getOrLoad('shared', async () => value),
          ]);
          return a === 'new' && b === 'new';
        },
        PROMPTLY_MS,
      );
      await one.close();
      expect(await client.ping()).toBe('PONG');
      value = 'newer';
      await writerTwo.cache.delete('shared');
      await waitFor(
        'the remaining cache to drop the key',
        async () => (await two.getOrLoad('shared', async () => value)) === 'newer',
        PROMPTLY_MS,
      );
    } finally {
      await one.close();
      await two.close();
      client.disconnect();
    }
  });
});
