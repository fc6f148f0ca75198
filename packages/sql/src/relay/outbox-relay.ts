import { setTimeout as delay } from 'node:timers/promises';
import type {
  Counter,
  EventBus,
  Gauge,
  HeldLease,
  LeaseManager,
  Logger,
  MetadataStore,
  Telemetry,
} from '@mlplane/core';
import { UnavailableError, ValidationError } from '@mlplane/core';
import { SqlLeaseManager } from '../leases/sql-lease.js';
import {
  countUnrelayed,
  markRelayed,
  OUTBOX_MIGRATIONS,
  OUTBOX_OWNER,
  type OutboxEntry,
  readOutbox,
} from '../outbox/outbox.js';

export interface OutboxRelayOptions {
  readonly store: MetadataStore;
  readonly bus: EventBus;
  /** Metrics (relayed events, lag, errors) and logs; silent when absent. */
  readonly telemetry?: Telemetry;
  /** Leases that elect the one active relay; a SqlLeaseManager on `store` when absent. */
  readonly leases?: LeaseManager;
  /** Name of the lease (default `outbox-relay`); relays sharing a database must share it. */
  readonly leaseName?: string;
  /** How long a relay that stopped renewing keeps the lease (default 15 s): the longest failover pause. */
  readonly leaseTtlMs?: number;
  /** Outbox rows read and published per batch (default 500). */
  readonly batchSize?: number;
  /** Pause between polls while the outbox is empty and nobody calls `notify()` (default 1 s). */
  readonly pollIntervalMs?: number;
  /** Exponential backoff after a database or bus error, with jitter (default 100 ms doubling up to 10 s). */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
}

export interface OutboxRelayStats {
  /** Events published and marked relayed by this relay. */
  readonly relayed: number;
  /** Events the bus refused as malformed; marked relayed so they cannot block the outbox (logged at error). */
  readonly rejected: number;
  /** Batches that failed with a database or bus error and were retried. */
  readonly errors: number;
  /** Whether this relay holds the lease now. */
  readonly leader: boolean;
}

const DEFAULT_BACKOFF = Object.freeze({ initialMs: 100, maxMs: 10_000 });

/**
 * Publishes the transactional outbox to the EventBus. It reads unrelayed rows in `seq` order, publishes a
 * batch, and marks it relayed only after `publish` resolved, so a crash in between publishes the batch again
 * (at-least-once: consumers drop duplicates by event id). Reading unrelayed rows rather than following a seq
 * cursor also picks up a transaction that committed after one with a higher seq.
 *
 * One relay per database is active: the one holding the lease `leaseName` (a row of the MetadataStore by
 * default, which also elects one relay among processes sharing a SQLite file). The others poll for the lease
 * and take over within `leaseTtlMs` when the active one dies. Database and bus failures are logged, counted
 * and retried with backoff; the relay never gives up.
 */
export class OutboxRelay {
  readonly #store: MetadataStore;
  readonly #bus: EventBus;
  readonly #leases: LeaseManager;
  readonly #leaseName: string;
  readonly #leaseTtlMs: number;
  readonly #batchSize: number;
  readonly #pollMs: number;
  readonly #backoff: { readonly initialMs: number; readonly maxMs: number };
  readonly #logger: Logger | undefined;
  readonly #metrics:
    | {
        readonly relayed: Counter;
        readonly rejected: Counter;
        readonly errors: Counter;
        readonly lag: Gauge;
        readonly pending: Gauge;
        readonly leader: Gauge;
      }
    | undefined;

  #lease: HeldLease | undefined;
  /** Monotonic time until which the lease is surely ours (renewed before it, by the database's TTL). */
  #leaseValidUntil = 0;
  #renewTimer: NodeJS.Timeout | undefined;
  #renewing: Promise<void> | undefined;
  #loop: Promise<void> | undefined;
  #stopping = false;
  #stopped: Promise<void> | undefined;
  /** Set by notify() so a poll that is not sleeping yet runs again at once. */
  #woken = false;
  #sleeper: { readonly controller: AbortController; readonly wakeable: boolean } | undefined;
  #stats = { relayed: 0, rejected: 0, errors: 0 };

  constructor(options: OutboxRelayOptions & { readonly leases: LeaseManager }) {
    this.#store = options.store;
    this.#bus = options.bus;
    this.#leases = options.leases;
    this.#leaseName = options.leaseName ?? 'outbox-relay';
    this.#leaseTtlMs = positiveInteger(options.leaseTtlMs ?? 15_000, 'leaseTtlMs');
    this.#batchSize = positiveInteger(options.batchSize ?? 500, 'batchSize');
    this.#pollMs = positiveInteger(options.pollIntervalMs ?? 1000, 'pollIntervalMs');
    const backoff = options.backoff ?? DEFAULT_BACKOFF;
    if (!(backoff.initialMs > 0 && backoff.maxMs >= backoff.initialMs)) {
      throw new ValidationError('backoff needs 0 < initialMs <= maxMs', { field: 'backoff' });
    }
    this.#backoff = backoff;
    this.#logger = options.telemetry?.logger.child({ component: 'outbox-relay' });
    const metrics = options.telemetry?.metrics;
    this.#metrics = metrics && {
      relayed: metrics.counter({
        name: 'mlplane_outbox_relayed_events_total',
        help: 'Outbox events published to the event bus and marked relayed',
      }),
      rejected: metrics.counter({
        name: 'mlplane_outbox_rejected_events_total',
        help: 'Outbox events the event bus refused as malformed (skipped after logging)',
      }),
      errors: metrics.counter({
        name: 'mlplane_outbox_relay_errors_total',
        help: 'Relay batches that failed on the database or the event bus and were retried',
      }),
      lag: metrics.gauge({
        name: 'mlplane_outbox_lag_seconds',
        help: 'Age of the oldest unrelayed outbox event at the last poll (0 when none)',
      }),
      pending: metrics.gauge({
        name: 'mlplane_outbox_pending_events',
        help: 'Outbox events not yet relayed at the last poll',
      }),
      leader: metrics.gauge({
        name: 'mlplane_outbox_relay_leader',
        help: '1 while this process holds the outbox relay lease',
      }),
    };
  }

  /** Applies the outbox migrations (and the lease table's, for the default lease manager); the relay is not started. */
  static async open(options: OutboxRelayOptions): Promise<OutboxRelay> {
    await options.store.migrate(OUTBOX_OWNER, OUTBOX_MIGRATIONS);
    const leases = options.leases ?? (await SqlLeaseManager.open(options.store));
    return new OutboxRelay({ ...options, leases });
  }

  stats(): OutboxRelayStats {
    return { ...this.#stats, leader: this.#holdsLease() };
  }

  /** Starts relaying in the background; idempotent. */
  start(): void {
    if (this.#stopping) throw new UnavailableError('the outbox relay was stopped; create a new one');
    this.#loop ??= this.#run();
  }

  /** Wakes a sleeping relay at once: call it after committing a transaction that recorded events. */
  notify(): void {
    this.#woken = true;
    if (this.#sleeper?.wakeable) this.#sleeper.controller.abort();
  }

  /** Finishes the batch in flight (publish and mark), releases the lease and stops; idempotent. */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      this.#stopping = true;
      this.#sleeper?.controller.abort();
      await this.#loop;
      clearInterval(this.#renewTimer);
      await this.#renewing;
      const lease = this.#lease;
      this.#lease = undefined;
      this.#metrics?.leader.set(0);
      if (lease) {
        await this.#leases.release(lease).catch((err: unknown) => {
          this.#logger?.warn({ err }, 'could not release the outbox relay lease; it expires by itself');
        });
      }
    })();
    return this.#stopped;
  }

  /**
   * Relays one batch if this relay holds (or can take) the lease; returns how many events it published.
   * The background loop calls it; tests and tools may call it directly on a relay that is not started.
   */
  async relayOnce(): Promise<number> {
    if (!(await this.#ensureLease())) return 0;
    const batch = await readOutbox(this.#store.db(), { unrelayedOnly: true, limit: this.#batchSize });
    if (this.#metrics) {
      this.#metrics.lag.set(batch.length === 0 ? 0 : lagSeconds(batch[0]!));
      // A batch short of full is the whole backlog; only a full one needs counting (cheap on the partial index).
      const pending = batch.length < this.#batchSize ? batch.length : await countUnrelayed(this.#store.db());
      this.#metrics.pending.set(pending);
    }
    if (batch.length === 0) return 0;
    const rejected = await this.#publish(batch);
    await markRelayed(
      this.#store.db(),
      batch.map((e) => e.seq),
    );
    const published = batch.length - rejected;
    this.#stats.relayed += published;
    this.#metrics?.relayed.inc(published);
    return batch.length;
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#stopping) {
      let full = false;
      try {
        this.#woken = false;
        full = (await this.relayOnce()) === this.#batchSize;
        if (failures > 0) this.#logger?.info({ failures }, 'outbox relay recovered');
        failures = 0;
      } catch (err) {
        failures++;
        this.#stats.errors++;
        this.#metrics?.errors.inc();
        const wait = jittered(Math.min(this.#backoff.maxMs, this.#backoff.initialMs * 2 ** (failures - 1)));
        const error =
          err instanceof UnavailableError
            ? err
            : new UnavailableError(`outbox relay batch failed: ${(err as Error)?.message ?? err}`, { cause: err });
        this.#logger?.warn({ err: error, failures, retryInMs: wait }, 'outbox relay failed; retrying');
        await this.#sleep(wait, false);
        continue;
      }
      if (!this.#holdsLease()) {
        // A standby only checks whether the lease came free; its local notify() calls cannot help it.
        await this.#sleep(Math.max(this.#pollMs, Math.floor(this.#leaseTtlMs / 3)), false);
      } else if (!full && !this.#woken && !this.#stopping) {
        await this.#sleep(this.#pollMs, true);
      }
    }
  }

  /** Publishes the batch; when the bus refuses it as malformed, publishes one by one and skips the bad events. */
  async #publish(batch: readonly OutboxEntry[]): Promise<number> {
    try {
      await this.#bus.publish(batch.map((e) => e.event));
      return 0;
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
    }
    let rejected = 0;
    for (const entry of batch) {
      try {
        await this.#bus.publish(entry.event);
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        rejected++;
        this.#stats.rejected++;
        this.#metrics?.rejected.inc();
        this.#logger?.error(
          { err, seq: entry.seq, eventId: entry.event.id, type: entry.event.type },
          'the event bus refused an outbox event as malformed; it is marked relayed and skipped',
        );
      }
    }
    return rejected;
  }

  #holdsLease(): boolean {
    return this.#lease !== undefined && performance.now() < this.#leaseValidUntil;
  }

  async #ensureLease(): Promise<boolean> {
    if (this.#holdsLease()) return true;
    const startedAt = performance.now();
    if (this.#lease) {
      // Renewals failed for a whole TTL (database unreachable): try to keep the same lease before re-acquiring.
      if (await this.#leases.renew(this.#lease, this.#leaseTtlMs)) {
        this.#leaseValidUntil = startedAt + this.#leaseTtlMs;
        return true;
      }
      this.#loseLease('the outbox relay lease was taken over by another relay');
    }
    const lease = await this.#leases.tryAcquire(this.#leaseName, this.#leaseTtlMs);
    if (!lease) return false;
    this.#lease = lease;
    this.#leaseValidUntil = startedAt + this.#leaseTtlMs;
    this.#metrics?.leader.set(1);
    this.#logger?.info({ lease: lease.name, fencingToken: lease.fencingToken }, 'this process now relays the outbox');
    this.#renewTimer ??= setInterval(() => this.#renew(), Math.max(5, Math.floor(this.#leaseTtlMs / 3)));
    this.#renewTimer.unref();
    return true;
  }

  #renew(): void {
    const lease = this.#lease;
    if (!lease || this.#renewing || this.#stopping) return;
    const startedAt = performance.now();
    this.#renewing = this.#leases
      .renew(lease, this.#leaseTtlMs)
      .then(
        (ok) => {
          if (this.#lease !== lease) return;
          if (ok) this.#leaseValidUntil = startedAt + this.#leaseTtlMs;
          else this.#loseLease('the outbox relay lease was taken over by another relay');
        },
        (err: unknown) => this.#logger?.warn({ err }, 'could not renew the outbox relay lease; will retry'),
      )
      .finally(() => {
        this.#renewing = undefined;
      });
  }

  #loseLease(message: string): void {
    this.#lease = undefined;
    this.#leaseValidUntil = 0;
    this.#metrics?.leader.set(0);
    this.#logger?.warn(message);
  }

  /** Sleeps `ms`, or less when stopping or (if `wakeable`) when notify() is called. */
  async #sleep(ms: number, wakeable: boolean): Promise<void> {
    if (this.#stopping) return;
    const sleeper = { controller: new AbortController(), wakeable };
    this.#sleeper = sleeper;
    try {
      await delay(ms, undefined, { signal: sleeper.controller.signal });
    } catch {
      // Woken by notify() or stop().
    } finally {
      if (this.#sleeper === sleeper) this.#sleeper = undefined;
    }
  }
}

function lagSeconds(entry: OutboxEntry): number {
  const at = Date.parse(entry.event.occurredAt);
  return Number.isNaN(at) ? 0 : Math.max(0, (Date.now() - at) / 1000);
}

/** Full jitter between half and all of the delay, so relays failing together do not retry together. */
function jittered(ms: number): number {
  return Math.round(ms / 2 + Math.random() * (ms / 2));
}

function positiveInteger(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new ValidationError(`${field} must be a positive integer, got ${value}`, { field });
  }
  return value;
}
