import {
  type DomainEvent,
  type EventHandler,
  matchesEventType,
  type SubscribeOptions,
  ValidationError,
} from '../../ports/event-bus.js';
import { isTypeFilter } from './event-codec.js';

const DEFAULT_MAX_ATTEMPTS = 5;
const DEFAULT_BACKOFF = Object.freeze({ initialMs: 100, maxMs: 5000 });

/** A validated subscription. */
export interface SubscriberSettings {
  readonly types: readonly string[] | undefined;
  readonly handler: EventHandler;
  readonly maxAttempts: number;
  readonly backoff: { readonly initialMs: number; readonly maxMs: number };
}

/** What became of one event offered to a group's local subscribers. */
export type DeliveryOutcome =
  | { readonly kind: 'handled'; readonly attempts: number }
  /** No subscriber of the group wants this type: the group is done with it. */
  | { readonly kind: 'filtered' }
  | { readonly kind: 'dead'; readonly attempts: number; readonly lastError: string }
  /** The group lost its subscribers or is stopping before the event was handled: leave it unacknowledged. */
  | { readonly kind: 'interrupted' };

interface LocalSubscriber extends SubscriberSettings {
  readonly inFlight: Set<Promise<void>>;
  closing: Promise<void> | undefined;
}

/** Validates subscribe options with the same rules and messages as the in-process bus. */
export function subscriberSettings(options: SubscribeOptions): SubscriberSettings {
  if (typeof options?.group !== 'string' || options.group === '' || options.group.length > 255) {
    throw new ValidationError('subscribe needs a consumer group name of 1 to 255 characters', { field: 'group' });
  }
  if (typeof options.handler !== 'function') {
    throw new ValidationError(`subscribe for group '${options.group}' needs a handler function`, { field: 'handler' });
  }
  for (const filter of options.types ?? []) {
    if (!isTypeFilter(filter)) {
      throw new ValidationError(
        `type filter ${JSON.stringify(filter)} must be an event type like 'run.created' or a prefix like 'model.*'`,
        { field: 'types' },
      );
    }
  }
  const maxAttempts = positiveInteger(options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS, 'maxAttempts');
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  if (
    !Number.isFinite(backoff.initialMs) ||
    !Number.isFinite(backoff.maxMs) ||
    backoff.initialMs < 0 ||
    backoff.maxMs < backoff.initialMs
  ) {
    throw new ValidationError(
      `backoff must have 0 <= initialMs <= maxMs, got ${JSON.stringify({ initialMs: backoff.initialMs, maxMs: backoff.maxMs })}`,
      { field: 'backoff' },
    );
  }
  return {
    types: options.types ? [...options.types] : undefined,
    handler: options.handler,
    maxAttempts,
    backoff: { initialMs: backoff.initialMs, maxMs: backoff.maxMs },
  };
}

/**
 * The subscribers one process has in one consumer group. The broker sees the process as a single
 * group member; events it receives are handed to these subscribers in turn (competing consumers),
 * each to one subscriber whose type filter matches, retried with backoff up to `maxAttempts`.
 */
export class SubscriberSet {
  readonly #subscribers: LocalSubscriber[] = [];
  #next = 0;
  /** Aborted to cut backoff waits short when the last subscriber leaves or the group stops. */
  #wake = new AbortController();

  get size(): number {
    return this.#subscribers.length;
  }

  /** Adds a subscriber; the returned function removes it once its in-flight handler calls finish. */
  add(settings: SubscriberSettings): () => Promise<void> {
    const subscriber: LocalSubscriber = { ...settings, inFlight: new Set(), closing: undefined };
    this.#subscribers.push(subscriber);
    return () => {
      subscriber.closing ??= this.#remove(subscriber);
      return subscriber.closing;
    };
  }

  /** Whether some subscriber's type filter matches `type`. */
  wants(type: string): boolean {
    return this.#subscribers.some((s) => matchesEventType(type, s.types));
  }

  /** Wakes deliveries waiting out a backoff so they notice the group is stopping. */
  interrupt(): void {
    this.#wake.abort();
    this.#wake = new AbortController();
  }

  /**
   * Offers `event` until a subscriber handles it, it is dead, or delivery must stop. `keepAlive`
   * runs between attempts (a Kafka member heartbeats there); `stopping` is polled before each attempt.
   */
  async deliver(
    event: DomainEvent,
    options: { readonly stopping: () => boolean; readonly keepAlive?: () => Promise<void> },
  ): Promise<DeliveryOutcome> {
    let attempts = 0;
    for (;;) {
      if (options.stopping() || this.#subscribers.length === 0) return { kind: 'interrupted' };
      const subscriber = this.#pick(event);
      if (!subscriber) return { kind: 'filtered' };
      attempts++;
      try {
        await invoke(subscriber, event);
        return { kind: 'handled', attempts };
      } catch (err) {
        if (attempts >= subscriber.maxAttempts) {
          return { kind: 'dead', attempts, lastError: err instanceof Error ? err.message : String(err) };
        }
        const { initialMs, maxMs } = subscriber.backoff;
        await sleep(Math.min(maxMs, initialMs * 2 ** (attempts - 1)), this.#wake.signal);
        await options.keepAlive?.();
      }
    }
  }

  /** Round-robin over the subscribers whose type filter matches. */
  #pick(event: DomainEvent): LocalSubscriber | undefined {
    const n = this.#subscribers.length;
    for (let i = 0; i < n; i++) {
      const candidate = this.#subscribers[(this.#next + i) % n]!;
      if (matchesEventType(event.type, candidate.types)) {
        this.#next = (this.#next + i + 1) % n;
        return candidate;
      }
    }
    return undefined;
  }

  async #remove(subscriber: LocalSubscriber): Promise<void> {
    const index = this.#subscribers.indexOf(subscriber);
    if (index !== -1) this.#subscribers.splice(index, 1);
    if (this.#subscribers.length === 0) this.interrupt();
    await Promise.allSettled([...subscriber.inFlight]);
  }
}

/**
 * Ids a group handled recently, oldest first (a Map keeps insertion order, which makes it an LRU).
 * The value records whether the event was handled or given up on.
 */
export class RecentIds {
  readonly #ids = new Map<string, 'handled' | 'dead'>();
  constructor(readonly capacity: number) {}

  get(id: string): 'handled' | 'dead' | undefined {
    return this.#ids.get(id);
  }

  set(id: string, state: 'handled' | 'dead'): void {
    this.#ids.delete(id);
    this.#ids.set(id, state);
    if (this.#ids.size > this.capacity) {
      const oldest = this.#ids.keys().next();
      if (!oldest.done) this.#ids.delete(oldest.value);
    }
  }
}

async function invoke(subscriber: LocalSubscriber, event: DomainEvent): Promise<void> {
  // Handlers never run inside the broker client's call stack.
  const run = Promise.resolve().then(() => subscriber.handler(event));
  subscriber.inFlight.add(run);
  try {
    await run;
  } finally {
    subscriber.inFlight.delete(run);
  }
}

/** Waits `ms`, or less when `signal` aborts; never rejects. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

export function positiveInteger(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new ValidationError(`${field} must be a positive integer, got ${value}`, { field });
  }
  return value;
}
