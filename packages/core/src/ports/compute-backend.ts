import { definePort } from '../kernel/port.js';
import { createServiceRef } from '../kernel/service-ref.js';
import { ValidationError } from './errors.js';
import { createComputeBackendHooks, guardComputeBackend } from './guards/compute-backend.js';
import type { Page, PageLimits, PageOptions } from './paging.js';

export { ConflictError, NotFoundError, UnavailableError, ValidationError } from './errors.js';
export type { Page, PageOptions } from './paging.js';

/** Job names become Kubernetes object names with suffixes appended: a DNS-1123 label of at most 52 chars. */
export const JOB_NAME_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
export const JOB_NAME_MAX_LENGTH = 52;
export const LIST_JOBS_PAGE: PageLimits = Object.freeze({ default: 100, max: 1000 });
/** The extended resource a whole NVIDIA GPU is requested as. */
export const NVIDIA_GPU_RESOURCE = 'nvidia.com/gpu';

/**
 * GPUs for each replica. `type` is the extended resource to request: `nvidia.com/gpu` (default), a MIG
 * profile such as `nvidia.com/mig-1g.10gb`, or `nvidia.com/gpu.shared` under time-slicing.
 */
export interface GpuRequest {
  /** Whole devices (or MIG slices) per replica; 0 means none. */
  readonly count: number;
  readonly type?: string;
  /** Required device model, matched against node label `nvidia.com/gpu.product`, e.g. `NVIDIA-H100-80GB-HBM3`. */
  readonly product?: string;
  /** Minimum device memory in MiB, matched against node label `nvidia.com/gpu.memory`. */
  readonly minMemoryMiB?: number;
}

/** Per replica. Quantities use Kubernetes notation so they pass through unchanged: cpu `2`, `500m`; memory `4Gi`. */
export interface ResourceRequest {
  readonly cpu?: number | string;
  readonly memory?: string;
  readonly gpu?: GpuRequest;
  /** Hard caps where they differ from the request; backends without limits ignore them. */
  readonly limits?: { readonly cpu?: number | string; readonly memory?: string };
}

export interface Toleration {
  readonly key?: string;
  readonly operator: 'Exists' | 'Equal';
  readonly value?: string;
  readonly effect?: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
}

export interface JobSpec {
  /** Display name and object-name prefix; see JOB_NAME_PATTERN. Not unique: each submit makes a new job. */
  readonly name: string;
  readonly project: string;
  /** Container image; local backends run the command on the host when absent and reject it when set without container support. */
  readonly image?: string;
  /** Executable and leading arguments, e.g. `['python', '-m', 'train']`. */
  readonly command: readonly string[];
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Env var -> SecretStore name, resolved at launch and never logged or stored in the spec. */
  readonly secretEnv?: Readonly<Record<string, string>>;
  readonly workingDir?: string;
  readonly resources?: ResourceRequest;
  /** Retries after a failed attempt (Kubernetes backoffLimit); default 0. */
  readonly retries?: number;
  /** Wall-clock limit over all attempts (activeDeadlineSeconds); the job then fails with reason `DeadlineExceeded`. */
  readonly timeoutSeconds?: number;
  /** Queue to wait in for quota (Kueue LocalQueue, Volcano queue, local slot pool); needs `capabilities.queues`. */
  readonly queue?: string;
  /** Priority class name (Kueue WorkloadPriorityClass, Kubernetes PriorityClass); needs `capabilities.priorities`. */
  readonly priority?: string;
  /** Replicas running at once; default 1. */
  readonly parallelism?: number;
  /** Successful replicas needed to finish; default `parallelism`. */
  readonly completions?: number;
  /**
   * `Indexed` gives each replica `JOB_COMPLETION_INDEX` (0..completions-1) and a stable host name
   * `<job>-<index>.<job>`, with `MASTER_ADDR` pointing at index 0, for multi-node training.
   */
  readonly completionMode?: 'NonIndexed' | 'Indexed';
  /** All replicas start together or none does (Kueue waitForPodsReady, Volcano minMember); needs `capabilities.gangScheduling`. */
  readonly gang?: boolean;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly tolerations?: readonly Toleration[];
  readonly nodeSelector?: Readonly<Record<string, string>>;
  /** Resubmitting a spec with the same key in the same project returns the existing job instead of a new one. */
  readonly idempotencyKey?: string;
}

/**
 * Pending: accepted, not yet queued or scheduled. Queued: waiting for quota in `queue`. Admitted: quota
 * reserved, replicas being placed. Running: replicas started (all of them, for a gang). The last three are
 * terminal. Phases only move forward, except that preemption sends Admitted or Running back to Queued.
 */
export type JobPhase = 'Pending' | 'Queued' | 'Admitted' | 'Running' | 'Succeeded' | 'Failed' | 'Cancelled';

export const TERMINAL_JOB_PHASES: readonly JobPhase[] = Object.freeze(['Succeeded', 'Failed', 'Cancelled']);

export function isTerminalJobPhase(phase: JobPhase): boolean {
  return TERMINAL_JOB_PHASES.includes(phase);
}

export interface JobStatus {
  /** Backend-assigned, unique, stable across retries. */
  readonly id: string;
  readonly name: string;
  readonly project: string;
  readonly phase: JobPhase;
  /** Attempts started so far (1 on the first); at most `retries + 1`. */
  readonly attempts: number;
  readonly queue?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly submittedAt: Date;
  readonly startedAt?: Date;
  readonly finishedAt?: Date;
  /** Machine-readable cause of the latest change: `Preempted`, `DeadlineExceeded`, `BackoffLimitExceeded`, `OOMKilled`... */
  readonly reason?: string;
  /** What a user should read about the latest change. */
  readonly message?: string;
  /** Exit code of the last finished attempt (of replica 0 when several). */
  readonly exitCode?: number;
  /** Node (or host) of the current or last attempt of replica 0. */
  readonly node?: string;
  /** Replica counts of the current attempt. */
  readonly replicas?: { readonly active: number; readonly succeeded: number; readonly failed: number };
}

export interface ListJobsOptions extends PageOptions {
  readonly project?: string;
  readonly phases?: readonly JobPhase[];
  /** Every pair must match. */
  readonly labels?: Readonly<Record<string, string>>;
}

export type WatchJobsTarget = { readonly id: string } | Omit<ListJobsOptions, keyof PageOptions>;

export interface WatchOptions {
  /** Ends the iteration (without error) when aborted. */
  readonly signal?: AbortSignal;
}

export interface LogOptions {
  /** Keep streaming until the job ends; needs `capabilities.logsFollow` (ValidationError otherwise). */
  readonly follow?: boolean;
  /** Replica index of an Indexed job; default 0. */
  readonly replica?: number;
  /** 1-based attempt; default the latest. */
  readonly attempt?: number;
  /** Only the last N lines. */
  readonly tailLines?: number;
  /** Prefix each line with its RFC 3339 timestamp and a space. */
  readonly timestamps?: boolean;
  readonly signal?: AbortSignal;
}

/** Which features differ between backends. */
export interface ComputeBackendCapabilities {
  readonly gpu: boolean;
  /** GPU resource types offered (`nvidia.com/gpu`, `nvidia.com/mig-1g.10gb`); absent when unknown. */
  readonly gpuTypes?: readonly string[];
  readonly queues: boolean;
  readonly gangScheduling: boolean;
  readonly priorities: boolean;
  /** Higher-priority work may evict running jobs (they return to Queued). */
  readonly preemption: boolean;
  /** `logs` can follow a running job. */
  readonly logsFollow: boolean;
  /** Replicas of one job may run on different nodes. */
  readonly multiNode: boolean;
  /** `image` is honoured (jobs run in containers). */
  readonly containers: boolean;
}

/**
 * Runs batch jobs: training, batch inference, data processing. Specs pass the `job.beforeSubmit` waterfall
 * hook before `submit` is called. Unknown job ids raise NotFoundError.
 */
export interface ComputeBackend {
  readonly capabilities: ComputeBackendCapabilities;
  /**
   * Accepts the job and returns its first status (usually Pending or Queued) without waiting for it to run.
   * ValidationError when the spec asks for something the backend lacks (a GPU type, a queue, gang) or
   * breaks a rule (name, quantities); UnavailableError when the backend cannot be reached.
   */
  submit(spec: JobSpec): Promise<JobStatus>;
  get(id: string): Promise<JobStatus>;
  /** Newest first; page limits LIST_JOBS_PAGE. */
  list(options?: ListJobsOptions): Promise<Page<JobStatus>>;
  /**
   * Current status of each matching job first, then every change, in order per job. Watching one id ends
   * after its terminal status; a filtered watch ends only when aborted. Changes missed during a reconnect
   * are delivered as the latest status, never skipped silently.
   */
  watch(target: WatchJobsTarget, options?: WatchOptions): AsyncIterable<JobStatus>;
  /** Lines without their trailing newline, oldest first; ends with the log (or when the job ends, with `follow`). */
  logs(id: string, options?: LogOptions): AsyncIterable<string>;
  /** Stops every replica and ends the job as Cancelled; idempotent, and a no-op on a finished job. */
  cancel(id: string, options?: { readonly reason?: string }): Promise<JobStatus>;
}

export const computeBackendRef = createServiceRef<ComputeBackend>({ id: 'core.computeBackend' });

/**
 * The port as the kernel knows it: its hooks (`job.beforeSubmit`, `job.started`, `job.finished`, under `platform.hooks.job`) and the guard that makes
 * them fire for whichever provider is chosen. Providers never fire these hooks themselves.
 */
export const computeBackendPort = definePort({
  ref: computeBackendRef,
  hooksKey: 'job',
  createHooks: createComputeBackendHooks,
  guard: guardComputeBackend,
});

const BINARY_SUFFIX: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50 };
const DECIMAL_SUFFIX: Record<string, number> = { '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15 };

/** Bytes of a Kubernetes memory quantity (`512Mi`, `4Gi`, `1G`, `1000`); ValidationError when malformed. */
export function parseMemory(quantity: string): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$/.exec(quantity.trim());
  const unit = m?.[2] ?? '';
  const factor = BINARY_SUFFIX[unit] ?? DECIMAL_SUFFIX[unit];
  if (!m || factor === undefined) {
    throw new ValidationError(`memory '${quantity}' is not a quantity like 512Mi or 4Gi`, {
      field: 'resources.memory',
    });
  }
  return Math.ceil(Number(m[1]) * factor);
}

/** Cores of a Kubernetes CPU quantity (`2`, `0.5`, `500m`); ValidationError when malformed. */
export function parseCpu(quantity: number | string): number {
  if (typeof quantity === 'number' && Number.isFinite(quantity) && quantity >= 0) return quantity;
  const m = /^(\d+(?:\.\d+)?)(m)?$/.exec(String(quantity).trim());
  if (!m)
    throw new ValidationError(`cpu '${quantity}' is not a quantity like 2, 0.5 or 500m`, { field: 'resources.cpu' });
  return m[2] ? Number(m[1]) / 1000 : Number(m[1]);
}

/** ValidationError unless `name` is a usable job name. */
export function validateJobName(name: string): void {
  if (name.length > JOB_NAME_MAX_LENGTH || !JOB_NAME_PATTERN.test(name)) {
    throw new ValidationError(
      `job name '${name}' must be lowercase letters, digits and '-', start and end alphanumeric, at most ${JOB_NAME_MAX_LENGTH} chars`,
      { field: 'name' },
    );
  }
}
