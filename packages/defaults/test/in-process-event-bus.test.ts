import { randomUUID } from 'node:crypto';
import type { DomainEvent } from '@mlplane/core';
import { UnavailableError, ValidationError } from '@mlplane/core';
import { delay, eventBusConformance, eventually, gate } from '@mlplane/core/testing';
import { describe, expect, it } from 'vitest';
import { InProcessEventBus } from '../src/event-bus/in-process-event-bus.js';

eventBusConformance('InProcessEventBus', async () => {
  const bus = new InProcessEventBus();
  return { bus, cleanup: () => bus.close() };
});

function event(type: string, subject: string, payload: unknown = {}): DomainEvent {
  return { id: randomUUID(), type, version: 1, occurredAt: new Date().toISOString(), subject, payload };
}

describe('InProcessEventBus specifics', () => {
  it('declares a non-durable, per-subject ordered bus without replay', () => {
    expect(new InProcessEventBus().capabilities).toEqual({ durable: false, orderedPerSubject: true, replay: false });
  });

  it('runs at most concurrencyPerGroup subjects of a group at once', async () => {
    const bus = new InProcessEventBus({ concurrencyPerGroup: 3 });
    let active = 0;
    let peak = 0;
    await bus.subscribe({
      group: 'g',
      handler: async () => {
        active++;
        peak = Math.max(peak, active);
        await delay(5);
        active--;
      },
    });
    await bus.publish(Array.from({ length: 30 }, (_, i) => event('job.queued', `s${i}`)));
    await bus.close();
    expect(peak).toBe(3);
  });

  it('hands each handler a frozen copy, so neither publisher nor handler can change what others see', async () => {
    const bus = new InProcessEventBus();
    const seen: DomainEvent[] = [];
    let mutationError: unknown;
    for (const group of ['a', 'b']) {
      await bus.subscribe({
        group,
        handler: async (e) => {
          try {
            (e.payload as { n: number }).n = 99;
          } catch (err) {
            mutationError = err;
          }
          seen.push(e);
        },
      });
    }
    const original = event('thing.happened', 's', { n: 1 });
    await bus.publish(original);
    (original.payload as { n: number }).n = 2;
    await bus.close();
    expect(mutationError).toBeInstanceOf(TypeError);
    expect(seen.map((e) => (e.payload as { n: number }).n)).toEqual([1, 1]);
  });

  it('rejects payloads a durable bus could not serialize', async () => {
    const bus = new InProcessEventBus();
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    await expect(bus.publish(event('thing.happened', 's', circular))).rejects.toBeInstanceOf(ValidationError);
    await expect(bus.publish(event('thing.happened', 's', 10n))).rejects.toBeInstanceOf(ValidationError);
    const noPayload = { ...event('thing.happened', 's'), payload: undefined };
    await expect(bus.publish(noPayload)).rejects.toThrow(/use null/);
    await bus.close();
  });

  it('names the offending field and batch position in validation errors', async () => {
    const bus = new InProcessEventBus();
    const err = await bus
      .publish([event('thing.happened', 's'), { ...event('thing.happened', 's'), type: 'Bad' }])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).field).toBe('events[1].type');
    expect((err as Error).message).toMatch(/events\[1\]\.type must be a dotted lower-case name/);
    await bus.close();
  });

  it('forgets handled ids beyond the dedupe window (bounded memory)', async () => {
    const bus = new InProcessEventBus({ dedupeWindow: 2 });
    const ids: string[] = [];
    await bus.subscribe({ group: 'g', handler: async (e) => void ids.push(e.id) });
    const [a, b, c] = [event('thing.happened', 's'), event('thing.happened', 's'), event('thing.happened', 's')];
    await bus.publish([a!, b!]);
    await eventually(() => expect(ids).toHaveLength(2), 1000);
    await bus.publish(b!); // still remembered
    await bus.publish(c!); // once handled, pushes a out of the window
    await eventually(() => expect(ids).toHaveLength(3), 1000);
    await bus.publish(a!);
    await bus.close();
    expect(ids).toEqual([a!.id, b!.id, c!.id, a!.id]);
  });

  it('close drains queued events, including retries, then refuses new work', async () => {
    const bus = new InProcessEventBus();
    const handled: string[] = [];
    let failures = 0;
    await bus.subscribe({
      group: 'g',
      backoff: { initialMs: 5, maxMs: 5 },
      handler: async (e) => {
        if (e.subject === 'flaky' && failures++ < 2) throw new Error('not yet');
        await delay(1);
        handled.push(e.id);
      },
    });
    const events = [
      event('thing.happened', 'flaky'),
      ...Array.from({ length: 20 }, (_, i) => event('thing.happened', `s${i}`)),
    ];
    await bus.publish(events);
    await bus.close();
    expect(handled.sort()).toEqual(events.map((e) => e.id).sort());
    await expect(bus.publish(event('thing.happened', 's'))).rejects.toBeInstanceOf(UnavailableError);
    await expect(bus.subscribe({ group: 'g', handler: async () => {} })).rejects.toBeInstanceOf(UnavailableError);
  });

  it('close waits for handlers that publish follow-up events while draining', async () => {
    const bus = new InProcessEventBus();
    const handled: string[] = [];
    await bus.subscribe({
      group: 'g',
      handler: async (e) => {
        handled.push(e.type);
        if (e.type === 'order.placed') await bus.publish(event('order.shipped', e.subject));
      },
    });
    await bus.publish(event('order.placed', 'o1'));
    await bus.close();
    expect(handled).toEqual(['order.placed', 'order.shipped']);
  });

  it('a retry waits for a subscriber when the group loses its last one mid-backoff', async () => {
    const bus = new InProcessEventBus();
    const first = gate();
    let attempts = 0;
    const sub = await bus.subscribe({
      group: 'g',
      backoff: { initialMs: 30, maxMs: 30 },
      handler: async () => {
        attempts++;
        first.open();
        throw new Error('fails on the first subscriber');
      },
    });
    await bus.publish(event('thing.happened', 's'));
    await first.promise;
    await sub.close();
    await delay(60);
    expect(attempts).toBe(1);
    const handled: string[] = [];
    await bus.subscribe({ group: 'g', handler: async (e) => void handled.push(e.id) });
    await eventually(() => expect(handled).toHaveLength(1), 1000);
    await bus.close();
  });
});
