// RedisCache while its Redis crashes, restarts or stays down (a private Redis peer, so no other test loses its
// server): reads never fail, they fall back to the loader during the outage, and hits resume once Redis is back.

import { createEmbeddedTelemetry } from '@mlplane/defaults';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivatePeers, startPrivatePeers } from '../../../../test-support/private-peers.js';
import { captureLogger, waitFor } from '../../../../test-support/wait.js';
import { RedisCache } from '../../src/cache/redis-cache.js';
import { observed, untilNearHit } from './near-support.js';

let peers: PrivatePeers;

beforeAll(async () => {
  peers = await startPrivatePeers(['redis']);
}, 120_000);

afterAll(async () => {
  await peers?.down();
}, 120_000);

describe('RedisCache through Redis outages', () => {
  it('answers every read through a crash and restart, from the loader while Redis is gone', async () => {
    const logger = captureLogger();
    const cache = await RedisCache.connect(peers.env.MLPLANE_REDIS_URL!, {
      telemetry: createEmbeddedTelemetry({ logger }),
      redis: { retryStrategy: () => 100 },
    });
    let loads = 0;
    const load = async () => {
      loads++;
      return { uri: 's3://models/fraud/3' };
    };
    const key = 'alias:fraud:champion';
    /** True when two reads in a row cost at most one load: the cache serves hits. */
    const hitting = async () => {
      const before = loads;
      await cache.getOrLoad(key, load);
      await cache.getOrLoad(key, load);
      return loads - before <= 1;
    };
    try {
      await cache.getOrLoad(key, load);
      expect(await hitting()).toBe(true);

      // A crash while a reader loops every 5 ms: reads meet the gap until this client reconnects (Redis down for a
      // second, then 100 ms between reconnects), and none may fail. Without the second down, a restart faster than
      // the reader's next read could pass unmet.
      const unreachable = () => logger.lines.filter((l) => l.msg?.startsWith('Redis cache unreachable')).length;
      const loadsBeforeCrash = loads;
      let reads = 0;
      let failures = 0;
      let reading = true;
      const reader = (async () => {
        while (reading) {
          await cache.getOrLoad(key, load).then(
            () => reads++,
            () => failures++,
          );
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      await peers.restart('redis', 'KILL', { downSeconds: 1 });
      await waitFor('hits after the restart', hitting, 30_000);
      reading = false;
      await reader;
      expect(failures).toBe(0);
      // The crash was met: a read found Redis unreachable (logged) and was answered by the loader.
      expect(unreachable(), 'no read met the crash').toBeGreaterThanOrEqual(1);
      const loadsDuringCrash = loads - loadsBeforeCrash;
      expect(loadsDuringCrash).toBeGreaterThan(0);

      // A longer outage: Redis stopped. It is logged once, however many reads it affects.
      const loggedBefore = unreachable();
      await peers.stop('redis');
      const before = loads;
      for (let i = 0; i < 20; i++) {
        expect(await cache.getOrLoad(key, load)).toEqual({ uri: 's3://models/fraud/3' });
      }
      const loadsWhileDown = loads - before;
      expect(loadsWhileDown).toBe(20);
      expect(unreachable()).toBe(loggedBefore + 1);
      await peers.start('redis');
      await waitFor('hits after Redis is back', hitting, 30_000);
      expect(logger.lines.some((l) => l.msg === 'Redis cache reachable again')).toBe(true);
      console.log(
        `redis cache outage report: ${JSON.stringify({ readsDuringCrash: reads, failures, loadsDuringCrash, loadsWhileDown })}`,
      );
    } finally {
      await cache.close();
    }
  }, 120_000);

  it('drops its near cache when Redis crashes, and serves from it again once tracking is back', async () => {
    const url = peers.env.MLPLANE_REDIS_URL!;
    const seen = observed();
    // Reconnects slower than Redis restarts, so that the crash is followed by seconds without Redis.
    const cache = await RedisCache.connect(url, {
      telemetry: seen.telemetry,
      nearCache: {},
      redis: { retryStrategy: () => 5_000 },
    });
    const admin = new Redis(url, { lazyConnect: true, retryStrategy: () => 100 });
    admin.on('error', () => {});
    const key = 'alias:ranker:champion';
    let source = 'before the crash';
    const read = () => cache.getOrLoad(key, async () => source);
    try {
      await untilNearHit(seen, read);
      source = 'from the source';
      await peers.restart('redis', 'KILL');
      // Until this cache reconnects, reads go to the source: a near cache kept through the crash would answer instead.
      await waitFor('reads to leave the near cache', async () => (await read()) === 'from the source', 1_000);
      await admin.connect();
      await admin.set(`mlplane:cache:v:${key}`, JSON.stringify('written after the crash'), 'PX', 60_000);
      await waitFor(
        'the value written after the crash',
        async () => (await read()) === 'written after the crash',
        30_000,
      );
      await untilNearHit(seen, read, 30_000);
      expect(await read()).toBe('written after the crash');
    } finally {
      admin.disconnect();
      await cache.close();
    }
  }, 120_000);
});
