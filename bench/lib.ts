// Shared pieces of `pnpm bench`: the figure record written to bench/results/*.json, the machine description,
// percentiles, and the load average (the machine is shared, so every report carries it).
import { cpus, loadavg, release, totalmem, type } from 'node:os';

// Every section runs its contenders in an order rotated each round (or sample), as the ingest cases do.
export { rotated } from '../packages/sql/bench/tracker-ingest.js';

/** One measured figure, as written to bench/results/latest.json. */
export interface Figure {
  readonly name: string;
  readonly unit: string;
  readonly ours: number;
  /** What ours is compared with (COPY, the uncached registry), measured in the same run; null when nothing. */
  readonly peer: number | null;
  /** Oriented so that >1 means mlplane is better: ours/peer for throughput, peer/ours for latency. */
  readonly ratio: number | null;
  readonly machine: Machine;
  readonly at: string;
}

export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly node: string;
  readonly os: string;
  /** 1/5/15-minute load averages when the run started and ended: other engineers' work shares the cores. */
  readonly loadavg: { readonly start: readonly number[]; readonly end: readonly number[] };
}

/** A figure before the machine is known (the end load average is only known when the run ends). */
export type Measured = Omit<Figure, 'machine'> & {
  /** For the docs table only: the goal from the issue and whether this figure meets it. */
  readonly goal?: { readonly text: string; readonly met: boolean };
  /** For the docs table only: what `peer` is. */
  readonly peerIs?: string;
};

export type Direction = 'higher-is-better' | 'lower-is-better';

export function figure(
  name: string,
  unit: string,
  ours: number,
  peer: number | null,
  direction: Direction,
  extra: Pick<Measured, 'goal' | 'peerIs'> = {},
): Measured {
  const ratio =
    peer === null || !Number.isFinite(peer) || !Number.isFinite(ours) || ours === 0 || peer === 0
      ? null
      : direction === 'higher-is-better'
        ? ours / peer
        : peer / ours;
  return {
    name,
    unit,
    ours: round(ours),
    peer: peer === null ? null : round(peer),
    ratio: ratio === null ? null : Math.round(ratio * 1000) / 1000,
    at: new Date().toISOString(),
    ...extra,
  };
}

/** Three significant digits: more would be noise on a shared machine. */
export function round(n: number): number {
  if (!Number.isFinite(n) || n === 0) return n;
  const digits = Math.max(0, 2 - Math.floor(Math.log10(Math.abs(n))));
  return Number(n.toFixed(digits));
}

export function load(): number[] {
  return loadavg().map((l) => Math.round(l * 100) / 100);
}

export function machine(start: readonly number[], end: readonly number[]): Machine {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: `${type()} ${release()}`,
    loadavg: { start, end },
  };
}

/** Nearest-rank percentile of samples in ms (sorts in place). */
export function percentile(samples: number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  samples.sort((a, b) => a - b);
  return samples[Math.min(samples.length - 1, Math.max(0, Math.ceil(q * samples.length) - 1))]!;
}

export function seconds(since: number): number {
  return (performance.now() - since) / 1000;
}

export const fmtNumber = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
