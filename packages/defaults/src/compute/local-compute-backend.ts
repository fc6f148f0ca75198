import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rm, rmdir, stat } from 'node:fs/promises';
import { availableParallelism, hostname, totalmem } from 'node:os';
import { join } from 'node:path';
import {
  type ArtifactStore,
  type ComputeBackend,
  type ComputeBackendCapabilities,
  ConflictError,
  DEFAULT_PROJECT,
  type ExperimentTracker,
  isTerminalJobPhase,
  JOB_ENV,
  type JobPhase,
  type JobSpec,
  type JobStatus,
  type ListJobsOptions,
  type Logger,
  type LogOptions,
  type MetadataStore,
  NotFoundError,
  type Page,
  PROJECT_TAG,
  parseMemory,
  type ReplicaStatus,
  type RetryAction,
  type RunStatus,
  type SecretStore,
  UnavailableError,
  ValidationError,
  validateJobSpec,
  type WatchJobsTarget,
  type WatchOptions,
} from '@mlplane/core';
import { AttemptLog, lastLines, liveLines, stampedLines, unstamp } from './job-logs.js';
import { type JobState, LocalJobStore, matchesFilter, type ProcessRecord, specHash } from './job-store.js';
import { detectNvidiaGpus, exitCodeOf, isAlive, launch, type ProcessIdentity, signalGroup } from './processes.js';
import { type Capacity, checkFitsCapacity, type GpuDevice, SlotPool } from './slots.js';

/** Variables of the platform's own environment a job inherits by default; nothing else leaks (master keys, tokens). */
export const DEFAULT_INHERITED_ENV: readonly string[] = Object.freeze([
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'LANG',
  'LC_ALL',
  'TZ',
  'TMPDIR',
]);

/** Where the local backend may run jobs: its slots. Absent fields are read from the host. */
export interface LocalCapacityOptions {
  /** Cores; default the host's available parallelism. */
  readonly cpu?: number;
  /** Bytes or a quantity (`16Gi`); default the host's total memory. */
  readonly memory?: number | string;
  /**
   * GPUs: a count (devices `0..n-1`) or the CUDA_VISIBLE_DEVICES ids to hand out (`['0', '2']`, UUIDs). Default:
   * what `nvidia-smi` reports, none when it is absent.
   */
  readonly gpus?: number | readonly string[];
}

export interface LocalComputeBackendOptions {
  readonly store: MetadataStore;
  /** Each attempt's log is kept here once it ends, under `logPrefix`. */
  readonly artifacts: ArtifactStore;
  /** `secretStore` references in `secretEnv` are read from it when a replica starts. */
  readonly secrets: SecretStore;
  /** When given, each job without a `runId` gets a run created for it, finished with the job's outcome. */
  readonly tracker?: ExperimentTracker;
  readonly logger?: Logger;
  /** Private directory for logs of running attempts and exit statuses (created 0700). */
  readonly workDir: string;
  readonly capacity?: LocalCapacityOptions;
  /** Experiment (by name) for runs of jobs whose spec names none; created when missing. Default `Default`. */
  readonly experiment?: string;
  /** ArtifactStore prefix of finished attempts' logs. Default `compute/logs`. */
  readonly logPrefix?: string;
  /** Time between SIGTERM and SIGKILL to a replica's process group on cancel, timeout or restart. Default 5 s. */
  readonly killGraceMs?: number;
  /**
   * Delay before a failed job's (or replica's) next attempt, doubled at each restart of the job up to 60 s, as
   * Kubernetes backs off restarts: a program that fails at once does not spin. Default 1 s.
   */
  readonly restartBackoffMs?: number;
  /** How often running attempts' logs are read and adopted processes checked. Default 100 ms. */
  readonly pollMs?: number;
  /** Names of this process's environment variables that replicas inherit. Default DEFAULT_INHERITED_ENV. */
  readonly inheritEnv?: readonly string[];
  /** Working directory of replicas whose group sets no `workingDir`. Default this process's. */
  readonly workingDir?: string;
  /** Names this host in statuses (`node`) and in the store, so several hosts may share one database. Default hostname. */
  readonly host?: string;
  /**
   * Tracking server replicas reach (`MLFLOW_TRACKING_URI`), so that stock MLflow clients log into the job's run.
   * The HTTP server sets it when it runs in the same platform.
   */
  readonly trackingUri?: string;
  /**
   * A token scoped to the job's project, passed to replicas as `MLFLOW_TRACKING_TOKEN` (never stored). Called at
   * each launch; an error fails the launch like a missing secret.
   */
  readonly tokenFor?: (project: string, job: { readonly id: string; readonly runId?: string }) => Promise<string>;
  /**
   * Where `trackingUri` and `tokenFor` come from when they are not given: read at each launch, so a host that
   * starts serving HTTP after the platform (`mlplane up`) sets them on the `localComputeTrackingRef` service.
   */
  readonly tracking?: JobTracking;
}

/** The tracking server replicas log to and how they get a token for it; see LocalComputeBackendOptions. */
export interface JobTracking {
  uri?: string;
  tokenFor?: (project: string, job: { readonly id: string; readonly runId?: string }) => Promise<string>;
}

type ReplicaEnd = { readonly phase: 'Succeeded' | 'Failed'; readonly reason: string };

/** A replica attempt that has a process: launched here, or found again after a restart. */
interface Live {
  readonly replica: number;
  readonly attempt: number;
  readonly identity: ProcessIdentity;
  readonly exitFile: string;
  readonly log: AttemptLog;
  child?: ChildProcess;
  watcher?: NodeJS.Timeout;
  exited: boolean;
}

/** How a job is ending, decided once; replicas still running are stopped and recorded with `replicaReason`. */
interface Ending {
  readonly phase: 'Succeeded' | 'Failed' | 'Cancelled';
  readonly reason: string;
  readonly message: string;
  readonly replicaReason: string;
}

/** A job this process runs (or waits to run): every change goes through `serial`, one at a time. */
interface ActiveJob {
  readonly id: string;
  readonly spec: JobSpec;
  status: JobStatus;
  state: JobState;
  version: number;
  serial: Promise<void>;
  readonly live: Map<number, Live>;
  ending?: Ending;
  /** Replicas being stopped for a job-scope restart; the restart launches once they are gone. */
  restarting?: boolean;
  /**
   * Admission not yet recorded: the job's next write records it (with its first replica's launch) and watchers get
   * the Admitted status first, then that write's, so admitting a job costs no commit of its own.
   */
  admitting?: Partial<JobStatus>;
  /** Restarts so far in this process, for the backoff. */
  restarts: number;
  restartTimer?: NodeJS.Timeout;
  killTimer?: NodeJS.Timeout;
  deadlineTimer?: NodeJS.Timeout;
  readonly ended: { promise: Promise<JobStatus>; resolve: (s: JobStatus) => void; reject: (e: unknown) => void };
}

type Listener = (status: JobStatus, version: number) => void;

/** Longest delay setTimeout honours. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const TERMINAL = new Set<JobPhase>(['Succeeded', 'Failed', 'Cancelled']);
const RUN_STATUS: Record<'Succeeded' | 'Failed' | 'Cancelled', RunStatus> = {
  Succeeded: 'FINISHED',
  Failed: 'FAILED',
  Cancelled: 'KILLED',
};

function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}

/** Where replica `n` of the status list sits in the spec. */
function replicaPlace(spec: JobSpec, n: number): { group: number; role: string; index: number } {
  let offset = 0;
  for (const [group, g] of spec.replicaGroups.entries()) {
    const count = g.replicas ?? 1;
    if (n < offset + count) return { group, role: g.role, index: n - offset };
    offset += count;
  }
  throw new RangeError(`replica ${n} is outside the job`);
}

/** Changes replica `n` of a status list, leaving the others as they are; `clear` drops fields of the previous attempt. */
function replicaChange(n: number, changes: Partial<ReplicaStatus>, clear: (keyof ReplicaStatus)[] = []) {
  return (r: ReplicaStatus, i: number): ReplicaStatus => {
    if (i !== n) return r;
    const next: Record<string, unknown> = { ...r, ...changes };
    for (const key of clear) delete next[key];
    return next as unknown as ReplicaStatus;
  };
}

function freeze(status: JobStatus): JobStatus {
  return Object.freeze({ ...status, labels: { ...status.labels }, replicas: status.replicas.map((r) => ({ ...r })) });
}

/**
 * The embedded ComputeBackend: runs each replica as a process group on this host, within slots of CPU, memory and
 * GPUs (every replica of a job is placed together or none is), with logs kept in the ArtifactStore per attempt and
 * jobs kept in the MetadataStore. Processes outlive the platform: a restarted platform finds running jobs again by
 * pid, start time and boot, and marks those whose processes vanished Failed with reason `Lost`.
 */
export class LocalComputeBackend implements ComputeBackend {
  readonly capabilities: ComputeBackendCapabilities;
  readonly #jobs: LocalJobStore;
  readonly #options: LocalComputeBackendOptions;
  readonly #pool: SlotPool;
  readonly #host: string;
  readonly #pollMs: number;
  readonly #graceMs: number;
  readonly #backoffMs: number;
  readonly #logPrefix: string;
  readonly #active = new Map<string, ActiveJob>();
  readonly #queue: ActiveJob[] = [];
  readonly #listeners = new Set<Listener>();
  /** Wakes every watch so that it sees the backend closed. */
  readonly #wakers = new Set<() => void>();
  readonly #ttlTimers = new Set<NodeJS.Timeout>();
  #pumping = false;
  #pumpAgain = false;
  #closed = false;

  private constructor(options: LocalComputeBackendOptions, jobs: LocalJobStore, capacity: Capacity, host: string) {
    this.#options = options;
    this.#jobs = jobs;
    this.#pool = new SlotPool(capacity);
    this.#host = host;
    this.#pollMs = options.pollMs ?? 100;
    this.#graceMs = options.killGraceMs ?? 5_000;
    this.#backoffMs = options.restartBackoffMs ?? 1_000;
    this.#logPrefix = (options.logPrefix ?? 'compute/logs').replace(/\/+$/, '');
    const capabilities: ComputeBackendCapabilities = {
      scheduler: 'local',
      gpu: capacity.gpus.length > 0,
      ...(capacity.gpus.length > 0 ? { gpuTypes: ['nvidia.com/gpu'] } : {}),
      queues: false,
      priorities: false,
      preemption: false,
      gang: 'placement',
      logsFollow: true,
      multiNode: false,
      multipleRoles: true,
      containers: false,
      volumeKinds: [],
      serviceAccounts: false,
      imagePullSecrets: false,
      secretRefKinds: ['secretStore'],
      retryConditions: [],
      orderedStartup: true,
      statusAfterTtl: true,
    };
    this.capabilities = Object.freeze(capabilities);
  }

  /**
   * Applies the backend's migrations, reads the host's capacity (nvidia-smi for GPUs unless configured), finds
   * the jobs a previous platform left running and picks up those still waiting.
   */
  static async open(options: LocalComputeBackendOptions): Promise<LocalComputeBackend> {
    const host = options.host ?? hostname();
    const jobs = await LocalJobStore.open(options.store, host);
    await mkdir(join(options.workDir, 'spool'), { recursive: true, mode: 0o700 });
    const backend = new LocalComputeBackend(options, jobs, await resolveCapacity(options.capacity), host);
    await backend.#recover();
    return backend;
  }

  /** The slots this backend hands out. */
  get capacity(): Capacity {
    return this.#pool.capacity;
  }

  // ---------------------------------------------------------------------------------------------- port operations

  async submit(spec: JobSpec): Promise<JobStatus> {
    this.#assertOpen();
    validateJobSpec(spec, this.capabilities);
    checkFitsCapacity(spec, this.#pool.capacity);
    if (spec.idempotencyKey !== undefined) {
      const existing = await this.#byKey(spec);
      if (existing) return existing;
    }
    const id = `${spec.name}-${randomBytes(4).toString('hex')}`;
    const created = spec.runId === undefined ? await this.#createRun(spec, id) : undefined;
    const runId = spec.runId ?? created;
    // A job that cannot have its slots now, or is behind one that already waits for them (admission is in submission
    // order), waits: it is recorded Queued at once rather than Pending and then Queued, one write instead of two.
    const waits = this.#queue.some((j) => j.status.phase === 'Queued') || !this.#fitsNow(spec);
    const ahead = this.#queue.length;
    const status: JobStatus = freeze({
      id,
      name: spec.name,
      project: spec.project,
      ...(runId ? { runId } : {}),
      phase: waits ? 'Queued' : 'Pending',
      ...(waits ? { reason: 'WaitingForSlots', message: this.#waitingMessage(ahead) } : {}),
      retriesUsed: 0,
      labels: { ...spec.labels },
      submittedAt: new Date(),
      replicas: spec.replicaGroups.flatMap((g) =>
        Array.from({ length: g.replicas ?? 1 }, (_, index) => ({
          role: g.role,
          index,
          phase: 'Pending' as const,
          attempt: 0,
        })),
      ),
    });
    const state: JobState = { processes: [], ...(created ? { createdRun: true } : {}) };
    if (!(await this.#jobs.insert(spec, status, state))) {
      // Another submit with the same key won the race: this one made nothing but the run, which goes.
      if (created) await this.#options.tracker?.deleteRun(created).catch(() => undefined);
      const existing = await this.#byKey(spec);
      if (existing) return existing;
      throw new ConflictError(`idempotency key '${spec.idempotencyKey}' is taken in project ${spec.project}`);
    }
    const job = this.#track(spec, status, state);
    this.#queue.push(job);
    this.#emit(job);
    setImmediate(() => this.#pump());
    return status;
  }

  async get(id: string): Promise<JobStatus> {
    return (await this.#current(id)).status;
  }

  list(options: ListJobsOptions = {}): Promise<Page<JobStatus>> {
    return this.#jobs.list(options);
  }

  async *watch(target: WatchJobsTarget, options: WatchOptions = {}): AsyncIterable<JobStatus> {
    const { signal } = options;
    const single = 'id' in target ? target.id : undefined;
    const filter = 'id' in target ? {} : target;
    const pending: { status: JobStatus; version: number }[] = [];
    let wake: (() => void) | undefined;
    const listener: Listener = (status, version) => {
      if (single !== undefined ? status.id !== single : !matchesFilter(status, filter)) return;
      pending.push({ status, version });
      wake?.();
    };
    // Listening starts before the current statuses are read, so no change between the two is lost.
    this.#listeners.add(listener);
    const onAbort = () => wake?.();
    signal?.addEventListener('abort', onAbort);
    this.#wakers.add(onAbort);
    const delivered = new Map<string, number>();
    try {
      if (signal?.aborted) return;
      if (single !== undefined) {
        const current = await this.#current(single);
        delivered.set(single, current.version);
        yield current.status;
        if (isTerminalJobPhase(current.status.phase)) return;
      } else {
        let pageToken: string | undefined;
        do {
          const page = await this.#jobs.list({ ...filter, maxResults: 1000, ...(pageToken ? { pageToken } : {}) });
          for (const stored of page.items) {
            const active = this.#active.get(stored.id);
            const current = active
              ? { status: active.status, version: active.version }
              : { status: stored, version: Number.MAX_SAFE_INTEGER };
            delivered.set(stored.id, current.version);
            if (signal?.aborted) return;
            yield current.status;
          }
          pageToken = page.nextPageToken;
        } while (pageToken);
      }
      for (;;) {
        while (pending.length > 0) {
          const next = pending.shift()!;
          if (next.version <= (delivered.get(next.status.id) ?? 0)) continue;
          delivered.set(next.status.id, next.version);
          if (signal?.aborted) return;
          yield next.status;
          if (single !== undefined && isTerminalJobPhase(next.status.phase)) return;
        }
        if (signal?.aborted || this.#closed) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    } finally {
      this.#listeners.delete(listener);
      this.#wakers.delete(onAbort);
      signal?.removeEventListener('abort', onAbort);
    }
  }

  async *logs(id: string, options: LogOptions = {}): AsyncIterable<string> {
    checkLogOptions(options);
    const { spec, status, state } = await this.#snapshot(id);
    const role = options.role ?? spec.replicaGroups[0]!.role;
    const group = spec.replicaGroups.findIndex((g) => g.role === role);
    if (group === -1) throw new NotFoundError(`job ${id} has no role '${role}'`);
    const index = options.index ?? 0;
    if (index >= (spec.replicaGroups[group]!.replicas ?? 1)) {
      throw new NotFoundError(`job ${id} has no replica ${index} of role '${role}'`);
    }
    if (state.logsDeleted) {
      throw new NotFoundError(`the logs of job ${id} were deleted ${spec.ttlSecondsAfterFinished} s after it finished`);
    }
    const replica = status.replicas.findIndex((r) => r.role === role && r.index === index);
    let latest = status.replicas[replica]!.attempt;
    if (latest === 0 && options.attempt === undefined) {
      if (!options.follow) return;
      latest = await this.#firstAttempt(id, replica, options.signal);
      if (latest === 0) return;
    }
    const attempt = options.attempt ?? latest;
    if (attempt > latest) {
      throw new NotFoundError(`${role}-${index} of job ${id} has no attempt ${attempt} (latest: ${latest})`);
    }
    const live = this.#active.get(id)?.live.get(replica);
    if (live && live.attempt === attempt) {
      try {
        const lines = liveLines(live.log, {
          follow: options.follow ?? false,
          ...(options.tailLines !== undefined ? { tail: options.tailLines } : {}),
          ...(options.signal ? { signal: options.signal } : {}),
        });
        for await (const line of lines) yield unstamp(line, options.timestamps);
        return;
      } catch (err) {
        // The attempt ended and its file went between the check and the open: its log is in the store now.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    // An attempt that wrote nothing has nothing stored.
    if (state.emptyLogs?.includes(`${replica}-${attempt}`)) return;
    let body: Awaited<ReturnType<ArtifactStore['get']>>['body'];
    try {
      body = (await this.#options.artifacts.get(this.#logKey(id, replica, spec, attempt))).body;
    } catch (err) {
      if (err instanceof NotFoundError) {
        throw new NotFoundError(`no log was kept for attempt ${attempt} of ${role}-${index} of job ${id}`);
      }
      throw err;
    }
    for await (const line of lastLines(stampedLines(body), options.tailLines)) yield unstamp(line, options.timestamps);
  }

  async cancel(id: string, options: { readonly reason?: string } = {}): Promise<JobStatus> {
    this.#assertOpen();
    const job = this.#active.get(id);
    if (!job) return this.get(id);
    const message = options.reason ? `cancelled: ${options.reason}` : 'cancelled';
    await this.#serially(job, () =>
      this.#end(job, { phase: 'Cancelled', reason: 'Cancelled', message, replicaReason: 'Cancelled' }),
    );
    return job.ended.promise;
  }

  /**
   * Stops following jobs; their processes keep running and the next backend on this store finds them again.
   * Watches end; cancels in progress fail with UnavailableError.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const timer of this.#ttlTimers) clearTimeout(timer);
    for (const job of this.#active.values()) {
      clearTimeout(job.deadlineTimer);
      clearTimeout(job.killTimer);
      clearTimeout(job.restartTimer);
      for (const live of job.live.values()) {
        clearInterval(live.watcher);
        live.log.stop();
      }
      job.ended.reject(new UnavailableError('the local compute backend stopped before the job ended'));
      await job.serial;
    }
    for (const wake of this.#wakers) wake();
  }

  // ------------------------------------------------------------------------------------------------------ reading

  async #current(id: string): Promise<{ status: JobStatus; version: number }> {
    const active = this.#active.get(id);
    if (active) return { status: active.status, version: active.version };
    const stored = await this.#jobs.get(id);
    if (!stored) throw new NotFoundError(`job ${id} does not exist`);
    // A job this process does not run is finished (or another host's): nothing newer will come from here.
    return { status: stored.status, version: Number.MAX_SAFE_INTEGER };
  }

  async #snapshot(id: string): Promise<{ spec: JobSpec; status: JobStatus; state: JobState }> {
    const active = this.#active.get(id);
    if (active) return { spec: active.spec, status: active.status, state: active.state };
    const stored = await this.#jobs.get(id);
    if (!stored) throw new NotFoundError(`job ${id} does not exist`);
    return stored;
  }

  async #byKey(spec: JobSpec): Promise<JobStatus | undefined> {
    const existing = await this.#jobs.byIdempotencyKey(spec.project, spec.idempotencyKey!);
    if (!existing) return undefined;
    if (existing.specHash !== specHash(spec)) {
      throw new ConflictError(
        `idempotency key '${spec.idempotencyKey}' was used in project ${spec.project} for a different spec (job ${existing.status.id})`,
      );
    }
    return this.#active.get(existing.status.id)?.status ?? existing.status;
  }

  /** Waits until the replica's first attempt starts (for `follow` before it runs); 0 when the job ended first. */
  async #firstAttempt(id: string, replica: number, signal?: AbortSignal): Promise<number> {
    for await (const status of this.watch({ id }, signal ? { signal } : {})) {
      const attempt = status.replicas[replica]!.attempt;
      if (attempt > 0) return attempt;
    }
    return 0;
  }

  #logKey(id: string, replica: number, spec: JobSpec, attempt: number): string {
    const { role, index } = replicaPlace(spec, replica);
    return `${this.#logPrefix}/${id}/${role}-${index}/attempt-${attempt}.log`;
  }

  #spoolBase(id: string, replica: number, attempt: number): string {
    return join(this.#options.workDir, 'spool', id, `${replica}-${attempt}`);
  }

  // ------------------------------------------------------------------------------------------------------ changes

  #track(spec: JobSpec, status: JobStatus, state: JobState): ActiveJob {
    const job: ActiveJob = {
      id: status.id,
      spec,
      status,
      state,
      version: 1,
      serial: Promise.resolve(),
      live: new Map(),
      restarts: 0,
      ended: deferred<JobStatus>(),
    };
    this.#active.set(job.id, job);
    return job;
  }

  /** Runs `fn` after every earlier change of the job; a failure is logged and fails the job rather than hanging it. */
  #serially(job: ActiveJob, fn: () => Promise<void> | void): Promise<void> {
    const run = job.serial.then(async () => {
      if (this.#closed) return;
      try {
        await fn();
      } catch (err) {
        this.#options.logger?.error({ err, job: job.id }, 'local compute backend failed to apply a change');
        if (!job.ending && !TERMINAL.has(job.status.phase)) {
          await this.#end(job, {
            phase: 'Failed',
            reason: 'BackendError',
            message: `the backend failed: ${(err as Error).message}`,
            replicaReason: 'BackendError',
          }).catch(() => undefined);
        }
      }
    });
    job.serial = run;
    return run;
  }

  /** Records a new status: persisted first, then delivered to watchers, so a watch never sees what a restart loses. */
  async #publish(
    job: ActiveJob,
    changes: Partial<JobStatus>,
    replicas?: (r: ReplicaStatus, n: number) => ReplicaStatus,
  ): Promise<void> {
    const admitting = job.admitting;
    const before = admitting ? freeze({ ...job.status, ...admitting } as JobStatus) : job.status;
    const next = { ...before, ...changes } as JobStatus;
    const status = freeze({ ...next, replicas: replicas ? next.replicas.map(replicas) : next.replicas });
    await this.#jobs.update(status, job.state);
    if (admitting && job.admitting === admitting) {
      // Written with this status: delivered before it, so that watchers see every phase in order.
      job.admitting = undefined;
      job.status = before;
      job.version += 1;
      this.#emit(job);
    }
    job.status = status;
    job.version += 1;
    this.#emit(job);
  }

  #emit(job: ActiveJob): void {
    for (const listener of this.#listeners) listener(job.status, job.version);
  }

  // ---------------------------------------------------------------------------------------------------- admission

  /** Admits waiting jobs in submission order while their slots fit; the first that does not fit holds the rest. */
  #pump(): void {
    if (this.#closed) return;
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    void (async () => {
      try {
        do {
          this.#pumpAgain = false;
          // Jobs admitted in one pass, and those marked Queued, change side by side: their writes share group commits.
          const changes: Promise<void>[] = [];
          while (this.#queue.length > 0 && !this.#closed) {
            const head = this.#queue[0]!;
            if (head.ending || TERMINAL.has(head.status.phase)) {
              this.#queue.shift();
              continue;
            }
            const slots = this.#pool.reserve(head.spec);
            if (!slots) {
              const free = this.#pool.free();
              for (const [position, job] of this.#queue.entries()) {
                if (job.status.phase !== 'Pending') continue;
                const message = this.#waitingMessage(position, free);
                changes.push(
                  this.#serially(job, async () => {
                    // Cancelled meanwhile: phases never go back.
                    if (job.status.phase !== 'Pending' || job.ending) return;
                    await this.#publish(job, { phase: 'Queued', reason: 'WaitingForSlots', message });
                  }),
                );
              }
              break;
            }
            this.#queue.shift();
            const admitted = this.#serially(head, async () => {
              if (head.ending || TERMINAL.has(head.status.phase)) {
                this.#pool.release(slots);
                return;
              }
              head.state = { ...head.state, slots };
              head.admitting = {
                phase: 'Admitted',
                admittedAt: new Date(),
                reason: 'SlotsReserved',
                message: 'slots reserved',
              };
              await this.#startAll(head);
            });
            changes.push(admitted);
          }
          await Promise.all(changes);
        } while (this.#pumpAgain && !this.#closed);
      } finally {
        this.#pumping = false;
      }
    })();
  }

  /** Whether every slot the job asks for is free now (nothing is reserved). */
  #fitsNow(spec: JobSpec): boolean {
    const slots = this.#pool.reserve(spec);
    if (slots) this.#pool.release(slots);
    return slots !== undefined;
  }

  #waitingMessage(position: number, free = this.#pool.free()): string {
    return position === 0
      ? `waiting for slots (free now: ${free.cpu} cores, ${free.memoryBytes} bytes, ${free.gpus} GPUs)`
      : `waiting behind ${position} earlier job(s)`;
  }

  /** Launches a new attempt of every replica given (default all), group by group, then marks the job Running. */
  async #startAll(job: ActiveJob, replicas?: readonly number[]): Promise<void> {
    const which = replicas ?? job.status.replicas.map((_, n) => n);
    let env: Map<number, Record<string, string>>;
    try {
      env = new Map(await Promise.all(which.map(async (n) => [n, await this.#environment(job, n)] as const)));
    } catch (err) {
      const message =
        err instanceof LaunchError ? err.message : `could not prepare the replicas: ${(err as Error).message}`;
      await this.#end(job, {
        phase: 'Failed',
        reason: err instanceof LaunchError ? err.reason : 'LaunchError',
        message,
        replicaReason: 'LaunchError',
      });
      return;
    }
    // Groups start in spec order and each replica is running once spawned, which honours startupPolicy InOrder.
    // The last replica's record commits with the job's own change (Running, the restart done): one write, not three.
    for (const [i, n] of which.entries()) {
      await this.#launch(job, n, env.get(n)!, i === which.length - 1 ? () => this.#started(job) : undefined);
    }
    if (job.status.phase === 'Running' && job.status.startedAt && job.deadlineTimer === undefined) {
      this.#armDeadline(job);
    }
  }

  /** What the job's status gains once every replica of an attempt is launched; the restart it was is done. */
  async #started(job: ActiveJob): Promise<Partial<JobStatus>> {
    if (job.state.restart) {
      const { restart: _, ...rest } = job.state;
      job.state = rest;
    }
    if (job.status.phase === 'Running' || job.ending) return {};
    const first = job.status.startedAt === undefined;
    // The run moves first, so that whoever sees the job Running finds its run RUNNING too.
    if (first) await this.#runStatus(job, 'RUNNING');
    return {
      phase: 'Running',
      ...(first ? { startedAt: new Date() } : {}),
      reason: 'Started',
      message: 'replicas started',
    };
  }

  async #environment(job: ActiveJob, n: number): Promise<Record<string, string>> {
    const { group, role, index } = replicaPlace(job.spec, n);
    const g = job.spec.replicaGroups[group]!;
    const env: Record<string, string> = {};
    for (const name of this.#options.inheritEnv ?? DEFAULT_INHERITED_ENV) {
      const value = process.env[name];
      if (value !== undefined) env[name] = value;
    }
    const trackingUri = this.#options.trackingUri ?? this.#options.tracking?.uri;
    if (trackingUri) env.MLFLOW_TRACKING_URI = trackingUri;
    Object.assign(env, g.env);
    for (const [name, ref] of Object.entries(g.secretEnv ?? {})) {
      // validateJobSpec admits only the kinds in capabilities.secretRefKinds: secretStore.
      if (ref.kind !== 'secretStore') throw new LaunchError('LaunchError', `${name}: unsupported secret reference`);
      try {
        env[name] = await this.#options.secrets.get(ref.name);
      } catch (err) {
        if (err instanceof NotFoundError) {
          throw new LaunchError(
            'SecretNotFound',
            `secret '${ref.name}' (env ${name} of role ${role}) is not in the SecretStore`,
          );
        }
        throw new LaunchError(
          'SecretUnavailable',
          `secret '${ref.name}' (env ${name} of role ${role}) could not be read: ${(err as Error).message}`,
        );
      }
    }
    const tokenFor = this.#options.tokenFor ?? this.#options.tracking?.tokenFor;
    if (tokenFor) {
      try {
        env.MLFLOW_TRACKING_TOKEN = await tokenFor(job.spec.project, {
          id: job.id,
          ...(job.status.runId ? { runId: job.status.runId } : {}),
        });
      } catch (err) {
        throw new LaunchError(
          'TokenUnavailable',
          `no tracking token for project ${job.spec.project}: ${(err as Error).message}`,
        );
      }
    }
    env[JOB_ENV.jobId] = job.id;
    env[JOB_ENV.role] = role;
    env[JOB_ENV.replicaIndex] = String(index);
    if (job.status.runId) {
      env[JOB_ENV.runId] = job.status.runId;
      env[JOB_ENV.trackerRunId] = job.status.runId;
    }
    // Only the devices reserved for this replica are visible to it; none when it asked for none.
    env.CUDA_VISIBLE_DEVICES = (job.state.slots?.[n]?.gpus ?? []).join(',');
    return env;
  }

  /** Launches replica `n`'s next attempt and records it, along with what `jobChanges` adds to the job's status. */
  async #launch(
    job: ActiveJob,
    n: number,
    env: Record<string, string>,
    jobChanges?: () => Promise<Partial<JobStatus>>,
  ): Promise<void> {
    const { group } = replicaPlace(job.spec, n);
    const g = job.spec.replicaGroups[group]!;
    const attempt = job.status.replicas[n]!.attempt + 1;
    const base = this.#spoolBase(job.id, n, attempt);
    await mkdir(join(this.#options.workDir, 'spool', job.id), { recursive: true, mode: 0o700 });
    const exitFile = `${base}.exit`;
    await rm(exitFile, { force: true });
    const { log, outputFd } = await AttemptLog.create(base);
    let launched: ReturnType<typeof launch>;
    try {
      launched = launch({
        command: [...g.command, ...(g.args ?? [])],
        env,
        ...((g.workingDir ?? this.#options.workingDir) ? { cwd: g.workingDir ?? this.#options.workingDir } : {}),
        outputFd: outputFd.fd,
        exitFile,
      });
    } catch (err) {
      await outputFd.close();
      throw err;
    }
    // Listeners go on before anything awaits: a program that exits at once must not end unseen.
    const live: Live = {
      replica: n,
      attempt,
      identity: launched.identity,
      exitFile,
      log,
      child: launched.child,
      exited: false,
    };
    job.live.set(n, live);
    launched.child.once('exit', (code, signal) => this.#exited(job, live, exitCodeOf(code, signal)));
    launched.child.once('error', (err) => {
      // No process (a missing working directory): the attempt ends at once, as a container that cannot start.
      this.#options.logger?.warn({ err, job: job.id }, 'a replica could not start');
      this.#exited(job, live, 127, `could not start: ${(err as Error).message}`);
    });
    log.start(this.#pollMs);
    // The program holds its own copy of the descriptor.
    await outputFd.close();
    const record: ProcessRecord = { replica: n, attempt, ...launched.identity };
    job.state = { ...job.state, processes: [...job.state.processes.filter((p) => p.replica !== n), record] };
    await this.#publish(
      job,
      (await jobChanges?.()) ?? {},
      replicaChange(n, { phase: 'Running', attempt, node: this.#host, startedAt: new Date() }, [
        'exitCode',
        'reason',
        'finishedAt',
      ]),
    );
  }

  // ------------------------------------------------------------------------------------------------------ endings

  /** A replica's process ended (seen by its exit event or, for one found again after a restart, by polling). */
  #exited(job: ActiveJob, live: Live, exitCode: number | undefined, note?: string): void {
    if (live.exited || this.#closed) return;
    live.exited = true;
    clearInterval(live.watcher);
    void this.#serially(job, async () => {
      // Whatever the program left behind in its group goes with it, as when a container's main process exits.
      signalGroup(live.identity.pid, 'SIGKILL');
      await live.log.finish();
      await this.#keepLog(job, live);

      if (job.live.get(live.replica) === live) job.live.delete(live.replica);
      job.state = { ...job.state, processes: job.state.processes.filter((p) => p.replica !== live.replica) };
      await rm(live.exitFile, { force: true });
      await this.#afterExit(job, live, exitCode, note);
    });
  }

  async #keepLog(job: ActiveJob, live: Live): Promise<void> {
    try {
      if ((await stat(live.log.stampedPath)).size === 0) {
        // Nothing was written: the state says so (recorded with the replica's end) instead of an empty object.
        job.state = { ...job.state, emptyLogs: [...(job.state.emptyLogs ?? []), `${live.replica}-${live.attempt}`] };
        await live.log.remove();
        return;
      }
      await this.#options.artifacts.put(
        this.#logKey(job.id, live.replica, job.spec, live.attempt),
        createReadStream(live.log.stampedPath),
        {
          contentType: 'text/plain; charset=utf-8',
        },
      );
      await live.log.remove();
    } catch (err) {
      // The spool file stays, so nothing is lost; reading it back needs a restart of the platform.
      this.#options.logger?.error({ err, job: job.id }, 'could not keep a replica log in the ArtifactStore');
    }
  }

  async #afterExit(job: ActiveJob, live: Live, exitCode: number | undefined, note?: string): Promise<void> {
    const n = live.replica;
    const { role, index } = replicaPlace(job.spec, n);
    const name = `${role}-${index}`;
    const finishedAt = new Date();
    const lost = exitCode === undefined;
    if (job.ending || job.restarting) {
      const reason = job.ending ? job.ending.replicaReason : 'Restarted';
      const phase = exitCode === 0 ? 'Succeeded' : 'Failed';
      await this.#publish(job, {}, replicaChange(n, { phase, finishedAt, reason, ...(lost ? {} : { exitCode }) }));
      await this.#settle(job);
      return;
    }
    if (lost) {
      await this.#publish(job, {}, replicaChange(n, { phase: 'Failed', finishedAt, reason: 'Lost' }));
      await this.#end(job, {
        phase: 'Failed',
        reason: 'Lost',
        message: `replica ${name} (pid ${live.identity.pid}) ended while no platform watched it and left no exit status`,
        replicaReason: 'Stopped',
      });
      return;
    }
    const end: ReplicaEnd =
      exitCode === 0
        ? { phase: 'Succeeded', reason: 'Completed' }
        : { phase: 'Failed', reason: note ? 'StartError' : 'Error' };
    const ended = replicaChange(n, { phase: end.phase, exitCode, finishedAt, reason: end.reason });
    if (exitCode === 0) {
      const roles = job.spec.successPolicy?.roles;
      const counted = job.status.replicas.map(ended).filter((r) => !roles || roles.includes(r.role));
      if (counted.every((r) => r.phase === 'Succeeded')) {
        // The replica's end is recorded with the job's.
        await this.#end(
          job,
          { phase: 'Succeeded', reason: 'Completed', message: 'every replica succeeded', replicaReason: 'Stopped' },
          ended,
        );
        return;
      }
    }
    await this.#publish(job, {}, ended);
    if (exitCode === 0) return;
    const why = `replica ${name} exited with code ${exitCode}${note ? ` (${note})` : ''}`;
    const action = retryAction(job.spec, role, exitCode);
    if (action === 'FailJob') {
      await this.#end(job, {
        phase: 'Failed',
        reason: 'PodFailurePolicy',
        message: `${why}, which a FailJob rule matches`,
        replicaReason: 'Stopped',
      });
      return;
    }
    if (action === 'Count') {
      const retriesUsed = job.status.retriesUsed + 1;
      await this.#publish(job, { retriesUsed });
      if (retriesUsed > (job.spec.retries ?? 0)) {
        await this.#end(job, {
          phase: 'Failed',
          reason: 'BackoffLimitExceeded',
          message: `${why}; ${retriesUsed} counted failure(s), ${job.spec.retries ?? 0} retries allowed`,
          replicaReason: 'Stopped',
        });
        return;
      }
    }
    const all = job.status.replicas.map((_, i) => i);
    const scope = job.spec.restartScope ?? 'job';
    // Recorded with the status, so that a platform restarted meanwhile still restarts what this one meant to.
    job.state = { ...job.state, restart: scope === 'replica' ? [n] : all };
    await this.#publish(job, { reason: 'Restarting', message: `${why}; restarting` });
    if (scope === 'replica') {
      this.#restartLater(job, [n]);
      return;
    }
    job.restarting = true;
    this.#stopAll(job);
    await this.#settle(job);
  }

  /** Starts the next attempt of `replicas` after the backoff, unless the job ends meanwhile. */
  #restartLater(job: ActiveJob, replicas: readonly number[]): void {
    const delay = Math.min(60_000, this.#backoffMs * 2 ** Math.min(job.restarts, 16));
    job.restarts += 1;
    clearTimeout(job.restartTimer);
    job.restartTimer = setTimeout(() => {
      void this.#serially(job, async () => {
        if (job.ending || TERMINAL.has(job.status.phase)) return;
        await this.#startAll(job, replicas);
      });
    }, delay);
    job.restartTimer.unref();
  }

  /**
   * Decides how the job ends (once) and stops what still runs; the job ends when the last replica has. `replicas`
   * changes the status's replicas along with it (the replica whose exit ends the job).
   */
  async #end(job: ActiveJob, ending: Ending, replicas?: (r: ReplicaStatus, n: number) => ReplicaStatus): Promise<void> {
    if (job.ending || TERMINAL.has(job.status.phase)) return;
    job.ending = ending;
    clearTimeout(job.deadlineTimer);
    clearTimeout(job.restartTimer);
    // Replicas that never ran end with the job.
    const now = new Date();
    const change = (replica: ReplicaStatus, n: number) => {
      const r = replicas ? replicas(replica, n) : replica;
      return r.phase === 'Pending' || (r.phase === 'Running' && !job.live.has(n))
        ? { ...r, phase: 'Failed' as const, reason: ending.replicaReason, finishedAt: now }
        : r;
    };
    if (job.live.size === 0) {
      // Nothing to stop: the job finishes now, in one write.
      await this.#finish(job, ending, change);
      return;
    }
    // Recorded with the status, so that a platform restarted before the replicas are gone still ends the job so.
    job.state = { ...job.state, ending };
    await this.#publish(job, {}, change);
    this.#stopAll(job);
    await this.#settle(job);
  }

  /** SIGTERM to every live replica's group, SIGKILL after the grace period. */
  #stopAll(job: ActiveJob): void {
    for (const live of job.live.values()) signalGroup(live.identity.pid, 'SIGTERM');
    clearTimeout(job.killTimer);
    job.killTimer = setTimeout(() => {
      for (const live of job.live.values()) signalGroup(live.identity.pid, 'SIGKILL');
    }, this.#graceMs);
    job.killTimer.unref();
  }

  /** Once no replica runs: finishes an ending job, or relaunches every replica of a restarting one. */
  async #settle(job: ActiveJob): Promise<void> {
    if (job.live.size > 0) return;
    clearTimeout(job.killTimer);
    if (job.ending) {
      await this.#finish(job, job.ending);
      return;
    }
    if (job.restarting) {
      job.restarting = false;
      this.#restartLater(job, job.state.restart ?? job.status.replicas.map((_, n) => n));
    }
  }

  async #finish(
    job: ActiveJob,
    ending: Ending,
    replicas?: (r: ReplicaStatus, n: number) => ReplicaStatus,
  ): Promise<void> {
    const finishedAt = new Date();
    const slots = job.state.slots;
    const ttl = job.spec.ttlSecondsAfterFinished;
    job.state = {
      processes: [],
      ...(job.state.createdRun ? { createdRun: true } : {}),
      ...(job.state.emptyLogs ? { emptyLogs: job.state.emptyLogs } : {}),
      ...(ttl !== undefined ? { logsExpireAt: finishedAt.getTime() + ttl * 1000 } : {}),
    };
    // The run ends first, so that whoever sees the job finished finds its run finished too.
    await this.#runStatus(job, RUN_STATUS[ending.phase]);
    await this.#publish(
      job,
      { phase: ending.phase, reason: ending.reason, message: ending.message, finishedAt },
      replicas,
    );
    if (slots) this.#pool.release(slots);
    this.#active.delete(job.id);
    // Empty unless a log could not be kept in the ArtifactStore: then its file stays for an operator to recover.
    await rmdir(join(this.#options.workDir, 'spool', job.id)).catch(() => undefined);
    job.ended.resolve(job.status);
    if (ttl !== undefined) this.#expireLogs(job.id, finishedAt.getTime() + ttl * 1000);
    setImmediate(() => this.#pump());
  }

  #armDeadline(job: ActiveJob): void {
    const seconds = job.spec.timeoutSeconds;
    if (seconds === undefined || !job.status.startedAt) return;
    const due = job.status.startedAt.getTime() + seconds * 1000;
    clearTimeout(job.deadlineTimer);
    // A deadline further than setTimeout can wait (24.8 days) is waited for in steps.
    job.deadlineTimer = setTimeout(
      () => {
        if (Date.now() < due) {
          this.#armDeadline(job);
          return;
        }
        void this.#serially(job, () =>
          this.#end(job, {
            phase: 'Failed',
            reason: 'DeadlineExceeded',
            message: `the job ran longer than timeoutSeconds (${seconds} s)`,
            replicaReason: 'DeadlineExceeded',
          }),
        );
      },
      Math.min(Math.max(0, due - Date.now()), MAX_TIMER_MS),
    );
    job.deadlineTimer.unref();
  }

  #expireLogs(id: string, at: number): void {
    // setTimeout fires at once past 2^31-1 ms (24.8 days): a longer TTL waits in steps.
    const wait = Math.min(Math.max(0, at - Date.now()), MAX_TIMER_MS);
    const timer = setTimeout(() => {
      this.#ttlTimers.delete(timer);
      if (Date.now() < at) {
        this.#expireLogs(id, at);
        return;
      }
      void this.#deleteLogs(id).catch((err: unknown) =>
        this.#options.logger?.error({ err, job: id }, 'could not delete the logs of a job after its TTL'),
      );
    }, wait);
    timer.unref();
    this.#ttlTimers.add(timer);
  }

  async #deleteLogs(id: string): Promise<void> {
    if (this.#closed) return;
    const stored = await this.#jobs.get(id);
    if (!stored || stored.state.logsDeleted) return;
    const prefix = `${this.#logPrefix}/${id}/`;
    for (;;) {
      const page = await this.#options.artifacts.list({ prefix, maxResults: 1000 });
      if (page.items.length === 0) break;
      await this.#options.artifacts.deleteMany(page.items.map((i) => i.key));
    }
    await this.#jobs.update(stored.status, { ...stored.state, logsDeleted: true });
  }

  // ------------------------------------------------------------------------------------------------------ tracker

  async #createRun(spec: JobSpec, id: string): Promise<string | undefined> {
    const tracker = this.#options.tracker;
    if (!tracker) return undefined;
    const base = spec.experiment ?? this.#options.experiment ?? 'Default';
    // The run must be in the job's project, so that a token of that project (MLFLOW_TRACKING_TOKEN) reaches it:
    // an experiment of that name in another project is not used; `<name> (<project>)` is, created with the tag.
    const inProject = async (name: string): Promise<string | undefined> => {
      try {
        const found = await tracker.getExperimentByName(name);
        return (found.tags[PROJECT_TAG] ?? DEFAULT_PROJECT) === spec.project ? found.id : undefined;
      } catch (err) {
        if (!(err instanceof NotFoundError)) throw err;
        try {
          return (await tracker.createExperiment({ name, tags: { [PROJECT_TAG]: spec.project } })).id;
        } catch (createErr) {
          if (!(createErr instanceof ConflictError)) throw createErr;
          const raced = await tracker.getExperimentByName(name);
          return (raced.tags[PROJECT_TAG] ?? DEFAULT_PROJECT) === spec.project ? raced.id : undefined;
        }
      }
    };
    const experimentId = (await inProject(base)) ?? (await inProject(`${base} (${spec.project})`));
    if (experimentId === undefined) {
      throw new ValidationError(
        `experiment '${base} (${spec.project})' belongs to another project; name another experiment for the job`,
        { field: 'experiment' },
      );
    }
    const run = await tracker.createRun({
      experimentId,
      name: spec.name,
      status: 'SCHEDULED',
      tags: { 'mlplane.job.id': id, 'mlplane.job.project': spec.project },
    });
    return run.info.id;
  }

  /** Moves the run the backend created along with the job; a tracker failure is logged, never fails the job. */
  async #runStatus(job: ActiveJob, status: RunStatus): Promise<void> {
    if (!job.state.createdRun || !job.status.runId || !this.#options.tracker) return;
    try {
      await this.#options.tracker.updateRun({ runId: job.status.runId, status });
    } catch (err) {
      this.#options.logger?.warn({ err, job: job.id, runId: job.status.runId }, 'could not update the run of a job');
    }
  }

  // ----------------------------------------------------------------------------------------------------- recovery

  /** Finds the jobs a previous platform on this host left unfinished and takes them on again. */
  async #recover(): Promise<void> {
    for (const stored of await this.#jobs.unfinished()) {
      const job = this.#track(stored.spec, stored.status, stored.state);
      if (stored.status.phase === 'Pending' || stored.status.phase === 'Queued') {
        this.#queue.push(job);
        continue;
      }
      if (stored.state.slots) this.#pool.adopt(stored.state.slots);
      await this.#serially(job, () => this.#adopt(job));
    }
    for (const stored of await this.#jobs.expiring()) {
      this.#expireLogs(stored.status.id, stored.state.logsExpireAt ?? Date.now());
    }
    setImmediate(() => this.#pump());
  }

  async #adopt(job: ActiveJob): Promise<void> {
    const gone: Live[] = [];
    for (const record of job.state.processes) {
      const base = this.#spoolBase(job.id, record.replica, record.attempt);
      const log = await AttemptLog.resume(base);
      const live: Live = {
        replica: record.replica,
        attempt: record.attempt,
        identity: record,
        exitFile: `${base}.exit`,
        log,
        exited: false,
      };
      job.live.set(record.replica, live);
      if (!isAlive(record)) {
        gone.push(live);
        continue;
      }
      log.start(this.#pollMs);
      live.watcher = setInterval(() => {
        if (!isAlive(record)) void this.#adoptedExit(job, live);
      }, this.#pollMs);
      live.watcher.unref();
    }
    if (job.state.ending) {
      // The previous platform was ending the job (cancel, deadline, a failure): this one finishes that.
      job.ending = job.state.ending;
      this.#stopAll(job);
      for (const live of gone) await this.#adoptedExit(job, live);
      await this.#settle(job);
      return;
    }
    this.#armDeadline(job);
    for (const live of gone) await this.#adoptedExit(job, live);
    if (job.ending) return;
    const restart = job.state.restart;
    if (restart) {
      // The previous platform was restarting the job: a job-scope restart stops what still runs first.
      if (restart.some((n) => job.live.has(n))) {
        job.restarting = true;
        this.#stopAll(job);
      } else {
        this.#restartLater(job, restart);
      }
      return;
    }
    // Replicas the previous platform had not launched yet (it stopped while starting the job) start now.
    const unlaunched = job.status.replicas.flatMap((r, n) => (!job.live.has(n) && r.phase === 'Pending' ? [n] : []));
    if (unlaunched.length > 0) {
      await this.#startAll(job, unlaunched);
      return;
    }
    if (job.live.size === 0) {
      await this.#end(job, {
        phase: 'Failed',
        reason: 'Lost',
        message: 'the platform stopped while the job was between attempts and no replica was found',
        replicaReason: 'Lost',
      });
    }
  }

  /** An adopted process is gone: its exit status is in its exit file, or it was lost (killed with its wrapper). */
  async #adoptedExit(job: ActiveJob, live: Live): Promise<void> {
    let code: number | undefined;
    try {
      const text = (await readFile(live.exitFile, 'utf8')).trim();
      if (/^\d+$/.test(text)) code = Number(text);
    } catch {
      code = undefined;
    }
    this.#exited(job, live, code);
  }

  #assertOpen(): void {
    if (this.#closed) throw new UnavailableError('the local compute backend is stopped');
  }
}

class LaunchError extends Error {
  readonly reason: string;
  constructor(reason: string, message: string) {
    super(message);
    this.reason = reason;
  }
}

/** The action of the first retry rule that matches a failure of `role` with `exitCode`; Count when none does. */
export function retryAction(spec: JobSpec, role: string, exitCode: number): RetryAction {
  for (const rule of spec.retryRules ?? []) {
    if (!('onExitCodes' in rule)) continue; // no conditions are reported here (capabilities.retryConditions is empty)
    const { role: only, operator, values } = rule.onExitCodes;
    if (only !== undefined && only !== role) continue;
    const listed = values.includes(exitCode);
    if (operator === 'In' ? listed : !listed) return rule.action;
  }
  return 'Count';
}

function checkLogOptions(options: LogOptions): void {
  const integer = (value: unknown, field: string, min: number) => {
    if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value < min)) {
      throw new ValidationError(`${field} must be an integer of at least ${min}`, { field });
    }
  };
  integer(options.index, 'index', 0);
  integer(options.attempt, 'attempt', 1);
  integer(options.tailLines, 'tailLines', 0);
}

async function resolveCapacity(options: LocalCapacityOptions = {}): Promise<Capacity> {
  const cpu = options.cpu ?? availableParallelism();
  if (!(cpu > 0))
    throw new ValidationError('capacity.cpu must be a positive number of cores', { field: 'capacity.cpu' });
  const memoryBytes =
    options.memory === undefined
      ? totalmem()
      : typeof options.memory === 'number'
        ? options.memory
        : parseMemory(options.memory, 'capacity.memory');
  let gpus: GpuDevice[];
  if (options.gpus === undefined) gpus = (await detectNvidiaGpus()) ?? [];
  else if (typeof options.gpus === 'number') gpus = Array.from({ length: options.gpus }, (_, i) => ({ id: String(i) }));
  else gpus = options.gpus.map((id) => ({ id }));
  return { cpu, memoryBytes, gpus };
}
