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
/** Role names join the job's object name in replica host names (`<job>-<role>-<index>`): short DNS-1123 labels. */
export const REPLICA_ROLE_PATTERN = JOB_NAME_PATTERN;
export const REPLICA_ROLE_MAX_LENGTH = 15;
/** Names of Kubernetes objects a spec refers to (Secrets, PersistentVolumeClaims, ServiceAccounts): DNS-1123 subdomains. */
export const OBJECT_NAME_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
export const OBJECT_NAME_MAX_LENGTH = 253;
/** Keys inside a Kubernetes Secret. */
export const SECRET_KEY_PATTERN = /^[-._a-zA-Z0-9]{1,253}$/;
export const LIST_JOBS_PAGE: PageLimits = Object.freeze({ default: 100, max: 1000 });
/** The extended resource a whole NVIDIA GPU is requested as. */
export const NVIDIA_GPU_RESOURCE = 'nvidia.com/gpu';
/** Kubernetes caps podFailurePolicy at 20 rules and each exit-code list at 255 values; the port keeps the same caps. */
export const MAX_RETRY_RULES = 20;
export const MAX_EXIT_CODE_VALUES = 255;
/** Replicas per group; a bound that keeps per-replica status lists readable. */
export const MAX_REPLICAS_PER_GROUP = 10_000;

/**
 * Environment every replica receives from the backend (a spec's own `env` may not set these names).
 * `MLFLOW_RUN_ID` makes MLflow clients (`mlflow.start_run()`) log into the job's tracker run.
 */
export const JOB_ENV = Object.freeze({
  jobId: 'MLPLANE_JOB_ID',
  role: 'MLPLANE_ROLE',
  /** 0..replicas-1 within the role; Kubernetes also sets JOB_COMPLETION_INDEX for Indexed Jobs. */
  replicaIndex: 'MLPLANE_REPLICA_INDEX',
  /** The job's tracker run: the spec's `runId`, or the run a backend that creates one made for the job. */
  runId: 'MLFLOW_RUN_ID',
  /** The same run id under mlplane's own name, for code that does not speak MLflow. */
  trackerRunId: 'MLPLANE_RUN_ID',
});

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

/**
 * Where a secret value comes from, kept as a reference all the way down: the spec, the stored job and its status
 * never hold the value, and logs never print it.
 * - `kubernetesSecret`: key `key` of an existing Secret `name` in the job's namespace; the kubelet reads it.
 *   Needs `'kubernetesSecret'` in `capabilities.secretRefKinds`.
 * - `secretStore`: a secret of the platform's SecretStore, read by the backend when a replica starts (local:
 *   into the process environment) or at submit (Kubernetes: into a Secret owned by the job and deleted with it).
 *   A missing one fails the job naming it, or, where read at submit, is a ValidationError with nothing created.
 */
export type SecretRef =
  | { readonly kind: 'kubernetesSecret'; readonly name: string; readonly key: string }
  | { readonly kind: 'secretStore'; readonly name: string };

/** Storage a replica can mount; see `capabilities.volumeKinds`. */
export type VolumeSource =
  /** An existing PersistentVolumeClaim (datasets, checkpoints shared between replicas and jobs). */
  | { readonly kind: 'persistentVolumeClaim'; readonly claimName: string; readonly readOnly?: boolean }
  /**
   * Scratch space created empty for each replica and deleted with it. `medium: 'Memory'` keeps it in RAM (tmpfs),
   * counted against the replica's memory; `sizeLimit` is a quantity (`10Gi`).
   */
  | { readonly kind: 'emptyDir'; readonly sizeLimit?: string; readonly medium?: 'Disk' | 'Memory' };

export interface Volume {
  /** DNS-1123 label, unique in the job; mounts refer to it. */
  readonly name: string;
  readonly source: VolumeSource;
}

export interface VolumeMount {
  /** Name of one of the job's `volumes`. */
  readonly volume: string;
  /** Absolute path in the replica; unique per replica group. */
  readonly mountPath: string;
  /** Mount this directory of the volume instead of its root. */
  readonly subPath?: string;
  readonly readOnly?: boolean;
}

/**
 * Replicas that run the same program in one role, as a JobSet's replicatedJob or an MPIJob's Launcher/Worker.
 * Each replica gets a stable index (0..replicas-1, env `MLPLANE_REPLICA_INDEX`) and a stable host name
 * `<job>-<role>-<index>` that the others can reach (multi-node training: `MASTER_ADDR=<job>-<role>-0`).
 */
export interface ReplicaGroup {
  /** Unique in the job: `worker`, `launcher`, `ps`, `driver`...; see REPLICA_ROLE_PATTERN. */
  readonly role: string;
  /** Default 1; at most MAX_REPLICAS_PER_GROUP. */
  readonly replicas?: number;
  /** Container image; local backends run the command on the host when absent and reject it when set without container support. */
  readonly image?: string;
  /** Executable and leading arguments, e.g. `['python', '-m', 'train']`. */
  readonly command: readonly string[];
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Env var -> secret reference, resolved at launch (see SecretRef); a name may not appear in `env` too. */
  readonly secretEnv?: Readonly<Record<string, SecretRef>>;
  readonly workingDir?: string;
  readonly resources?: ResourceRequest;
  readonly volumeMounts?: readonly VolumeMount[];
  /**
   * Size of `/dev/shm`, a quantity (`8Gi`). Containers get 64 MiB by default, too little for PyTorch DataLoader
   * workers and NCCL; Kubernetes backends mount a memory-backed emptyDir there (counted against the memory limit),
   * container runtimes pass `--shm-size`, host processes share the host's.
   */
  readonly sharedMemory?: string;
  readonly tolerations?: readonly Toleration[];
  readonly nodeSelector?: Readonly<Record<string, string>>;
}

/** What a matching retry rule does with a failed replica (Kubernetes podFailurePolicy actions). */
export type RetryAction =
  /** End the job as Failed now (reason `PodFailurePolicy`), whatever retries remain: a bug will not go away. */
  | 'FailJob'
  /** Restart without counting toward `retries`: the failure was not the program's (preemption, node drain). */
  | 'Ignore'
  /** Restart and count it toward `retries`: the default when no rule matches. */
  | 'Count';

/**
 * A rule deciding what a replica's failure means, modelled on Kubernetes podFailurePolicy. Rules are checked in
 * order; the first that matches decides, and a failure no rule matches is counted.
 */
export type RetryRule =
  | {
      readonly action: RetryAction;
      /**
       * Matches the exit code of the replica's program (of every role, or only of `role`). `In` may not list 0
       * (a success is not a failure); values are unique integers 0..255 at most MAX_EXIT_CODE_VALUES of them.
       */
      readonly onExitCodes: {
        readonly role?: string;
        readonly operator: 'In' | 'NotIn';
        readonly values: readonly number[];
      };
    }
  | {
      readonly action: RetryAction;
      /**
       * Matches a replica that ended with one of these conditions, e.g. `DisruptionTarget` (evicted, preempted,
       * its node drained or lost); `status` defaults to `True`. Types must be in `capabilities.retryConditions`.
       */
      readonly onConditions: readonly { readonly type: string; readonly status?: 'True' | 'False' | 'Unknown' }[];
    };

export interface JobSpec {
  /** Display name and object-name prefix; see JOB_NAME_PATTERN. Not unique: each submit makes a new job. */
  readonly name: string;
  readonly project: string;
  /**
   * The tracker run this job works for. Replicas get it as `MLFLOW_RUN_ID` (so MLflow clients log into it),
   * statuses carry it, and `list` filters by it. The backend does not check that the run exists.
   */
  readonly runId?: string;
  /**
   * Experiment (by name) in which a backend that creates tracker runs (the local backend) makes the job's run when
   * `runId` is absent; created when missing. Default: the backend's configured experiment. Others ignore it.
   */
  readonly experiment?: string;
  /** At least one; roles are unique. A plain single-process job is one group `{ role: 'main', command }`. */
  readonly replicaGroups: readonly ReplicaGroup[];
  /**
   * The job succeeds when every replica of these roles has succeeded, and the others are then stopped (JobSet
   * successPolicy, MPIJob's launcher); default every replica of every role.
   */
  readonly successPolicy?: { readonly roles: readonly string[] };
  /**
   * `AnyOrder` (default) starts every group at once; `InOrder` starts each group once the previous one's replicas
   * are running (JobSet startupPolicy; MPIJob's WaitForWorkersReady: list workers before the launcher). Needs
   * `capabilities.orderedStartup`.
   */
  readonly startupPolicy?: 'AnyOrder' | 'InOrder';
  /** Volumes the groups mount by name; see `capabilities.volumeKinds`. */
  readonly volumes?: readonly Volume[];
  /** Kubernetes ServiceAccount the replicas run as (cloud credentials through workload identity); needs `capabilities.serviceAccounts`. */
  readonly serviceAccount?: string;
  /** Existing `kubernetes.io/dockerconfigjson` Secrets for private registries; needs `capabilities.imagePullSecrets`. */
  readonly imagePullSecrets?: readonly string[];
  /** Counted failures allowed before the job fails with reason `BackoffLimitExceeded` (Kubernetes backoffLimit); default 0. */
  readonly retries?: number;
  /**
   * What a retry restarts: `job` (default) restarts every replica, as JobSet's maxRestarts and MPIJob do, which
   * replicas that rendezvous (torchrun, MPI) need; `replica` restarts only the failed one (a Job's backoffLimit).
   */
  readonly restartScope?: 'job' | 'replica';
  /** Checked in order on every failure; at most MAX_RETRY_RULES. */
  readonly retryRules?: readonly RetryRule[];
  /** Wall-clock limit over all attempts (activeDeadlineSeconds); the job then fails with reason `DeadlineExceeded`. */
  readonly timeoutSeconds?: number;
  /**
   * Seconds after the job finishes before the backend deletes what ran it (pods, containers, logs; Kubernetes
   * ttlSecondsAfterFinished); 0 deletes at once. Absent: kept until the backend's own cleanup. Afterwards `logs`
   * raises NotFoundError, and `get` does too unless `capabilities.statusAfterTtl`.
   */
  readonly ttlSecondsAfterFinished?: number;
  /** Queue to wait in for quota (Kueue LocalQueue, Volcano queue, local slot pool); needs `capabilities.queues`. */
  readonly queue?: string;
  /** Priority class name (Kueue WorkloadPriorityClass, Kubernetes PriorityClass); needs `capabilities.priorities`. */
  readonly priority?: string;
  /**
   * All replicas of all groups start together or none does, with the guarantee `capabilities.gang` names;
   * ValidationError where it is `none`.
   */
  readonly gang?: boolean;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
  /** Resubmitting a spec with the same key in the same project returns the existing job instead of a new one. */
  readonly idempotencyKey?: string;
}

/**
 * Pending: accepted, not yet queued or scheduled. Queued: waiting for quota in `queue`. Admitted: quota
 * reserved, replicas being placed. Running: replicas started (all of them, for a gang). The last three are
 * terminal. Phases only move forward, except that preemption sends Admitted or Running back to Queued
 * (reason `Preempted`); a backend skips the phases it does not have (plain kube-scheduler: Pending -> Running).
 */
export type JobPhase = 'Pending' | 'Queued' | 'Admitted' | 'Running' | 'Succeeded' | 'Failed' | 'Cancelled';

export const TERMINAL_JOB_PHASES: readonly JobPhase[] = Object.freeze(['Succeeded', 'Failed', 'Cancelled']);

export function isTerminalJobPhase(phase: JobPhase): boolean {
  return TERMINAL_JOB_PHASES.includes(phase);
}

/** Unknown: the backend lost track of the replica (its node stopped reporting). */
export type ReplicaPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';

export interface ReplicaStatus {
  readonly role: string;
  /** 0..replicas-1 within the role. */
  readonly index: number;
  readonly phase: ReplicaPhase;
  /** 1 on the replica's first run, plus one per restart, counted toward `retries` or not. */
  readonly attempt: number;
  /** Of the latest finished attempt; absent while it runs or when it never started a process. */
  readonly exitCode?: number;
  /** Machine-readable cause of the latest end: `Completed`, `Error`, `OOMKilled`, `Evicted`, `DeadlineExceeded`... */
  readonly reason?: string;
  /** Node (or host) of the current or latest attempt. */
  readonly node?: string;
  readonly startedAt?: Date;
  readonly finishedAt?: Date;
}

export interface JobStatus {
  /** Backend-assigned, unique, stable across retries. */
  readonly id: string;
  readonly name: string;
  readonly project: string;
  readonly runId?: string;
  readonly phase: JobPhase;
  /** Failures counted toward `retries` so far (Ignore rules do not count). */
  readonly retriesUsed: number;
  readonly queue?: string;
  readonly priority?: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly submittedAt: Date;
  /** Latest admission (quota reserved), for backends with queues. */
  readonly admittedAt?: Date;
  readonly startedAt?: Date;
  readonly finishedAt?: Date;
  /**
   * Machine-readable cause of the latest change: `Preempted`, `DeadlineExceeded`, `BackoffLimitExceeded`,
   * `PodFailurePolicy`, `Cancelled`...
   */
  readonly reason?: string;
  /** What a user should read about the latest change; never holds secret values. */
  readonly message?: string;
  /** One entry per replica of every group, in group order then by index. */
  readonly replicas: readonly ReplicaStatus[];
}

export interface ListJobsOptions extends PageOptions {
  readonly project?: string;
  readonly runId?: string;
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
  /** Keep streaming until the replica ends; needs `capabilities.logsFollow` (ValidationError otherwise). */
  readonly follow?: boolean;
  /** Default the first group's role; NotFoundError for a role the job does not have. */
  readonly role?: string;
  /** Replica index within the role; default 0. */
  readonly index?: number;
  /** 1-based attempt; default the latest. */
  readonly attempt?: number;
  /** Only the last N lines. */
  readonly tailLines?: number;
  /** Prefix each line with its RFC 3339 timestamp and a space. */
  readonly timestamps?: boolean;
  readonly signal?: AbortSignal;
}

/**
 * What `gang: true` guarantees, which depends on the scheduler:
 * - `placement`: no replica is bound to a node unless every replica can be at once. Volcano: a PodGroup whose
 *   `minMember` is the job's replica count. Local backend: slots (CPU, memory, GPUs) for every replica are
 *   reserved together before any replica starts.
 * - `admission`: quota for every replica is reserved at once, so the job is admitted whole or stays Queued; the
 *   pods are then bound one by one by kube-scheduler, so a replica may still wait for a node. Kueue (all pod sets
 *   of one Workload); with Kueue's `waitForPodsReady`, a job whose replicas are not all ready in time is evicted
 *   and requeued, which bounds such partial starts.
 * - `none`: replicas are bound one by one and a job may run partly (plain kube-scheduler, which has no gang
 *   scheduling); `gang: true` is refused with ValidationError.
 */
export type GangGuarantee = 'placement' | 'admission' | 'none';

/** Which features differ between backends; `validateJobSpec` (compute-backend-validation.ts) checks a spec against them. */
export interface ComputeBackendCapabilities {
  /** The scheduler placing replicas: `local`, `kube-scheduler`, `kueue`, `volcano`. Informative; behaviour is in the flags. */
  readonly scheduler: string;
  readonly gpu: boolean;
  /** GPU resource types offered (`nvidia.com/gpu`, `nvidia.com/mig-1g.10gb`); absent when unknown. */
  readonly gpuTypes?: readonly string[];
  readonly queues: boolean;
  readonly priorities: boolean;
  /** Higher-priority work may evict running jobs (they return to Queued). */
  readonly preemption: boolean;
  readonly gang: GangGuarantee;
  /** `logs` can follow a running replica. */
  readonly logsFollow: boolean;
  /** Replicas of one job may run on different nodes. */
  readonly multiNode: boolean;
  /**
   * A job may have several replica groups (roles, e.g. launcher and workers). Kubernetes needs a JobSet for that;
   * where false, a spec with more than one group is a ValidationError on `replicaGroups`.
   */
  readonly multipleRoles: boolean;
  /** `image` is honoured (jobs run in containers). */
  readonly containers: boolean;
  readonly volumeKinds: readonly VolumeSource['kind'][];
  readonly serviceAccounts: boolean;
  readonly imagePullSecrets: boolean;
  readonly secretRefKinds: readonly SecretRef['kind'][];
  /** Condition types `onConditions` retry rules can match (`DisruptionTarget` on Kubernetes); empty where none are reported. */
  readonly retryConditions: readonly string[];
  /** `startupPolicy: 'InOrder'` is honoured. */
  readonly orderedStartup: boolean;
  /** A finished job's status stays readable after `ttlSecondsAfterFinished` removed what ran it. */
  readonly statusAfterTtl: boolean;
}

/**
 * Runs batch jobs: training, batch inference, data processing. The kernel passes each spec through the
 * `job.beforeSubmit` waterfall hook before `submit` is called; backends never fire hooks. Unknown job ids raise
 * NotFoundError.
 */
export interface ComputeBackend {
  readonly capabilities: ComputeBackendCapabilities;
  /**
   * Accepts the job and returns its first status (usually Pending or Queued) without waiting for it to run.
   * ValidationError (with `field`) when the spec breaks `validateJobSpec` against `capabilities`; UnavailableError
   * when the backend cannot be reached. With an `idempotencyKey` already used in the project, returns that job's
   * current status and creates nothing (ConflictError when the earlier spec differs).
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
  /**
   * Lines of one replica's attempt without their trailing newline, oldest first; ends with the log (or when the
   * replica ends, with `follow`). NotFoundError once `ttlSecondsAfterFinished` removed it.
   */
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

/** Bytes of a Kubernetes memory quantity (`512Mi`, `4Gi`, `1G`, `1000`); ValidationError naming `field` when malformed. */
export function parseMemory(quantity: string, field = 'resources.memory'): number {
  const m = typeof quantity === 'string' ? /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$/.exec(quantity.trim()) : null;
  const unit = m?.[2] ?? '';
  const factor = BINARY_SUFFIX[unit] ?? DECIMAL_SUFFIX[unit];
  if (!m || factor === undefined) {
    throw new ValidationError(`${field} '${quantity}' is not a quantity like 512Mi or 4Gi`, { field });
  }
  return Math.ceil(Number(m[1]) * factor);
}

/** Cores of a Kubernetes CPU quantity (`2`, `0.5`, `500m`); ValidationError naming `field` when malformed. */
export function parseCpu(quantity: number | string, field = 'resources.cpu'): number {
  if (typeof quantity === 'number' && Number.isFinite(quantity) && quantity >= 0) return quantity;
  const m = typeof quantity === 'string' ? /^(\d+(?:\.\d+)?)(m)?$/.exec(quantity.trim()) : null;
  if (!m) throw new ValidationError(`${field} '${quantity}' is not a quantity like 2, 0.5 or 500m`, { field });
  return m[2] ? Number(m[1]) / 1000 : Number(m[1]);
}

/** ValidationError unless `name` is a usable job name. */
export function validateJobName(name: string): void {
  if (typeof name !== 'string' || name.length > JOB_NAME_MAX_LENGTH || !JOB_NAME_PATTERN.test(name)) {
    throw new ValidationError(
      `job name '${name}' must be lowercase letters, digits and '-', start and end alphanumeric, at most ${JOB_NAME_MAX_LENGTH} chars`,
      { field: 'name' },
    );
  }
}

/** Replicas the spec asks for across all groups. */
export function totalReplicas(spec: Pick<JobSpec, 'replicaGroups'>): number {
  return spec.replicaGroups.reduce((n, g) => n + (g.replicas ?? 1), 0);
}
