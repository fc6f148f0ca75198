// A small ComputeBackend for the scheduler's tests: it stands for the backend the scheduler wraps (local processes,
// Kubernetes), records every submission, honours idempotency keys as the port requires, starts each job at once
// and ends it when the test says so (or after `autoCompleteMs`). It also keeps the peak of what its running jobs
// hold per project and queue label, which is what "quotas never exceeded at any moment" is checked against: the
// backend only sees a job between the scheduler's admission and its release, so its peaks bound the scheduler's.
import { randomUUID } from 'node:crypto';
import {
  type ComputeBackend,
  type ComputeBackendCapabilities,
  ConflictError,
  isTerminalJobPhase,
  type JobPhase,
  type JobSpec,
  type JobStatus,
  NotFoundError,
  type Page,
  validateJobSpec,
} from '@mlplane/core';
import { jobDemand } from '../../src/index.js';

export const RECORDING_CAPABILITIES: ComputeBackendCapabilities = Object.freeze({
  scheduler: 'recording',
  gpu: true,
  gpuTypes: ['nvidia.com/gpu', 'nvidia.com/mig-1g.10gb'],
  queues: false,
  priorities: false,
  preemption: false,
  gang: 'none',
  logsFollow: false,
  multiNode: false,
  multipleRoles: true,
  containers: false,
  volumeKinds: [],
  serviceAccounts: false,
  imagePullSecrets: false,
  secretRefKinds: [],
  retryConditions: [],
  orderedStartup: false,
  statusAfterTtl: true,
});

interface Held {
  readonly project: string;
  readonly cpuMilli: number;
  readonly gpus: number;
}

export class RecordingBackend implements ComputeBackend {
  readonly capabilities = RECORDING_CAPABILITIES;
  /** Every submit call, in order, with the job it returned. */
  readonly submitCalls: { spec: JobSpec; id: string; at: number }[] = [];
  /** Jobs created (a resubmitted idempotency key creates none). */
  readonly created = new Map<string, JobSpec>();
  readonly cancelled: string[] = [];
  readonly #jobs = new Map<string, JobStatus>();
  readonly #byKey = new Map<string, string>();
  readonly #held = new Map<string, Held>();
  /** Peak of running jobs, CPU (milli) and GPUs per project, over the whole test. */
  readonly peaks = new Map<string, { jobs: number; cpuMilli: number; gpus: number }>();
  autoCompleteMs: (() => number) | undefined;

  async submit(spec: JobSpec): Promise<JobStatus> {
    validateJobSpec(spec, this.capabilities);
    const key = spec.idempotencyKey === undefined ? undefined : `${spec.project}/${spec.idempotencyKey}`;
    const existing = key === undefined ? undefined : this.#byKey.get(key);
    if (existing !== undefined) {
      if (JSON.stringify(this.created.get(existing)) !== JSON.stringify(spec)) {
        throw new ConflictError(`idempotency key ${key} was used with another spec`);
      }
      const status = this.#jobs.get(existing)!;
      this.submitCalls.push({ spec, id: existing, at: performance.now() });
      return status;
    }
    const id = randomUUID();
    const now = new Date();
    const status: JobStatus = {
      id,
      name: spec.name,
      project: spec.project,
      phase: 'Running',
      retriesUsed: 0,
      labels: spec.labels ?? {},
      submittedAt: now,
      startedAt: now,
      replicas: spec.replicaGroups.flatMap((g) =>
        Array.from({ length: g.replicas ?? 1 }, (_, index) => ({
          role: g.role,
          index,
          phase: 'Running' as const,
          attempt: 1,
          startedAt: now,
        })),
      ),
    };
    this.#jobs.set(id, status);
    this.created.set(id, spec);
    if (key !== undefined) this.#byKey.set(key, id);
    this.submitCalls.push({ spec, id, at: performance.now() });
    const demand = jobDemand(spec);
    this.#held.set(id, { project: spec.project, cpuMilli: demand.cpuMilli, gpus: demand.gpus });
    this.#notePeak(spec.project);
    const after = this.autoCompleteMs?.();
    if (after !== undefined) setTimeout(() => this.complete(id), after);
    return status;
  }

  #notePeak(project: string): void {
    let jobs = 0;
    let cpuMilli = 0;
    let gpus = 0;
    for (const h of this.#held.values()) {
      if (h.project !== project) continue;
      jobs++;
      cpuMilli += h.cpuMilli;
      gpus += h.gpus;
    }
    const peak = this.peaks.get(project) ?? { jobs: 0, cpuMilli: 0, gpus: 0 };
    this.peaks.set(project, {
      jobs: Math.max(peak.jobs, jobs),
      cpuMilli: Math.max(peak.cpuMilli, cpuMilli),
      gpus: Math.max(peak.gpus, gpus),
    });
  }

  /** Running jobs of the project now. */
  running(project?: string): number {
    return [...this.#held.values()].filter((h) => project === undefined || h.project === project).length;
  }

  /** Ends a running job with `phase`. */
  complete(id: string, phase: JobPhase = 'Succeeded', exitCode = 0): void {
    const status = this.#jobs.get(id);
    if (!status || isTerminalJobPhase(status.phase)) return;
    const now = new Date();
    this.#held.delete(id);
    this.#jobs.set(id, {
      ...status,
      phase,
      finishedAt: now,
      reason: phase === 'Succeeded' ? 'Completed' : phase === 'Cancelled' ? 'Cancelled' : 'Error',
      replicas: status.replicas.map((r) => ({
        ...r,
        phase: phase === 'Succeeded' ? 'Succeeded' : 'Failed',
        exitCode,
        finishedAt: now,
      })),
    });
  }

  /** Ends every running job. */
  completeAll(phase: JobPhase = 'Succeeded'): number {
    const ids = [...this.#held.keys()];
    for (const id of ids) this.complete(id, phase);
    return ids.length;
  }

  async get(id: string): Promise<JobStatus> {
    const status = this.#jobs.get(id);
    if (!status) throw new NotFoundError(`job ${id} does not exist`);
    return status;
  }

  async list(): Promise<Page<JobStatus>> {
    return { items: [...this.#jobs.values()].reverse() };
  }

  async *watch(): AsyncIterable<JobStatus> {
    // The scheduler follows jobs with `get`; nothing here needs a watch.
    yield* [];
  }

  async *logs(id: string): AsyncIterable<string> {
    if (!this.#jobs.has(id)) throw new NotFoundError(`job ${id} does not exist`);
    yield `log of ${id}`;
  }

  async cancel(id: string): Promise<JobStatus> {
    await this.get(id);
    this.cancelled.push(id);
    this.complete(id, 'Cancelled');
    return this.get(id);
  }
}

/** `backend` seen through `overrides` (a replica's own path to it: flaky, stalled); every other call goes through. */
export function through(backend: ComputeBackend, overrides: Partial<ComputeBackend>): ComputeBackend {
  return {
    capabilities: backend.capabilities,
    submit: (spec) => backend.submit(spec),
    get: (id) => backend.get(id),
    list: (options) => backend.list(options),
    watch: (target, options) => backend.watch(target, options),
    logs: (id, options) => backend.logs(id, options),
    cancel: (id, options) => backend.cancel(id, options),
    ...overrides,
  };
}
