import type { V1Condition, V1Job, V1JobCondition, V1Pod } from '@kubernetes/client-node';
import type { JobPhase, JobSpec, JobStatus, ReplicaPhase, ReplicaStatus } from '@mlplane/core';
import { ANNOTATIONS, LABELS } from './labels.js';

/** The part of a Kueue Workload (`kueue.x-k8s.io/v1beta2`) the status reads. */
export interface KueueWorkload {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata?: {
    readonly name?: string;
    readonly namespace?: string;
    readonly labels?: Record<string, string>;
    readonly resourceVersion?: string;
  };
  readonly status?: { readonly conditions?: readonly V1Condition[] };
}

/** A Kubernetes Warning event about a job's Job or one of its pods. */
export interface WarningEvent {
  readonly reason: string;
  readonly message: string;
  /** Milliseconds since the epoch: the event's last occurrence. */
  readonly at: number;
}

/** The JobSpec a Job was made from, kept in its annotation; undefined for a Job not made by this plugin. */
export function specOf(job: V1Job): JobSpec | undefined {
  const text = job.metadata?.annotations?.[ANNOTATIONS.spec];
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as JobSpec;
  } catch {
    return undefined;
  }
}

const date = (value: Date | string | undefined): Date | undefined =>
  value === undefined ? undefined : value instanceof Date ? value : new Date(value);

function trueCondition<T extends { type: string; status: string }>(conditions: readonly T[] | undefined, type: string) {
  return conditions?.find((c) => c.type === type && c.status === 'True');
}

function creation(pod: V1Pod): number {
  return date(pod.metadata?.creationTimestamp)?.getTime() ?? 0;
}

/** A JobSet's job-wide restarts so far when the pod was made (0 for a plain Job's pods). */
const restartAttempt = (pod: V1Pod) => Number(pod.metadata?.labels?.[LABELS.jobSetRestartAttempt] ?? 0);

/**
 * Pods of one replica index, oldest first (by the JobSet restart they belong to, then by creation). `role` keeps
 * only that role's pods (a JobSet's); absent, all pods are one role's (a Job's).
 */
export function podsByIndex(pods: readonly V1Pod[], role?: string): Map<number, V1Pod[]> {
  const byIndex = new Map<number, V1Pod[]>();
  for (const pod of pods) {
    if (role !== undefined && pod.metadata?.labels?.[LABELS.role] !== role) continue;
    const index = Number(pod.metadata?.labels?.[LABELS.completionIndex] ?? 0);
    const list = byIndex.get(index) ?? [];
    list.push(pod);
    byIndex.set(index, list);
  }
  for (const list of byIndex.values()) {
    list.sort((a, b) => restartAttempt(a) - restartAttempt(b) || creation(a) - creation(b));
  }
  return byIndex;
}

/**
 * The attempt number of each pod of one replica (oldest first): the N-th pod of a Job is attempt N; in a JobSet,
 * a job-wide restart R starts at attempt R + 1 (the pods of earlier restarts are deleted with their Jobs).
 */
export function attemptNumbers(attempts: readonly V1Pod[]): number[] {
  const out: number[] = [];
  for (const [i, pod] of attempts.entries()) {
    const r = restartAttempt(pod);
    const previous = i > 0 ? out[i - 1]! : 0;
    out.push(Math.max(previous + 1, r + 1));
  }
  return out;
}

function replicaStatus(role: string, index: number, attempts: readonly V1Pod[]): ReplicaStatus {
  const pod = attempts.at(-1);
  if (pod === undefined) return { role, index, phase: 'Pending', attempt: 1 };
  const container = pod.status?.containerStatuses?.[0];
  const terminated = container?.state?.terminated;
  const waiting = container?.state?.waiting;
  const phase = (pod.status?.phase ?? 'Pending') as ReplicaPhase;
  const reason = terminated?.reason ?? pod.status?.reason ?? waiting?.reason;
  const startedAt = date(container?.state?.running?.startedAt ?? terminated?.startedAt ?? pod.status?.startTime);
  const finishedAt = date(terminated?.finishedAt);
  return {
    role,
    index,
    phase,
    attempt: attemptNumbers(attempts).at(-1)!,
    ...(terminated ? { exitCode: terminated.exitCode } : {}),
    ...(reason ? { reason } : {}),
    ...(pod.spec?.nodeName ? { node: pod.spec.nodeName } : {}),
    ...(startedAt ? { startedAt } : {}),
    ...(finishedAt ? { finishedAt } : {}),
  };
}

/** Why a pod has not started: the scheduler's verdict or the kubelet's waiting reason (image pulls, config). */
function pendingCause(pods: readonly V1Pod[]): { reason: string; message?: string } | undefined {
  for (const pod of pods) {
    const scheduled = pod.status?.conditions?.find((c) => c.type === 'PodScheduled');
    if (scheduled?.status === 'False') {
      return {
        reason: scheduled.reason ?? 'Unschedulable',
        ...(scheduled.message ? { message: scheduled.message } : {}),
      };
    }
    const waiting = pod.status?.containerStatuses?.[0]?.state?.waiting;
    if (waiting?.reason && waiting.reason !== 'ContainerCreating') {
      return { reason: waiting.reason, ...(waiting.message ? { message: waiting.message } : {}) };
    }
  }
  return undefined;
}

function failureMessage(condition: V1JobCondition, replicas: readonly ReplicaStatus[]): string {
  const failed = replicas.filter((r) => r.phase === 'Failed');
  const parts = failed.map(
    (r) =>
      `replica ${r.role}-${r.index} attempt ${r.attempt} ${
        r.exitCode !== undefined ? `exited with code ${r.exitCode}` : 'failed'
      }${r.reason ? ` (${r.reason})` : ''}`,
  );
  return [condition.message, ...parts].filter((p) => p).join('; ');
}

/**
 * The JobStatus of a Job, from the Job itself, its pods and (under Kueue) its Workload. Pure: the backend calls it on
 * every change an informer reports and sends watchers the result when it differs from the last one.
 */
export function jobStatus(
  job: V1Job,
  pods: readonly V1Pod[],
  workload?: KueueWorkload,
  warning?: WarningEvent,
): JobStatus {
  const meta = job.metadata ?? {};
  const spec = specOf(job);
  const groups = spec?.replicaGroups ?? [
    { role: meta.labels?.[LABELS.role] ?? 'main', replicas: job.spec?.completions ?? 1 },
  ];
  const replicas: ReplicaStatus[] = [];
  for (const group of groups) {
    const byIndex = podsByIndex(pods, groups.length > 1 ? group.role : undefined);
    for (let i = 0; i < (group.replicas ?? 1); i++) replicas.push(replicaStatus(group.role, i, byIndex.get(i) ?? []));
  }
  const count = replicas.length;

  const conditions = job.status?.conditions;
  const wlConditions = workload?.status?.conditions;
  const admitted = trueCondition(wlConditions, 'Admitted') ?? trueCondition(wlConditions, 'QuotaReserved');
  const submittedAt = date(meta.annotations?.[ANNOTATIONS.submittedAt]) ?? date(meta.creationTimestamp) ?? new Date(0);
  const podStarts = replicas.map((r) => r.startedAt?.getTime()).filter((t): t is number => t !== undefined);
  const startedAt = podStarts.length > 0 ? new Date(Math.min(...podStarts)) : undefined;

  let phase: JobPhase;
  let reason: string | undefined;
  let message: string | undefined;
  let finishedAt: Date | undefined;
  const complete = trueCondition(conditions, 'Complete');
  const failed = trueCondition(conditions, 'Failed');
  const cancelled = meta.annotations?.[ANNOTATIONS.cancelled];
  if (cancelled !== undefined && !complete && !failed) {
    phase = 'Cancelled';
    reason = 'Cancelled';
    const note = JSON.parse(cancelled) as { at: string; reason?: string };
    finishedAt = date(note.at);
    if (note.reason) message = note.reason;
  } else if (complete) {
    phase = 'Succeeded';
    reason = complete.reason || 'Completed';
    finishedAt = date(job.status?.completionTime ?? complete.lastTransitionTime);
  } else if (failed) {
    phase = 'Failed';
    reason = failed.reason || 'Failed';
    message = failureMessage(failed, replicas);
    finishedAt = date(failed.lastTransitionTime);
  } else if (job.spec?.suspend) {
    // Under Kueue a suspended Job waits for admission; an evicted one was suspended again and requeued.
    phase = 'Queued';
    const evicted = trueCondition(wlConditions, 'Preempted') ?? trueCondition(wlConditions, 'Evicted');
    const pending = wlConditions?.find((c) => c.type === 'QuotaReserved' && c.status === 'False');
    if (evicted) {
      reason = 'Preempted';
      message = evicted.message;
    } else if (pending) {
      reason = pending.reason || 'Pending';
      message = pending.message;
    }
  } else {
    // A replica that ran (even one that already ended, before the Job controller writes Complete or Failed, or one
    // waiting for its retry) keeps the job Running: phases never go back to Pending.
    const started = replicas.filter((r) => r.phase !== 'Pending' || r.attempt > 1).length;
    const needed = spec?.gang ? count : 1;
    if (started >= needed) {
      phase = 'Running';
    } else if (admitted) {
      phase = 'Admitted';
    } else {
      phase = 'Pending';
    }
    if (phase !== 'Running') {
      // A pod condition says most; else the latest Warning event (a Job that cannot create pods has none).
      const cause = pendingCause(pods) ?? (warning ? { reason: warning.reason, message: warning.message } : undefined);
      if (cause) {
        reason = cause.reason;
        message = cause.message;
      }
    }
  }
  const finished = phase === 'Succeeded' || phase === 'Failed' || phase === 'Cancelled';
  const shownReplicas = finished
    ? replicas.map((r) =>
        r.phase === 'Pending' || r.phase === 'Running'
          ? {
              ...r,
              phase: (phase === 'Succeeded' ? 'Succeeded' : 'Failed') as ReplicaPhase,
              reason: r.reason ?? reason,
              // Stopped when the job ended (a JobSet deletes the Jobs still running when it ends).
              ...(r.finishedAt === undefined && finishedAt !== undefined ? { finishedAt } : {}),
            }
          : r,
      )
    : replicas;
  const runId = meta.annotations?.[ANNOTATIONS.runId];
  const queue = spec?.queue ?? job.metadata?.labels?.[LABELS.kueueQueue] ?? undefined;
  return {
    id: meta.name ?? '',
    name: spec?.name ?? meta.name ?? '',
    project: meta.annotations?.[ANNOTATIONS.project] ?? '',
    ...(runId !== undefined ? { runId } : {}),
    phase,
    // status.failed counts the pod a FailJob rule matched too; that failure ended the job and used no retry.
    retriesUsed: Math.max(0, (job.status?.failed ?? 0) - (phase === 'Failed' && reason === 'PodFailurePolicy' ? 1 : 0)),
    ...(queue !== undefined ? { queue } : {}),
    ...(spec?.priority !== undefined ? { priority: spec.priority } : {}),
    labels: { ...(spec?.labels ?? {}) },
    submittedAt,
    ...(admitted?.lastTransitionTime ? { admittedAt: date(admitted.lastTransitionTime)! } : {}),
    ...(startedAt ? { startedAt } : {}),
    ...(finishedAt ? { finishedAt } : {}),
    ...(reason !== undefined ? { reason } : {}),
    ...(message ? { message } : {}),
    replicas: shownReplicas,
  };
}
