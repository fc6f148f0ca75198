import { type JobSpec, NVIDIA_GPU_RESOURCE, parseCpu, parseMemory, ValidationError } from '@mlplane/core';

/** A queue jobs wait in for quota. */
export interface QueueConfig {
  /** Lowercase letters, digits and '-'; what `JobSpec.queue` names. */
  readonly name: string;
  /** Jobs of this queue Admitted or Running at once, over all projects; absent means no limit. */
  readonly maxRunning?: number;
  /** Priority class of the queue's jobs whose spec names none; default the scheduler's `defaultPriority`. */
  readonly defaultPriority?: string;
}

/**
 * What one project's Admitted and Running jobs may hold at once, summed over their replicas. A dimension left out
 * is not limited. `gpuTypes` caps GPU types one by one (`nvidia.com/mig-1g.10gb: 4`); a type it does not list is
 * limited by `gpus` alone.
 */
export interface ProjectQuota {
  /** Cores: `8`, `500m`. */
  readonly cpu?: number | string;
  /** Bytes as a quantity: `64Gi`. */
  readonly memory?: string;
  /** GPUs of every type together. */
  readonly gpus?: number;
  readonly gpuTypes?: Readonly<Record<string, number>>;
  /** Jobs Admitted or Running at once. */
  readonly maxRunning?: number;
  /** Fair-share weight against other projects (default 1): a project of weight 2 is entitled to twice the share. */
  readonly weight?: number;
}

/** A quota with its quantities parsed. */
export interface ResolvedQuota {
  readonly cpuMilli?: number;
  readonly memoryBytes?: number;
  readonly gpus?: number;
  readonly gpuTypes: ReadonlyMap<string, number>;
  readonly maxRunning?: number;
  readonly weight: number;
}

/** What a job holds while Admitted or Running, summed over every replica of every group. */
export interface JobDemand {
  readonly cpuMilli: number;
  readonly memoryBytes: number;
  readonly gpus: number;
  /** The GPU type of its GPUs; undefined when it asks for none. */
  readonly gpuType: string | undefined;
}

export const DEFAULT_PRIORITY_CLASSES: Readonly<Record<string, number>> = Object.freeze({
  low: -100,
  normal: 0,
  high: 100,
});

const NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function fail(field: string, message: string): never {
  throw new ValidationError(message, { field });
}

function checkCount(value: unknown, field: string, min = 0): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    fail(field, `${field} must be an integer of at least ${min}, got ${String(value)}`);
  }
}

export function resolveQuota(quota: ProjectQuota, field: string): ResolvedQuota {
  if (typeof quota !== 'object' || quota === null) fail(field, `${field} must be an object`);
  if (quota.gpus !== undefined) checkCount(quota.gpus, `${field}.gpus`);
  if (quota.maxRunning !== undefined) checkCount(quota.maxRunning, `${field}.maxRunning`);
  const weight = quota.weight ?? 1;
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) {
    fail(`${field}.weight`, `${field}.weight must be a positive number, got ${String(weight)}`);
  }
  const gpuTypes = new Map<string, number>();
  for (const [type, count] of Object.entries(quota.gpuTypes ?? {})) {
    checkCount(count, `${field}.gpuTypes.${type}`);
    gpuTypes.set(type, count);
  }
  return {
    ...(quota.cpu !== undefined ? { cpuMilli: Math.round(parseCpu(quota.cpu, `${field}.cpu`) * 1000) } : {}),
    ...(quota.memory !== undefined ? { memoryBytes: parseMemory(quota.memory, `${field}.memory`) } : {}),
    ...(quota.gpus !== undefined ? { gpus: quota.gpus } : {}),
    ...(quota.maxRunning !== undefined ? { maxRunning: quota.maxRunning } : {}),
    gpuTypes,
    weight,
  };
}

export function checkQueues(queues: readonly QueueConfig[], priorities: Readonly<Record<string, number>>): void {
  if (!Array.isArray(queues) || queues.length === 0) fail('queues', 'queues must list at least one queue');
  const seen = new Set<string>();
  queues.forEach((q, i) => {
    if (typeof q?.name !== 'string' || q.name.length > 63 || !NAME.test(q.name)) {
      fail(`queues[${i}].name`, `queues[${i}].name '${String(q?.name)}' must be a DNS-1123 label`);
    }
    if (seen.has(q.name)) fail(`queues[${i}].name`, `queue '${q.name}' is configured twice`);
    seen.add(q.name);
    if (q.maxRunning !== undefined) checkCount(q.maxRunning, `queues[${i}].maxRunning`, 1);
    if (q.defaultPriority !== undefined && !(q.defaultPriority in priorities)) {
      fail(`queues[${i}].defaultPriority`, `priority class '${q.defaultPriority}' is not configured`);
    }
  });
}

/**
 * The job's demand over all its replicas. Quantities were checked by `validateJobSpec` already; a job whose groups
 * ask for GPUs of two types is refused here, since a quota is charged per type and one job holds one type.
 */
export function jobDemand(spec: JobSpec): JobDemand {
  let cpuMilli = 0;
  let memoryBytes = 0;
  let gpus = 0;
  let gpuType: string | undefined;
  spec.replicaGroups.forEach((group, i) => {
    const replicas = group.replicas ?? 1;
    const r = group.resources;
    if (r?.cpu !== undefined) cpuMilli += Math.round(parseCpu(r.cpu) * 1000) * replicas;
    if (r?.memory !== undefined) memoryBytes += parseMemory(r.memory) * replicas;
    const count = r?.gpu?.count ?? 0;
    if (count > 0) {
      const type = r?.gpu?.type ?? NVIDIA_GPU_RESOURCE;
      if (gpuType !== undefined && gpuType !== type) {
        fail(
          `replicaGroups[${i}].resources.gpu.type`,
          `the job already asks for ${gpuType} GPUs in another group; the scheduler charges one GPU type per job`,
        );
      }
      gpuType = type;
      gpus += count * replicas;
    }
  });
  return { cpuMilli, memoryBytes, gpus, gpuType };
}

/** Why `demand` could never be admitted under `quota` (it exceeds a limit on its own), or undefined. */
export function neverFits(demand: JobDemand, quota: ResolvedQuota | undefined): string | undefined {
  if (!quota) return undefined;
  if (quota.cpuMilli !== undefined && demand.cpuMilli > quota.cpuMilli) {
    return `it asks for ${demand.cpuMilli / 1000} CPUs and the project's quota is ${quota.cpuMilli / 1000}`;
  }
  if (quota.memoryBytes !== undefined && demand.memoryBytes > quota.memoryBytes) {
    return `it asks for ${demand.memoryBytes} bytes of memory and the project's quota is ${quota.memoryBytes}`;
  }
  if (quota.gpus !== undefined && demand.gpus > quota.gpus) {
    return `it asks for ${demand.gpus} GPUs and the project's quota is ${quota.gpus}`;
  }
  const typeCap = demand.gpuType !== undefined ? quota.gpuTypes.get(demand.gpuType) : undefined;
  if (typeCap !== undefined && demand.gpus > typeCap) {
    return `it asks for ${demand.gpus} ${demand.gpuType} GPUs and the project's quota for that type is ${typeCap}`;
  }
  if (quota.maxRunning === 0) return "the project's quota allows no running job";
  return undefined;
}
