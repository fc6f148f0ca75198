import type {
  V1Container,
  V1EnvVar,
  V1Job,
  V1JobSpec,
  V1NodeSelectorRequirement,
  V1PodFailurePolicyRule,
  V1Secret,
  V1Service,
  V1Toleration,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import {
  type ComputeBackendCapabilities,
  JOB_ENV,
  type JobSpec,
  NVIDIA_GPU_RESOURCE,
  parseCpu,
  parseMemory,
  type ReplicaGroup,
  ValidationError,
  validateJobSpec,
} from '@mlplane/core';
import type { K8sConfig } from './config.js';
import {
  ANNOTATIONS,
  idempotencyLabel,
  isReservedKey,
  LABELS,
  labelValue,
  MANAGED_BY,
  RESERVED_KEYS,
  RESERVED_PREFIXES,
  sha256Hex,
} from './labels.js';

/** Everything one submit creates: the Job, and what is owned by it (created after it, with an ownerReference). */
export interface JobManifests {
  readonly job: V1Job;
  /** Holds the SecretStore values of `secretEnv`; absent when the spec has none. */
  readonly secret?: V1Secret;
  /** Headless Service giving replicas stable names (`<job>-<index>.<service>`); only for multi-replica jobs. */
  readonly service?: V1Service;
  /** Volcano PodGroup (`scheduling.volcano.sh/v1beta1`); only under the volcano strategy. */
  readonly podGroup?: Record<string, unknown>;
}

export interface ManifestInput {
  readonly spec: JobSpec;
  /** The Job's object name, which is the job's id. */
  readonly name: string;
  readonly config: K8sConfig;
  readonly capabilities: ComputeBackendCapabilities;
  /** Values of the spec's secretStore references by env var name, read from the SecretStore by the caller. */
  readonly secretValues?: Readonly<Record<string, string>>;
  readonly submittedAt?: Date;
  /**
   * Set for a replica group of a JobSet: every replica gets `MASTER_ADDR` (this host) and `MASTER_PORT`, and the
   * pods get no subdomain (the JobSet's network sets it).
   */
  readonly masterAddr?: string;
}

/** Kubernetes' limit on a Job's annotations together (256 KiB); the spec annotation must fit in it. */
export const MAX_ANNOTATIONS_BYTES = 256 * 1024;
/** Object names of the Job, its Secret and Service must be DNS-1123 labels (63 chars; a Service's starts with a letter). */
export const MAX_OBJECT_NAME = 63;
/** Quantity grammar of k8s.io/apimachinery resource.Quantity (sign, digits, one suffix or an exponent). */
const QUANTITY = /^[+-]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?\d+))?$/;
/**
 * Image references as the distribution reference grammar has them: optional registry host[:port], lowercase path
 * components separated by `.`, `_`, `__` or dashes, an optional tag and an optional sha256 digest.
 */
const IMAGE_REFERENCE =
  /^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?)\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[\w][\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;
const IMAGE_MAX_LENGTH = 255 + 1 + 128 + 72;

export function fail(field: string, message: string): never {
  throw new ValidationError(message, { field });
}

/** ValidationError unless `image` is a reference a container runtime would accept. */
export function validateImageReference(image: string, field: string): void {
  if (image.length > IMAGE_MAX_LENGTH || !IMAGE_REFERENCE.test(image)) {
    fail(
      field,
      `${field} '${image}' is not an image reference: [registry[:port]/]lowercase/path[:tag][@sha256:digest]`,
    );
  }
}

function checkQuantity(value: string | number | undefined, field: string): void {
  if (value === undefined) return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) fail(field, `${field} must be a non-negative quantity`);
    return;
  }
  if (!QUANTITY.test(value.trim()) || value.trim().startsWith('-')) {
    fail(field, `${field} '${value}' is not a Kubernetes quantity like 2, 500m, 512Mi or 4Gi`);
  }
}

/**
 * Several roles are refused (capabilities.multipleRoles is false) with the reason Kubernetes has: they need a JobSet.
 * Runs before validateJobSpec, whose message names no JobSet.
 */
export function checkOneRole(spec: JobSpec, capabilities?: ComputeBackendCapabilities): void {
  if (capabilities?.multipleRoles) return;
  const groups = (spec as { replicaGroups?: unknown } | undefined)?.replicaGroups;
  if (Array.isArray(groups) && groups.length > 1) {
    const why =
      capabilities !== undefined && capabilities.scheduler !== 'kube-scheduler'
        ? `the plugin makes JobSets under the kube-scheduler strategy only (this one is ${capabilities.scheduler})`
        : 'the JobSet CRD (jobset.x-k8s.io/v1alpha2) is not installed in the cluster';
    fail(
      'replicaGroups',
      `this backend runs one replica group per job (a batch/v1 Job); the spec has ${groups.length} roles. ` +
        `Several roles need a JobSet, and ${why}`,
    );
  }
}

/**
 * Checks what the port's validateJobSpec does not and the API server would refuse (or what this backend cannot do),
 * so that nothing half-made reaches the cluster. Throws ValidationError naming the field.
 */
export function validateForKubernetes(spec: JobSpec, name: string, config: K8sConfig): void {
  if (name.length > MAX_OBJECT_NAME) fail('name', `the Job name '${name}' is longer than ${MAX_OBJECT_NAME} chars`);
  checkOneRole(spec);
  const group = spec.replicaGroups[0]!;
  const f = 'replicaGroups[0]';
  validateImageReference(group.image ?? config.defaultImage, group.image ? `${f}.image` : 'config.defaultImage');
  const r = group.resources;
  checkQuantity(r?.cpu, `${f}.resources.cpu`);
  checkQuantity(r?.memory, `${f}.resources.memory`);
  checkQuantity(r?.limits?.cpu, `${f}.resources.limits.cpu`);
  checkQuantity(r?.limits?.memory, `${f}.resources.limits.memory`);
  checkQuantity(group.sharedMemory, `${f}.sharedMemory`);
  // The API server refuses a request above its limit ("must be less than or equal to ... limit").
  if (r?.cpu !== undefined && r.limits?.cpu !== undefined) {
    if (parseCpu(r.cpu) > parseCpu(r.limits.cpu, `${f}.resources.limits.cpu`)) {
      fail(`${f}.resources.limits.cpu`, `${f}.resources.limits.cpu is below the request ${r.cpu}`);
    }
  }
  if (r?.memory !== undefined && r.limits?.memory !== undefined) {
    if (parseMemory(r.memory) > parseMemory(r.limits.memory, `${f}.resources.limits.memory`)) {
      fail(`${f}.resources.limits.memory`, `${f}.resources.limits.memory is below the request ${r.memory}`);
    }
  }
  const replicas = group.replicas ?? 1;
  if (replicas > 1 && (spec.retries ?? 0) > 0 && (spec.restartScope ?? 'job') === 'job') {
    fail(
      'restartScope',
      "a Job restarts only the failed replica: set restartScope 'replica' (torchrun's elastic rendezvous takes a " +
        'restarted node back), or retries 0',
    );
  }
  for (const [field, entries] of [
    ['labels', spec.labels],
    ['annotations', spec.annotations],
  ] as const) {
    for (const key of Object.keys(entries ?? {})) {
      if (isReservedKey(key)) {
        fail(
          `${field}.${key}`,
          `${field} '${key}' is set by the plugin (as are ${[...RESERVED_KEYS].join(', ')} and keys under ${RESERVED_PREFIXES.join(', ')})`,
        );
      }
    }
  }
  if (config.scheduler.kind === 'kueue' && spec.queue === undefined && config.scheduler.defaultQueue === undefined) {
    fail('queue', 'Kueue admits only Jobs naming a LocalQueue: set queue, or scheduler.defaultQueue in the config');
  }
  if (spec.queue !== undefined && !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(spec.queue)) {
    fail('queue', `queue '${spec.queue}' is not a queue object name: lowercase letters, digits, '-' and '.'`);
  }
  if (spec.queue !== undefined && spec.queue.length > MAX_OBJECT_NAME) {
    fail('queue', `queue '${spec.queue}' is longer than ${MAX_OBJECT_NAME} chars`);
  }
  if (spec.priority !== undefined && !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(spec.priority)) {
    fail('priority', `priority '${spec.priority}' is not a priority class name`);
  }
  if (spec.priority !== undefined && spec.priority.length > MAX_OBJECT_NAME) {
    fail('priority', `priority '${spec.priority}' is longer than ${MAX_OBJECT_NAME} chars`);
  }
}

function replicaEnv(
  spec: JobSpec,
  name: string,
  group: ReplicaGroup,
  service: string | undefined,
  port: number,
  masterAddr?: string,
) {
  const indexFrom: V1EnvVar['valueFrom'] = {
    fieldRef: { fieldPath: `metadata.labels['${LABELS.completionIndex}']` },
  };
  const env: V1EnvVar[] = Object.entries(group.env ?? {}).map(([k, value]) => ({ name: k, value }));
  env.push(
    { name: JOB_ENV.jobId, value: name },
    { name: JOB_ENV.role, value: group.role },
    { name: JOB_ENV.replicaIndex, valueFrom: indexFrom },
  );
  if (spec.runId !== undefined) {
    env.push({ name: JOB_ENV.runId, value: spec.runId }, { name: JOB_ENV.trackerRunId, value: spec.runId });
  }
  if (masterAddr !== undefined) {
    // A JobSet: replica 0 of the first group is the master, whatever group this replica is in.
    env.push({ name: 'MASTER_ADDR', value: masterAddr }, { name: 'MASTER_PORT', value: String(port) });
  } else if (service !== undefined) {
    // torchrun's static rendezvous: replica 0 of the Indexed Job is the master, each replica is one node.
    env.push(
      { name: 'MASTER_ADDR', value: `${name}-0.${service}` },
      { name: 'MASTER_PORT', value: String(port) },
      { name: 'WORLD_SIZE', value: String(group.replicas ?? 1) },
      { name: 'NODE_RANK', valueFrom: indexFrom },
    );
  }
  for (const [envName, ref] of Object.entries(group.secretEnv ?? {})) {
    env.push({
      name: envName,
      valueFrom: {
        secretKeyRef:
          ref.kind === 'kubernetesSecret'
            ? { name: ref.name, key: ref.key }
            : { name: ownedSecretName(name), key: envName },
      },
    });
  }
  return env;
}

export function ownedSecretName(jobName: string): string {
  return `${jobName}-env`;
}

/** A Service name is a DNS-1035 label: it must start with a letter, which a job name need not. */
export function serviceName(jobName: string): string {
  return /^[a-z]/.test(jobName) ? jobName : `j${jobName}`.slice(0, MAX_OBJECT_NAME);
}

function gpuPlacement(group: ReplicaGroup, config: K8sConfig) {
  const gpu = group.resources?.gpu;
  const tolerations: V1Toleration[] = [...config.tolerations, ...(group.tolerations ?? [])].map((t) => ({ ...t }));
  const expressions: V1NodeSelectorRequirement[] = [];
  if (gpu && gpu.count > 0) {
    if (!tolerations.some((t) => t.key === config.gpuTaintKey && t.operator === 'Exists')) {
      tolerations.push({ key: config.gpuTaintKey, operator: 'Exists', effect: 'NoSchedule' });
    }
    if (gpu.product !== undefined) {
      expressions.push({ key: 'nvidia.com/gpu.product', operator: 'In', values: [gpu.product] });
    }
    if (gpu.minMemoryMiB !== undefined) {
      // Gt is strict: "at least N MiB" is "more than N-1".
      expressions.push({ key: 'nvidia.com/gpu.memory', operator: 'Gt', values: [String(gpu.minMemoryMiB - 1)] });
    }
  }
  return { tolerations, expressions };
}

function container(
  spec: JobSpec,
  name: string,
  config: K8sConfig,
  service: string | undefined,
  masterAddr?: string,
): V1Container {
  const group = spec.replicaGroups[0]!;
  const r = group.resources;
  const requests: Record<string, string> = {};
  const limits: Record<string, string> = {};
  if (r?.cpu !== undefined) requests.cpu = String(r.cpu);
  if (r?.memory !== undefined) requests.memory = r.memory;
  if (r?.limits?.cpu !== undefined) limits.cpu = String(r.limits.cpu);
  if (r?.limits?.memory !== undefined) limits.memory = r.limits.memory;
  if (r?.gpu && r.gpu.count > 0) {
    // Extended resources cannot be overcommitted: request and limit must be equal.
    const type = r.gpu.type ?? NVIDIA_GPU_RESOURCE;
    requests[type] = String(r.gpu.count);
    limits[type] = String(r.gpu.count);
  }
  const mounts: V1VolumeMount[] = (group.volumeMounts ?? []).map((m) => ({
    name: m.volume,
    mountPath: m.mountPath,
    ...(m.subPath !== undefined ? { subPath: m.subPath } : {}),
    ...(m.readOnly !== undefined ? { readOnly: m.readOnly } : {}),
  }));
  if (group.sharedMemory !== undefined) mounts.push({ name: 'dshm', mountPath: '/dev/shm' });
  return {
    name: config.containerName,
    image: group.image ?? config.defaultImage,
    command: [...group.command],
    ...(group.args ? { args: [...group.args] } : {}),
    ...(group.workingDir ? { workingDir: group.workingDir } : {}),
    env: replicaEnv(spec, name, group, service, config.masterPort, masterAddr),
    ...(Object.keys(requests).length + Object.keys(limits).length > 0
      ? {
          resources: {
            ...(Object.keys(requests).length > 0 ? { requests } : {}),
            ...(Object.keys(limits).length > 0 ? { limits } : {}),
          },
        }
      : {}),
    ...(mounts.length > 0 ? { volumeMounts: mounts } : {}),
  };
}

function volumes(spec: JobSpec): V1Volume[] {
  const out: V1Volume[] = (spec.volumes ?? []).map((v) =>
    v.source.kind === 'persistentVolumeClaim'
      ? {
          name: v.name,
          persistentVolumeClaim: {
            claimName: v.source.claimName,
            ...(v.source.readOnly !== undefined ? { readOnly: v.source.readOnly } : {}),
          },
        }
      : {
          name: v.name,
          emptyDir: {
            ...(v.source.medium === 'Memory' ? { medium: 'Memory' } : {}),
            ...(v.source.sizeLimit !== undefined ? { sizeLimit: v.source.sizeLimit } : {}),
          },
        },
  );
  const shm = spec.replicaGroups[0]?.sharedMemory;
  if (shm !== undefined) out.push({ name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: shm } });
  return out;
}

function podFailurePolicy(spec: JobSpec, config: K8sConfig): Pick<V1JobSpec, 'podFailurePolicy'> {
  const rules: V1PodFailurePolicyRule[] = (spec.retryRules ?? []).map((rule) =>
    'onExitCodes' in rule
      ? {
          action: rule.action,
          onExitCodes: {
            containerName: config.containerName,
            operator: rule.onExitCodes.operator,
            values: [...rule.onExitCodes.values].sort((a, b) => a - b),
          },
        }
      : {
          action: rule.action,
          onPodConditions: rule.onConditions.map((c) => ({ type: c.type, status: c.status ?? 'True' })),
        },
  );
  return rules.length > 0 ? { podFailurePolicy: { rules } } : {};
}

/** The digest compared when an idempotency key is reused: the spec's JSON with keys sorted. */
export function specDigest(spec: JobSpec): string {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canonical)
      : v !== null && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
          )
        : v;
  return sha256Hex(JSON.stringify(canonical(spec)));
}

/**
 * Turns a JobSpec into the objects one submit creates. Validates first (the port's checks against `capabilities`,
 * then validateForKubernetes), so a spec that would be refused by the API server never reaches it.
 */
export function buildManifests(input: ManifestInput): JobManifests {
  const { spec, name, config, capabilities } = input;
  checkOneRole(spec);
  validateJobSpec(spec, capabilities);
  validateForKubernetes(spec, name, config);
  const group = spec.replicaGroups[0]!;
  const replicas = group.replicas ?? 1;
  const service = replicas > 1 ? serviceName(name) : undefined;
  const scheduler = config.scheduler;

  const labels: Record<string, string> = {
    ...spec.labels,
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.jobId]: name,
    [LABELS.project]: labelValue(spec.project),
  };
  if (spec.runId !== undefined) labels[LABELS.runId] = labelValue(spec.runId);
  if (spec.idempotencyKey !== undefined) {
    labels[LABELS.idempotencyKey] = idempotencyLabel(spec.project, spec.idempotencyKey);
  }
  const queue = spec.queue ?? (scheduler.kind === 'kube-scheduler' ? undefined : scheduler.defaultQueue);
  if (scheduler.kind === 'kueue') {
    labels[LABELS.kueueQueue] = queue!;
    if (spec.priority !== undefined) labels[LABELS.kueuePriority] = spec.priority;
  }
  const specJson = JSON.stringify(spec);
  const annotations: Record<string, string> = {
    ...spec.annotations,
    [ANNOTATIONS.project]: spec.project,
    [ANNOTATIONS.spec]: specJson,
    [ANNOTATIONS.specDigest]: specDigest(spec),
    [ANNOTATIONS.submittedAt]: (input.submittedAt ?? new Date()).toISOString(),
  };
  if (spec.runId !== undefined) annotations[ANNOTATIONS.runId] = spec.runId;
  const annotationBytes = Object.entries(annotations).reduce(
    (n, [k, v]) => n + Buffer.byteLength(k) + Buffer.byteLength(v),
    0,
  );
  if (annotationBytes > MAX_ANNOTATIONS_BYTES) {
    fail('spec', `the spec is ${annotationBytes} bytes as annotations; Kubernetes allows ${MAX_ANNOTATIONS_BYTES}`);
  }

  const podLabels: Record<string, string> = {
    ...spec.labels,
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.jobId]: name,
    [LABELS.role]: group.role,
    [LABELS.project]: labelValue(spec.project),
  };
  const podAnnotations: Record<string, string> = { ...spec.annotations };
  if (scheduler.kind === 'volcano') podAnnotations[ANNOTATIONS.volcanoGroup] = name;

  const { tolerations, expressions } = gpuPlacement(group, config);
  const priorityClassName = scheduler.kind !== 'kueue' ? spec.priority : undefined;
  const ttl = spec.ttlSecondsAfterFinished ?? config.defaultTtlSecondsAfterFinished;
  const podVolumes = volumes(spec);

  const job: V1Job = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace: config.namespace, labels, annotations },
    spec: {
      completionMode: 'Indexed',
      completions: replicas,
      parallelism: replicas,
      backoffLimit: spec.retries ?? 0,
      ...(spec.timeoutSeconds !== undefined ? { activeDeadlineSeconds: spec.timeoutSeconds } : {}),
      ...(ttl !== undefined ? { ttlSecondsAfterFinished: ttl } : {}),
      // Kueue unsuspends the Job when it admits it; until then no pod exists.
      ...(scheduler.kind === 'kueue' ? { suspend: true } : {}),
      ...podFailurePolicy(spec, config),
      template: {
        metadata: {
          labels: podLabels,
          ...(Object.keys(podAnnotations).length > 0 ? { annotations: podAnnotations } : {}),
        },
        spec: {
          // podFailurePolicy needs Never; retries are the Job's (new pods), never in-place restarts.
          restartPolicy: 'Never',
          containers: [container(spec, name, config, service, input.masterAddr)],
          ...(service !== undefined && input.masterAddr === undefined ? { subdomain: service } : {}),
          ...(podVolumes.length > 0 ? { volumes: podVolumes } : {}),
          ...(tolerations.length > 0 ? { tolerations } : {}),
          ...(group.nodeSelector || Object.keys(config.nodeSelector).length > 0
            ? { nodeSelector: { ...config.nodeSelector, ...group.nodeSelector } }
            : {}),
          ...(expressions.length > 0
            ? {
                affinity: {
                  nodeAffinity: {
                    requiredDuringSchedulingIgnoredDuringExecution: {
                      nodeSelectorTerms: [{ matchExpressions: expressions }],
                    },
                  },
                },
              }
            : {}),
          ...(spec.serviceAccount !== undefined
            ? { serviceAccountName: spec.serviceAccount }
            : { automountServiceAccountToken: false }),
          ...(spec.imagePullSecrets && spec.imagePullSecrets.length > 0
            ? { imagePullSecrets: spec.imagePullSecrets.map((s) => ({ name: s })) }
            : {}),
          ...(priorityClassName !== undefined ? { priorityClassName } : {}),
          ...(scheduler.kind === 'volcano' ? { schedulerName: scheduler.schedulerName } : {}),
        },
      },
    },
  };

  const ownedMeta = (objectName: string) => ({
    name: objectName,
    namespace: config.namespace,
    labels: { [LABELS.managedBy]: MANAGED_BY, [LABELS.jobId]: name },
  });
  const secretEntries = Object.entries(group.secretEnv ?? {}).filter(([, ref]) => ref.kind === 'secretStore');
  let secret: V1Secret | undefined;
  if (secretEntries.length > 0) {
    const data: Record<string, string> = {};
    for (const [envName] of secretEntries) {
      const value = input.secretValues?.[envName];
      if (value === undefined) fail(`${'replicaGroups[0].secretEnv'}.${envName}`, `no value was read for ${envName}`);
      data[envName] = Buffer.from(value).toString('base64');
    }
    secret = { apiVersion: 'v1', kind: 'Secret', metadata: ownedMeta(ownedSecretName(name)), type: 'Opaque', data };
  }
  const serviceManifest: V1Service | undefined =
    service === undefined
      ? undefined
      : {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: ownedMeta(service),
          spec: {
            clusterIP: 'None',
            // Replicas must resolve each other before they are ready (torchrun rendezvous).
            publishNotReadyAddresses: true,
            selector: { [LABELS.jobId]: name },
            ports: [{ name: 'rendezvous', port: config.masterPort }],
          },
        };
  const podGroup =
    scheduler.kind === 'volcano'
      ? {
          apiVersion: 'scheduling.volcano.sh/v1beta1',
          kind: 'PodGroup',
          metadata: ownedMeta(name),
          spec: {
            // Gang: Volcano binds no pod until minMember of them fit at once.
            minMember: spec.gang ? replicas : 1,
            queue,
            ...(spec.priority !== undefined ? { priorityClassName: spec.priority } : {}),
          },
        }
      : undefined;
  return {
    job,
    ...(secret ? { secret } : {}),
    ...(serviceManifest ? { service: serviceManifest } : {}),
    ...(podGroup ? { podGroup } : {}),
  };
}

/** Capability flags per scheduler strategy (docs/plugins/k8s.md has the table). */
export function capabilitiesFor(config: K8sConfig, jobSets = false): ComputeBackendCapabilities {
  const kind = config.scheduler.kind;
  // Several roles are one JobSet; the plugin makes them under kube-scheduler only (Kueue would need its JobSet
  // integration, Volcano a PodGroup across the JobSet's Jobs).
  const roles = jobSets && kind === 'kube-scheduler';
  return Object.freeze({
    scheduler: kind,
    gpu: true,
    gpuTypes: Object.freeze([...config.gpuTypes]),
    queues: kind !== 'kube-scheduler',
    priorities: true,
    // kube-scheduler preempts lower-priority pods too, but the Job only replaces them: it never returns to Queued.
    preemption: kind !== 'kube-scheduler',
    gang: kind === 'kueue' ? 'admission' : kind === 'volcano' ? 'placement' : 'none',
    logsFollow: true,
    multiNode: true,
    multipleRoles: roles,
    containers: true,
    volumeKinds: Object.freeze(['persistentVolumeClaim', 'emptyDir'] as const),
    serviceAccounts: true,
    imagePullSecrets: true,
    secretRefKinds: Object.freeze(['kubernetesSecret', 'secretStore'] as const),
    retryConditions: Object.freeze(['DisruptionTarget']),
    orderedStartup: roles,
    statusAfterTtl: false,
  });
}
