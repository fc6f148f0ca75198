// RedisCache while its Redis restarts (a private Redis peer, so no other test loses its server): reads never fail,
// they fall back to the loader during the outage, and hits resume once Redis is back.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEmbeddedTelemetry } from '../../src/embedded/telemetry/embedded-telemetry.js';
import { RedisCache } from '../../src/infra/cache/redis-cache.js';
import { type PrivatePeers, startPrivatePeers } from '../relay/private-peers.js';
import { captureLogger, waitFor } from '../relay/support.js';

let peers: PrivatePeers;

beforeAll(async () => {
  peers = await startPrivatePeers(['redis']);
}, 120_000);

afterAll(async () => {
  await peers?.down();
}, 120_000);

describe('RedisCache through a Redis restart', () => {
  it('keeps answering reads from the loader while Redis is down and serves hits again after', async () => {
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
    try {
      await cache.getOrLoad('alias:fraud:champion', load);
      await cache.getOrLoad('alias:fraud:champion', load);
      expect(loads).toBe(1);

      let reads = 0;
      let failures = 0;
      let reading = true;
      const reader = (async () => {
        while (reading) {
          try {
            expect(await cache.getOrLoad('alias:fraud:champion', load)).toEqual({ uri: 's3://models/fraud/3' });
            reads++;
          } catch {
            failures++;
          }
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      await peers.restart('redis', 'KILL');
      const loadsAfterRestart = loads;
      await waitFor(
        'hits again',
        async () => {
          const before = loads;
          await cache.getOrLoad('alias:fraud:champion', load);
          await cache.getOrLoad('alias:fraud:champion', load);
          return loads - before <= 1;
        },
        30_000,
      );
      reading = false;
      await reader;
      console.log(
        `redis cache restart report: ${JSON.stringify({ reads, failures, loadsDuringOutage: loadsAfterRestart - 1 })}`,
      );
      expect(failures).toBe(0);
      expect(reads).toBeGreaterThan(0);
      expect(logger.lines.some((l) => l.msg?.startsWith('Redis cache unreachable'))).toBe(true);
      expect(logger.lines.some((l) => l.msg === 'Redis cache reachable again')).toBe(true);
    } finally {
      await cache.close();
    }
  }, 120_000);
});
