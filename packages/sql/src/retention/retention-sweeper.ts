import type { Counter, LeaseManager, Logger, MetadataStore, Telemetry } from '@mlplane/core';
import { UnavailableError, ValidationError } from '@mlplane/core';
import type { Kysely } from 'kysely';

/**
 * One kind of row that stops being useful after a while, e.g. outbox events already relayed or webhook delivery
 * records. `purge` deletes at most `limit` rows older than `cutoff` (epoch ms) and returns how many it deleted, so
 * a sweep works in short statements that never hold locks for long.
 */
export interface RetentionRule {
  /** Names the rows in logs and in the `table` label of the purge counter. */
  readonly name: string;
  /** Rows older than this are purged. */
  readonly keepMs: number;
  purge(db: Kysely<any>, cutoff: number, limit: number): Promise<number>;
}

export interface RetentionSweeperOptions {
  readonly store: MetadataStore;
  /** Elects one sweeper among the processes sharing the database. */
  readonly leases: LeaseManager;
  readonly rules: readonly RetentionRule[];
  /** Time between sweeps (default 10 minutes). */
  readonly intervalMs?: number;
  /** Rows per delete statement (default 5,000). */
  readonly batchSize?: number;
  /** Delete statements per rule and sweep (default 200): a backlog is worked off over several sweeps. */
  readonly maxBatchesPerSweep?: number;
  readonly telemetry?: Telemetry;
}

const LEASE = 'retention-sweeper';

/**
 * Purges expired rows on an interval. Only the process holding the `retention-sweeper` lease sweeps; the others
 * find it taken and skip that round. Failures are logged and the next sweep tries again: purging is never urgent.
 */
export class RetentionSweeper {
  readonly #store: MetadataStore;
  readonly #leases: LeaseManager;
  readonly #rules: readonly RetentionRule[];
  readonly #intervalMs: number;
  readonly #batchSize: number;
  readonly #maxBatches: number;
  readonly #logger: Logger | undefined;
  readonly #purged: Counter<'table'> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<unknown> | undefined;
  #stopped = false;

  constructor(options: RetentionSweeperOptions) {
    this.#store = options.store;
    this.#leases = options.leases;
    for (const rule of options.rules) positive(rule.keepMs, `rules.${rule.name}.keepMs`);
    this.#rules = options.rules;
    this.#intervalMs = positive(options.intervalMs ?? 600_000, 'intervalMs');
    this.#batchSize = positive(options.batchSize ?? 5_000, 'batchSize');
    this.#maxBatches = positive(options.maxBatchesPerSweep ?? 200, 'maxBatchesPerSweep');
    this.#logger = options.telemetry?.logger.child({ component: 'retention-sweeper' });
    this.#purged = options.telemetry?.metrics.counter({
      name: 'mlplane_retention_purged_rows_total',
      help: 'Rows deleted by the retention sweeper because they outlived their retention',
      labelNames: ['table'],
    });
  }

  /** Sweeps now and then every `intervalMs`; idempotent. */
  start(): void {
    if (this.#stopped) throw new UnavailableError('the retention sweeper was stopped; create a new one');
    if (this.#timer) return;
    const tick = () => {
      this.#sweeping ??= this.sweepOnce()
        .catch((err: unknown) => this.#logger?.warn({ err }, 'retention sweep failed; the next one retries'))
        .finally(() => {
          this.#sweeping = undefined;
        });
    };
    this.#timer = setInterval(tick, this.#intervalMs);
    this.#timer.unref();
    tick();
  }

  /** Stops the interval and waits for a sweep in progress; idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#sweeping;
  }

  /**
   * One sweep at `now`: rows purged per rule, or undefined when another process holds the lease. Tools and
   * tests may call it directly.
   */
  async sweepOnce(now = Date.now()): Promise<Record<string, number> | undefined> {
    // Long enough for a large backlog; the lease is released at the end anyway.
    const lease = await this.#leases.tryAcquire(LEASE, Math.max(60_000, this.#intervalMs));
    if (!lease) return undefined;
    try {
      const purged: Record<string, number> = {};
      for (const rule of this.#rules) {
        let total = 0;
        for (let batch = 0; batch < this.#maxBatches && !this.#stopped; batch++) {
          const n = await rule.purge(this.#store.db(), now - rule.keepMs, this.#batchSize);
          total += n;
          if (n < this.#batchSize) break;
        }
        purged[rule.name] = total;
        if (total > 0) {
          this.#purged?.inc({ table: rule.name }, total);
          this.#logger?.info({ table: rule.name, rows: total, keepMs: rule.keepMs }, 'purged expired rows');
        }
      }
      return purged;
    } finally {
      await this.#leases.release(lease).catch(() => {});
    }
  }
}

function positive(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new ValidationError(`${field} must be a positive integer, got ${value}`, { field });
  }
  return value;
}
