import {
  type ComputeBackendCapabilities,
  JOB_ENV,
  JOB_NAME_PATTERN,
  type JobSpec,
  MAX_EXIT_CODE_VALUES,
  MAX_REPLICAS_PER_GROUP,
  MAX_RETRY_RULES,
  NVIDIA_GPU_RESOURCE,
  OBJECT_NAME_MAX_LENGTH,
  OBJECT_NAME_PATTERN,
  parseCpu,
  parseMemory,
  REPLICA_ROLE_MAX_LENGTH,
  REPLICA_ROLE_PATTERN,
  SECRET_KEY_PATTERN,
  type SecretRef,
  type VolumeSource,
  validateJobName,
} from './compute-backend.js';
import { ValidationError } from './errors.js';
import { RUN_ID_PATTERN, TRACKER_LIMITS } from './experiment-tracker.js';
import { SECRET_NAME_PATTERN } from './secret-store.js';

// The checks behind `validateJobSpec`, apart from the port file so that the contract reads on its own.

const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const RESERVED_ENV = new Set<string>(Object.values(JOB_ENV));
/** Kubernetes label and annotation keys: an optional DNS subdomain prefix and a name of at most 63 chars. */
const LABEL_NAME_PATTERN = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE_PATTERN = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;
const CONDITION_STATUSES = ['True', 'False', 'Unknown'];

function fail(field: string, message: string): never {
  throw new ValidationError(message, { field });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkInteger(value: unknown, field: string, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(field, `${field} must be an integer from ${min} to ${max}, got ${String(value)}`);
  }
}

function checkObjectName(value: unknown, field: string, what: string): void {
  if (typeof value !== 'string' || value.length > OBJECT_NAME_MAX_LENGTH || !OBJECT_NAME_PATTERN.test(value)) {
    fail(field, `${field} '${String(value)}' is not a ${what} name: lowercase letters, digits, '-' and '.'`);
  }
}

function checkStringMap(value: unknown, field: string, key: (k: string, f: string) => void): void {
  if (value === undefined) return;
  if (!isPlainObject(value)) fail(field, `${field} must be an object of strings`);
  for (const [k, v] of Object.entries(value)) {
    key(k, `${field}.${k}`);
    if (typeof v !== 'string') fail(`${field}.${k}`, `${field}.${k} must be a string`);
  }
}

function checkLabelKey(key: string, field: string): void {
  const slash = key.lastIndexOf('/');
  const prefix = slash === -1 ? undefined : key.slice(0, slash);
  const name = slash === -1 ? key : key.slice(slash + 1);
  if ((prefix !== undefined && !OBJECT_NAME_PATTERN.test(prefix)) || !LABEL_NAME_PATTERN.test(name)) {
    fail(field, `'${key}' is not a label key: [prefix/]name, the name at most 63 letters, digits, '-', '_', '.'`);
  }
}

/**
 * ValidationError unless `ref` is a well-formed SecretRef (never a value: the message does not echo what was given)
 * whose kind is in `caps.secretRefKinds` when capabilities are given.
 */
export function validateSecretRef(
  ref: unknown,
  field: string,
  caps?: Pick<ComputeBackendCapabilities, 'secretRefKinds'>,
): asserts ref is SecretRef {
  if (!isPlainObject(ref)) fail(field, `${field} must be a secret reference, never a value`);
  if (ref.kind === 'kubernetesSecret') {
    checkObjectName(ref.name, `${field}.name`, 'Secret');
    if (typeof ref.key !== 'string' || !SECRET_KEY_PATTERN.test(ref.key)) {
      fail(`${field}.key`, `${field}.key must be a key of the Secret: letters, digits, '-', '_', '.'`);
    }
  } else if (ref.kind === 'secretStore') {
    if (typeof ref.name !== 'string' || !SECRET_NAME_PATTERN.test(ref.name)) {
      fail(`${field}.name`, `${field}.name '${String(ref.name)}' is not a SecretStore secret name`);
    }
  } else {
    fail(`${field}.kind`, `${field}.kind must be 'kubernetesSecret' or 'secretStore'`);
  }
  if (caps && !caps.secretRefKinds.includes(ref.kind as SecretRef['kind'])) {
    fail(
      `${field}.kind`,
      `this backend cannot resolve ${ref.kind} references (it resolves: ${list(caps.secretRefKinds)})`,
    );
  }
}

function list(items: readonly string[]): string {
  return items.length > 0 ? items.join(', ') : 'none';
}

function checkResources(resources: unknown, field: string, caps: ComputeBackendCapabilities | undefined): void {
  if (resources === undefined) return;
  if (!isPlainObject(resources)) fail(field, `${field} must be an object`);
  if (resources.cpu !== undefined) parseCpu(resources.cpu as string, `${field}.cpu`);
  if (resources.memory !== undefined) parseMemory(resources.memory as string, `${field}.memory`);
  const limits = resources.limits;
  if (limits !== undefined) {
    if (!isPlainObject(limits)) fail(`${field}.limits`, `${field}.limits must be an object`);
    if (limits.cpu !== undefined) parseCpu(limits.cpu as string, `${field}.limits.cpu`);
    if (limits.memory !== undefined) parseMemory(limits.memory as string, `${field}.limits.memory`);
  }
  const gpu = resources.gpu;
  if (gpu === undefined) return;
  if (!isPlainObject(gpu)) fail(`${field}.gpu`, `${field}.gpu must be an object`);
  checkInteger(gpu.count, `${field}.gpu.count`, 0);
  if (gpu.minMemoryMiB !== undefined) checkInteger(gpu.minMemoryMiB, `${field}.gpu.minMemoryMiB`, 1);
  if (gpu.count === 0 || !caps) return;
  const type = (gpu.type as string | undefined) ?? NVIDIA_GPU_RESOURCE;
  if (!caps.gpu) fail(`${field}.gpu`, 'this backend has no GPUs');
  if (caps.gpuTypes && !caps.gpuTypes.includes(type)) {
    fail(`${field}.gpu.type`, `GPU type '${type}' is not offered here (offered: ${list(caps.gpuTypes)})`);
  }
}

function checkRetryRule(
  rule: unknown,
  field: string,
  roles: ReadonlySet<string>,
  caps: ComputeBackendCapabilities | undefined,
): void {
  if (!isPlainObject(rule)) fail(field, `${field} must be an object`);
  if (!['FailJob', 'Ignore', 'Count'].includes(rule.action as string)) {
    fail(`${field}.action`, `${field}.action must be FailJob, Ignore or Count`);
  }
  const exit = rule.onExitCodes;
  const conditions = rule.onConditions;
  if ((exit === undefined) === (conditions === undefined)) {
    fail(field, `${field} needs exactly one of onExitCodes and onConditions`);
  }
  if (exit !== undefined) {
    if (!isPlainObject(exit)) fail(`${field}.onExitCodes`, `${field}.onExitCodes must be an object`);
    if (exit.role !== undefined && !roles.has(exit.role as string)) {
      fail(`${field}.onExitCodes.role`, `${field}.onExitCodes.role '${String(exit.role)}' is not a role of this job`);
    }
    if (exit.operator !== 'In' && exit.operator !== 'NotIn') {
      fail(`${field}.onExitCodes.operator`, `${field}.onExitCodes.operator must be In or NotIn`);
    }
    const values = exit.values;
    if (!Array.isArray(values) || values.length === 0 || values.length > MAX_EXIT_CODE_VALUES) {
      fail(
        `${field}.onExitCodes.values`,
        `${field}.onExitCodes.values must list 1 to ${MAX_EXIT_CODE_VALUES} exit codes`,
      );
    }
    for (const [i, v] of values.entries()) checkInteger(v, `${field}.onExitCodes.values[${i}]`, 0, 255);
    if (new Set(values).size !== values.length) {
      fail(`${field}.onExitCodes.values`, `${field}.onExitCodes.values lists an exit code twice`);
    }
    if (exit.operator === 'In' && values.includes(0)) {
      fail(
        `${field}.onExitCodes.values`,
        `${field}.onExitCodes: exit code 0 is a success, never a failure to match with In`,
      );
    }
  } else {
    if (!Array.isArray(conditions) || conditions.length === 0) {
      fail(`${field}.onConditions`, `${field}.onConditions must list at least one condition`);
    }
    conditions.forEach((c: unknown, i) => {
      const f = `${field}.onConditions[${i}]`;
      if (!isPlainObject(c) || typeof c.type !== 'string' || c.type === '') fail(f, `${f} needs a condition type`);
      if (c.status !== undefined && !CONDITION_STATUSES.includes(c.status as string)) {
        fail(`${f}.status`, `${f}.status must be True, False or Unknown`);
      }
      if (caps && !caps.retryConditions.includes(c.type)) {
        fail(
          `${f}.type`,
          `this backend does not report condition '${c.type}' (it reports: ${list(caps.retryConditions)})`,
        );
      }
    });
  }
}

function checkGroup(
  group: unknown,
  field: string,
  volumes: ReadonlySet<string>,
  caps: ComputeBackendCapabilities | undefined,
): void {
  if (!isPlainObject(group)) fail(field, `${field} must be an object`);
  const role = group.role;
  if (typeof role !== 'string' || role.length > REPLICA_ROLE_MAX_LENGTH || !REPLICA_ROLE_PATTERN.test(role)) {
    fail(
      `${field}.role`,
      `role '${String(role)}' must be lowercase letters, digits and '-', start and end alphanumeric, at most ${REPLICA_ROLE_MAX_LENGTH} chars`,
    );
  }
  if (group.replicas !== undefined) checkInteger(group.replicas, `${field}.replicas`, 1, MAX_REPLICAS_PER_GROUP);
  if (group.image !== undefined) {
    if (typeof group.image !== 'string' || group.image.trim() === '') {
      fail(`${field}.image`, `${field}.image must be a non-empty image reference`);
    }
    if (caps && !caps.containers) fail(`${field}.image`, 'this backend runs host processes, not container images');
  }
  const command = group.command;
  if (!Array.isArray(command) || command.length === 0 || command.some((c) => typeof c !== 'string')) {
    fail(`${field}.command`, `${field}.command must be a non-empty array of strings`);
  }
  if (command[0] === '') fail(`${field}.command`, `${field}.command[0] must name an executable`);
  const args = group.args;
  if (args !== undefined && (!Array.isArray(args) || args.some((a) => typeof a !== 'string'))) {
    fail(`${field}.args`, `${field}.args must be an array of strings`);
  }
  const envName = (name: string, f: string) => {
    if (!ENV_NAME_PATTERN.test(name)) fail(f, `'${name}' is not an environment variable name`);
    if (RESERVED_ENV.has(name)) fail(f, `${name} is set by the backend (JOB_ENV); set runId on the spec instead`);
  };
  checkStringMap(group.env, `${field}.env`, envName);
  const secretEnv = group.secretEnv;
  if (secretEnv !== undefined) {
    if (!isPlainObject(secretEnv))
      fail(`${field}.secretEnv`, `${field}.secretEnv must be an object of secret references`);
    for (const [name, ref] of Object.entries(secretEnv)) {
      envName(name, `${field}.secretEnv.${name}`);
      if (isPlainObject(group.env) && Object.hasOwn(group.env, name)) {
        fail(`${field}.secretEnv.${name}`, `${name} is in both env and secretEnv: keep one`);
      }
      validateSecretRef(ref, `${field}.secretEnv.${name}`, caps);
    }
  }
  if (group.workingDir !== undefined && (typeof group.workingDir !== 'string' || group.workingDir === '')) {
    fail(`${field}.workingDir`, `${field}.workingDir must be a non-empty path`);
  }
  checkResources(group.resources, `${field}.resources`, caps);
  if (group.sharedMemory !== undefined) parseMemory(group.sharedMemory as string, `${field}.sharedMemory`);
  const mounts = group.volumeMounts;
  if (mounts !== undefined) {
    if (!Array.isArray(mounts)) fail(`${field}.volumeMounts`, `${field}.volumeMounts must be an array`);
    const paths = new Set<string>();
    mounts.forEach((m: unknown, i) => {
      const f = `${field}.volumeMounts[${i}]`;
      if (!isPlainObject(m)) fail(f, `${f} must be an object`);
      if (typeof m.volume !== 'string' || !volumes.has(m.volume)) {
        fail(
          `${f}.volume`,
          `${f}.volume '${String(m.volume)}' is not one of the job's volumes (${list([...volumes])})`,
        );
      }
      const path = m.mountPath;
      if (typeof path !== 'string' || !path.startsWith('/') || path.split('/').some((s) => s === '..')) {
        fail(`${f}.mountPath`, `${f}.mountPath must be an absolute path without '..'`);
      }
      const normalized = path.replace(/\/+$/, '') || '/';
      if (paths.has(normalized)) fail(`${f}.mountPath`, `${normalized} is mounted twice in role '${role}'`);
      if (normalized === '/dev/shm' && group.sharedMemory !== undefined) {
        fail(`${f}.mountPath`, '/dev/shm is set by sharedMemory: do not mount a volume there too');
      }
      paths.add(normalized);
      if (
        m.subPath !== undefined &&
        (typeof m.subPath !== 'string' || m.subPath.startsWith('/') || m.subPath.split('/').includes('..'))
      ) {
        fail(`${f}.subPath`, `${f}.subPath must be a relative path without '..'`);
      }
    });
  }
  const tolerations = group.tolerations;
  if (tolerations !== undefined) {
    if (!Array.isArray(tolerations)) fail(`${field}.tolerations`, `${field}.tolerations must be an array`);
    tolerations.forEach((t: unknown, i) => {
      const f = `${field}.tolerations[${i}]`;
      if (!isPlainObject(t) || (t.operator !== 'Exists' && t.operator !== 'Equal')) {
        fail(f, `${f}.operator must be Exists or Equal`);
      }
      if (t.operator === 'Exists' && t.value !== undefined) fail(`${f}.value`, `${f}: Exists takes no value`);
    });
  }
  checkStringMap(group.nodeSelector, `${field}.nodeSelector`, checkLabelKey);
}

/**
 * Checks a spec before anything is created: shapes, names, quantities, references between its parts (mounts name
 * volumes, rules and success policy name roles), and, when `capabilities` are given, that the backend has each
 * feature the spec uses. Throws the first problem as ValidationError whose `field` is the path to it
 * (`replicaGroups[1].resources.gpu.type`). Backends call it first in `submit`; callers may call it earlier.
 */
export function validateJobSpec(spec: JobSpec, capabilities?: ComputeBackendCapabilities): void {
  const caps = capabilities;
  if (!isPlainObject(spec)) fail('spec', 'a job spec must be an object');
  validateJobName(spec.name);
  if (typeof spec.project !== 'string' || spec.project.trim() === '')
    fail('project', 'project must be a non-empty string');
  if (spec.runId !== undefined && (typeof spec.runId !== 'string' || !RUN_ID_PATTERN.test(spec.runId))) {
    fail('runId', `runId '${String(spec.runId)}' is not a tracker run id`);
  }
  if (
    spec.experiment !== undefined &&
    (typeof spec.experiment !== 'string' ||
      spec.experiment.trim() === '' ||
      spec.experiment.length > TRACKER_LIMITS.experimentNameLength)
  ) {
    fail(
      'experiment',
      `experiment must be a non-empty experiment name of at most ${TRACKER_LIMITS.experimentNameLength} chars`,
    );
  }
  const volumes = new Set<string>();
  if (spec.volumes !== undefined) {
    if (!Array.isArray(spec.volumes)) fail('volumes', 'volumes must be an array');
    spec.volumes.forEach((v, i) => {
      const f = `volumes[${i}]`;
      if (!isPlainObject(v) || typeof v.name !== 'string' || v.name.length > 63 || !JOB_NAME_PATTERN.test(v.name)) {
        fail(`${f}.name`, `${f}.name must be a DNS-1123 label`);
      }
      if (volumes.has(v.name)) fail(`${f}.name`, `volume '${v.name}' is declared twice`);
      volumes.add(v.name);
      const source = v.source as unknown;
      if (!isPlainObject(source)) fail(`${f}.source`, `${f}.source must be an object`);
      if (source.kind === 'persistentVolumeClaim') {
        checkObjectName(source.claimName, `${f}.source.claimName`, 'PersistentVolumeClaim');
      } else if (source.kind === 'emptyDir') {
        if (source.sizeLimit !== undefined) parseMemory(source.sizeLimit as string, `${f}.source.sizeLimit`);
        if (source.medium !== undefined && source.medium !== 'Disk' && source.medium !== 'Memory') {
          fail(`${f}.source.medium`, `${f}.source.medium must be Disk or Memory`);
        }
      } else {
        fail(`${f}.source.kind`, `${f}.source.kind must be persistentVolumeClaim or emptyDir`);
      }
      if (caps && !caps.volumeKinds.includes(source.kind as VolumeSource['kind'])) {
        fail(
          `${f}.source.kind`,
          `this backend cannot mount ${source.kind} volumes (it mounts: ${list(caps.volumeKinds)})`,
        );
      }
    });
  }
  const groups = spec.replicaGroups;
  if (!Array.isArray(groups) || groups.length === 0) {
    fail('replicaGroups', 'replicaGroups must list at least one group, e.g. [{ role: "main", command: [...] }]');
  }
  if (caps && !caps.multipleRoles && groups.length > 1) {
    fail(
      'replicaGroups',
      `this backend runs one replica group per job; the spec has ${groups.length} roles (${groups.map((g) => g.role).join(', ')})`,
    );
  }
  const roles = new Set<string>();
  groups.forEach((g, i) => {
    checkGroup(g, `replicaGroups[${i}]`, volumes, caps);
    if (roles.has(g.role)) fail(`replicaGroups[${i}].role`, `role '${g.role}' appears twice`);
    roles.add(g.role);
  });
  if (spec.successPolicy !== undefined) {
    const r = spec.successPolicy.roles;
    if (!Array.isArray(r) || r.length === 0)
      fail('successPolicy.roles', 'successPolicy.roles must list at least one role');
    r.forEach((role, i) => {
      if (!roles.has(role))
        fail(`successPolicy.roles[${i}]`, `successPolicy names '${role}', which is not a role of this job`);
    });
  }
  if (spec.startupPolicy !== undefined) {
    if (spec.startupPolicy !== 'AnyOrder' && spec.startupPolicy !== 'InOrder') {
      fail('startupPolicy', 'startupPolicy must be AnyOrder or InOrder');
    }
    if (spec.startupPolicy === 'InOrder' && caps && !caps.orderedStartup) {
      fail('startupPolicy', 'this backend starts groups in any order: it cannot honour InOrder');
    }
  }
  if (spec.serviceAccount !== undefined) {
    checkObjectName(spec.serviceAccount, 'serviceAccount', 'ServiceAccount');
    if (caps && !caps.serviceAccounts) fail('serviceAccount', 'this backend has no service accounts');
  }
  if (spec.imagePullSecrets !== undefined) {
    if (!Array.isArray(spec.imagePullSecrets))
      fail('imagePullSecrets', 'imagePullSecrets must be an array of Secret names');
    for (const [i, s] of spec.imagePullSecrets.entries()) checkObjectName(s, `imagePullSecrets[${i}]`, 'Secret');
    if (caps && !caps.imagePullSecrets && spec.imagePullSecrets.length > 0) {
      fail('imagePullSecrets', 'this backend does not pull images with Secrets');
    }
  }
  if (spec.retries !== undefined) checkInteger(spec.retries, 'retries', 0, 1000);
  if (spec.restartScope !== undefined && spec.restartScope !== 'job' && spec.restartScope !== 'replica') {
    fail('restartScope', "restartScope must be 'job' or 'replica'");
  }
  if (spec.retryRules !== undefined) {
    if (!Array.isArray(spec.retryRules)) fail('retryRules', 'retryRules must be an array');
    if (spec.retryRules.length > MAX_RETRY_RULES) {
      fail('retryRules', `retryRules holds ${spec.retryRules.length} rules; at most ${MAX_RETRY_RULES} are allowed`);
    }
    for (const [i, rule] of spec.retryRules.entries()) checkRetryRule(rule, `retryRules[${i}]`, roles, caps);
  }
  if (spec.timeoutSeconds !== undefined) checkInteger(spec.timeoutSeconds, 'timeoutSeconds', 1);
  if (spec.ttlSecondsAfterFinished !== undefined)
    checkInteger(spec.ttlSecondsAfterFinished, 'ttlSecondsAfterFinished', 0);
  if (spec.queue !== undefined) {
    if (typeof spec.queue !== 'string' || spec.queue === '') fail('queue', 'queue must be a non-empty string');
    if (caps && !caps.queues) fail('queue', 'this backend has no queues');
  }
  if (spec.priority !== undefined) {
    if (typeof spec.priority !== 'string' || spec.priority === '')
      fail('priority', 'priority must be a non-empty string');
    if (caps && !caps.priorities) fail('priority', 'this backend has no priorities');
  }
  if (spec.gang !== undefined && typeof spec.gang !== 'boolean') fail('gang', 'gang must be a boolean');
  if (spec.gang && caps?.gang === 'none') {
    fail('gang', `scheduler ${caps.scheduler} has no gang scheduling: replicas would be bound one by one`);
  }
  checkStringMap(spec.labels, 'labels', checkLabelKey);
  if (spec.labels) {
    for (const [k, v] of Object.entries(spec.labels)) {
      if (!LABEL_VALUE_PATTERN.test(v))
        fail(`labels.${k}`, `label '${k}' value must be at most 63 letters, digits, '-', '_', '.'`);
    }
  }
  checkStringMap(spec.annotations, 'annotations', checkLabelKey);
  if (spec.idempotencyKey !== undefined && (typeof spec.idempotencyKey !== 'string' || spec.idempotencyKey === '')) {
    fail('idempotencyKey', 'idempotencyKey must be a non-empty string');
  }
}
