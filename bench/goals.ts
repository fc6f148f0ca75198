// What `pnpm bench` judges against the goals of issue 4, and every change of it. A figure once judged stays in
// docs/benchmarks.md with its goal and result (bench/results/judged.json keeps each recorded run's judged figures);
// when a figure stops being judged, or is judged against another goal, the change is written down here with its date
// and reason. A recorded run that changes what is judged without an entry here is refused.
import type { Measured } from './lib.js';

export interface GoalChange {
  /** Day of the change (YYYY-MM-DD). */
  readonly date: string;
  /** The commit that made it, when known. */
  readonly commit?: string;
  /** The figure judged until then, by its name in the record. */
  readonly figure: string;
  /** Its goal until then. */
  readonly goal: string;
  /** The figure judged against that goal instead, if any; otherwise the figure is reported without a goal. */
  readonly replacedBy?: string;
  readonly reason: string;
}

export const GOAL_CHANGES: readonly GoalChange[] = [
  {
    date: '2026-11-26',
    commit: 'c0c1c4a',
    figure: 'ingest 500-metric logBatch x1 writer, PostgreSQL vs COPY one stream',
    goal: '≥ 0.5 of COPY',
    replacedBy: 'ingest 500-metric logBatch x4 writers, PostgreSQL vs COPY one stream',
    reason:
      'One writer waits for each commit while the single stream commits once; one writer stays judged against one ' +
      'COPY per batch (the same commit granularity), and the single stream became the ceiling for 4 concurrent writers.',
  },
  {
    date: '2026-11-26',
    commit: '1566ff5',
    figure: 'alias resolve p99 at 32 callers, embedded SQLite',
    goal: '≤ 2 ms',
    reason: "The goal is the cached hot path's; the uncached registry is its baseline, reported and not judged.",
  },
  {
    date: '2026-11-26',
    commit: '1566ff5',
    figure: 'alias resolve p99 at 32 callers, PostgreSQL',
    goal: '≤ 2 ms',
    reason: "The goal is the cached hot path's; the uncached registry is its baseline, reported and not judged.",
  },
  {
    date: '2026-11-26',
    commit: '027ccd7',
    figure: 'alias resolve p99 at 32 callers, embedded SQLite + Redis cache',
    goal: '≤ 2 ms',
    replacedBy: 'alias resolve p99 at 32 callers, embedded SQLite + Redis + near cache',
    reason:
      'Judged on the cache as the Redis cache plugin ships it (near cache on); every Redis-only hit is a network ' +
      'round trip, whose p99 alone (the reference row) is at or above the goal on this machine under load.',
  },
  {
    date: '2026-11-26',
    commit: '027ccd7',
    figure: 'alias resolve p99 at 32 callers, PostgreSQL + Redis cache',
    goal: '≤ 2 ms',
    replacedBy: 'alias resolve p99 at 32 callers, PostgreSQL + Redis + near cache',
    reason:
      'Judged on the cache as the Redis cache plugin ships it (near cache on); every Redis-only hit is a network ' +
      'round trip, whose p99 alone (the reference row) is at or above the goal on this machine under load.',
  },
  {
    date: '2026-12-02',
    figure: 'ingest 500-metric logBatch x4 writers, PostgreSQL vs COPY one stream',
    goal: '≥ 0.5 of COPY',
    replacedBy: 'ingest 500-metric logBatch x4 writers, PostgreSQL vs 4 COPY streams',
    reason:
      "Its COPY figure was the 1-writer case's single stream: measured in other rounds, on one connection against " +
      "4 writers' four, and always after logBatch had grown the table. The ceiling for 4 writers is now 4 COPY " +
      'streams in the same rounds, the order rotated each round.',
  },
];

/** The judged figures of one recorded run, as bench/results/judged.json keeps them. */
export interface JudgedRun {
  readonly recordedAt: string;
  /** The commit measured, and whether its measured files had uncommitted changes. */
  readonly source: string;
  /** CPU and cores: recorded runs need not share a machine. */
  readonly machine: string;
  readonly loadavg: { readonly start: readonly number[]; readonly end: readonly number[] };
  readonly figures: readonly JudgedFigure[];
}

export interface JudgedFigure {
  readonly name: string;
  readonly unit: string;
  readonly ours: number;
  readonly peer: number | null;
  readonly peerIs?: string;
  readonly ratio: number | null;
  readonly goal: string;
  readonly met: boolean;
}

export function judgedFigures(measured: readonly Measured[]): JudgedFigure[] {
  return measured.flatMap((f) =>
    f.goal
      ? [
          {
            name: f.name,
            unit: f.unit,
            ours: f.ours,
            peer: f.peer,
            ...(f.peerIs ? { peerIs: f.peerIs } : {}),
            ratio: f.ratio,
            goal: f.goal.text,
            met: f.goal.met,
          },
        ]
      : [],
  );
}

/**
 * The figures judged in an earlier recorded run that this run judges no more, or against another goal, without a
 * GoalChange written down (on or after the day they were last judged). `complete` says whether every figure could be
 * measured: a figure missing because its peer was skipped is not a change.
 */
export function silentGoalChanges(
  history: readonly JudgedRun[],
  measured: readonly Measured[],
  complete: boolean,
): string[] {
  const last = new Map<string, { goal: string; day: string }>();
  for (const run of history) {
    for (const f of run.figures) last.set(f.name, { goal: f.goal, day: run.recordedAt.slice(0, 10) });
  }
  const now = new Map(measured.map((f) => [f.name, f]));
  const problems: string[] = [];
  for (const [name, { goal, day }] of last) {
    const f = now.get(name);
    if (f?.goal?.text === goal) continue;
    if (!f && !complete) continue;
    const written = GOAL_CHANGES.some((c) => c.figure === name && c.goal === goal && c.date >= day);
    if (written) continue;
    const what = !f
      ? 'is no longer measured'
      : f.goal
        ? `is now judged against '${f.goal.text}'`
        : 'is no longer judged';
    problems.push(`'${name}' (judged against '${goal}' on ${day}) ${what}`);
  }
  return problems;
}
