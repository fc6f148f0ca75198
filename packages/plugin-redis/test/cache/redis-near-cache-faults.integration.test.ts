// RedisCache's near tier through faults, on a private Redis peer (FLUSHALL and CLIENT PAUSE would hit every other
// test sharing the common one): killed connections, FLUSHALL, an invalidation racing a read, and a Redis that
// refuses CLIENT TRACKING.
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type PrivatePeers, startPrivatePeers } from '../../../../test-support/private-peers.js';
import { waitFor } from '../../../../test-support/wait.js';
import { RedisCache } from '../../src/cache/redis-cache.js';
import { observed, trackerId, untilNearHit } from './near-support.js';

const PROMPTLY_MS = 1_000;
const prefix = 'mlplane:it:near-faults:';

let peers: PrivatePeers;
let url: string;
let admin: Redis;
const cleanup: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  peers = await startPrivatePeers(['redis']);
  url = peers.env.MLPLANE_REDIS_URL!;
  admin = new Redis(url, { lazyConnect: true });
  await admin.connect();
}, 120_000);

afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

afterAll(async () => {
  admin?.disconnect();
  await peers?.down();
}, 120_000);

/** A near cache on a client the test holds (its retry delay also paces the invalidation connection's reconnects). */
async function nearCache(retryMs: number) {
  const client = new Redis(url, { lazyConnect: true, retryStrategy: () => retryMs });
  client.on('error', () => {});
  await client.connect();
  const seen = observed();
  const cache = new RedisCache({ redis: client, keyPrefix: prefix, nearCache: {}, telemetry: seen.telemetry });
  cleanup.push(async () => {
    await cache.close();
    client.disconnect();
  });
  return { client, cache, seen };
}

describe('RedisCache near tier through faults (private Redis peer)', () => {
  it('empties and bypasses the near tier while its invalidation connection is gone, and uses it again once back', async () => {
    const { cache, seen } = await nearCache(3_000);
    const read = () => cache.getOrLoad('tracked', async () => 'from the loader');
    await untilNearHit(seen, read);
    const killed = await trackerId(admin);
    await admin.client('KILL', 'ID', killed);
    // Written while nothing tells this process: only emptying the tier on the disconnect keeps it from serving v1.
    await admin.set(`${prefix}v:tracked`, JSON.stringify('written while disconnected'), 'PX', 60_000);
    await waitFor(
      'the near tier to be emptied',
      async () => (await read()) === 'written while disconnected',
      PROMPTLY_MS,
    );
    const nearHits = await seen.count('near_hit');
    for (let i = 0; i < 5; i++) expect(await read()).toBe('written while disconnected');
    expect(await seen.count('near_hit')).toBe(nearHits);
    await untilNearHit(seen, read, 10_000);
    expect(await trackerId(admin)).not.toBe(killed);
    expect(seen.logger.lines.some((l) => l.msg?.startsWith('Redis invalidation connection lost'))).toBe(true);
    expect(seen.logger.lines.some((l) => l.msg?.startsWith('near cache serving again'))).toBe(true);
    // The re-established tracking delivers again.
    await admin.del(`${prefix}v:tracked`);
    await waitFor(
      'a delete after the reconnect to arrive',
      async () => (await read()) === 'from the loader',
      PROMPTLY_MS,
    );
  });

  it('empties the near tier when the data connection drops, and fills it again once that is back', async () => {
    const { client, cache, seen } = await nearCache(200);
    const read = () => cache.getOrLoad('data-drop', async () => 'value');
    await untilNearHit(seen, read);
    const closed = once(client, 'close');
    const ready = once(client, 'ready');
    await admin.client('KILL', 'ID', String(await client.client('ID')));
    await closed;
    await ready;
    const [nearHits, redisHits] = [await seen.count('near_hit'), await seen.count('hit')];
    expect(await read()).toBe('value');
    expect(await seen.count('near_hit')).toBe(nearHits);
    expect(await seen.count('hit')).toBe(redisHits + 1);
    await untilNearHit(seen, read);
  });

  it('FLUSHALL from another connection empties the near tier', async () => {
    const { cache, seen } = await nearCache(200);
    let value = 'before the flush';
    const read = () => cache.getOrLoad('flushed', async () => value);
    await untilNearHit(seen, read);
    value = 'after the flush';
    await admin.flushall();
    await waitFor('the flush to empty the near tier', async () => (await read()) === 'after the flush', PROMPTLY_MS);
  });

  it('keeps a read answered after the invalidation of a later write out of the near tier', async () => {
    const { client, cache, seen } = await nearCache(200);
    await untilNearHit(seen, () => cache.getOrLoad('warm', async () => 'tracking is up'));
    await admin.set(`${prefix}v:raced`, JSON.stringify('old'), 'PX', 60_000);
    // Paused, Redis queues the read and then a DEL sent after it on the same socket; when the pause ends it runs
    // both in one event-loop turn and sends the DEL's invalidation before the replies of that turn, so this
    // process learns of the DEL while the read that saw 'old' is still on its way.
    await admin.call('CLIENT', 'PAUSE', '300', 'ALL');
    const raced = cache.getOrLoad('raced', async () => 'loaded');
    const deleted = client.del(`${prefix}v:raced`);
    expect(await raced).toBe('old');
    expect(await deleted).toBe(1);
    // Whichever order the two replies arrived in, the near tier must not serve 'old' once the DEL is known.
    await waitFor(
      'the raced read to be reloaded',
      async () => (await cache.getOrLoad('raced', async () => 'loaded')) === 'loaded',
      PROMPTLY_MS,
    );
  });

  it('falls back to Redis-only reads with one warning when Redis refuses CLIENT TRACKING', async () => {
    await admin.call('ACL', 'SETUSER', 'no-tracking', 'on', 'nopass', '~*', '&*', '+@all', '-client|tracking');
    cleanup.push(async () => {
      await admin.call('ACL', 'DELUSER', 'no-tracking');
    });
    const restricted = new URL(url);
    restricted.username = 'no-tracking';
    restricted.password = 'unused';
    const seen = observed();
    const cache = await RedisCache.connect(restricted.toString(), {
      keyPrefix: prefix,
      nearCache: {},
      telemetry: seen.telemetry,
    });
    cleanup.push(() => cache.close());
    let loads = 0;
    for (let i = 0; i < 20; i++) {
      expect(await cache.getOrLoad('untracked', async () => ++loads)).toBe(1);
    }
    expect(await seen.count('near_hit')).toBe(0);
    expect(await seen.count('hit')).toBe(19);
    const warnings = seen.logger.lines.filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toMatch(/^Redis refused client-side caching \(CLIENT TRACKING needs Redis 6 or later/);
    expect(await admin.client('LIST')).not.toMatch(/name=mlplane-cache-invalidation/);
  });
});
