import { type JobSpec, NVIDIA_GPU_RESOURCE, parseCpu, parseMemory, ValidationError } from '@mlplane/core';

/** A GPU this host offers; name and memory are known when nvidia-smi reported them. */
export interface GpuDevice {
  /** What CUDA_VISIBLE_DEVICES gets for it: an index (`0`) or a UUID (`GPU-...`). */
  readonly id: string;
  /** Product name as node label `nvidia.com/gpu.product` spells it (spaces as `-`), e.g. `NVIDIA-H100-80GB-HBM3`. */
  readonly product?: string;
  readonly memoryMiB?: number;
}

/** What the local backend hands out: cores, bytes of memory and whole GPUs. */
export interface Capacity {
  readonly cpu: number;
  readonly memoryBytes: number;
  readonly gpus: readonly GpuDevice[];
}

/** The slots one replica holds while it runs. */
export interface ReplicaSlots {
  readonly cpu: number;
  readonly memoryBytes: number;
  readonly gpus: readonly string[];
}

interface ReplicaNeed {
  readonly field: string;
  readonly cpu: number;
  readonly memoryBytes: number;
  readonly gpuCount: number;
  readonly product?: string;
  readonly minMemoryMiB?: number;
}

/** Cores a replica without a CPU request is counted as, so that unsized jobs do not all start at once. */
export const DEFAULT_REPLICA_CPU = 1;

/** Each replica's need, in group order then by index (the order of JobStatus.replicas). */
export function replicaNeeds(spec: JobSpec): ReplicaNeed[] {
  const needs: ReplicaNeed[] = [];
  spec.replicaGroups.forEach((group, i) => {
    const field = `replicaGroups[${i}].resources`;
    const r = group.resources;
    const need: ReplicaNeed = {
      field,
      cpu: r?.cpu === undefined ? DEFAULT_REPLICA_CPU : parseCpu(r.cpu, `${field}.cpu`),
      memoryBytes: r?.memory === undefined ? 0 : parseMemory(r.memory, `${field}.memory`),
      gpuCount: r?.gpu?.count ?? 0,
      ...(r?.gpu?.product ? { product: r.gpu.product } : {}),
      ...(r?.gpu?.minMemoryMiB ? { minMemoryMiB: r.gpu.minMemoryMiB } : {}),
    };
    for (let n = 0; n < (group.replicas ?? 1); n++) needs.push(need);
  });
  return needs;
}

function gpuFits(device: GpuDevice, need: ReplicaNeed): boolean {
  if (need.product !== undefined && device.product !== need.product) return false;
  if (need.minMemoryMiB !== undefined && (device.memoryMiB ?? 0) < need.minMemoryMiB) return false;
  return true;
}

/**
 * ValidationError when the job could never start on this host, even with every slot free: every replica of a job
 * starts together (placement gang), so the whole job must fit the capacity at once.
 */
export function checkFitsCapacity(spec: JobSpec, capacity: Capacity): void {
  const needs = replicaNeeds(spec);
  const gpuTypeField = spec.replicaGroups.findIndex(
    (g) => (g.resources?.gpu?.type ?? NVIDIA_GPU_RESOURCE) !== NVIDIA_GPU_RESOURCE,
  );
  if (gpuTypeField !== -1 && (spec.replicaGroups[gpuTypeField]?.resources?.gpu?.count ?? 0) > 0) {
    const field = `replicaGroups[${gpuTypeField}].resources.gpu.type`;
    throw new ValidationError(`the local backend offers only whole ${NVIDIA_GPU_RESOURCE} devices`, { field });
  }
  for (const need of needs) {
    if (need.gpuCount > 0 && (need.product !== undefined || need.minMemoryMiB !== undefined)) {
      const matching = capacity.gpus.filter((d) => gpuFits(d, need)).length;
      if (matching < need.gpuCount) {
        const field = `${need.field}.gpu.${need.product !== undefined ? 'product' : 'minMemoryMiB'}`;
        throw new ValidationError(
          `no ${need.gpuCount} GPUs here match ${need.product ?? ''}${need.minMemoryMiB ? ` with ${need.minMemoryMiB} MiB` : ''} (this host has ${matching})`,
          { field },
        );
      }
    }
  }
  const total = (pick: (n: ReplicaNeed) => number) => needs.reduce((sum, n) => sum + pick(n), 0);
  const checks: [(n: ReplicaNeed) => number, number, string, string][] = [
    [(n) => n.cpu, capacity.cpu, 'cpu', 'cores'],
    [(n) => n.memoryBytes, capacity.memoryBytes, 'memory', 'bytes of memory'],
    [(n) => n.gpuCount, capacity.gpus.length, 'gpu.count', 'GPUs'],
  ];
  for (const [pick, offered, what, unit] of checks) {
    const needed = total(pick);
    if (needed <= offered) continue;
    // The field named is the group asking for the most of it in all.
    const byGroup = spec.replicaGroups.map((_, i) =>
      needs.filter((n) => n.field === `replicaGroups[${i}].resources`).reduce((sum, n) => sum + pick(n), 0),
    );
    const culprit = byGroup.indexOf(Math.max(...byGroup));
    throw new ValidationError(
      `the job needs ${needed} ${unit} in all (every replica starts together); this host offers ${offered}`,
      { field: `replicaGroups[${culprit}].resources.${what}` },
    );
  }
}

/** Slots in use; `reserve` takes a whole job's slots or none. */
export class SlotPool {
  readonly #capacity: Capacity;
  #cpu = 0;
  #memory = 0;
  readonly #gpusInUse = new Set<string>();

  constructor(capacity: Capacity) {
    this.#capacity = capacity;
  }

  get capacity(): Capacity {
    return this.#capacity;
  }

  /** Slots for every replica of `spec`, or undefined when they do not all fit now. */
  reserve(spec: JobSpec): ReplicaSlots[] | undefined {
    const needs = replicaNeeds(spec);
    const cpu = needs.reduce((s, n) => s + n.cpu, 0);
    const memory = needs.reduce((s, n) => s + n.memoryBytes, 0);
    // A small epsilon so that fractional cores (0.1 * 10) add up to what they should.
    if (this.#cpu + cpu > this.#capacity.cpu + 1e-9 || this.#memory + memory > this.#capacity.memoryBytes)
      return undefined;
    const taken = new Set<string>();
    const slots: ReplicaSlots[] = [];
    for (const need of needs) {
      const gpus = this.#capacity.gpus
        .filter((d) => !this.#gpusInUse.has(d.id) && !taken.has(d.id) && gpuFits(d, need))
        .slice(0, need.gpuCount)
        .map((d) => d.id);
      if (gpus.length < need.gpuCount) return undefined;
      for (const id of gpus) taken.add(id);
      slots.push({ cpu: need.cpu, memoryBytes: need.memoryBytes, gpus });
    }
    this.#cpu += cpu;
    this.#memory += memory;
    for (const id of taken) this.#gpusInUse.add(id);
    return slots;
  }

  /** Takes back slots recorded before a restart; devices are taken even if another job holds them (never on a healthy host). */
  adopt(slots: readonly ReplicaSlots[]): void {
    for (const s of slots) {
      this.#cpu += s.cpu;
      this.#memory += s.memoryBytes;
      for (const id of s.gpus) this.#gpusInUse.add(id);
    }
  }

  release(slots: readonly ReplicaSlots[]): void {
    for (const s of slots) {
      this.#cpu -= s.cpu;
      this.#memory -= s.memoryBytes;
      for (const id of s.gpus) this.#gpusInUse.delete(id);
    }
    if (this.#cpu < 1e-9) this.#cpu = 0;
  }

  /** What is free now, for messages. */
  free(): { cpu: number; memoryBytes: number; gpus: number } {
    return {
      cpu: this.#capacity.cpu - this.#cpu,
      memoryBytes: this.#capacity.memoryBytes - this.#memory,
      gpus: this.#capacity.gpus.length - this.#gpusInUse.size,
    };
  }
}
