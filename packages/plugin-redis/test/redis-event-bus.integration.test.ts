// RedisStreamsEventBus against the Redis peer: the EventBus conformance suite, Redis-specific guarantees
// (leases, pending-entry recovery, durable dedupe), a Redis restart in the middle of publishing, and publishes that
// Redis refuses or never answers. The fault tests run on a Redis of their own (private-peers.ts): restarting,
// pausing or filling the shared one would break the other test files using it at the same time.
import { randomUUID } from 'node:crypto';
import type { DomainEvent } from '@mlplane/core';
import { UnavailableError, ValidationError } from '@mlplane/core';
import { delay, eventBusConformance, eventually, uniqueTag } from '@mlplane/core/testing';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishThroughRestart } from '../../../test-support/broker-restart.js';
import { redisUrl, uniqueName } from '../../../test-support/peers-env.js';
import { type PrivatePeers, startPrivatePeers } from '../../../test-support/private-peers.js';
import { RedisStreamsEventBus, type RedisStreamsEventBusOptions } from '../src/streams/redis-streams-event-bus.js';

const streams: string[] = [];

/** A bus on a stream of its own (deleted after the file), or on `stream` to share one. */
function redisBus(options: Partial<RedisStreamsEventBusOptions> = {}): RedisStreamsEventBus {
  const stream = options.stream ?? uniqueName('mlplane:it:events');
  if (!streams.includes(stream)) streams.push(stream);
  return new RedisStreamsEventBus({ url: redisUrl(), ...options, stream });
}

const conformanceStream = uniqueName('mlplane:it:conformance');
eventBusConformance(
  'RedisStreamsEventBus',
  async () => {
    const bus = redisBus({ stream: conformanceStream });
    return { bus, cleanup: () => bus.close() };
  },
  { deliveryTimeoutMs: 20_000, quietMs: 500 },
);

function event(ns: string, subject: string, payload: unknown = {}): DomainEvent {
  return {
    id: randomUUID(),
    type: `${ns}.thing.happened`,
    version: 1,
    occurredAt: new Date().toISOString(),
    subject: `${ns}:${subject}`,
    payload,
  };
}

async function withRedis<T>(use: (redis: Redis) => Promise<T>, url = redisUrl()): Promise<T> {
  const redis = new Redis(url, { lazyConnect: true, protocol: 2 });
  await redis.connect();
  try {
    return await use(redis);
  } finally {
    redis.disconnect();
  }
}

describe('RedisStreamsEventBus specifics', () => {
  it('declares a durable, per-subject ordered bus with replay', () => {
    expect(redisBus().capabilities).toEqual({ durable: true, orderedPerSubject: true, replay: true });
  });

  it('rejects bad options with ValidationError', () => {
    expect(() => new RedisStreamsEventBus({ url: 'localhost:6379' })).toThrow(ValidationError);
    expect(() => new RedisStreamsEventBus({ url: redisUrl(), maxLen: 0 })).toThrow(/maxLen/);
    expect(() => new RedisStreamsEventBus({ url: redisUrl(), leaseMs: 1.5 })).toThrow(/leaseMs/);
    expect(() => new RedisStreamsEventBus({ url: redisUrl(), publishTimeoutMs: 0 })).toThrow(/publishTimeoutMs/);
  });

  it('appends a batch in one transaction and trims the stream to about maxLen', async () => {
    const bus = redisBus({ maxLen: 100 });
    const ns = `r${uniqueTag()}`;
    await bus.publish(Array.from({ length: 1000 }, (_, i) => event(ns, `s${i}`)));
    const length = await withRedis((r) => r.xlen(bus.stream));
    // MAXLEN ~ trims whole macro nodes, so the stream keeps at least maxLen and a little more.
    expect(length).toBeGreaterThanOrEqual(100);
    expect(length).toBeLessThan(1000);
    await bus.close();
  });

  it('drops an event a group handled before, even in a new bus instance (done markers live in Redis)', async () => {
    const stream = uniqueName('mlplane:it:events');
    const ns = `r${uniqueTag()}`;
    const first = redisBus({ stream });
    const seen: string[] = [];
    await first.subscribe({ group: `${ns}-g`, handler: async (e) => void seen.push(e.id) });
    const e = event(ns, 'dup');
    await first.publish(e);
    await eventually(() => expect(seen).toEqual([e.id]), 20_000);
    await first.close();

    const second = redisBus({ stream });
    const seenAgain: string[] = [];
    await second.subscribe({ group: `${ns}-g`, handler: async (x) => void seenAgain.push(x.id) });
    const marker = event(ns, 'dup');
    await second.publish([{ ...e }, marker]);
    await eventually(() => expect(seenAgain).toContain(marker.id), 20_000);
    expect(seenAgain).toEqual([marker.id]);
    expect(second.stats().duplicatesDropped).toBe(1);
    await second.close();
  });

  it('claims entries a crashed reader left pending and handles them before newer ones', async () => {
    const bus = redisBus();
    const ns = `r${uniqueTag()}`;
    const group = `${ns}-g`;
    const early = [1, 2, 3].map((seq) => event(ns, 'one', { seq }));
    await bus.publish(early);
    // A reader that took the entries and died without acknowledging them (and without a lease left).
    await withRedis(async (r) => {
      await r.call('XGROUP', 'CREATE', bus.stream, group, '0', 'MKSTREAM');
      const read = (await r.call(
        'XREADGROUP',
        'GROUP',
        group,
        'crashed',
        'COUNT',
        '10',
        'STREAMS',
        bus.stream,
        '>',
      )) as [string, unknown[]][];
      expect(read[0]![1]).toHaveLength(3);
    });
    const seqs: number[] = [];
    await bus.subscribe({ group, handler: async (e) => void seqs.push((e.payload as { seq: number }).seq) });
    await bus.publish(event(ns, 'one', { seq: 4 }));
    await eventually(() => expect(seqs).toEqual([1, 2, 3, 4]), 20_000);
    const pending = await withRedis((r) => r.call('XPENDING', bus.stream, group) as Promise<[number]>);
    expect(Number(pending[0])).toBe(0);
    await bus.close();
  });

  it('lets one process read per group: a standby takes over when the holder leaves or its lease lapses', async () => {
    const stream = uniqueName('mlplane:it:events');
    const ns = `r${uniqueTag()}`;
    const group = `${ns}-g`;
    const leaseMs = 1500;
    // A holder that crashed: its lease is still in Redis and runs out on its own.
    await withRedis((r) => r.set(`${stream}:lease:${group}`, 'crashed-process', 'PX', leaseMs));
    const a = redisBus({ stream, leaseMs });
    const b = redisBus({ stream, leaseMs });
    const byA: string[] = [];
    const byB: string[] = [];
    const subA = await a.subscribe({ group, handler: async (e) => void byA.push(e.id) });
    const first = event(ns, 's');
    await a.publish(first);
    await delay(leaseMs / 2);
    expect(byA).toEqual([]);
    await eventually(() => expect(byA).toEqual([first.id]), 10_000);

    await b.subscribe({ group, handler: async (e) => void byB.push(e.id) });
    const second = event(ns, 's');
    await a.publish(second);
    await eventually(() => expect(byA).toContain(second.id), 10_000);
    await delay(leaseMs);
    expect(byB).toEqual([]);

    await subA.close();
    const third = event(ns, 's');
    await a.publish(third);
    await eventually(() => expect(byB).toEqual([third.id]), 10_000);
    await Promise.all([a.close(), b.close()]);
  });

  it('keeps dead letters in a stream per group and redelivers through the group retry stream', async () => {
    const stream = uniqueName('mlplane:it:events');
    const ns = `r${uniqueTag()}`;
    const group = `${ns}-dlq`;
    const failing = redisBus({ stream });
    await failing.subscribe({
      group,
      maxAttempts: 2,
      backoff: { initialMs: 1, maxMs: 5 },
      handler: async () => {
        throw new Error('not today');
      },
    });
    const poison = event(ns, 'p', { n: 1 });
    await failing.publish(poison);
    await eventually(async () => expect(await failing.deadLetters(group)).toHaveLength(1), 20_000);
    await failing.close();
    expect(await withRedis((r) => r.xlen(`${stream}:dlq:${group}`))).toBe(1);

    const healthy = redisBus({ stream });
    const handled: string[] = [];
    await healthy.subscribe({ group, handler: async (e) => void handled.push(e.id) });
    await healthy.redeliver(group, poison.id);
    await eventually(() => expect(handled).toEqual([poison.id]), 20_000);
    expect(await healthy.deadLetters(group)).toEqual([]);
    expect(healthy.stats().redelivered).toBe(1);
    await healthy.close();
  });

  it('refuses to publish or subscribe once closed', async () => {
    const bus = redisBus();
    await bus.close();
    await expect(bus.publish(event('r', 's'))).rejects.toBeInstanceOf(UnavailableError);
    await expect(bus.subscribe({ group: 'g', handler: async () => {} })).rejects.toBeInstanceOf(UnavailableError);
  });
});

describe('RedisStreamsEventBus through Redis faults (private Redis peer)', () => {
  let peers: PrivatePeers;
  let url: string;
  beforeAll(async () => {
    peers = await startPrivatePeers(['redis']);
    url = peers.env.MLPLANE_REDIS_URL!;
  }, 120_000);
  afterAll(async () => {
    await peers?.down();
  }, 120_000);
  const privateBus = (options: Partial<RedisStreamsEventBusOptions> = {}) =>
    new RedisStreamsEventBus({ url, stream: uniqueName('mlplane:it:events'), ...options });
  /** Runs `publish` and returns how long it took to reject, with its error. */
  const rejection = async (publish: Promise<void>) => {
    const started = Date.now();
    const err = await publish.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err, 'the publish resolved').toBeInstanceOf(UnavailableError);
    return { err: err as UnavailableError, ms: Date.now() - started };
  };

  for (const signal of ['KILL', 'TERM'] as const) {
    it(`loses no acknowledged event when Redis is ${signal === 'KILL' ? 'killed' : 'stopped'} mid-batch`, async () => {
      const appendonly = await withRedis((r) => r.config('GET', 'appendonly') as Promise<string[]>, url);
      expect(appendonly[1], 'the redis peer must run with appendonly yes (scripts/peers.d/redis.sh)').toBe('yes');
      // Redis stays down 2 s, four publish deadlines: publishes reject and are retried, rather than waiting it out.
      const bus = privateBus({ publishTimeoutMs: 500 });
      try {
        await publishThroughRestart({
          bus,
          peers,
          peer: 'redis',
          signal,
          downSeconds: 2,
          expectRejections: true,
          readLog: () =>
            withRedis(async (r) => {
              const entries = (await r.call('XRANGE', bus.stream, '-', '+')) as [string, string[]][];
              return entries.map(([, fields]) => (JSON.parse(fields[1]!) as DomainEvent).id);
            }, url),
        });
      } finally {
        await bus.close();
      }
    }, 420_000);
  }

  it('rejects a publish at its deadline while Redis is down, and publishes again once it is back', async () => {
    await peers.stop('redis');
    // Created while Redis is down: its first connect fails too, and ioredis must keep trying.
    const bus = privateBus({ publishTimeoutMs: 1_000 });
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        const { err, ms } = await rejection(bus.publish(event('r', 'down')));
        expect(err.message).toMatch(/not connected .*within publishTimeoutMs \(1000 ms\)/);
        expect(ms).toBeGreaterThanOrEqual(950);
        expect(ms).toBeLessThan(3_000);
      }
      await peers.start('redis');
      const back = event('r', 'back');
      // ioredis reconnects with a growing delay (up to 2 s), so the first publishes may still meet its wait.
      await eventually(() => bus.publish(back), 30_000, 100);
      const ids = await withRedis(async (r) => {
        const entries = (await r.call('XRANGE', bus.stream, '-', '+')) as [string, string[]][];
        return entries.map(([, fields]) => (JSON.parse(fields[1]!) as DomainEvent).id);
      }, url);
      expect(ids).toContain(back.id);
    } finally {
      await bus.close();
    }
  }, 120_000);

  it('rejects a publish that Redis does not answer within its deadline', async () => {
    const bus = privateBus({ publishTimeoutMs: 500 });
    try {
      await bus.publish(event('r', 'warm'));
      // Redis holds every write command of every client for 3 s: connected, but no answer.
      await withRedis((r) => r.call('CLIENT', 'PAUSE', '3000', 'WRITE'), url);
      const { err, ms } = await rejection(bus.publish(event('r', 'held')));
      expect(err.message).toMatch(/no answer within publishTimeoutMs \(500 ms\)/);
      expect(ms).toBeGreaterThanOrEqual(450);
      expect(ms).toBeLessThan(2_500);
    } finally {
      await withRedis((r) => r.call('CLIENT', 'UNPAUSE'), url);
      await bus.close();
    }
  }, 60_000);

  it('rejects a batch Redis refuses, and appends none of it', async () => {
    const bus = privateBus();
    const batch = [event('r', 'a'), event('r', 'b')];
    try {
      // Refused when queued: the transaction is aborted (EXECABORT) with the OOM of the first XADD.
      await withRedis((r) => r.config('SET', 'maxmemory', '1'), url);
      try {
        const { err } = await rejection(bus.publish(batch));
        expect(err.message).toMatch(/OOM|EXECABORT/);
      } finally {
        await withRedis((r) => r.config('SET', 'maxmemory', '0'), url);
      }
      expect(await withRedis((r) => r.exists(bus.stream), url)).toBe(0);

      // Refused when run: EXEC answers with an error per XADD (the key holds a string, not a stream).
      await withRedis((r) => r.set(bus.stream, 'not a stream'), url);
      const { err } = await rejection(bus.publish(batch));
      expect(err.message).toMatch(/WRONGTYPE/);
      expect(await withRedis((r) => r.get(bus.stream), url)).toBe('not a stream');
      expect(bus.stats().published).toBe(0);
    } finally {
      await bus.close();
    }
  }, 60_000);
});

afterAll(async () => {
  await withRedis(async (redis) => {
    for (const stream of streams) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${stream}*`, 'COUNT', 1000);
        if (keys.length > 0) await redis.del(...keys);
        cursor = next;
      } while (cursor !== '0');
    }
  });
}, 60_000);
