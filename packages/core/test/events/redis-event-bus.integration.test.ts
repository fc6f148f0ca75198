// RedisStreamsEventBus against the Redis peer: the EventBus conformance suite plus Redis-specific guarantees.
import { Redis } from 'ioredis';
import { afterAll } from 'vitest';
import { RedisStreamsEventBus } from '../../src/infra/redis/redis-streams-event-bus.js';
import { eventBusConformance } from '../../src/testing/conformance/event-bus.js';
import { redisUrl, uniqueName } from './peers-env.js';

const stream = uniqueName('mlplane:it:conformance');

eventBusConformance(
  'RedisStreamsEventBus',
  async () => {
    const bus = new RedisStreamsEventBus({ url: redisUrl(), stream });
    return { bus, cleanup: () => bus.close() };
  },
  { deliveryTimeoutMs: 20_000, quietMs: 500 },
);

/** Deletes every key of a stream's layout (stream, retry and dead-letter streams, done markers, leases). */
export async function dropStream(name: string): Promise<void> {
  const redis = new Redis(redisUrl(), { lazyConnect: true });
  await redis.connect();
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${name}*`, 'COUNT', 1000);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

afterAll(() => dropStream(stream));
