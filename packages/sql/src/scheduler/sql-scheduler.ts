import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import {
  type ComputeBackend,
  type ComputeBackendCapabilities,
  ConflictError,
  currentActor,
  decodePageToken,
  encodePageToken,
  type JobPhase,
  type JobSpec,
  type JobStatus,
  LIST_JOBS_PAGE,
  type ListJobsOptions,
  type Logger,
  type LogOptions,
  type MetadataStore,
  malformedPageToken,
  NotFoundError,
  type Page,
  type ReplicaStatus,
  resolveMaxResults,
  ValidationError,
  validateJobSpec,
  type WatchJobsTarget,
  type WatchOptions,
} from '@mlplane/core';
import { Cron } from 'croner';
import { type Kysely, type RawBuilder, type Selectable, sql, type Transaction } from 'kysely';
import { type SqlDialect, sqlDialect } from '../dialect/dialect.js';
import { type PreparedQuery, prepareQuery } from '../dialect/prepared.js';
import { domainEvent, OUTBOX_MIGRATIONS, OUTBOX_OWNER, recordEvent } from '../outbox/outbox.js';
import { type Candidate, dominantShare, emptyUsage, type ProjectUsage, pickAdmissions } from './admission.js';
import {
  checkQueues,
  DEFAULT_PRIORITY_CLASSES,
  type JobDemand,
  jobDemand,
  neverFits,
  type ProjectQuota,
  type QueueConfig,
  type ResolvedQuota,
  resolveQuota,
} from './config.js';
import {
  SCHEDULER_MIGRATIONS,
  SCHEDULER_OWNER,
  type SchedulerDatabase,
  type SchedulerJobTable,
  type StoredPhase,
} from './schema.js';

export interface SqlSchedulerOptions {
  /** At least one; a spec without `queue` goes to `defaultQueue` (default the first). */
  readonly queues: readonly QueueConfig[];
  readonly defaultQueue?: string;
  /** Priority class name -> value, higher first; default DEFAULT_PRIORITY_CLASSES (low -100, normal 0, high 100). */
  readonly priorityClasses?: Readonly<Record<string, number>>;
  /** Class of jobs whose spec and queue name none; default `normal`. */
  readonly defaultPriority?: string;
  /** Quota per project; projects not listed get `defaultQuota`, or no limit when it is absent. */
  readonly quotas?: Readonly<Record<string, ProjectQuota>>;
  readonly defaultQuota?: ProjectQuota;
  /** Name of this replica in its lease row and logs; default a random id. */
  readonly replica?: string;
  /** How long a replica's lease lasts without a heartbeat (default 15 s); its jobs are taken over after that. */
  readonly leaseTtlMs?: number;
  /** Default a third of the lease. */
  readonly heartbeatIntervalMs?: number;
  /** Pause between dispatch rounds that found nothing to do (default 200 ms); a local submit wakes it earlier. */
  readonly pollIntervalMs?: number;
  /** How often the replica asks the backend about the jobs it dispatched (default 1 s). */
  readonly followIntervalMs?: number;
  /** Jobs admitted per round at most (default 256). */
  readonly admitBatch?: number;
  /** Backend calls in flight at once per replica (default 32). */
  readonly backendConcurrency?: number;
  /** Poll interval of `watch` (default 500 ms). */
  readonly watchIntervalMs?: number;
  /** Current time for cron schedules (epoch ms); default Date.now. */
  readonly clock?: () => number;
  readonly logger?: Logger;
}

/** A cron schedule that submits `spec` at each time the expression names. */
export interface ScheduleInput {
  /** Lowercase letters, digits and '-'; unique. Scheduling under an existing name replaces it. */
  readonly name: string;
  /** Five fields (minute first) or six (second first), as croner reads them: `0 3 * * *`, `*\/10 * * * * *`. */
  readonly cron: string;
  /** IANA zone the expression is read in (`Europe/Paris`); default UTC. */
  readonly timezone?: string;
  readonly spec: JobSpec;
}

export interface Schedule extends ScheduleInput {
  readonly nextFireAt: Date;
  readonly lastFiredAt?: Date;
  readonly lastJobId?: string;
}

export interface ResourceUse {
  readonly cpu: number;
  readonly memoryBytes: number;
  readonly gpus: number;
  readonly gpuTypes: Readonly<Record<string, number>>;
  readonly running: number;
}

/** What `queueState` returns: the counts per queue and each project's use against its quota. */
export interface QueueState {
  readonly queues: readonly {
    readonly name: string;
    readonly maxRunning?: number;
    readonly queued: number;
    readonly admitted: number;
    readonly running: number;
  }[];
  readonly projects: readonly {
    readonly project: string;
    readonly queued: number;
    /** Held by Admitted and Running jobs. */
    readonly use: ResourceUse;
    readonly quota?: ProjectQuota;
    /** Weighted dominant share fair share orders projects by (smaller goes first). */
    readonly share: number;
  }[];
}

/** What one dispatch round did; `runOnce` returns it. */
export interface RoundStats {
  readonly takenOver: number;
  readonly cronFired: number;
  readonly admitted: number;
  readonly dispatched: number;
  readonly finished: number;
  /** Writes refused because another replica holds the job now (this one lost its lease). */
  readonly fenced: number;
}

interface PreparedJob {
  readonly id: string;
  readonly spec: JobSpec;
  /** The spec as stored: JSON (compared by canonicalJson when an idempotency key repeats). */
  readonly specText: string;
  /** Who submitted it (`actingAs`), for its `job.queued` event. */
  readonly actor: string | undefined;
  readonly queue: string;
  readonly priorityClass: string;
  readonly priority: number;
  readonly demand: JobDemand;
  readonly submittedAt: number;
}

type JobRow = Selectable<SchedulerJobTable>;

const ACTIVE: StoredPhase[] = ['Admitted', 'Running'];
const TERMINAL: StoredPhase[] = ['Succeeded', 'Failed', 'Cancelled'];
/** Rows per INSERT statement: under both databases' limits on bound parameters. */
const INSERT_CHUNK = 1000;
/** Jobs per PostgreSQL insert statement (arrays have no parameter limit; this bounds one statement's size). */
const INSERT_STATEMENT_MAX = 5000;
/** Concurrent insert transactions that group-commit single submits. */
const SUBMIT_TRANSACTIONS = 2;
const SUBMIT_BATCH = 1000;
/** Jobs followed per backend read burst and per recorded statement. */
const FOLLOW_CHUNK = 64;
/** Annotations a cron schedule puts on the jobs it submits. */
export const SCHEDULE_ANNOTATIONS = Object.freeze({
  schedule: 'mlplane.io/schedule',
  scheduledFor: 'mlplane.io/scheduled-for',
});

/** JSON with object keys sorted, so that equal specs compare equal as text. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

const ms = (v: number | string | null) => (v === null ? undefined : new Date(Number(v)));

function storedPhase(phase: JobPhase): StoredPhase {
  // The backend's own waiting phases are Admitted for the scheduler: the job holds its quota from admission on.
  return phase === 'Pending' || phase === 'Queued' ? 'Admitted' : phase;
}

const PHASE_ORDER: Record<StoredPhase, number> = {
  Queued: 0,
  Admitted: 1,
  Running: 2,
  Succeeded: 3,
  Failed: 3,
  Cancelled: 3,
};

/**
 * The durable scheduler: a ComputeBackend that wraps another. `submit` validates the spec against the wrapped
 * backend's capabilities and this scheduler's queues, priority classes and quotas, stores the job in the
 * MetadataStore as Queued (with a `job.queued` event in the same transaction) and returns; dispatch rounds admit
 * queued jobs by priority and fair share within each project's quota and each queue's limit (Admitted), hand them
 * to the wrapped backend and follow its status (`job.started`, `job.finished`).
 *
 * Any number of replicas may run against one PostgreSQL database: admission locks project rows with
 * `FOR UPDATE SKIP LOCKED`, so replicas admit different projects at once and never the same job twice; each replica
 * holds a lease (a row with a fencing token) renewed by heartbeats; when it expires another replica takes its jobs
 * over, and every write of a replica about a job names its fencing token, so a replica that lost its lease cannot
 * change them any more. On SQLite the same code runs in one process.
 *
 * Handing a job to the backend uses the idempotency key `scheduler-<job id>`, so a replica that takes over a job
 * whose previous owner died mid-handoff submits it again and gets the same backend job, never a second one.
 */
export class SqlScheduler implements ComputeBackend {
  readonly capabilities: ComputeBackendCapabilities;
  readonly #store: MetadataStore;
  readonly #backend: ComputeBackend;
  readonly #dialect: SqlDialect;
  readonly #now: RawBuilder<number>;
  readonly #queues: ReadonlyMap<string, QueueConfig>;
  readonly #defaultQueue: string;
  readonly #priorities: Readonly<Record<string, number>>;
  readonly #defaultPriority: string;
  readonly #quotas: ReadonlyMap<string, ResolvedQuota>;
  readonly #defaultQuota: ResolvedQuota | undefined;
  readonly #options: SqlSchedulerOptions;
  readonly #replica: string;
  readonly #ttl: number;
  readonly #heartbeatMs: number;
  readonly #pollMs: number;
  readonly #followMs: number;
  readonly #batch: number;
  readonly #concurrency: number;
  readonly #clock: () => number;
  readonly #logger: Logger | undefined;
  #lease: { token: number; renewedAt: number } | undefined;
  #lastFollow = 0;
  #lastStrandedCheck = 0;
  #running = false;
  #loop: Promise<void> | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;
  #knownLocks = new Set<string>();
  #pending: { job: PreparedJob; resolve: (s: JobStatus) => void; reject: (e: unknown) => void }[] = [];
  #inFlight = 0;
  #insertStatement: PreparedQuery | undefined;
  #updateStatement: PreparedQuery | undefined;

  private constructor(store: MetadataStore, backend: ComputeBackend, options: SqlSchedulerOptions) {
    this.#store = store;
    this.#backend = backend;
    this.#options = options;
    this.#dialect = sqlDialect(store.dialect);
    this.#now =
      store.dialect === 'postgres'
        ? sql<number>`(extract(epoch from clock_timestamp()) * 1000)::bigint`
        : sql<number>`CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)`;
    this.#priorities = options.priorityClasses ?? DEFAULT_PRIORITY_CLASSES;
    for (const [name, value] of Object.entries(this.#priorities)) {
      if (!Number.isInteger(value)) {
        throw new ValidationError(`priority class '${name}' must be an integer`, { field: `priorityClasses.${name}` });
      }
    }
    this.#defaultPriority = options.defaultPriority ?? 'normal';
    if (!(this.#defaultPriority in this.#priorities)) {
      throw new ValidationError(`default priority class '${this.#defaultPriority}' is not configured`, {
        field: 'defaultPriority',
      });
    }
    checkQueues(options.queues, this.#priorities);
    this.#queues = new Map(options.queues.map((q) => [q.name, q]));
    this.#defaultQueue = options.defaultQueue ?? options.queues[0]!.name;
    if (!this.#queues.has(this.#defaultQueue)) {
      throw new ValidationError(`default queue '${this.#defaultQueue}' is not one of the queues`, {
        field: 'defaultQueue',
      });
    }
    this.#quotas = new Map(
      Object.entries(options.quotas ?? {}).map(([p, q]) => [p, resolveQuota(q, `quotas.${p}`)] as const),
    );
    this.#defaultQuota = options.defaultQuota ? resolveQuota(options.defaultQuota, 'defaultQuota') : undefined;
    this.#replica = options.replica ?? randomUUID();
    this.#ttl = options.leaseTtlMs ?? 15_000;
    this.#heartbeatMs = options.heartbeatIntervalMs ?? Math.floor(this.#ttl / 3);
    if (this.#heartbeatMs >= this.#ttl) {
      throw new ValidationError('heartbeatIntervalMs must be shorter than leaseTtlMs', {
        field: 'heartbeatIntervalMs',
      });
    }
    this.#pollMs = options.pollIntervalMs ?? 200;
    this.#followMs = options.followIntervalMs ?? 1_000;
    this.#batch = options.admitBatch ?? 256;
    this.#concurrency = options.backendConcurrency ?? 32;
    this.#clock = options.clock ?? Date.now;
    this.#logger = options.logger;
    const inner = backend.capabilities;
    this.capabilities = Object.freeze({
      ...inner,
      scheduler: `mlplane-scheduler/${inner.scheduler}`,
      queues: true,
      priorities: true,
      // Its statuses never go back to Queued (a backend's preemption keeps the job Running here) ...
      preemption: false,
      // ... and stay in the MetadataStore after the backend removed what ran the job.
      statusAfterTtl: true,
    });
  }

  /** Applies the outbox's and the scheduler's migrations, then returns a scheduler that does not dispatch yet. */
  static async open(
    store: MetadataStore,
    backend: ComputeBackend,
    options: SqlSchedulerOptions,
  ): Promise<SqlScheduler> {
    const scheduler = new SqlScheduler(store, backend, options);
    await store.migrate(OUTBOX_OWNER, OUTBOX_MIGRATIONS);
    await store.migrate(SCHEDULER_OWNER, SCHEDULER_MIGRATIONS);
    return scheduler;
  }

  get #db(): Kysely<SchedulerDatabase> {
    return this.#store.db<SchedulerDatabase>();
  }

  /** This replica's current fencing token; undefined before its first round or after it lost its lease. */
  get fencingToken(): number | undefined {
    return this.#lease?.token;
  }

  // ---------------------------------------------------------------- submitting

  #quotaOf(project: string): ResolvedQuota | undefined {
    return this.#quotas.get(project) ?? this.#defaultQuota;
  }

  #prepare(spec: JobSpec): PreparedJob {
    validateJobSpec(spec, this.capabilities);
    const queue = spec.queue ?? this.#defaultQueue;
    const queueConfig = this.#queues.get(queue);
    if (!queueConfig) {
      throw new ValidationError(`queue '${queue}' does not exist (queues: ${[...this.#queues.keys()].join(', ')})`, {
        field: 'queue',
      });
    }
    const priorityClass = spec.priority ?? queueConfig.defaultPriority ?? this.#defaultPriority;
    const priority = this.#priorities[priorityClass];
    if (priority === undefined || !Object.hasOwn(this.#priorities, priorityClass)) {
      throw new ValidationError(
        `priority class '${priorityClass}' does not exist (classes: ${Object.keys(this.#priorities).join(', ')})`,
        { field: 'priority' },
      );
    }
    const demand = jobDemand(spec);
    const why = neverFits(demand, this.#quotaOf(spec.project));
    if (why) {
      throw new ValidationError(`job '${spec.name}' could never be admitted in project '${spec.project}': ${why}`, {
        field: 'replicaGroups',
      });
    }
    return {
      id: randomUUID(),
      spec,
      specText: JSON.stringify(spec),
      actor: currentActor()?.actor,
      queue,
      priorityClass,
      priority,
      demand,
      submittedAt: Date.now(),
    };
  }

  /**
   * Stores the job as Queued and returns at once; dispatch rounds admit it later. Concurrent calls share insert
   * transactions (group commit): each resolves once the transaction holding its job committed. ValidationError
   * (with `field`) for a spec the wrapped backend cannot run, an unknown `queue` or `priority`, or a job larger
   * than its project's quota; with an `idempotencyKey` already used in the project, the existing job's status
   * (ConflictError when that job's spec differs).
   */
  async submit(spec: JobSpec): Promise<JobStatus> {
    const job = this.#prepare(spec);
    return new Promise<JobStatus>((resolve, reject) => {
      this.#pending.push({ job, resolve, reject });
      this.#flushSubmits();
    });
  }

  /**
   * Stores many jobs in one transaction; the statuses come back in the specs' order. Every spec is validated before
   * anything is stored: ValidationError names the spec's index in its message and the field in `field`.
   */
  async submitMany(specs: readonly JobSpec[]): Promise<JobStatus[]> {
    const jobs = specs.map((spec, i) => {
      try {
        return this.#prepare(spec);
      } catch (err) {
        if (err instanceof ValidationError) {
          throw new ValidationError(`spec ${i}: ${err.message}`, { field: err.field ?? 'spec', cause: err });
        }
        throw err;
      }
    });
    const results = await this.#insertJobs(undefined, jobs);
    this.#wakeDispatch();
    const error = results.find((r) => r instanceof Error);
    if (error) throw error;
    return results as JobStatus[];
  }

  #flushSubmits(): void {
    while (this.#inFlight < SUBMIT_TRANSACTIONS && this.#pending.length > 0) {
      const batch = this.#pending.splice(0, SUBMIT_BATCH);
      this.#inFlight++;
      this.#insertJobs(
        undefined,
        batch.map((b) => b.job),
      )
        .then(
          (results) => {
            for (const [i, r] of results.entries()) {
              if (r instanceof Error) batch[i]!.reject(r);
              else batch[i]!.resolve(r);
            }
          },
          (err) => {
            for (const b of batch) b.reject(err);
          },
        )
        .finally(() => {
          this.#inFlight--;
          this.#wakeDispatch();
          this.#flushSubmits();
        });
    }
  }

  #queuedEvent(j: PreparedJob) {
    return domainEvent(
      'job.queued',
      `job:${j.id}`,
      {
        jobId: j.id,
        name: j.spec.name,
        queue: j.queue,
        priority: j.priorityClass,
        cpu: j.demand.cpuMilli / 1000,
        memoryBytes: j.demand.memoryBytes,
        gpus: j.demand.gpus,
        ...(j.demand.gpuType ? { gpuType: j.demand.gpuType } : {}),
      },
      // The submitter's, captured at submit: a shared insert runs in whichever caller's context started it.
      { project: j.spec.project, ...(j.actor !== undefined ? { actor: j.actor } : {}) },
    );
  }

  /**
   * PostgreSQL: the jobs and their `job.queued` events in one statement (atomic on its own, one round trip): every
   * column bound as one array and unnested, the events inserted only for the jobs that were (an idempotency key
   * already used inserts neither). Returns the ids inserted.
   */
  async #insertPostgres(db: Kysely<any>, jobs: readonly PreparedJob[]): Promise<Set<string>> {
    const ids = jobs.map((j) => j.id);
    const params: unknown[] = [
      ids,
      jobs.map((j) => j.spec.name),
      jobs.map((j) => j.spec.project),
      jobs.map((j) => j.queue),
      jobs.map((j) => j.priorityClass),
      jobs.map((j) => j.priority),
      jobs.map((j) => j.spec.runId ?? null),
      jobs.map((j) => j.spec.idempotencyKey ?? null),
      jobs.map((j) => j.specText),
      jobs.map((j) => JSON.stringify(j.spec.labels ?? {})),
      jobs.map((j) => j.demand.cpuMilli),
      jobs.map((j) => j.demand.memoryBytes),
      jobs.map((j) => j.demand.gpus),
      jobs.map((j) => j.demand.gpuType ?? null),
      jobs.map((j) => j.submittedAt),
      ids,
      jobs.map((j) => j.actor ?? null),
    ];
    this.#insertStatement ??= prepareQuery('scheduler.insertJobs', insertJobsSql(params).compile(db), params);
    const result = await db.executeQuery<{ id: string }>(this.#insertStatement.bind(params));
    return new Set(result.rows.map((r) => r.id));
  }

  /** SQLite: multi-row inserts in the caller's transaction. Returns the ids inserted. */
  async #insertSqlite(trx: Transaction<any>, jobs: readonly PreparedJob[]): Promise<Set<string>> {
    const db = trx as Transaction<SchedulerDatabase>;
    const inserted = new Set<string>();
    for (let i = 0; i < jobs.length; i += INSERT_CHUNK) {
      const chunk = jobs.slice(i, i + INSERT_CHUNK);
      const rows = await db
        .insertInto('scheduler_jobs')
        .values(
          chunk.map((j) => ({
            id: j.id,
            name: j.spec.name,
            project: j.spec.project,
            queue: j.queue,
            priority_class: j.priorityClass,
            priority: j.priority,
            run_id: j.spec.runId ?? null,
            idempotency_key: j.spec.idempotencyKey ?? null,
            spec: j.specText,
            labels: JSON.stringify(j.spec.labels ?? {}),
            cpu_milli: j.demand.cpuMilli,
            memory_bytes: j.demand.memoryBytes,
            gpus: j.demand.gpus,
            gpu_type: j.demand.gpuType ?? null,
            phase: 'Queued' as const,
            submitted_at: j.submittedAt,
          })),
        )
        .onConflict((oc) => oc.doNothing())
        .returning('id')
        .execute();
      for (const r of rows) inserted.add(r.id);
    }
    const events = jobs.filter((j) => inserted.has(j.id)).map((j) => this.#queuedEvent(j));
    for (let i = 0; i < events.length; i += INSERT_CHUNK) await recordEvent(trx, events.slice(i, i + INSERT_CHUNK));
    return inserted;
  }

  /**
   * Inserts the jobs with their `job.queued` events, in `trx` when given (a cron firing), else atomically on their
   * own; an idempotency key already used yields that job (or a ConflictError).
   */
  async #insertJobs(trx: Transaction<any> | undefined, jobs: readonly PreparedJob[]): Promise<(JobStatus | Error)[]> {
    let inserted: Set<string>;
    if (this.#store.dialect === 'postgres' && (trx !== undefined || jobs.length <= INSERT_STATEMENT_MAX)) {
      inserted = await this.#insertPostgres(trx ?? this.#store.db(), jobs);
    } else if (this.#store.dialect === 'postgres') {
      inserted = await this.#store.transaction(async (t) => {
        const ids = new Set<string>();
        for (let i = 0; i < jobs.length; i += INSERT_STATEMENT_MAX) {
          for (const id of await this.#insertPostgres(t, jobs.slice(i, i + INSERT_STATEMENT_MAX))) ids.add(id);
        }
        return ids;
      });
    } else if (trx !== undefined) {
      inserted = await this.#insertSqlite(trx, jobs);
    } else {
      inserted = await this.#store.transaction((t) => this.#insertSqlite(t, jobs));
    }
    const db = (trx ?? this.#store.db()) as Kysely<SchedulerDatabase>;
    const results: (JobStatus | Error)[] = [];
    for (const j of jobs) {
      if (inserted.has(j.id)) {
        results.push(this.#queuedStatus(j));
        continue;
      }
      const key = j.spec.idempotencyKey;
      const existing =
        key === undefined
          ? undefined
          : await db
              .selectFrom('scheduler_jobs')
              .selectAll()
              .where('project', '=', j.spec.project)
              .where('idempotency_key', '=', key)
              .executeTakeFirst();
      if (!existing) {
        results.push(new ConflictError(`job id ${j.id} collided; submit again`));
      } else if (canonicalJson(JSON.parse(existing.spec)) !== canonicalJson(j.spec)) {
        results.push(
          new ConflictError(
            `idempotency key '${key}' was used in project '${j.spec.project}' for job ${existing.id} with another spec`,
          ),
        );
      } else {
        results.push(this.#toStatus(existing));
      }
    }
    return results;
  }

  #queuedStatus(j: PreparedJob): JobStatus {
    return {
      id: j.id,
      name: j.spec.name,
      project: j.spec.project,
      ...(j.spec.runId !== undefined ? { runId: j.spec.runId } : {}),
      phase: 'Queued',
      retriesUsed: 0,
      queue: j.queue,
      priority: j.priorityClass,
      labels: j.spec.labels ?? {},
      submittedAt: new Date(j.submittedAt),
      replicas: pendingReplicas(j.spec),
    };
  }

  #toStatus(r: JobRow): JobStatus {
    const replicas: ReplicaStatus[] =
      r.replicas !== null
        ? (JSON.parse(r.replicas) as ReplicaStatus[]).map(reviveReplica)
        : pendingReplicas(JSON.parse(r.spec) as JobSpec);
    return {
      id: r.id,
      name: r.name,
      project: r.project,
      ...(r.run_id !== null ? { runId: r.run_id } : {}),
      phase: r.phase,
      retriesUsed: Number(r.retries_used),
      queue: r.queue,
      priority: r.priority_class,
      labels: JSON.parse(r.labels) as Record<string, string>,
      submittedAt: new Date(Number(r.submitted_at)),
      ...(r.admitted_at !== null ? { admittedAt: ms(r.admitted_at)! } : {}),
      ...(r.started_at !== null ? { startedAt: ms(r.started_at)! } : {}),
      ...(r.finished_at !== null ? { finishedAt: ms(r.finished_at)! } : {}),
      ...(r.reason !== null ? { reason: r.reason } : {}),
      ...(r.message !== null ? { message: r.message } : {}),
      replicas,
    };
  }

  // ---------------------------------------------------------------- reading

  async get(id: string): Promise<JobStatus> {
    const row = await this.#row(id);
    return this.#toStatus(row);
  }

  async #row(id: string): Promise<JobRow> {
    const row = await this.#db.selectFrom('scheduler_jobs').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new NotFoundError(`job ${id} does not exist`);
    return row;
  }

  async list(options: ListJobsOptions = {}): Promise<Page<JobStatus>> {
    const limit = resolveMaxResults(options.maxResults, LIST_JOBS_PAGE);
    let before = Number.MAX_SAFE_INTEGER;
    if (options.pageToken !== undefined) {
      const state = decodePageToken<{ seq?: unknown } | null>(options.pageToken);
      if (typeof state?.seq !== 'number') throw malformedPageToken();
      before = state.seq;
    }
    const labels = Object.entries(options.labels ?? {});
    const phases = options.phases?.filter((p) => p !== 'Pending') as StoredPhase[] | undefined;
    if (phases !== undefined && phases.length === 0) return { items: [] };
    const items: JobStatus[] = [];
    let cursor = before;
    // Labels are matched here, so a page may need more than one read; the token is the last row examined.
    for (;;) {
      let q = this.#db
        .selectFrom('scheduler_jobs')
        .selectAll()
        .where('seq', '<', cursor)
        .orderBy('seq', 'desc')
        .limit(limit + 1);
      if (options.project !== undefined) q = q.where('project', '=', options.project);
      if (options.runId !== undefined) q = q.where('run_id', '=', options.runId);
      if (phases !== undefined) q = q.where('phase', 'in', phases);
      const rows = await q.execute();
      for (const row of rows) {
        if (items.length === limit) return { items, nextPageToken: encodePageToken({ seq: cursor }) };
        cursor = Number(row.seq);
        const rowLabels = JSON.parse(row.labels) as Record<string, string>;
        if (labels.every(([k, v]) => rowLabels[k] === v)) items.push(this.#toStatus(row));
      }
      if (rows.length < limit + 1) return { items };
    }
  }

  async *watch(target: WatchJobsTarget, options: WatchOptions = {}): AsyncIterable<JobStatus> {
    const signal = options.signal;
    const interval = this.#options.watchIntervalMs ?? 500;
    const seen = new Map<string, number>();
    const sleep = async () => {
      try {
        await delay(interval, undefined, signal ? { signal } : {});
      } catch {
        // Aborted: the loop below ends.
      }
    };
    if ('id' in target) {
      await this.#row(target.id);
      while (!signal?.aborted) {
        const row = await this.#row(target.id);
        if (seen.get(row.id) !== Number(row.version)) {
          seen.set(row.id, Number(row.version));
          yield this.#toStatus(row);
          if (TERMINAL.includes(row.phase)) return;
        }
        await sleep();
      }
      return;
    }
    const filter = target as Omit<ListJobsOptions, 'maxResults' | 'pageToken'>;
    const labels = Object.entries(filter.labels ?? {});
    while (!signal?.aborted) {
      let q = this.#db.selectFrom('scheduler_jobs').selectAll().orderBy('seq');
      if (filter.project !== undefined) q = q.where('project', '=', filter.project);
      if (filter.runId !== undefined) q = q.where('run_id', '=', filter.runId);
      if (filter.phases !== undefined) {
        const phases = filter.phases.filter((p) => p !== 'Pending');
        if (phases.length === 0) return;
        q = q.where('phase', 'in', phases as StoredPhase[]);
      }
      for (const row of await q.execute()) {
        if (seen.get(row.id) === Number(row.version)) continue;
        const rowLabels = JSON.parse(row.labels) as Record<string, string>;
        if (!labels.every(([k, v]) => rowLabels[k] === v)) continue;
        seen.set(row.id, Number(row.version));
        yield this.#toStatus(row);
      }
      await sleep();
    }
  }

  /** The wrapped backend's logs once the job was handed to it; a job still queued has none yet (or waits, with `follow`). */
  async *logs(id: string, options: LogOptions = {}): AsyncIterable<string> {
    let row = await this.#row(id);
    while (row.backend_id === null) {
      if (!options.follow || TERMINAL.includes(row.phase) || options.signal?.aborted) return;
      await delay(this.#options.watchIntervalMs ?? 500);
      row = await this.#row(id);
    }
    yield* this.#backend.logs(row.backend_id, options);
  }

  /**
   * Cancels a queued job at once; a dispatched one through the wrapped backend, then here. Idempotent, a no-op on a
   * finished job. Not fenced: it is a user's decision, which wins over whatever replica follows the job.
   */
  async cancel(id: string, options: { readonly reason?: string } = {}): Promise<JobStatus> {
    const message = options.reason ?? 'cancelled by request';
    for (;;) {
      const row = await this.#row(id);
      if (TERMINAL.includes(row.phase)) return this.#toStatus(row);
      if (row.backend_id !== null) await this.#backend.cancel(row.backend_id, { reason: message });
      const done = await this.#store.transaction(async (trx) => {
        const db = trx as Transaction<SchedulerDatabase>;
        const updated = await db
          .updateTable('scheduler_jobs')
          .set({
            phase: 'Cancelled',
            reason: 'Cancelled',
            message,
            finished_at: Date.now(),
            version: sql`version + 1`,
          })
          .where('id', '=', id)
          .where('phase', '=', row.phase)
          .where('version', '=', row.version)
          .returningAll()
          .executeTakeFirst();
        if (!updated) return undefined;
        await recordEvent(trx, this.#finishedEvent(updated));
        return updated;
      });
      if (done) return this.#toStatus(done);
    }
  }

  /** Jobs per queue and phase, and each project's use against its quota. */
  async queueState(): Promise<QueueState> {
    const rows = await this.#db
      .selectFrom('scheduler_jobs')
      .select((eb) => [
        'project',
        'queue',
        'phase',
        'gpu_type',
        eb.fn.countAll<number>().as('jobs'),
        eb.fn.sum<number>('cpu_milli').as('cpu_milli'),
        eb.fn.sum<number>('memory_bytes').as('memory_bytes'),
        eb.fn.sum<number>('gpus').as('gpus'),
      ])
      .where('phase', 'in', ['Queued', 'Admitted', 'Running'])
      .groupBy(['project', 'queue', 'phase', 'gpu_type'])
      .execute();
    const queues = new Map(
      [...this.#queues.values()].map((q) => [
        q.name,
        {
          name: q.name,
          ...(q.maxRunning !== undefined ? { maxRunning: q.maxRunning } : {}),
          queued: 0,
          admitted: 0,
          running: 0,
        },
      ]),
    );
    const projects = new Map<string, { queued: number; use: ProjectUsage }>();
    for (const r of rows) {
      const jobs = Number(r.jobs);
      const q = queues.get(r.queue) ?? { name: r.queue, queued: 0, admitted: 0, running: 0 };
      queues.set(r.queue, q);
      const p = projects.get(r.project) ?? { queued: 0, use: emptyUsage() };
      projects.set(r.project, p);
      if (r.phase === 'Queued') {
        q.queued += jobs;
        p.queued += jobs;
        continue;
      }
      if (r.phase === 'Admitted') q.admitted += jobs;
      else q.running += jobs;
      addUsage(p.use, r);
    }
    return {
      queues: [...queues.values()],
      projects: [...projects.entries()]
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([project, p]) => {
          const quota = this.#options.quotas?.[project] ?? this.#options.defaultQuota;
          return {
            project,
            queued: p.queued,
            use: {
              cpu: p.use.cpuMilli / 1000,
              memoryBytes: p.use.memoryBytes,
              gpus: p.use.gpus,
              gpuTypes: Object.fromEntries(p.use.gpuTypes),
              running: p.use.running,
            },
            ...(quota ? { quota } : {}),
            share: dominantShare(p.use, this.#quotaOf(project)),
          };
        }),
    };
  }

  // ---------------------------------------------------------------- cron schedules

  /** Creates or replaces a schedule; its first run is the expression's next time after now. */
  async schedule(input: ScheduleInput): Promise<Schedule> {
    if (
      typeof input?.name !== 'string' ||
      input.name.length > 63 ||
      !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(input.name)
    ) {
      throw new ValidationError(`schedule name '${String(input?.name)}' must be a DNS-1123 label`, { field: 'name' });
    }
    const next = this.#nextFire(input.cron, input.timezone, this.#clock());
    try {
      this.#prepare(input.spec);
    } catch (err) {
      if (err instanceof ValidationError) {
        throw new ValidationError(`schedule '${input.name}': ${err.message}`, {
          field: `spec.${err.field ?? ''}`.replace(/\.$/, ''),
          cause: err,
        });
      }
      throw err;
    }
    const row = {
      name: input.name,
      cron: input.cron,
      timezone: input.timezone ?? null,
      spec: canonicalJson(input.spec),
      next_fire_at: next,
      last_fired_at: null,
      last_job_id: null,
      created_at: Date.now(),
    };
    await this.#db
      .insertInto('scheduler_schedules')
      .values(row)
      .onConflict((oc) =>
        oc.column('name').doUpdateSet({
          cron: row.cron,
          timezone: row.timezone,
          spec: row.spec,
          next_fire_at: row.next_fire_at,
        }),
      )
      .execute();
    return { ...input, nextFireAt: new Date(next) };
  }

  /** Removes a schedule; jobs it submitted stay. NotFoundError for an unknown name. */
  async unschedule(name: string): Promise<void> {
    const result = await this.#db.deleteFrom('scheduler_schedules').where('name', '=', name).executeTakeFirst();
    if (Number(result.numDeletedRows) === 0) throw new NotFoundError(`schedule '${name}' does not exist`);
  }

  async listSchedules(): Promise<Schedule[]> {
    const rows = await this.#db.selectFrom('scheduler_schedules').selectAll().orderBy('name').execute();
    return rows.map((r) => ({
      name: r.name,
      cron: r.cron,
      ...(r.timezone !== null ? { timezone: r.timezone } : {}),
      spec: JSON.parse(r.spec) as JobSpec,
      nextFireAt: new Date(Number(r.next_fire_at)),
      ...(r.last_fired_at !== null ? { lastFiredAt: ms(r.last_fired_at)! } : {}),
      ...(r.last_job_id !== null ? { lastJobId: r.last_job_id } : {}),
    }));
  }

  #nextFire(cron: string, timezone: string | undefined, after: number): number {
    let next: Date | null;
    try {
      next = new Cron(cron, { paused: true, timezone: timezone ?? 'UTC' }).nextRun(new Date(after));
    } catch (err) {
      const field = /timezone|time zone/i.test(String(err)) ? 'timezone' : 'cron';
      throw new ValidationError(`${field} of the schedule is invalid: ${(err as Error).message}`, {
        field,
        cause: err,
      });
    }
    if (next === null) throw new ValidationError(`cron '${cron}' names no future time`, { field: 'cron' });
    return next.getTime();
  }

  // ---------------------------------------------------------------- dispatching

  /**
   * Starts dispatch rounds, following and heartbeats in the background; `stop` ends them. Following runs in a loop of
   * its own, so that reading many running jobs from the backend never delays the admission of new ones.
   */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#heartbeat = setInterval(() => {
      if (this.#lease) void this.heartbeat().catch((err) => this.#logger?.warn({ err }, 'scheduler heartbeat failed'));
    }, this.#heartbeatMs);
    this.#heartbeat.unref();
    this.#loop = Promise.all([this.#run(), this.#followLoop()]).then(() => undefined);
  }

  async #followLoop(): Promise<void> {
    while (this.#running) {
      const token = this.#lease?.token;
      if (token !== undefined) {
        try {
          await this.#follow(token);
        } catch (err) {
          this.#logger?.warn({ err, replica: this.#replica }, 'following jobs failed; retrying');
        }
      }
      const until = Date.now() + Math.max(this.#followMs, 10);
      while (this.#running && Date.now() < until) await delay(Math.min(50, until - Date.now()));
    }
  }

  /**
   * Stops dispatching. With `release` (default true) the lease ends now, so other replicas take this one's jobs over
   * at once instead of after the lease expires.
   */
  async stop(options: { readonly release?: boolean } = {}): Promise<void> {
    this.#running = false;
    clearInterval(this.#heartbeat);
    this.#wake?.();
    await this.#loop;
    this.#loop = undefined;
    if (options.release !== false && this.#lease) {
      await this.#db
        .updateTable('scheduler_replicas')
        .set({ expires_at: 0 })
        .where('fencing_token', '=', this.#lease.token)
        .execute();
      this.#lease = undefined;
    }
  }

  async #run(): Promise<void> {
    while (this.#running) {
      let busy = false;
      try {
        const stats = await this.#round(false);
        // While work flows, the next round starts at once: more has likely arrived since this one read the queue.
        busy = stats.admitted > 0 || stats.cronFired > 0;
      } catch (err) {
        this.#logger?.warn({ err, replica: this.#replica }, 'scheduler round failed; retrying');
      }
      if (!this.#running || busy) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.#pollMs);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  #wakeDispatch(): void {
    this.#wake?.();
  }

  /** Renews this replica's lease; false when it had expired (the replica is fenced and registers anew next round). */
  async heartbeat(): Promise<boolean> {
    const lease = this.#lease;
    if (!lease) return false;
    const result = await this.#db
      .updateTable('scheduler_replicas')
      .set({ expires_at: sql<number>`${this.#now} + ${this.#ttl}` })
      .where('fencing_token', '=', lease.token)
      .where('expires_at', '>', this.#now)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) === 1) {
      lease.renewedAt = Date.now();
      return true;
    }
    if (this.#lease === lease) this.#lease = undefined;
    this.#logger?.warn({ replica: this.#replica, fencingToken: lease.token }, 'scheduler lease lost; fenced');
    return false;
  }

  async #ensureLease(): Promise<number | undefined> {
    if (this.#lease && Date.now() - this.#lease.renewedAt >= this.#heartbeatMs) await this.heartbeat();
    if (this.#lease) return this.#lease.token;
    const row = await this.#db
      .insertInto('scheduler_replicas')
      .values({ replica: this.#replica, expires_at: sql<number>`${this.#now} + ${this.#ttl}` })
      .returning('fencing_token')
      .executeTakeFirstOrThrow();
    this.#lease = { token: Number(row.fencing_token), renewedAt: Date.now() };
    return this.#lease.token;
  }

  #leaseLive(token: number) {
    return (eb: any) =>
      eb.exists(
        eb
          .selectFrom('scheduler_replicas')
          .select(sql`1`.as('one'))
          .where('fencing_token', '=', token)
          .where('expires_at', '>', this.#now),
      );
  }

  /**
   * One dispatch round: renew the lease (or register), take over the jobs of replicas whose lease expired, fire due
   * cron schedules, admit queued jobs, hand them to the backend and, every `followIntervalMs`, follow the jobs this
   * replica owns. `start` runs it in a loop; tests call it directly.
   */
  runOnce(): Promise<RoundStats> {
    return this.#round(true);
  }

  async #round(follow: boolean): Promise<RoundStats> {
    const token = await this.#ensureLease();
    if (token === undefined) return { takenOver: 0, cronFired: 0, admitted: 0, dispatched: 0, finished: 0, fenced: 0 };
    const takenOver = await this.#takeOver(token);
    const cronFired = await this.#fireSchedules();
    const admitted = await this.#admit(token);
    let { dispatched, finished, fenced } = await this.#handOff(token, admitted);
    if (takenOver > 0 || Date.now() - this.#lastStrandedCheck >= this.#followMs) {
      this.#lastStrandedCheck = Date.now();
      const stranded = await this.#handOverStranded(token);
      dispatched += stranded.dispatched;
      finished += stranded.finished;
      fenced += stranded.fenced;
    }
    if (follow && (takenOver > 0 || Date.now() - this.#lastFollow >= this.#followMs)) {
      this.#lastFollow = Date.now();
      const followed = await this.#follow(token);
      dispatched += followed.dispatched;
      finished += followed.finished;
      fenced += followed.fenced;
    }
    return { takenOver, cronFired, admitted: admitted.length, dispatched, finished, fenced };
  }

  async #takeOver(token: number): Promise<number> {
    const result = await this.#db
      .updateTable('scheduler_jobs')
      .set({ owner_token: token, version: sql`version + 1` })
      .where('phase', 'in', ACTIVE)
      .where('owner_token', '<>', token)
      .where((eb) =>
        eb.not(
          eb(
            'owner_token',
            'in',
            eb.selectFrom('scheduler_replicas').select('fencing_token').where('expires_at', '>', this.#now),
          ),
        ),
      )
      .where(this.#leaseLive(token))
      .executeTakeFirst();
    const n = Number(result.numUpdatedRows);
    if (n > 0) this.#logger?.info({ replica: this.#replica, jobs: n }, 'took over the jobs of an expired replica');
    return n;
  }

  async #lockRows(trx: Transaction<SchedulerDatabase>, names: readonly string[], skipLocked: boolean) {
    if (names.length === 0) return new Set<string>();
    const missing = names.filter((n) => !this.#knownLocks.has(n));
    if (missing.length > 0) {
      await trx
        .insertInto('scheduler_locks')
        .values(missing.map((name) => ({ name })))
        .onConflict((oc) => oc.doNothing())
        .execute();
    }
    if (this.#store.dialect !== 'postgres') return new Set(names);
    let q = trx
      .selectFrom('scheduler_locks')
      .select('name')
      .where(this.#dialect.inList(sql.ref('name'), [...names]))
      .orderBy('name')
      .forUpdate();
    if (skipLocked) q = q.skipLocked();
    const rows = await q.execute();
    for (const n of missing) this.#knownLocks.add(n);
    return new Set(rows.map((r) => r.name));
  }

  /**
   * Admits up to `admitBatch` queued jobs in one transaction. On PostgreSQL the project rows this replica can lock
   * without waiting (`FOR UPDATE SKIP LOCKED`) decide which projects it admits for this round; rows of queues with a
   * limit are locked waiting, in name order. Quota use is read after the locks are held, so it includes every
   * admission committed before; SQLite serializes the whole transaction instead.
   */
  async #admit(token: number): Promise<{ id: string; spec: string }[]> {
    const readCandidates = (db: Kysely<any>) =>
      sql<{
        id: string;
        project: string;
        queue: string;
        priority: number;
        seq: number;
        cpu_milli: number;
        memory_bytes: number;
        gpus: number;
        gpu_type: string | null;
      }>`SELECT id, project, queue, priority, seq, cpu_milli, memory_bytes, gpus, gpu_type FROM (
           SELECT id, project, queue, priority, seq, cpu_milli, memory_bytes, gpus, gpu_type,
                  row_number() OVER (PARTITION BY project ORDER BY priority DESC, seq) AS rn
           FROM scheduler_jobs WHERE phase = 'Queued') ranked
         WHERE rn <= ${this.#batch}`.execute(db);
    // Read before the transaction: an idle round costs one statement. On PostgreSQL the rows are locked and checked
    // again below, so reading them first is safe; SQLite reads them again inside its serialized transaction.
    const outside = await readCandidates(this.#store.db());
    if (outside.rows.length === 0) return [];
    return this.#store.transaction(async (tx) => {
      const trx = tx as Transaction<SchedulerDatabase>;
      const rows = this.#store.dialect === 'postgres' ? outside : await readCandidates(trx);
      if (rows.rows.length === 0) return [];
      const projectLocks = [...new Set(rows.rows.map((r) => `project:${r.project}`))].sort();
      const locked = await this.#lockRows(trx, projectLocks, true);
      const mine = rows.rows.filter((r) => locked.has(`project:${r.project}`));
      if (mine.length === 0) return [];
      const limited = [...new Set(mine.map((r) => r.queue))].filter(
        (q) => this.#queues.get(q)?.maxRunning !== undefined,
      );
      await this.#lockRows(
        trx,
        limited.map((q) => `queue:${q}`),
        false,
      );
      const projects = [...new Set(mine.map((r) => r.project))];
      const usage = new Map<string, ProjectUsage>();
      const used = await trx
        .selectFrom('scheduler_jobs')
        .select((eb) => [
          'project',
          'gpu_type',
          eb.fn.countAll<number>().as('jobs'),
          eb.fn.sum<number>('cpu_milli').as('cpu_milli'),
          eb.fn.sum<number>('memory_bytes').as('memory_bytes'),
          eb.fn.sum<number>('gpus').as('gpus'),
        ])
        .where('phase', 'in', ACTIVE)
        .where(this.#dialect.inList(sql.ref('project'), projects))
        .groupBy(['project', 'gpu_type'])
        .execute();
      for (const r of used) {
        const u = usage.get(r.project) ?? emptyUsage();
        usage.set(r.project, u);
        addUsage(u, r);
      }
      const queueRunning = new Map<string, number>();
      if (limited.length > 0) {
        const counts = await trx
          .selectFrom('scheduler_jobs')
          .select((eb) => ['queue', eb.fn.countAll<number>().as('jobs')])
          .where('phase', 'in', ACTIVE)
          .where(this.#dialect.inList(sql.ref('queue'), limited))
          .groupBy('queue')
          .execute();
        for (const c of counts) queueRunning.set(c.queue, Number(c.jobs));
      }
      let still = new Set(mine.map((r) => r.id));
      if (this.#store.dialect === 'postgres') {
        // A job a user is cancelling right now is locked: leave it for the next round.
        const lockedJobs = await trx
          .selectFrom('scheduler_jobs')
          .select('id')
          .where(this.#dialect.inList(sql.ref('id'), [...still]))
          .where('phase', '=', 'Queued')
          .forUpdate()
          .skipLocked()
          .execute();
        still = new Set(lockedJobs.map((r) => r.id));
      }
      const candidates = new Map<string, Candidate[]>();
      for (const r of mine) {
        if (!still.has(r.id)) continue;
        const list = candidates.get(r.project) ?? [];
        candidates.set(r.project, list);
        list.push({
          id: r.id,
          project: r.project,
          queue: r.queue,
          priority: Number(r.priority),
          seq: Number(r.seq),
          cpuMilli: Number(r.cpu_milli),
          memoryBytes: Number(r.memory_bytes),
          gpus: Number(r.gpus),
          gpuType: r.gpu_type ?? undefined,
        });
      }
      const picked = pickAdmissions({
        candidates,
        usage,
        queueRunning,
        quotaOf: (p) => this.#quotaOf(p),
        queueLimit: (q) => this.#queues.get(q)?.maxRunning,
        limit: this.#batch,
      });
      if (picked.length === 0) return [];
      const ids = picked.map((c) => c.id);
      const updated = await trx
        .updateTable('scheduler_jobs')
        .set({ phase: 'Admitted', owner_token: token, admitted_at: Date.now(), version: sql`version + 1` })
        .where(this.#dialect.inList(sql.ref('id'), ids))
        .where('phase', '=', 'Queued')
        .where(this.#leaseLive(token))
        .returning(['id', 'spec'])
        .execute();
      if (updated.length !== ids.length) {
        // Only a lost lease makes this differ (the rows are locked): admit nothing, so no quota is misjudged.
        throw new FencedError(token, `admitted ${updated.length} of ${ids.length} jobs`);
      }
      return updated;
    });
  }

  #innerSpec(id: string, specText: string): JobSpec {
    const { queue: _queue, priority: _priority, idempotencyKey: _key, ...spec } = JSON.parse(specText) as JobSpec;
    // Queues and priorities are this scheduler's; the wrapped backend runs the job as soon as it gets it.
    return { ...spec, idempotencyKey: `scheduler-${id}` };
  }

  /** Hands admitted jobs to the backend and records what it answered, fenced by `token`. */
  async #handOff(
    token: number,
    jobs: readonly { id: string; spec: string }[],
  ): Promise<{ dispatched: number; finished: number; fenced: number }> {
    if (jobs.length === 0) return { dispatched: 0, finished: 0, fenced: 0 };
    const answers = await mapLimit(jobs, this.#concurrency, async (job) => {
      try {
        return { job, status: await this.#backend.submit(this.#innerSpec(job.id, job.spec)) };
      } catch (err) {
        return { job, err };
      }
    });
    const updates: JobUpdate[] = [];
    const backendIds = new Map<string, string>();
    for (const a of answers) {
      if ('err' in a) {
        if (a.err instanceof ValidationError || a.err instanceof ConflictError) {
          updates.push({
            id: a.job.id,
            from: 'Admitted',
            phase: 'Failed',
            reason: 'Rejected',
            message: `the backend refused the job: ${(a.err as Error).message}`,
            finishedAt: Date.now(),
          });
        } else {
          // Unreachable backend: the job stays Admitted and is handed over again when followed.
          this.#logger?.warn({ err: a.err, job: a.job.id }, 'could not hand a job to the backend; will retry');
        }
        continue;
      }
      backendIds.set(a.job.id, a.status.id);
      updates.push({ ...statusUpdate(a.status, 'Admitted'), id: a.job.id, backendId: a.status.id });
    }
    const { updated, finished } = await this.#record(token, updates);
    const dispatched = [...updated].filter((id) => backendIds.has(id)).length;
    const fenced = updates.length - updated.size;
    // A job cancelled while it was handed over: stop what the backend started for it.
    for (const [id, backendId] of backendIds) {
      if (updated.has(id)) continue;
      const row = await this.#row(id).catch(() => undefined);
      if (row?.phase === 'Cancelled') {
        await this.#backend.cancel(backendId, { reason: row.message ?? 'cancelled' }).catch((err) => {
          this.#logger?.warn({ err, job: id }, 'could not cancel the backend job of a cancelled job');
        });
      }
    }
    return { dispatched, finished, fenced };
  }

  /**
   * Applies `updates` in one transaction, each only while `token` owns the job and it is still in its `from` phase,
   * with the `job.started` and `job.finished` events they imply; returns the ids updated (the others were fenced or
   * changed meanwhile) and how many finished.
   */
  async #record(token: number, updates: readonly JobUpdate[]): Promise<{ updated: Set<string>; finished: number }> {
    if (updates.length === 0) return { updated: new Set(), finished: 0 };
    if (this.#store.dialect === 'postgres') {
      // One statement, atomic on its own: the fenced updates and the events they imply (see updateJobsSql).
      const rows = await this.#updatePostgres(this.#db, token, updates);
      return {
        updated: new Set(rows.map((r) => r.id)),
        finished: rows.filter((r) => TERMINAL.includes(r.phase)).length,
      };
    }
    const from = new Map(updates.map((u) => [u.id, u.from]));
    return this.#store.transaction(async (tx) => {
      const trx = tx as Transaction<SchedulerDatabase>;
      const rows = await this.#updateSqlite(trx, token, updates);
      const events = [];
      let finished = 0;
      for (const row of rows) {
        const before = from.get(row.id)!;
        if (before === 'Admitted' && (row.phase === 'Running' || TERMINAL.includes(row.phase))) {
          events.push(this.#startedEvent(row));
        }
        if (TERMINAL.includes(row.phase)) {
          finished++;
          events.push(this.#finishedEvent(row));
        }
      }
      await recordEvent(trx, events);
      return { updated: new Set(rows.map((r) => r.id)), finished };
    });
  }

  async #updatePostgres(db: Kysely<any>, token: number, updates: readonly JobUpdate[]): Promise<UpdatedRow[]> {
    const params: unknown[] = [
      updates.map((u) => u.id),
      updates.map((u) => u.from),
      updates.map((u) => u.phase),
      updates.map((u) => u.backendId ?? null),
      updates.map((u) => u.retriesUsed ?? null),
      updates.map((u) => u.replicas ?? null),
      updates.map((u) => u.reason ?? null),
      updates.map((u) => u.message ?? null),
      updates.map((u) => u.startedAt ?? null),
      updates.map((u) => u.finishedAt ?? null),
      token,
    ];
    this.#updateStatement ??= prepareQuery('scheduler.updateJobs', updateJobsSql(params).compile(db), params);
    return (await db.executeQuery<UpdatedRow>(this.#updateStatement.bind(params))).rows;
  }

  async #updateSqlite(
    trx: Transaction<SchedulerDatabase>,
    token: number,
    updates: readonly JobUpdate[],
  ): Promise<UpdatedRow[]> {
    const rows: UpdatedRow[] = [];
    for (const u of updates) {
      const row = await trx
        .updateTable('scheduler_jobs')
        .set((eb) => ({
          phase: u.phase,
          backend_id: u.backendId ?? eb.ref('backend_id'),
          retries_used: u.retriesUsed ?? eb.ref('retries_used'),
          replicas: u.replicas ?? eb.ref('replicas'),
          reason: u.reason ?? null,
          message: u.message ?? null,
          started_at: eb.fn.coalesce('started_at', sql.val(u.startedAt ?? null)),
          finished_at: eb.fn.coalesce('finished_at', sql.val(u.finishedAt ?? null)),
          version: sql`version + 1`,
        }))
        .where('id', '=', u.id)
        .where('owner_token', '=', token)
        .where('phase', '=', u.from)
        .returning(['id', 'name', 'project', 'queue', 'priority_class', 'phase', 'backend_id', 'reason'])
        .executeTakeFirst();
      if (row) rows.push(row);
    }
    return rows;
  }

  /**
   * Hands over the jobs this replica owns that are Admitted but were never handed to the backend: the backend was
   * unreachable, or the previous owner died mid-handoff. The idempotency key makes a second handoff safe. Runs in the
   * dispatch loop, after its own handoffs, so it never races them.
   */
  async #handOverStranded(token: number): Promise<{ dispatched: number; finished: number; fenced: number }> {
    const rows = await this.#db
      .selectFrom('scheduler_jobs')
      .select(['id', 'spec'])
      .where('owner_token', '=', token)
      .where('phase', '=', 'Admitted')
      .where('backend_id', 'is', null)
      .limit(this.#batch)
      .execute();
    return this.#handOff(token, rows);
  }

  /** Asks the backend about every dispatched job this replica owns and records what changed, fenced by `token`. */
  async #follow(token: number): Promise<{ dispatched: number; finished: number; fenced: number }> {
    const dispatched = await this.#db
      .selectFrom('scheduler_jobs')
      .select(['id', 'backend_id', 'phase', 'retries_used', 'replicas', 'reason', 'message'])
      .where('owner_token', '=', token)
      .where('phase', 'in', ACTIVE)
      .where('backend_id', 'is not', null)
      .execute();
    let finished = 0;
    let fenced = 0;
    // In chunks, yielding between them: following many jobs must not hold up this process's dispatch rounds.
    for (let i = 0; i < dispatched.length; i += FOLLOW_CHUNK) {
      const chunk = dispatched.slice(i, i + FOLLOW_CHUNK);
      const answers = await mapLimit(chunk, this.#concurrency, async (row) => {
        try {
          return { row, status: await this.#backend.get(row.backend_id!) };
        } catch (err) {
          return { row, err };
        }
      });
      const updates: JobUpdate[] = [];
      for (const a of answers) {
        if ('err' in a) {
          if (!(a.err instanceof NotFoundError)) {
            this.#logger?.warn({ err: a.err, job: a.row.id }, 'could not read a job from the backend');
            continue;
          }
          updates.push({
            id: a.row.id,
            from: a.row.phase,
            phase: 'Failed',
            reason: 'Lost',
            message: 'the backend no longer knows this job',
            finishedAt: Date.now(),
          });
          continue;
        }
        const update = { ...statusUpdate(a.status, a.row.phase), id: a.row.id };
        const unchanged =
          update.phase === a.row.phase &&
          update.replicas === a.row.replicas &&
          update.retriesUsed === Number(a.row.retries_used) &&
          (update.reason ?? null) === a.row.reason &&
          (update.message ?? null) === a.row.message;
        if (!unchanged) updates.push(update);
      }
      const recorded = await this.#record(token, updates);
      finished += recorded.finished;
      fenced += updates.length - recorded.updated.size;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return { dispatched: 0, finished, fenced };
  }

  async #fireSchedules(): Promise<number> {
    const now = this.#clock();
    // Most rounds find nothing due: one statement, no transaction.
    const due = await this.#db
      .selectFrom('scheduler_schedules')
      .select('name')
      .where('next_fire_at', '<=', now)
      .limit(1)
      .executeTakeFirst();
    if (!due) return 0;
    return this.#store.transaction(async (tx) => {
      const trx = tx as Transaction<SchedulerDatabase>;
      let q = trx.selectFrom('scheduler_schedules').selectAll().where('next_fire_at', '<=', now).limit(100);
      if (this.#store.dialect === 'postgres') q = q.forUpdate().skipLocked();
      const due = await q.execute();
      let fired = 0;
      for (const s of due) {
        const fireAt = Number(s.next_fire_at);
        const spec = JSON.parse(s.spec) as JobSpec;
        let jobId: string | null = null;
        try {
          const job = this.#prepare({
            ...spec,
            // One job per schedule and time, even if two rounds saw the same due time.
            idempotencyKey: `schedule-${s.name}-${fireAt}`,
            annotations: {
              ...spec.annotations,
              [SCHEDULE_ANNOTATIONS.schedule]: s.name,
              [SCHEDULE_ANNOTATIONS.scheduledFor]: new Date(fireAt).toISOString(),
            },
          });
          const [status] = await this.#insertJobs(trx, [job]);
          if (status instanceof Error) throw status;
          jobId = status!.id;
          fired++;
        } catch (err) {
          // The configuration changed under the schedule (a queue removed, a quota lowered): skip this time.
          this.#logger?.warn({ err, schedule: s.name }, 'a cron schedule could not submit its job');
        }
        // Missed times (every replica down) collapse into the one just fired: the next is after now.
        const next = this.#nextFire(s.cron, s.timezone ?? undefined, Math.max(now, fireAt));
        await trx
          .updateTable('scheduler_schedules')
          .set({ next_fire_at: next, last_fired_at: fireAt, last_job_id: jobId })
          .where('name', '=', s.name)
          .execute();
      }
      return fired;
    });
  }

  #payload(r: UpdatedRow) {
    return {
      jobId: r.id,
      name: r.name,
      queue: r.queue,
      priority: r.priority_class,
      phase: r.phase,
      ...(r.backend_id !== null ? { backendJobId: r.backend_id } : {}),
      ...(r.reason !== null ? { reason: r.reason } : {}),
    };
  }

  #startedEvent(r: UpdatedRow) {
    return domainEvent('job.started', `job:${r.id}`, this.#payload(r), { project: r.project });
  }

  #finishedEvent(r: UpdatedRow) {
    return domainEvent('job.finished', `job:${r.id}`, this.#payload(r), { project: r.project });
  }
}

/** A write refused because the replica's lease was lost: another replica owns the job now. */
export class FencedError extends ConflictError {
  constructor(token: number, what: string) {
    super(`scheduler replica with fencing token ${token} lost its lease (${what}); another replica owns its jobs now`);
  }
}

/**
 * The insert of `SqlScheduler.#insertPostgres`: `p` are its 17 arrays, in order (the last two, the ids again and the
 * submitters). The
 * `job.queued` events are made from the rows inserted, with the payload `SqlScheduler.#queuedEvent` gives them on
 * SQLite, so a job and its event commit together and a repeated idempotency key inserts neither.
 */
function insertJobsSql(p: readonly unknown[]) {
  const a = (i: number, type: string) => sql`${p[i]}::${sql.raw(type)}[]`;
  return sql<{ id: string }>`
    WITH inserted AS (
      INSERT INTO scheduler_jobs (id, name, project, queue, priority_class, priority, run_id, idempotency_key, spec,
        labels, cpu_milli, memory_bytes, gpus, gpu_type, phase, submitted_at)
      SELECT id, name, project, queue, priority_class, priority, run_id, idempotency_key, spec, labels, cpu_milli,
        memory_bytes, gpus, gpu_type, 'Queued', submitted_at
      FROM unnest(${a(0, 'text')}, ${a(1, 'text')}, ${a(2, 'text')}, ${a(3, 'text')}, ${a(4, 'text')}, ${a(5, 'int4')},
        ${a(6, 'text')}, ${a(7, 'text')}, ${a(8, 'text')}, ${a(9, 'text')}, ${a(10, 'int8')}, ${a(11, 'int8')},
        ${a(12, 'int4')}, ${a(13, 'text')}, ${a(14, 'int8')})
        AS t(id, name, project, queue, priority_class, priority, run_id, idempotency_key, spec, labels, cpu_milli,
          memory_bytes, gpus, gpu_type, submitted_at)
      ON CONFLICT DO NOTHING
      RETURNING id, name, project, queue, priority_class, cpu_milli, memory_bytes, gpus, gpu_type
    ), events AS (
      INSERT INTO outbox (id, type, version, subject, actor, project, payload, occurred_at)
      SELECT gen_random_uuid(), 'job.queued', 1, 'job:' || i.id, s.actor, i.project,
        jsonb_strip_nulls(jsonb_build_object('jobId', i.id, 'name', i.name, 'queue', i.queue, 'priority',
          i.priority_class, 'cpu', i.cpu_milli / 1000.0, 'memoryBytes', i.memory_bytes, 'gpus', i.gpus,
          'gpuType', i.gpu_type)),
        now()
      FROM inserted i JOIN unnest(${a(15, 'text')}, ${a(16, 'text')}) AS s(id, actor) ON s.id = i.id
    )
    SELECT id FROM inserted`;
}

/**
 * The fenced update of `SqlScheduler.#updatePostgres`: `p` are its 10 arrays and the fencing token. Each row changes
 * only while the token owns it and it is in the phase the replica saw; the same statement inserts `job.started` (a job
 * leaving Admitted for Running or an end) and `job.finished` (a job reaching an end) outbox events for the rows it
 * changed, with the payload `SqlScheduler` gives them elsewhere, so a change and its events commit together.
 */
function updateJobsSql(p: readonly unknown[]) {
  const a = (i: number, type: string) => sql`${p[i]}::${sql.raw(type)}[]`;
  return sql<UpdatedRow>`
    WITH updated AS (
      UPDATE scheduler_jobs j SET
        phase = v.phase,
        backend_id = coalesce(v.backend_id, j.backend_id),
        retries_used = coalesce(v.retries_used, j.retries_used),
        replicas = coalesce(v.replicas, j.replicas),
        reason = v.reason,
        message = v.message,
        started_at = coalesce(j.started_at, v.started_at),
        finished_at = coalesce(j.finished_at, v.finished_at),
        version = j.version + 1
      FROM unnest(${a(0, 'text')}, ${a(1, 'text')}, ${a(2, 'text')}, ${a(3, 'text')}, ${a(4, 'int4')}, ${a(5, 'text')},
        ${a(6, 'text')}, ${a(7, 'text')}, ${a(8, 'int8')}, ${a(9, 'int8')})
        AS v(id, from_phase, phase, backend_id, retries_used, replicas, reason, message, started_at, finished_at)
      WHERE j.id = v.id AND j.phase = v.from_phase AND j.owner_token = ${p[10]}
      RETURNING j.id, j.name, j.project, j.queue, j.priority_class, j.phase, j.backend_id, j.reason, v.from_phase
    ), events AS (
      INSERT INTO outbox (id, type, version, subject, actor, project, payload, occurred_at)
      SELECT gen_random_uuid(), e.type, 1, 'job:' || u.id, NULL, u.project,
        jsonb_strip_nulls(jsonb_build_object('jobId', u.id, 'name', u.name, 'queue', u.queue,
          'priority', u.priority_class, 'phase', u.phase, 'backendJobId', u.backend_id, 'reason', u.reason)),
        now()
      FROM updated u CROSS JOIN (VALUES ('job.started', 1), ('job.finished', 2)) AS e(type, ord)
      WHERE (e.type = 'job.started' AND u.from_phase = 'Admitted'
               AND u.phase IN ('Running', 'Succeeded', 'Failed', 'Cancelled'))
         OR (e.type = 'job.finished' AND u.phase IN ('Succeeded', 'Failed', 'Cancelled'))
      ORDER BY u.id, e.ord
    )
    SELECT id, name, project, queue, priority_class, phase, backend_id, reason FROM updated`;
}

/** One fenced change of a job: applied only while it is still in phase `from`. */
interface JobUpdate {
  readonly id: string;
  readonly from: StoredPhase;
  readonly phase: StoredPhase;
  readonly backendId?: string;
  readonly retriesUsed?: number;
  readonly replicas?: string;
  readonly reason?: string;
  readonly message?: string;
  /** Kept when already set. */
  readonly startedAt?: number;
  readonly finishedAt?: number;
}

type UpdatedRow = Pick<
  JobRow,
  'id' | 'name' | 'project' | 'queue' | 'priority_class' | 'phase' | 'backend_id' | 'reason'
>;

/** The backend's status `s` as a change of a job now in phase `from`; phases only move forward. */
function statusUpdate(s: JobStatus, from: StoredPhase): Omit<JobUpdate, 'id'> {
  const reported = storedPhase(s.phase);
  // A backend's preemption (back to its queue) keeps the job Running here, holding its quota until it ends.
  const phase = PHASE_ORDER[reported] >= PHASE_ORDER[from] ? reported : from;
  return {
    from,
    phase,
    retriesUsed: s.retriesUsed,
    replicas: JSON.stringify(s.replicas),
    ...(s.reason !== undefined ? { reason: s.reason } : {}),
    ...(s.message !== undefined ? { message: s.message } : {}),
    ...(phase === 'Running' || TERMINAL.includes(phase) ? { startedAt: (s.startedAt ?? new Date()).getTime() } : {}),
    ...(TERMINAL.includes(phase) ? { finishedAt: (s.finishedAt ?? new Date()).getTime() } : {}),
  };
}

function addUsage(
  u: ProjectUsage,
  r: {
    jobs: number | string;
    cpu_milli: number | string | null;
    memory_bytes: number | string | null;
    gpus: number | string | null;
    gpu_type: string | null;
  },
): void {
  const gpus = Number(r.gpus ?? 0);
  u.running += Number(r.jobs);
  u.cpuMilli += Number(r.cpu_milli ?? 0);
  u.memoryBytes += Number(r.memory_bytes ?? 0);
  u.gpus += gpus;
  if (r.gpu_type !== null && gpus > 0) u.gpuTypes.set(r.gpu_type, (u.gpuTypes.get(r.gpu_type) ?? 0) + gpus);
}

function pendingReplicas(spec: JobSpec): ReplicaStatus[] {
  return spec.replicaGroups.flatMap((g) =>
    Array.from({ length: g.replicas ?? 1 }, (_, index) => ({
      role: g.role,
      index,
      phase: 'Pending' as const,
      attempt: 0,
    })),
  );
}

function reviveReplica(r: ReplicaStatus): ReplicaStatus {
  return {
    ...r,
    ...(r.startedAt ? { startedAt: new Date(r.startedAt) } : {}),
    ...(r.finishedAt ? { finishedAt: new Date(r.finishedAt) } : {}),
  };
}
