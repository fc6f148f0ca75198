import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DomainEvent, EventBus } from '@mlplane/core';
import { UnavailableError, ValidationError } from '@mlplane/core';
import { createEmbeddedTelemetry, InProcessEventBus, SqliteMetadataStore } from '@mlplane/defaults';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { captureLogger, waitFor } from '../../../../test-support/wait.js';
import { domainEvent, readOutbox, recordEvent } from '../../src/outbox/outbox.js';
import { OutboxRelay } from '../../src/relay/outbox-relay.js';

let dir: string;
let store: SqliteMetadataStore;
let bus: InProcessEventBus;
const cleanups: (() => Promise<void>)[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mlplane-relay-'));
  store = await SqliteMetadataStore.open({ path: join(dir, 'meta.sqlite') });
  bus = new InProcessEventBus();
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await bus.close();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function openRelay(options: Partial<Parameters<typeof OutboxRelay.open>[0]> = {}): Promise<OutboxRelay> {
  const relay = await OutboxRelay.open({ store, bus, pollIntervalMs: 50, leaseTtlMs: 1000, ...options });
  cleanups.push(() => relay.stop());
  return relay;
}

async function write(count: number, subject = 'model:fraud'): Promise<DomainEvent[]> {
  const events = Array.from({ length: count }, (_, i) => domainEvent('model.tag.set', subject, { i }));
  await store.transaction((trx) => recordEvent(trx, events));
  return events;
}

/** Subscribes a group that records the ids it receives, in order. */
async function collect(group = 'test', target: EventBus = bus): Promise<string[]> {
  const seen: string[] = [];
  const sub = await target.subscribe({
    group,
    handler: async (e) => {
      seen.push(e.id);
    },
  });
  cleanups.push(() => sub.close());
  return seen;
}

async function unrelayed(): Promise<number> {
  return (await readOutbox(store.db(), { unrelayedOnly: true, limit: 100_000 })).length;
}

describe('OutboxRelay on SQLite with the in-process bus', () => {
  it('publishes outbox events in seq order in batches and marks them relayed', async () => {
    // The relay migrates the outbox table, so it opens before anything is written.
    const relay = await openRelay({ batchSize: 7 });
    const seen = await collect();
    const events = await write(30);
    relay.start();
    await waitFor('30 events', () => seen.length === 30);
    expect(seen).toEqual(events.map((e) => e.id));
    await waitFor('all rows relayed', async () => (await unrelayed()) === 0);
    expect(relay.stats()).toMatchObject({ relayed: 30, errors: 0, leader: true });
  });

  it('wakes at once on notify() instead of waiting for the next poll', async () => {
    const relay = await openRelay({ pollIntervalMs: 60_000 });
    const seen = await collect();
    relay.start();
    await waitFor('the first (empty) poll', () => relay.stats().leader);
    await new Promise((r) => setTimeout(r, 50));
    const [event] = await write(1);
    const started = performance.now();
    relay.notify();
    await waitFor('the notified event', () => seen.length === 1, 5_000);
    expect(seen).toEqual([event!.id]);
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('keeps rows unrelayed while the bus fails, backs off, logs UnavailableError and recovers', async () => {
    const logger = captureLogger();
    const telemetry = createEmbeddedTelemetry({ logger });
    let failing = true;
    let attempts = 0;
    const flaky: EventBus = {
      capabilities: bus.capabilities,
      publish: async (events) => {
        attempts++;
        if (failing) throw new Error('connect ECONNREFUSED 127.0.0.1:9');
        await bus.publish(events);
      },
      subscribe: (o) => bus.subscribe(o),
      deadLetters: (g, o) => bus.deadLetters(g, o),
      redeliver: (g, id) => bus.redeliver(g, id),
    };
    const relay = await openRelay({ bus: flaky, telemetry, backoff: { initialMs: 20, maxMs: 100 } });
    const seen = await collect();
    const events = await write(5);
    relay.start();
    await waitFor('three failed attempts', () => attempts >= 3);
    expect(await unrelayed()).toBe(5);
    expect(seen).toEqual([]);
    failing = false;
    await waitFor('delivery after recovery', () => seen.length === 5);
    expect(seen).toEqual(events.map((e) => e.id));
    const warning = logger.lines.find((l) => l.level === 'warn' && l.msg === 'outbox relay failed; retrying');
    expect(warning?.fields.err).toBeInstanceOf(UnavailableError);
    expect(warning?.fields.component).toBe('outbox-relay');
    expect(relay.stats().errors).toBeGreaterThanOrEqual(3);
    const text = await telemetry.metrics.metricsText();
    expect(text).toMatch(/mlplane_outbox_relayed_events_total 5/);
    expect(text).toMatch(/mlplane_outbox_relay_errors_total [3-9]|mlplane_outbox_relay_errors_total \d{2,}/);
    expect(text).toMatch(/mlplane_outbox_lag_seconds 0/);
    expect(text).toMatch(/mlplane_outbox_relay_leader 1/);
  });

  it('reports the backlog while the bus is down: pending events (counted past one batch) and the oldest one’s age', async () => {
    const telemetry = createEmbeddedTelemetry({ logger: captureLogger() });
    let failing = true;
    let attempts = 0;
    const flaky: EventBus = {
      capabilities: bus.capabilities,
      publish: async (events) => {
        attempts++;
        if (failing) throw new Error('connect ECONNREFUSED 127.0.0.1:9');
        await bus.publish(events);
      },
      subscribe: (o) => bus.subscribe(o),
      deadLetters: (g, o) => bus.deadLetters(g, o),
      redeliver: (g, id) => bus.redeliver(g, id),
    };
    const relay = await openRelay({ bus: flaky, telemetry, batchSize: 2, backoff: { initialMs: 20, maxMs: 50 } });
    const seen = await collect();
    await write(5);
    relay.start();
    await waitFor('two failed attempts', () => attempts >= 2);
    const gauge = async (name: string) =>
      Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await telemetry.metrics.metricsText())?.[1]);
    expect(await gauge('mlplane_outbox_pending_events')).toBe(5);
    expect(await gauge('mlplane_outbox_lag_seconds')).toBeGreaterThan(0);
    failing = false;
    await waitFor('delivery after recovery', () => seen.length === 5);
    await waitFor('an empty poll', async () => (await gauge('mlplane_outbox_pending_events')) === 0);
    expect(await gauge('mlplane_outbox_lag_seconds')).toBe(0);
  });

  it('publishes again when marking failed after publish (at-least-once), and consumers see each id once', async () => {
    let publishes = 0;
    let crashAfterPublish = true;
    const crashing: EventBus = {
      capabilities: bus.capabilities,
      publish: async (events) => {
        publishes++;
        await bus.publish(events);
        // Simulates a crash between publish and markRelayed: the batch was accepted but is not marked.
        if (crashAfterPublish) {
          crashAfterPublish = false;
          throw new UnavailableError('relay process died after publishing');
        }
      },
      subscribe: (o) => bus.subscribe(o),
      deadLetters: (g, o) => bus.deadLetters(g, o),
      redeliver: (g, id) => bus.redeliver(g, id),
    };
    const relay = await openRelay({ bus: crashing, backoff: { initialMs: 10, maxMs: 20 } });
    const seen = await collect();
    await write(4);
    relay.start();
    await waitFor('rows relayed', async () => (await unrelayed()) === 0);
    expect(publishes).toBe(2);
    await waitFor('4 deliveries', () => seen.length === 4);
    expect(new Set(seen).size).toBe(4);
  });

  it('elects one relay per database; another takes over after the leader stops', async () => {
    const other = await SqliteMetadataStore.open({ path: join(dir, 'meta.sqlite') });
    cleanups.push(() => other.close());
    const a = await openRelay({ leaseTtlMs: 300 });
    const b = await openRelay({ store: other, leaseTtlMs: 300 });
    const seen = await collect();
    a.start();
    await waitFor('a leads', () => a.stats().leader);
    b.start();
    await write(3);
    await waitFor('3 events', () => seen.length === 3);
    await new Promise((r) => setTimeout(r, 400));
    expect(b.stats().leader).toBe(false);
    expect(b.stats().relayed).toBe(0);
    await a.stop();
    await write(2);
    await waitFor('b takes over', () => b.stats().leader, 5_000);
    await waitFor('5 events', () => seen.length === 5);
    expect(b.stats().relayed).toBe(2);
  });

  it('stop() finishes the batch in flight: published and marked', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let entered!: () => void;
    const inPublish = new Promise<void>((r) => {
      entered = r;
    });
    const slow: EventBus = {
      capabilities: bus.capabilities,
      publish: async (events) => {
        entered();
        await gate;
        await bus.publish(events);
      },
      subscribe: (o) => bus.subscribe(o),
      deadLetters: (g, o) => bus.deadLetters(g, o),
      redeliver: (g, id) => bus.redeliver(g, id),
    };
    const relay = await openRelay({ bus: slow });
    const seen = await collect();
    await write(3);
    relay.start();
    await inPublish;
    let stopped = false;
    const stopping = relay.stop().then(() => {
      stopped = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(await unrelayed()).toBe(0);
    await waitFor('3 events', () => seen.length === 3);
    expect(relay.stats().leader).toBe(false);
    await write(1);
    await new Promise((r) => setTimeout(r, 150));
    expect(await unrelayed()).toBe(1);
  });

  it('skips an event the bus refuses as malformed and relays the rest', async () => {
    const logger = captureLogger();
    const relay = await openRelay({ telemetry: createEmbeddedTelemetry({ logger }) });
    const seen = await collect();
    const good = await write(1);
    const bad = { ...domainEvent('model.tag.set', 'model:x', {}), type: 'Not A Type' };
    await store.transaction((trx) => recordEvent(trx, bad));
    const after = await write(1);
    relay.start();
    await waitFor('rows relayed', async () => (await unrelayed()) === 0);
    await waitFor('2 events', () => seen.length === 2);
    expect(seen).toEqual([good[0]!.id, after[0]!.id]);
    expect(relay.stats()).toMatchObject({ relayed: 2, rejected: 1 });
    const line = logger.lines.find((l) => l.level === 'error');
    expect(line?.fields).toMatchObject({ eventId: bad.id, type: 'Not A Type' });
    expect(line?.fields.err).toBeInstanceOf(ValidationError);
  });

  it('relayOnce() relays one batch without starting the loop', async () => {
    const relay = await openRelay({ batchSize: 2 });
    const seen = await collect();
    await write(3);
    expect(await relay.relayOnce()).toBe(2);
    expect(await relay.relayOnce()).toBe(1);
    expect(await relay.relayOnce()).toBe(0);
    await waitFor('3 events', () => seen.length === 3);
  });

  it.each([
    [{ batchSize: 0 }, 'batchSize must be a positive integer, got 0'],
    [{ pollIntervalMs: 1.5 }, 'pollIntervalMs must be a positive integer, got 1.5'],
    [{ leaseTtlMs: -1 }, 'leaseTtlMs must be a positive integer, got -1'],
    [{ backoff: { initialMs: 10, maxMs: 5 } }, 'backoff needs 0 < initialMs <= maxMs'],
    [{ backoff: { initialMs: 0, maxMs: 5 } }, 'backoff needs 0 < initialMs <= maxMs'],
  ])('rejects %j with ValidationError', async (options, message) => {
    const err = await openRelay(options).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toBe(message);
  });
});
