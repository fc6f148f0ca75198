import { createHash } from 'node:crypto';

/** Labels and annotations linking Kubernetes objects to mlplane's jobs; the informers select on MANAGED_BY. */
export const LABELS = Object.freeze({
  managedBy: 'app.kubernetes.io/managed-by',
  jobId: 'mlplane.dev/job-id',
  role: 'mlplane.dev/role',
  /** The project, label-safe (see labelValue); the exact name is in the annotation of the same key. */
  project: 'mlplane.dev/project',
  runId: 'mlplane.dev/run-id',
  /** sha256 of project and key: stable, label-safe, and never the key itself (keys may be long or odd). */
  idempotencyKey: 'mlplane.dev/idempotency-key',
  /** Set by Kubernetes on the pods of an Indexed Job. */
  completionIndex: 'batch.kubernetes.io/job-completion-index',
  kueueQueue: 'kueue.x-k8s.io/queue-name',
  kueuePriority: 'kueue.x-k8s.io/priority-class',
  kueueJobUid: 'kueue.x-k8s.io/job-uid',
  /** Set by the JobSet controller on the Jobs and pods of a JobSet. */
  jobSetName: 'jobset.sigs.k8s.io/jobset-name',
  /** The JobSet's `status.restarts` when the pod's Job was made: attempts of a job-wide restart. */
  jobSetRestartAttempt: 'jobset.sigs.k8s.io/restart-attempt',
});

export const MANAGED_BY = 'mlplane';

export const ANNOTATIONS = Object.freeze({
  project: 'mlplane.dev/project',
  runId: 'mlplane.dev/run-id',
  /** The JobSpec as submitted (after `job.beforeSubmit`): never secret values, only references to them. */
  spec: 'mlplane.dev/spec',
  /** sha256 of the spec, compared when an idempotency key is reused. */
  specDigest: 'mlplane.dev/spec-digest',
  /** When submit was called, to the millisecond (creationTimestamp has seconds only): list order. */
  submittedAt: 'mlplane.dev/submitted-at',
  /** Set by cancel before the Job is deleted, so every watcher reads Cancelled rather than a vanished job. */
  cancelled: 'mlplane.dev/cancelled',
  volcanoGroup: 'scheduling.k8s.io/group-name',
});

/**
 * Keys a spec's own labels and annotations may not use: those the plugin writes (other `mlplane.dev/` keys, such as
 * the pipeline orchestrator's `mlplane.dev/step`, pass through), and the prefixes of Kueue, the Job controller and
 * gang schedulers, whose labels would change how the Job is run.
 */
export const RESERVED_KEYS: ReadonlySet<string> = new Set([
  LABELS.managedBy,
  ...Object.values(LABELS).filter((k) => k.startsWith('mlplane.dev/')),
  ...Object.values(ANNOTATIONS).filter((k) => k.startsWith('mlplane.dev/')),
]);
export const RESERVED_PREFIXES = [
  'kueue.x-k8s.io/',
  'batch.kubernetes.io/',
  'scheduling.k8s.io/',
  'jobset.sigs.k8s.io/',
];

/** Whether a spec label or annotation key is the plugin's (see RESERVED_KEYS). */
export const isReservedKey = (key: string) =>
  RESERVED_KEYS.has(key) || RESERVED_PREFIXES.some((p) => key.startsWith(p));

const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/**
 * `value` when it is a valid label value (not starting with `h.`), else `h.` and 40 hex chars of its sha256. Label
 * selectors narrow the search; the exact value is kept in an annotation and compared after.
 */
export function labelValue(value: string): string {
  return LABEL_VALUE.test(value) && !value.startsWith('h.') ? value : `h.${sha256Hex(value).slice(0, 40)}`;
}

export function idempotencyLabel(project: string, key: string): string {
  return sha256Hex(`${project}\u0000${key}`).slice(0, 63);
}
