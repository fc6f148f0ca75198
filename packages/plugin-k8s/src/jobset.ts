import type { V1Condition, V1Job, V1JobCondition, V1ObjectMeta, V1Secret } from '@kubernetes/client-node';
import { type JobSpec, ValidationError, validateJobSpec } from '@mlplane/core';
import { ANNOTATIONS, LABELS, MANAGED_BY } from './labels.js';
import {
  buildManifests,
  fail,
  MAX_ANNOTATIONS_BYTES,
  MAX_OBJECT_NAME,
  type ManifestInput,
  serviceName,
  specDigest,
} from './manifests.js';

export const JOBSET = Object.freeze({ group: 'jobset.x-k8s.io', version: 'v1alpha2', plural: 'jobsets' });

/** The parts of a JobSet (`jobset.x-k8s.io/v1alpha2`) the plugin writes and reads. */
export interface JobSetObject {
  apiVersion?: string;
  kind?: string;
  metadata?: V1ObjectMeta;
  spec?: { suspend?: boolean; [field: string]: unknown };
  status?: {
    conditions?: V1Condition[];
    /** Job-wide restarts so far (each recreated every child Job). */
    restarts?: number;
    terminalState?: string;
  };
}

export interface JobSetManifests {
  readonly jobSet: JobSetObject;
  /** Holds the SecretStore values of every group's `secretEnv`; absent when the spec has none. */
  readonly secret?: V1Secret;
}

/** `replicaGroups[0].x` of a group's own build is `replicaGroups[i].x` of the spec. */
function inGroup(error: unknown, index: number): unknown {
  if (!(error instanceof ValidationError) || index === 0) return error;
  const move = (text: string) => text.replaceAll('replicaGroups[0]', `replicaGroups[${index}]`);
  return new ValidationError(move(error.message), { field: move(error.field ?? 'spec'), cause: error });
}

/**
 * A spec with several replica groups as one JobSet: a replicatedJob per group (one Indexed Job, one pod per
 * replica, built as a single-group job would be), the JobSet's headless Service for stable host names
 * (`<job>-<role>-0-<index>.<subdomain>`), `successPolicy` from the spec's, `startupPolicy` InOrder or AnyOrder, and
 * the retries: restartScope `job` restarts every Job of the set (failurePolicy.maxRestarts), `replica` replaces only
 * the failed pod (each Job's backoffLimit). A Job that failed by a FailJob rule or its deadline fails the set at
 * once. Every field the JobSet webhook would default is written out, since clusters may run JobSet without it.
 */
export function buildJobSetManifests(input: ManifestInput): JobSetManifests {
  const { spec, name, config, capabilities } = input;
  validateJobSpec(spec, capabilities);
  if (name.length > MAX_OBJECT_NAME) fail('name', `the JobSet name '${name}' is longer than ${MAX_OBJECT_NAME} chars`);
  const scope = spec.restartScope ?? 'job';
  const subdomain = serviceName(name);
  const first = spec.replicaGroups[0]!;
  const masterAddr = `${name}-${first.role}-0-0.${subdomain}`;
  const replicatedJobs: Record<string, unknown>[] = [];
  const secretData: Record<string, string> = {};
  let metadata: V1ObjectMeta | undefined;
  for (const [i, group] of spec.replicaGroups.entries()) {
    // Pod host names are `<job>-<role>-0-<index>`: a DNS label.
    const host = `${name}-${group.role}-0-${(group.replicas ?? 1) - 1}`;
    if (host.length > MAX_OBJECT_NAME) {
      fail(`replicaGroups[${i}].role`, `the host name '${host}' of its last replica is longer than ${MAX_OBJECT_NAME}`);
    }
    const rules = (spec.retryRules ?? []).filter(
      (r) => !('onExitCodes' in r) || r.onExitCodes.role === undefined || r.onExitCodes.role === group.role,
    );
    const { successPolicy: _s, startupPolicy: _o, ttlSecondsAfterFinished: _t, ...rest } = spec;
    const groupSpec: JobSpec = {
      ...rest,
      replicaGroups: [group],
      retryRules: rules,
      retries: scope === 'replica' ? (spec.retries ?? 0) : 0,
    };
    let built: ReturnType<typeof buildManifests>;
    try {
      built = buildManifests({
        ...input,
        spec: groupSpec,
        capabilities: { ...capabilities, multipleRoles: false },
        masterAddr,
      });
    } catch (error) {
      throw inGroup(error, i);
    }
    metadata ??= built.job.metadata;
    for (const [key, value] of Object.entries(built.secret?.data ?? {})) {
      if (secretData[key] !== undefined && secretData[key] !== value) {
        fail(`replicaGroups[${i}].secretEnv.${key}`, `${key} names another secret in an earlier group`);
      }
      secretData[key] = value;
    }
    const { ttlSecondsAfterFinished: _ttl, suspend: _suspend, ...jobSpec } = built.job.spec!;
    replicatedJobs.push({
      name: group.role,
      replicas: 1,
      template: {
        // The child Jobs are recognised by the JobSet controller's labels and kept apart from the plugin's own Jobs.
        metadata: { labels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.jobId]: name, [LABELS.role]: group.role } },
        spec: jobSpec,
      },
    });
  }
  const annotations: Record<string, string> = {
    ...metadata!.annotations,
    [ANNOTATIONS.spec]: JSON.stringify(spec),
    [ANNOTATIONS.specDigest]: specDigest(spec),
  };
  const bytes = Object.entries(annotations).reduce((n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v), 0);
  if (bytes > MAX_ANNOTATIONS_BYTES) {
    fail('spec', `the spec is ${bytes} bytes as annotations; Kubernetes allows ${MAX_ANNOTATIONS_BYTES}`);
  }
  const ttl = spec.ttlSecondsAfterFinished ?? config.defaultTtlSecondsAfterFinished;
  const jobSet: JobSetObject = {
    apiVersion: `${JOBSET.group}/${JOBSET.version}`,
    kind: 'JobSet',
    metadata: { name, namespace: config.namespace, labels: { ...metadata!.labels }, annotations },
    spec: {
      replicatedJobs,
      network: { enableDNSHostnames: true, subdomain, publishNotReadyAddresses: true },
      successPolicy: {
        operator: 'All',
        ...(spec.successPolicy ? { targetReplicatedJobs: [...spec.successPolicy.roles] } : {}),
      },
      startupPolicy: { startupPolicyOrder: spec.startupPolicy ?? 'AnyOrder' },
      failurePolicy: {
        maxRestarts: scope === 'job' ? (spec.retries ?? 0) : 0,
        rules: [
          { name: 'fail-job-rule', action: 'FailJobSet', onJobFailureReasons: ['PodFailurePolicy'] },
          { name: 'deadline', action: 'FailJobSet', onJobFailureReasons: ['DeadlineExceeded'] },
        ],
      },
      ...(ttl !== undefined ? { ttlSecondsAfterFinished: ttl } : {}),
    },
  };
  const secret: V1Secret | undefined =
    Object.keys(secretData).length > 0
      ? {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: {
            name: `${name}-env`,
            namespace: config.namespace,
            labels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.jobId]: name },
          },
          type: 'Opaque',
          data: secretData,
        }
      : undefined;
  return { jobSet, ...(secret ? { secret } : {}) };
}

const trueCondition = (conditions: readonly V1Condition[] | undefined, type: string) =>
  conditions?.find((c) => c.type === type && c.status === 'True');

/**
 * A JobSet seen as the Job the status mapping reads: its metadata, `Complete` or `Failed` with the reason of the
 * child Job that failed it (`PodFailurePolicy`, `DeadlineExceeded`, else `BackoffLimitExceeded`: restarts spent), and
 * `failed` = job-wide restarts plus the counted pod failures of the current child Jobs.
 */
export function jobSetAsJob(jobSet: JobSetObject, children: readonly V1Job[]): V1Job {
  const conditions: V1JobCondition[] = [];
  const status = jobSet.status;
  const completed = trueCondition(status?.conditions, 'Completed');
  const failed = trueCondition(status?.conditions, 'Failed');
  const childFailure = children
    .map((j) => j.status?.conditions?.find((c) => c.type === 'Failed' && c.status === 'True'))
    .find((c) => c !== undefined);
  if (completed) {
    conditions.push({
      type: 'Complete',
      status: 'True',
      reason: 'Completed',
      message: completed.message,
      lastTransitionTime: completed.lastTransitionTime,
    });
  } else if (failed) {
    conditions.push({
      type: 'Failed',
      status: 'True',
      reason:
        childFailure?.reason === 'PodFailurePolicy' || childFailure?.reason === 'DeadlineExceeded'
          ? childFailure.reason
          : 'BackoffLimitExceeded',
      message: [failed.message, childFailure?.message].filter((m) => m).join(': '),
      lastTransitionTime: failed.lastTransitionTime,
    });
  }
  const counted = children.reduce((n, j) => n + (j.status?.failed ?? 0), 0);
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: jobSet.metadata ?? {},
    spec: { template: {}, ...(jobSet.spec?.suspend ? { suspend: true } : {}) },
    status: { conditions, failed: (status?.restarts ?? 0) + counted },
  };
}
