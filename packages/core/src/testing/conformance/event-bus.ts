import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  type DomainEvent,
  type EventBus,
  type EventHandler,
  NotFoundError,
  type SubscribeOptions,
  type Subscription,
  ValidationError,
} from '../../ports/event-bus.js';
import { delay, eventually, gate, settlesWithin, uniqueTag } from './support.js';

export interface EventBusFixture {
  readonly bus: EventBus;
  /** Closes the bus and removes what it created; runs after each test once its subscriptions are closed. */
  readonly cleanup?: () => Promise<void>;
}

export interface EventBusConformanceOptions {
  /** How long to wait for deliveries to arrive (default 5 s); raise it for brokers with slow group joins. */
  readonly deliveryTimeoutMs?: number;
  /** How long to watch for deliveries that must not happen (default 100 ms). */
  readonly quietMs?: number;
}

/**
 * The contract every EventBus meets, run against a fresh bus from `factory` per test. Each
 * test uses its own event-type namespace, subjects and groups, so a shared broker works too.
 */
export function eventBusConformance(
  name: string,
  factory: () => Promise<EventBusFixture>,
  options: EventBusConformanceOptions = {},
): void {
  const timeoutMs = options.deliveryTimeoutMs ?? 5_000;
  const quietMs = options.quietMs ?? 100;

  describe(`EventBus conformance: ${name}`, async () => {
    // Capabilities decide which cases exist, so one bus is created at collection time to read them.
    const probe = await factory();
    const caps = probe.bus.capabilities;
    await probe.cleanup?.();

    let fixture: EventBusFixture;
    let bus: EventBus;
    let ns: string;
    let subscriptions: Subscription[];

    beforeEach(async () => {
      fixture = await factory();
      bus = fixture.bus;
      ns = `conf${uniqueTag()}`;
      subscriptions = [];
    });
    afterEach(async () => {
      await Promise.all(subscriptions.map((s) => s.close()));
      await fixture?.cleanup?.();
    });

    /** An event in this test's namespace: type `<ns>.<suffix>`. */
    function event(suffix: string, subject: string, payload: unknown = {}): DomainEvent {
      return {
        id: randomUUID(),
        type: `${ns}.${suffix}`,
        version: 1,
        occurredAt: new Date().toISOString(),
        subject: `${ns}:${subject}`,
        payload,
      };
    }

    const group = (label: string) => `${ns}-${label}`;
    const wait = (check: () => void) => eventually(check, timeoutMs);

    async function subscribe(
      groupName: string,
      handler: EventHandler,
      extra: Partial<Omit<SubscribeOptions, 'group' | 'handler'>> = {},
    ): Promise<Subscription> {
      const subscription = await bus.subscribe({
        group: groupName,
        types: [`${ns}.*`],
        handler,
        backoff: { initialMs: 1, maxMs: 10 },
        ...extra,
      });
      subscriptions.push(subscription);
      return subscription;
    }

    /** Subscribes a handler that records every delivery, in order. */
    async function recorder(groupName: string, extra: Partial<Omit<SubscribeOptions, 'group' | 'handler'>> = {}) {
      const received: DomainEvent[] = [];
      const subscription = await subscribe(
        groupName,
        async (e) => {
          received.push(e);
        },
        extra,
      );
      return { received, subscription, ids: () => received.map((e) => e.id) };
    }

    describe('publish validation', () => {
      const bad: [string, (e: DomainEvent) => unknown][] = [
        ['an empty id', (e) => ({ ...e, id: '' })],
        ['a type without a dot', (e) => ({ ...e, type: 'created' })],
        ['an upper-case type', (e) => ({ ...e, type: 'Model.Created' })],
        ['a type with a trailing dot', (e) => ({ ...e, type: 'model.created.' })],
        ['version 0', (e) => ({ ...e, version: 0 })],
        ['a fractional version', (e) => ({ ...e, version: 1.5 })],
        ['a non-ISO occurredAt', (e) => ({ ...e, occurredAt: 'yesterday' })],
        ['an occurredAt without a time zone', (e) => ({ ...e, occurredAt: '2024-05-01T12:00:00' })],
        ['an empty subject', (e) => ({ ...e, subject: '' })],
        ['a malformed traceContext', (e) => ({ ...e, traceContext: { traceparent: '00-abc-def-01' } })],
        [
          'an all-zero trace id',
          (e) => ({ ...e, traceContext: { traceparent: `00-${'0'.repeat(32)}-${'1'.repeat(16)}-01` } }),
        ],
      ];
      for (const [label, corrupt] of bad) {
        it(`rejects an event with ${label} with ValidationError`, async () => {
          const err = await bus.publish(corrupt(event('thing.happened', 's')) as DomainEvent).catch((e: unknown) => e);
          expect(err).toBeInstanceOf(ValidationError);
        });
      }

      it('rejects a whole batch when one event is invalid, delivering none of it', async () => {
        const { ids } = await recorder(group('g'));
        const good = event('thing.happened', 'same');
        const invalid = { ...event('thing.happened', 'same'), version: -1 };
        await expect(bus.publish([good, invalid])).rejects.toBeInstanceOf(ValidationError);
        // Same subject, so once the marker arrives anything published before it would have too.
        const marker = event('marker.sent', 'same');
        await bus.publish(marker);
        await wait(() => expect(ids()).toContain(marker.id));
        expect(ids()).not.toContain(good.id);
      });

      it('rejects malformed subscriptions with ValidationError', async () => {
        const handler = async () => {};
        const attempts: SubscribeOptions[] = [
          { group: '', handler },
          { group: group('g'), handler, maxAttempts: 0 },
          { group: group('g'), handler, types: ['Not A Type'] },
        ];
        for (const options of attempts) {
          await expect(bus.subscribe(options)).rejects.toBeInstanceOf(ValidationError);
        }
      });
    });

    describe('delivery', () => {
      it('delivers every event to every group', async () => {
        const groups = await Promise.all(['a', 'b', 'c'].map((g) => recorder(group(g))));
        const events = Array.from({ length: 30 }, (_, i) => event('item.created', `s${i % 5}`, { i }));
        await bus.publish(events.slice(0, 10));
        for (const e of events.slice(10)) await bus.publish(e);
        const all = events.map((e) => e.id).sort();
        await wait(() => {
          for (const g of groups) expect([...new Set(g.ids())].sort()).toEqual(all);
        });
        // Payload and envelope arrive as published.
        const first = groups[0]!.received.find((e) => e.id === events[0]!.id)!;
        expect(first).toMatchObject({
          type: events[0]!.type,
          version: 1,
          subject: events[0]!.subject,
          payload: { i: 0 },
        });
      });

      it('carries the trace context of an event to its consumers', async () => {
        const { received } = await recorder(group('traced'));
        const traceContext = {
          traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
          tracestate: 'vendor=opaque',
        };
        const traced = { ...event('thing.traced', 's'), traceContext };
        await bus.publish(traced);
        await wait(() => expect(received.map((e) => e.id)).toContain(traced.id));
        expect(received.find((e) => e.id === traced.id)!.traceContext).toEqual(traceContext);
      });

      it('shares a group between competing subscribers, each event handled once', async () => {
        const one = await recorder(group('workers'));
        const two = await recorder(group('workers'));
        const events = Array.from({ length: 40 }, (_, i) => event('job.queued', `job${i}`));
        await bus.publish(events);
        await wait(() => expect(one.received.length + two.received.length).toBeGreaterThanOrEqual(40));
        await delay(quietMs);
        const handled = [...one.ids(), ...two.ids()];
        expect(handled.sort()).toEqual(events.map((e) => e.id).sort());
        expect(one.received.length).toBeGreaterThan(0);
        expect(two.received.length).toBeGreaterThan(0);
      });

      it('filters by exact type and by type prefix', async () => {
        const exact = await recorder(group('exact'), { types: [`${ns}.model.promoted`] });
        const prefix = await recorder(group('prefix'), { types: [`${ns}.model.*`] });
        const promoted = event('model.promoted', 'm');
        const archived = event('model.archived', 'm');
        const other = event('run.created', 'm');
        await bus.publish([promoted, archived, other]);
        const marker = event('model.marker', 'm');
        await bus.publish(marker);
        await wait(() => expect(prefix.ids()).toContain(marker.id));
        await delay(quietMs);
        expect(exact.ids()).toEqual([promoted.id]);
        expect(prefix.ids()).toEqual([promoted.id, archived.id, marker.id]);
      });

      it('keeps publish order per subject while subjects are handled concurrently', async () => {
        const perSubject = new Map<string, number[]>();
        // Random handler latency gives later events of one subject every chance to overtake earlier ones.
        const handler: EventHandler = async (e) => {
          await delay(Math.floor(Math.random() * 3));
          const { seq } = e.payload as { seq: number };
          perSubject.set(e.subject, [...(perSubject.get(e.subject) ?? []), seq]);
        };
        await subscribe(group('ordered'), handler);
        await subscribe(group('ordered'), handler);
        const subjects = ['a', 'b', 'c', 'd'];
        const events = Array.from({ length: 25 }, (_, seq) =>
          subjects.map((s) => event('step.done', s, { seq })),
        ).flat();
        // A mix of batches and single publishes, as a real producer would send.
        await bus.publish(events.slice(0, 40));
        for (const e of events.slice(40, 60)) await bus.publish(e);
        await bus.publish(events.slice(60));
        await wait(() => {
          for (const s of subjects) expect(perSubject.get(`${ns}:${s}`)?.length).toBe(25);
        });
        const expected = Array.from({ length: 25 }, (_, i) => i);
        for (const s of subjects) expect(perSubject.get(`${ns}:${s}`)).toEqual(expected);
      });

      it('buffers events for an existing group while it has no subscriber', async () => {
        const first = await recorder(group('g'));
        const warmup = event('thing.happened', 's');
        await bus.publish(warmup);
        await wait(() => expect(first.ids()).toContain(warmup.id));
        await first.subscription.close();

        const whileAway = event('thing.happened', 's');
        await bus.publish(whileAway);
        const second = await recorder(group('g'));
        await wait(() => expect(second.ids()).toContain(whileAway.id));
        expect(first.ids()).not.toContain(whileAway.id);
      });

      it.skipIf(caps.replay)('a new group sees only events published after it first subscribed', async () => {
        const before = event('thing.happened', 's');
        await bus.publish(before);
        const late = await recorder(group('late'));
        const after = event('thing.happened', 's');
        await bus.publish(after);
        await wait(() => expect(late.ids()).toContain(after.id));
        expect(late.ids()).not.toContain(before.id);
      });

      it.skipIf(!caps.replay)('a new group can read events published before it subscribed', async () => {
        const before = event('thing.happened', 's');
        await bus.publish(before);
        const late = await recorder(group('late'));
        await wait(() => expect(late.ids()).toContain(before.id));
      });
    });

    describe('at-least-once and idempotency', () => {
      it('delivers a duplicate event id once per group', async () => {
        const groups = await Promise.all(['a', 'b'].map((g) => recorder(group(g))));
        const e = event('thing.happened', 'dup');
        await bus.publish([e, e]);
        await bus.publish(e);
        await wait(() => {
          for (const g of groups) expect(g.ids()).toContain(e.id);
        });
        // Republished after it was handled, still not delivered again.
        await bus.publish({ ...e });
        const marker = event('marker.sent', 'dup');
        await bus.publish(marker);
        await wait(() => {
          for (const g of groups) expect(g.ids()).toContain(marker.id);
        });
        for (const g of groups) expect(g.ids().filter((id) => id === e.id)).toHaveLength(1);
      });

      it('retries a failing handler with backoff until it succeeds', async () => {
        const attempts: number[] = [];
        await subscribe(
          group('flaky'),
          async () => {
            attempts.push(Date.now());
            if (attempts.length < 3) throw new Error('transient failure');
          },
          { maxAttempts: 5, backoff: { initialMs: 5, maxMs: 50 } },
        );
        await bus.publish(event('thing.happened', 's'));
        await wait(() => expect(attempts).toHaveLength(3));
        await delay(quietMs);
        expect(attempts).toHaveLength(3);
        expect(await bus.deadLetters(group('flaky'))).toEqual([]);
      });

      it('holds later events of a subject until a retried event succeeds', async () => {
        const log: string[] = [];
        let failedOnce = false;
        await subscribe(group('g'), async (e) => {
          const { seq } = e.payload as { seq: number };
          if (seq === 2 && !failedOnce) {
            failedOnce = true;
            log.push(`fail ${seq}`);
            throw new Error('first try fails');
          }
          log.push(`ok ${seq}`);
        });
        await bus.publish([1, 2, 3, 4].map((seq) => event('step.done', 'one', { seq })));
        await wait(() => expect(log).toContain('ok 4'));
        expect(log).toEqual(['ok 1', 'fail 2', 'ok 2', 'ok 3', 'ok 4']);
      });

      it('dead-letters an event after maxAttempts and redelivers it on request', async () => {
        let calls = 0;
        let healthy = false;
        const handled: string[] = [];
        await subscribe(
          group('dlq'),
          async (e) => {
            if ((e.payload as { poison?: boolean }).poison) {
              calls++;
              if (!healthy) throw new Error(`boom on ${e.id}`);
            }
            handled.push(e.id);
          },
          { maxAttempts: 3 },
        );
        const poison = event('thing.happened', 'dl', { poison: true });
        const next = event('thing.happened', 'dl');
        await bus.publish([poison, next]);
        await wait(() => expect(handled).toContain(next.id));
        await delay(quietMs);
        expect(calls).toBe(3);
        const letters = await bus.deadLetters(group('dlq'));
        expect(letters).toHaveLength(1);
        expect(letters[0]).toMatchObject({ group: group('dlq'), attempts: 3, event: { id: poison.id } });
        expect(letters[0]!.event.payload).toEqual({ poison: true });
        expect(letters[0]!.lastError).toContain(`boom on ${poison.id}`);
        expect(Number.isNaN(Date.parse(letters[0]!.failedAt))).toBe(false);
        expect(await bus.deadLetters(group('dlq'), { limit: 1 })).toHaveLength(1);

        healthy = true;
        await bus.redeliver(group('dlq'), poison.id);
        await wait(() => expect(handled).toContain(poison.id));
        expect(await bus.deadLetters(group('dlq'))).toEqual([]);
        await expect(bus.redeliver(group('dlq'), poison.id)).rejects.toBeInstanceOf(NotFoundError);
        expect(await bus.deadLetters(group('never-used'))).toEqual([]);
      });

      it('keeps dead letters per group: another group handles the same event normally', async () => {
        await subscribe(
          group('broken'),
          async () => {
            throw new Error('always fails');
          },
          { maxAttempts: 2 },
        );
        const fine = await recorder(group('fine'));
        const e = event('thing.happened', 's');
        await bus.publish(e);
        await wait(async () => expect(await bus.deadLetters(group('broken'))).toHaveLength(1));
        await wait(() => expect(fine.ids()).toEqual([e.id]));
        expect(await bus.deadLetters(group('fine'))).toEqual([]);
      });
    });

    describe('closing', () => {
      it('close waits for in-flight handlers and the subscription receives nothing afterwards', async () => {
        const release = gate();
        let started = 0;
        let finished = 0;
        const subscription = await subscribe(group('g'), async () => {
          started++;
          await release.promise;
          finished++;
        });
        await bus.publish(event('thing.happened', 's'));
        await wait(() => expect(started).toBe(1));

        const closing = subscription.close();
        expect(await settlesWithin(closing, quietMs)).toBe(false);
        release.open();
        await closing;
        expect(finished).toBe(1);

        await bus.publish(event('thing.happened', 't'));
        await delay(quietMs);
        expect(started).toBe(1);
      });

      it("after one subscriber closes, the group's other subscriber gets every event", async () => {
        const leaving = await recorder(group('g'));
        const staying = await recorder(group('g'));
        await leaving.subscription.close();
        const events = Array.from({ length: 10 }, (_, i) => event('thing.happened', `s${i}`));
        await bus.publish(events);
        await wait(() => expect(staying.ids().sort()).toEqual(events.map((e) => e.id).sort()));
        expect(leaving.received).toEqual([]);
      });
    });
  });
}
