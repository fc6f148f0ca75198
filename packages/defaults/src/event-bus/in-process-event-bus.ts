// The same validation as the broker-backed buses, so an event one implementation accepts every one accepts.
import {
  acceptEvent,
  type DeadLetter,
  type DomainEvent,
  type EventBus,
  type EventBusCapabilities,
  type EventHandler,
  matchesEventType,
  NotFoundError,
  type SubscribeOptions,
  type Subscription,
  subscriberSettings,
  UnavailableError,
  ValidationError,
} from '@mlplane/core';

export interface InProcessEventBusOptions {
  /** Subjects a group handles at the same time (events of one subject are always serial). Default 16. */
  readonly concurrencyPerGroup?: number;
  /** Event ids per group remembered as handled, so duplicates are dropped. Default 100,000. */
  readonly dedupeWindow?: number;
}

interface Delivery {
  readonly event: DomainEvent;
  attempts: number;
}

interface Subscriber {
  readonly types: readonly string[] | undefined;
  readonly handler: EventHandler;
  readonly maxAttempts: number;
  readonly backoff: { readonly initialMs: number; readonly maxMs: number };
  readonly inFlight: Set<Promise<void>>;
  closing: Promise<void> | undefined;
}

/** One consumer group: its subscribers, per-subject queues, dedupe memory and dead letters. */
class Group {
  readonly subscribers: Subscriber[] = [];
  nextSubscriber = 0;
  /** Pending deliveries per subject; the head is the one being handled. */
  readonly queues = new Map<string, Delivery[]>();
  /** Subjects with queued work and no worker, in the order they became ready. */
  readonly waiting = new Set<string>();
  /** Subjects a worker is handling now. */
  readonly running = new Set<string>();
  /** Ids handled successfully, oldest first (a Map keeps insertion order, which makes it an LRU). */
  readonly handled = new Map<string, true>();
  /** Ids queued, being handled, or dead-lettered: a duplicate of one of these is dropped too. */
  readonly pending = new Set<string>();
  readonly deadLetters = new Map<string, DeadLetter>();
  readonly idleWaiters: (() => void)[] = [];

  constructor(readonly name: string) {}
}

/**
 * EventBus inside one process, the embedded default. Delivery is at-least-once per group with
 * per-subject ordering: each group keeps a serial queue per subject and runs up to
 * `concurrencyPerGroup` subjects at once, handing each event to one of the group's subscribers
 * in turn. A failing handler is retried with exponential backoff and the event is dead-lettered
 * after `maxAttempts`. Nothing survives a restart (`durable: false`), and a group only sees events
 * published after its first subscribe (`replay: false`); once a group exists, events are buffered
 * for it while it has no subscriber.
 */
export class InProcessEventBus implements EventBus {
  readonly capabilities: EventBusCapabilities = Object.freeze({
    durable: false,
    orderedPerSubject: true,
    replay: false,
  });

  readonly #groups = new Map<string, Group>();
  readonly #concurrency: number;
  readonly #dedupeWindow: number;
  #state: 'open' | 'draining' | 'closed' = 'open';
  #closing: Promise<void> | undefined;

  constructor(options: InProcessEventBusOptions = {}) {
    this.#concurrency = positiveInteger(options.concurrencyPerGroup ?? 16, 'concurrencyPerGroup');
    this.#dedupeWindow = positiveInteger(options.dedupeWindow ?? 100_000, 'dedupeWindow');
  }

  async publish(events: DomainEvent | readonly DomainEvent[]): Promise<void> {
    if (this.#state === 'closed')
      throw new UnavailableError('the event bus is closed; events can no longer be published');
    const batch = (Array.isArray(events) ? events : [events]) as readonly DomainEvent[];
    // The whole batch is checked before any event is accepted, so a bad event never leaves half a batch delivered.
    const accepted = batch.map((event, i) => acceptEvent(event, batch.length > 1 ? `events[${i}]` : 'event'));
    for (const event of accepted) {
      for (const group of this.#groups.values()) this.#enqueue(group, event);
    }
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    if (this.#state !== 'open')
      throw new UnavailableError('the event bus is closed; no new subscriptions are accepted');
    const subscriber = toSubscriber(options);
    let group = this.#groups.get(options.group);
    if (!group) {
      group = new Group(options.group);
      this.#groups.set(options.group, group);
    }
    group.subscribers.push(subscriber);
    this.#pump(group);
    const owner = group;
    return {
      group: owner.name,
      close: () => {
        subscriber.closing ??= this.#closeSubscriber(owner, subscriber);
        return subscriber.closing;
      },
    };
  }

  async deadLetters(group: string, options: { limit?: number } = {}): Promise<readonly DeadLetter[]> {
    const limit = options.limit === undefined ? Number.POSITIVE_INFINITY : positiveInteger(options.limit, 'limit');
    const letters = [...(this.#groups.get(group)?.deadLetters.values() ?? [])];
    return letters.slice(0, limit);
  }

  async redeliver(group: string, eventId: string): Promise<void> {
    if (this.#state === 'closed')
      throw new UnavailableError('the event bus is closed; dead letters cannot be redelivered');
    const state = this.#groups.get(group);
    const letter = state?.deadLetters.get(eventId);
    if (!state || !letter) {
      throw new NotFoundError(`group '${group}' has no dead letter for event '${eventId}'`);
    }
    state.deadLetters.delete(eventId);
    state.pending.delete(eventId);
    this.#enqueue(state, letter.event);
  }

  /**
   * Stops taking subscriptions, lets every group with subscribers finish what is queued
   * (retries included), then closes all subscriptions. Events buffered for groups without
   * subscribers are dropped: nothing here outlives the process.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#state = 'draining';
      // Handlers may publish follow-up events while draining, so wait until no group has work left.
      while ([...this.#groups.values()].some((g) => g.running.size > 0)) {
        await Promise.all([...this.#groups.values()].map((g) => this.#idle(g)));
      }
      const closes: Promise<void>[] = [];
      for (const group of this.#groups.values()) {
        for (const subscriber of [...group.subscribers]) {
          subscriber.closing ??= this.#closeSubscriber(group, subscriber);
          closes.push(subscriber.closing);
        }
      }
      await Promise.all(closes);
      this.#state = 'closed';
      this.#groups.clear();
    })();
    return this.#closing;
  }

  #enqueue(group: Group, event: DomainEvent): void {
    if (group.handled.has(event.id) || group.pending.has(event.id)) return;
    group.pending.add(event.id);
    let queue = group.queues.get(event.subject);
    if (!queue) {
      queue = [];
      group.queues.set(event.subject, queue);
    }
    queue.push({ event, attempts: 0 });
    if (!group.running.has(event.subject)) group.waiting.add(event.subject);
    this.#pump(group);
  }

  /** Starts workers for ready subjects up to the group's concurrency. */
  #pump(group: Group): void {
    if (group.subscribers.length === 0) return;
    for (const subject of group.waiting) {
      if (group.running.size >= this.#concurrency) return;
      group.waiting.delete(subject);
      group.running.add(subject);
      void this.#runSubject(group, subject);
    }
  }

  async #runSubject(group: Group, subject: string): Promise<void> {
    // Handlers never run inside the publisher's call stack.
    await Promise.resolve();
    const queue = group.queues.get(subject)!;
    while (queue.length > 0) {
      const outcome = await this.#deliver(group, queue[0]!);
      if (outcome === 'paused') break;
      queue.shift();
    }
    group.running.delete(subject);
    if (queue.length === 0) group.queues.delete(subject);
    else group.waiting.add(subject);
    this.#pump(group);
    if (group.running.size === 0) {
      for (const wake of group.idleWaiters.splice(0)) wake();
    }
  }

  /** Handles one delivery to completion: success, dead letter, or paused while the group has no subscriber. */
  async #deliver(group: Group, delivery: Delivery): Promise<'done' | 'paused'> {
    const { event } = delivery;
    for (;;) {
      if (group.subscribers.length === 0) return 'paused';
      const subscriber = pickSubscriber(group, event);
      if (!subscriber) {
        // No subscriber of this group wants this type: the group is done with it.
        this.#markHandled(group, event.id);
        return 'done';
      }
      delivery.attempts++;
      try {
        await invoke(subscriber, event);
        this.#markHandled(group, event.id);
        return 'done';
      } catch (err) {
        if (delivery.attempts >= subscriber.maxAttempts) {
          group.deadLetters.set(
            event.id,
            Object.freeze({
              group: group.name,
              event,
              attempts: delivery.attempts,
              lastError: err instanceof Error ? err.message : String(err),
              failedAt: new Date().toISOString(),
            }),
          );
          return 'done';
        }
        const { initialMs, maxMs } = subscriber.backoff;
        await sleep(Math.min(maxMs, initialMs * 2 ** (delivery.attempts - 1)));
      }
    }
  }

  #markHandled(group: Group, id: string): void {
    group.pending.delete(id);
    group.handled.set(id, true);
    if (group.handled.size > this.#dedupeWindow) {
      const oldest = group.handled.keys().next();
      if (!oldest.done) group.handled.delete(oldest.value);
    }
  }

  async #closeSubscriber(group: Group, subscriber: Subscriber): Promise<void> {
    const index = group.subscribers.indexOf(subscriber);
    if (index !== -1) group.subscribers.splice(index, 1);
    await Promise.allSettled([...subscriber.inFlight]);
  }

  #idle(group: Group): Promise<void> {
    if (group.running.size === 0) return Promise.resolve();
    return new Promise((resolve) => group.idleWaiters.push(resolve));
  }
}

/** Round-robin over the subscribers whose type filter matches. */
function pickSubscriber(group: Group, event: DomainEvent): Subscriber | undefined {
  const n = group.subscribers.length;
  for (let i = 0; i < n; i++) {
    const candidate = group.subscribers[(group.nextSubscriber + i) % n]!;
    if (matchesEventType(event.type, candidate.types)) {
      group.nextSubscriber = (group.nextSubscriber + i + 1) % n;
      return candidate;
    }
  }
  return undefined;
}

async function invoke(subscriber: Subscriber, event: DomainEvent): Promise<void> {
  const run = Promise.resolve().then(() => subscriber.handler(event));
  subscriber.inFlight.add(run);
  try {
    await run;
  } finally {
    subscriber.inFlight.delete(run);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function positiveInteger(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new ValidationError(`${field} must be a positive integer, got ${value}`, { field });
  }
  return value;
}

function toSubscriber(options: SubscribeOptions): Subscriber {
  return { ...subscriberSettings(options), inFlight: new Set(), closing: undefined };
}
