// Checks the Redis peer (`scripts/peers up redis`): SET/GET, expiry and a hash over MLPLANE_REDIS_URL.
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run scripts/peers up redis, then eval "$(scripts/peers env)"`);
  return value;
}

describe('redis peer', () => {
  let redis: Redis;
  const prefix = `mlplane:it:${Date.now().toString(36)}`;

  beforeAll(async () => {
    redis = new Redis(requireEnv('MLPLANE_REDIS_URL'), { lazyConnect: true, maxRetriesPerRequest: 2 });
    await redis.connect();
  });

  afterAll(async () => {
    if (!redis) return;
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('answers PING from Redis 7 or newer', async () => {
    expect(await redis.ping()).toBe('PONG');
    const info = await redis.info('server');
    const major = Number(/redis_version:(\d+)/.exec(info)?.[1]);
    expect(major).toBeGreaterThanOrEqual(7);
  });

  it('sets and gets a value', async () => {
    expect(await redis.set(`${prefix}:greeting`, 'héllo, peers')).toBe('OK');
    expect(await redis.get(`${prefix}:greeting`)).toBe('héllo, peers');
    expect(await redis.get(`${prefix}:missing`)).toBeNull();
  });

  it('expires keys and stores hashes', async () => {
    await redis.set(`${prefix}:ttl`, '1', 'PX', 150);
    const ttl = await redis.pttl(`${prefix}:ttl`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(150);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await redis.exists(`${prefix}:ttl`)).toBe(0);

    await redis.hset(`${prefix}:h`, { a: '1', b: '2' });
    expect(await redis.hgetall(`${prefix}:h`)).toEqual({ a: '1', b: '2' });
  });
});
