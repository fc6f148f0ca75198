import type { JobDemand, ResolvedQuota } from './config.js';

/** A queued job as admission sees it. */
export interface Candidate extends JobDemand {
  readonly id: string;
  readonly project: string;
  readonly queue: string;
  readonly priority: number;
  readonly seq: number;
}

/** What a project's Admitted and Running jobs hold now. */
export interface ProjectUsage {
  cpuMilli: number;
  memoryBytes: number;
  gpus: number;
  readonly gpuTypes: Map<string, number>;
  running: number;
}

export function emptyUsage(): ProjectUsage {
  return { cpuMilli: 0, memoryBytes: 0, gpus: 0, gpuTypes: new Map(), running: 0 };
}

export interface AdmissionInput {
  /** Each project's candidates in priority (highest first) then submission order. */
  readonly candidates: ReadonlyMap<string, readonly Candidate[]>;
  readonly usage: Map<string, ProjectUsage>;
  /** Jobs Admitted or Running per queue. */
  readonly queueRunning: Map<string, number>;
  readonly quotaOf: (project: string) => ResolvedQuota | undefined;
  readonly queueLimit: (queue: string) => number | undefined;
  /** Admit at most this many. */
  readonly limit: number;
}

function fits(c: Candidate, u: ProjectUsage, q: ResolvedQuota | undefined): boolean {
  if (!q) return true;
  if (q.cpuMilli !== undefined && u.cpuMilli + c.cpuMilli > q.cpuMilli) return false;
  if (q.memoryBytes !== undefined && u.memoryBytes + c.memoryBytes > q.memoryBytes) return false;
  if (q.gpus !== undefined && u.gpus + c.gpus > q.gpus) return false;
  if (q.maxRunning !== undefined && u.running + 1 > q.maxRunning) return false;
  if (c.gpuType !== undefined) {
    const cap = q.gpuTypes.get(c.gpuType);
    if (cap !== undefined && (u.gpuTypes.get(c.gpuType) ?? 0) + c.gpus > cap) return false;
  }
  return true;
}

/**
 * The project's dominant share divided by its weight: the largest fraction of any quota'd dimension (CPU, memory,
 * GPUs, running jobs) it holds. A project without any limit is measured by its running jobs, so it still takes turns.
 */
export function dominantShare(u: ProjectUsage, q: ResolvedQuota | undefined): number {
  const shares: number[] = [];
  if (q?.cpuMilli) shares.push(u.cpuMilli / q.cpuMilli);
  if (q?.memoryBytes) shares.push(u.memoryBytes / q.memoryBytes);
  if (q?.gpus) shares.push(u.gpus / q.gpus);
  if (q?.maxRunning) shares.push(u.running / q.maxRunning);
  const share = shares.length > 0 ? Math.max(...shares) : u.running;
  return share / (q?.weight ?? 1);
}

/**
 * Picks the jobs to admit now. Each round takes, among the projects' next fitting jobs, the one of highest priority,
 * then of the project with the smallest weighted dominant share (fair share), then the oldest; then it charges the
 * job to its project and queue and goes again. A job that does not fit its project's quota or its queue's limit is
 * passed over this time, so it does not hold back smaller jobs behind it (no reservation: a large job can wait
 * while smaller ones keep fitting).
 */
export function pickAdmissions(input: AdmissionInput): Candidate[] {
  const next = new Map<string, number>();
  for (const project of input.candidates.keys()) next.set(project, 0);
  const admitted: Candidate[] = [];
  const usageOf = (p: string) => {
    let u = input.usage.get(p);
    if (!u) {
      u = emptyUsage();
      input.usage.set(p, u);
    }
    return u;
  };
  while (admitted.length < input.limit && next.size > 0) {
    let best: { c: Candidate; share: number } | undefined;
    for (const [project, index] of next) {
      const list = input.candidates.get(project)!;
      const quota = input.quotaOf(project);
      const usage = usageOf(project);
      let i = index;
      // Skip this project's jobs that cannot fit now; they stay Queued.
      while (i < list.length) {
        const c = list[i]!;
        const queueCap = input.queueLimit(c.queue);
        const queueFull = queueCap !== undefined && (input.queueRunning.get(c.queue) ?? 0) >= queueCap;
        if (!queueFull && fits(c, usage, quota)) break;
        i++;
      }
      if (i >= list.length) {
        next.delete(project);
        continue;
      }
      next.set(project, i);
      const c = list[i]!;
      const share = dominantShare(usage, quota);
      if (
        !best ||
        c.priority > best.c.priority ||
        (c.priority === best.c.priority && (share < best.share || (share === best.share && c.seq < best.c.seq)))
      ) {
        best = { c, share };
      }
    }
    if (!best) break;
    const c = best.c;
    admitted.push(c);
    next.set(c.project, next.get(c.project)! + 1);
    const u = usageOf(c.project);
    u.cpuMilli += c.cpuMilli;
    u.memoryBytes += c.memoryBytes;
    u.gpus += c.gpus;
    u.running += 1;
    if (c.gpuType !== undefined) u.gpuTypes.set(c.gpuType, (u.gpuTypes.get(c.gpuType) ?? 0) + c.gpus);
    input.queueRunning.set(c.queue, (input.queueRunning.get(c.queue) ?? 0) + 1);
  }
  return admitted;
}
