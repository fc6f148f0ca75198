// RedisLeaseManager against the Redis peer: two clients stand for two processes.

import { ConflictError, withLease } from '@mlplane/core';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisUrl, uniqueName } from '../../../../test-support/peers-env.js';
import { RedisLeaseManager } from '../../src/leases/redis-lease.js';

let one: Redis;
let two: Redis;
const prefix = `${uniqueName('mlplane:it:lease')}:`;

beforeAll(async () => {
  one = new Redis(redisUrl(), { lazyConnect: true });
  two = new Redis(redisUrl(), { lazyConnect: true });
  await Promise.all([one.connect(), two.connect()]);
});

afterAll(async () => {
  const keys = await one.keys(`${prefix}*`);
  if (keys.length > 0) await one.del(...keys);
  one.disconnect();
  two.disconnect();
});

const managers = () =>
  [
    new RedisLeaseManager({ redis: one, keyPrefix: prefix }),
    new RedisLeaseManager({ redis: two, keyPrefix: prefix }),
  ] as const;

describe('RedisLeaseManager on the Redis peer', () => {
  it('is exclusive between two clients and issues growing fencing tokens', async () => {
    const [a, b] = managers();
    const held = await a.tryAcquire('excl', 5_000);
    expect(held).toBeDefined();
    expect(await b.tryAcquire('excl', 5_000)).toBeUndefined();
    expect(await a.tryAcquire('excl', 5_000)).toBeUndefined();
    const pttl = await one.pttl(`${prefix}excl`);
    expect(pttl).toBeGreaterThan(4_000);
    expect(await a.release(held!)).toBe(true);
    const next = await b.tryAcquire('excl', 5_000);
    expect(next!.fencingToken).toBe(held!.fencingToken + 1);
  });

  it('expires an unrenewed lease, after which the old holder can neither renew nor release', async () => {
    const [a, b] = managers();
    const old = await a.tryAcquire('expiry', 100);
    expect(await a.renew(old!, 100)).toBe(true);
    await new Promise((r) => setTimeout(r, 150));
    const taken = await b.tryAcquire('expiry', 5_000);
    expect(taken).toBeDefined();
    expect(await a.renew(old!, 5_000)).toBe(false);
    expect(await a.release(old!)).toBe(false);
    expect(await one.get(`${prefix}expiry`)).toBe(taken!.token);
  });

  it('releases only for the owner', async () => {
    const [a, b] = managers();
    const held = await a.tryAcquire('owner', 5_000);
    expect(await b.release({ ...held!, token: 'not-the-token' })).toBe(false);
    expect(await b.tryAcquire('owner', 5_000)).toBeUndefined();
    expect(await a.release(held!)).toBe(true);
    expect(await a.release(held!)).toBe(false);
  });

  it('withLease serializes work across clients and renews past the TTL', async () => {
    const [a, b] = managers();
    const order: string[] = [];
    const first = withLease(a, 'work', 300, async ({ signal }) => {
      order.push('a:start');
      await new Promise((r) => setTimeout(r, 700));
      order.push('a:end');
      return signal.aborted;
    });
    await new Promise((r) => setTimeout(r, 50));
    await expect(withLease(b, 'work', 300, async () => order.push('b:now'))).rejects.toThrow(ConflictError);
    const second = withLease(
      b,
      'work',
      300,
      async () => {
        order.push('b:run');
      },
      { waitMs: 5_000, retryMs: 25 },
    );
    expect(await first).toBe(false);
    await second;
    expect(order).toEqual(['a:start', 'a:end', 'b:run']);
  });
});
