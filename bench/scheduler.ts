// Figure 6: the durable scheduler (SqlScheduler on PostgreSQL) against BullMQ on Redis.
//   a. durable submissions/s: `submit` from 16 concurrent callers vs BullMQ `queue.add` from 16 callers, and
//      `submitMany` in batches vs `queue.addBulk` of the same batches; the same job specs as payload. Rounds
//      alternate the contenders, their order rotated each round; the figure is the median rate over the rounds.
//   b. dispatch latency, submit to started (handed to the wrapped backend, which starts the job at once), at a steady
//      500 jobs/s, with two scheduler replicas (each its own connection pool, as two processes would have) and the
//      submissions coming through a third instance that does not dispatch, as an API process would.
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import {
  type ComputeBackend,
  type ComputeBackendCapabilities,
  type JobSpec,
  type JobStatus,
  NotFoundError,
} from '@mlplane/core';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { SqlScheduler, type SqlSchedulerOptions } from '@mlplane/sql';
import { Queue } from 'bullmq';
import pg from 'pg';
import { figure, type Measured, percentile, rotated, seconds } from './lib.js';

export interface SchedulerSizes {
  readonly callers: number;
  /** Jobs per round of each single-submit contender. */
  readonly singleJobs: number;
  /** Jobs per round of each batched contender, in batches of `batchSize`. */
  readonly batchedJobs: number;
  readonly batchSize: number;
  readonly rounds: number;
  /** Steady submission rate and duration of the dispatch-latency run. */
  readonly dispatchRate: number;
  readonly dispatchSeconds: number;
}

export const SCHEDULER_GOAL_BATCHED = 10_000;
export const SCHEDULER_GOAL_P99_MS = 100;
/** Dispatch rounds of each replica while idle; what bounds the latency from below. */
export const SCHEDULER_BENCH_POLL_MS = 20;
const QUEUES: SqlSchedulerOptions['queues'] = [{ name: 'batch' }];

const CAPABILITIES: ComputeBackendCapabilities = Object.freeze({
  scheduler: 'bench',
  gpu: false,
  queues: false,
  priorities: false,
  preemption: false,
  gang: 'none',
  logsFollow: false,
  multiNode: false,
  multipleRoles: true,
  containers: false,
  volumeKinds: [],
  serviceAccounts: false,
  imagePullSecrets: false,
  secretRefKinds: [],
  retryConditions: [],
  orderedStartup: false,
  statusAfterTtl: true,
});

/**
 * The backend under the scheduler in the latency run: it starts each job when it receives it (noting when) and ends
 * it 100 ms later, so the replicas follow running jobs as they would real ones. It honours idempotency keys.
 */
class InstantBackend implements ComputeBackend {
  readonly capabilities = CAPABILITIES;
  /** performance.now() at which each scheduler job (by its key `scheduler-<id>`) reached the backend. */
  readonly received = new Map<string, number>();
  readonly #jobs = new Map<string, JobStatus>();
  readonly #byKey = new Map<string, string>();

  async submit(spec: JobSpec): Promise<JobStatus> {
    const key = spec.idempotencyKey!;
    const known = this.#byKey.get(key);
    if (known) return this.#jobs.get(known)!;
    this.received.set(key, performance.now());
    const id = randomUUID();
    const now = new Date();
    const status: JobStatus = {
      id,
      name: spec.name,
      project: spec.project,
      phase: 'Running',
      retriesUsed: 0,
      labels: {},
      submittedAt: now,
      startedAt: now,
      replicas: [{ role: 'main', index: 0, phase: 'Running', attempt: 1, startedAt: now }],
    };
    this.#jobs.set(id, status);
    this.#byKey.set(key, id);
    setTimeout(() => {
      const end = new Date();
      this.#jobs.set(id, {
        ...status,
        phase: 'Succeeded',
        finishedAt: end,
        replicas: [{ role: 'main', index: 0, phase: 'Succeeded', attempt: 1, exitCode: 0, finishedAt: end }],
      });
    }, 100).unref();
    return status;
  }
  async get(id: string): Promise<JobStatus> {
    const s = this.#jobs.get(id);
    if (!s) throw new NotFoundError(`job ${id} does not exist`);
    return s;
  }
  async list() {
    return { items: [...this.#jobs.values()] };
  }
  async *watch(): AsyncIterable<JobStatus> {}
  async *logs(): AsyncIterable<string> {}
  async cancel(id: string): Promise<JobStatus> {
    return this.get(id);
  }
}

function specFor(i: number): JobSpec {
  return {
    name: `bench-${i % 1000}`,
    project: `team-${i % 4}`,
    labels: { bench: 'scheduler' },
    replicaGroups: [
      {
        role: 'main',
        command: ['python', '-m', 'train'],
        args: ['--epochs', '3'],
        resources: { cpu: 1, memory: '2Gi' },
      },
    ],
  };
}

async function withSchema<T>(url: string, fn: (schema: string) => Promise<T>): Promise<T> {
  const schema = `bench_scheduler_${Date.now().toString(36)}_${randomUUID().slice(0, 6)}`;
  try {
    return await fn(schema);
  } finally {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
  }
}

/** `jobs` calls of `call` from `callers` concurrent callers; returns jobs/s. */
async function concurrently(callers: number, jobs: number, call: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (next < jobs) await call(next++);
    }),
  );
  return jobs / seconds(started);
}

async function batched(jobs: number, size: number, call: (from: number, n: number) => Promise<unknown>) {
  const started = performance.now();
  for (let i = 0; i < jobs; i += size) await call(i, Math.min(size, jobs - i));
  return jobs / seconds(started);
}

const median = (xs: number[]) => percentile([...xs], 0.5);

function redisConnection(url: string) {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 6379), maxRetriesPerRequest: null };
}

export async function schedulerBench(
  sizes: SchedulerSizes,
  pgUrl: string | undefined,
  redisUrl: string | undefined,
): Promise<Measured[]> {
  if (!pgUrl) return [];
  // Latency first: after the throughput rounds PostgreSQL is still busy with their 400,000 rows (autovacuum, the
  // schema drop), which in one recorded run stretched the dispatch tail to seconds.
  const out: Measured[] = await dispatchLatency(sizes, pgUrl);
  await withSchema(pgUrl, async (schema) => {
    const store = await PostgresMetadataStore.connect({ connectionString: pgUrl, schema });
    const bullName = `mlplane-bench-${randomUUID().slice(0, 8)}`;
    const queue = redisUrl ? new Queue(bullName, { connection: redisConnection(redisUrl) }) : undefined;
    try {
      // Submit-only: nothing dispatches, so the figure is the durable write alone, as BullMQ's add is.
      const scheduler = await SqlScheduler.open(store, new InstantBackend(), { queues: QUEUES });
      const rates: Record<string, number[]> = { single: [], bulk: [], bullAdd: [], bullBulk: [] };
      let seq = 0;
      const contenders: { key: string; run: () => Promise<number> }[] = [
        {
          key: 'single',
          run: () => concurrently(sizes.callers, sizes.singleJobs, () => scheduler.submit(specFor(seq++))),
        },
        {
          key: 'bulk',
          run: () =>
            batched(sizes.batchedJobs, sizes.batchSize, (_from, n) =>
              scheduler.submitMany(Array.from({ length: n }, () => specFor(seq++))),
            ),
        },
      ];
      if (queue) {
        await queue.waitUntilReady();
        contenders.push(
          {
            key: 'bullAdd',
            run: () => concurrently(sizes.callers, sizes.singleJobs, () => queue.add('train', specFor(seq++))),
          },
          {
            key: 'bullBulk',
            run: () =>
              batched(sizes.batchedJobs, sizes.batchSize, (_from, n) =>
                queue.addBulk(Array.from({ length: n }, () => ({ name: 'train', data: specFor(seq++) }))),
              ),
          },
        );
      }
      // Warm-up: connections, prepared plans, Lua scripts loaded.
      for (const c of contenders) {
        if (c.key === 'single' || c.key === 'bullAdd') {
          const run =
            c.key === 'single' ? () => scheduler.submit(specFor(seq++)) : () => queue!.add('w', specFor(seq++));
          await concurrently(sizes.callers, 200, run);
        }
      }
      for (let round = 0; round < sizes.rounds; round++) {
        for (const c of rotated(contenders, round)) rates[c.key]!.push(await c.run());
      }
      const line = (key: string) => rates[key]!.map((r) => Math.round(r)).join(', ');
      console.log(
        `scheduler submit rounds (jobs/s): single x${sizes.callers} [${line('single')}], submitMany [${line('bulk')}]${
          queue ? `, BullMQ add x${sizes.callers} [${line('bullAdd')}], addBulk [${line('bullBulk')}]` : ''
        }`,
      );
      const single = median(rates.single!);
      const bulk = median(rates.bulk!);
      const bullAdd = queue ? median(rates.bullAdd!) : null;
      const bullBulk = queue ? median(rates.bullBulk!) : null;
      out.push(
        figure(
          `scheduler submit x${sizes.callers} callers, PostgreSQL vs BullMQ queue.add`,
          'jobs/s',
          single,
          bullAdd,
          'higher-is-better',
          {
            peerIs: `BullMQ queue.add x${sizes.callers} callers (Redis)`,
            ...(bullAdd !== null ? { goal: { text: '≥ BullMQ queue.add', met: single >= bullAdd } } : {}),
          },
        ),
        figure(
          `scheduler submitMany (${sizes.batchSize} per call), PostgreSQL vs BullMQ addBulk`,
          'jobs/s',
          bulk,
          bullBulk,
          'higher-is-better',
          {
            peerIs: `BullMQ addBulk of ${sizes.batchSize} (Redis)`,
            goal: {
              text: `≥ ${SCHEDULER_GOAL_BATCHED.toLocaleString('en-US')} jobs/s`,
              met: bulk >= SCHEDULER_GOAL_BATCHED,
            },
          },
        ),
      );
    } finally {
      if (queue) {
        await queue.obliterate({ force: true }).catch(() => {});
        await queue.close();
      }
      await store.close();
    }
  });
  return out;
}

async function dispatchLatency(sizes: SchedulerSizes, pgUrl: string): Promise<Measured[]> {
  return withSchema(pgUrl, async (schema) => {
    const backend = new InstantBackend();
    const stores: PostgresMetadataStore[] = [];
    const open = async (replica: string) => {
      const store = await PostgresMetadataStore.connect({ connectionString: pgUrl, schema });
      stores.push(store);
      return SqlScheduler.open(store, backend, { queues: QUEUES, replica, pollIntervalMs: SCHEDULER_BENCH_POLL_MS });
    };
    const api = await open('api');
    const replicas = [await open('one'), await open('two')];
    try {
      for (const r of replicas) r.start();
      const submittedAt = new Map<string, number>();
      const total = sizes.dispatchRate * sizes.dispatchSeconds;
      // Open loop: every 10 ms the jobs due by then are submitted at once, whatever earlier submits still await.
      const tick = 10;
      const perTick = (sizes.dispatchRate * tick) / 1000;
      const started = performance.now();
      const inFlight: Promise<void>[] = [];
      let sent = 0;
      while (sent < total) {
        const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * sizes.dispatchRate) + perTick);
        for (; sent < due; sent++) {
          const t0 = performance.now();
          inFlight.push(
            api.submit(specFor(sent)).then((s) => {
              submittedAt.set(`scheduler-${s.id}`, t0);
            }),
          );
        }
        await delay(tick);
      }
      await Promise.all(inFlight);
      const achieved = total / seconds(started);
      const deadline = Date.now() + 30_000;
      while (backend.received.size < total && Date.now() < deadline) await delay(50);
      const latencies: number[] = [];
      for (const [key, t0] of submittedAt) {
        const at = backend.received.get(key);
        if (at !== undefined) latencies.push(at - t0);
      }
      const missing = total - latencies.length;
      const p50 = percentile(latencies, 0.5);
      const p99 = percentile(latencies, 0.99);
      console.log(
        `scheduler dispatch: ${total} jobs at ${achieved.toFixed(0)} jobs/s offered, 2 replicas polling every ${SCHEDULER_BENCH_POLL_MS} ms; p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${latencies.at(-1)?.toFixed(1)} ms${missing ? `; ${missing} not dispatched within 30 s` : ''}`,
      );
      if (missing > 0) throw new Error(`${missing} of ${total} jobs were not dispatched within 30 s`);
      const name = (q: string) =>
        `scheduler dispatch latency ${q} at ${sizes.dispatchRate} jobs/s, 2 replicas, PostgreSQL`;
      return [
        figure(name('p50'), 'ms', p50, null, 'lower-is-better'),
        figure(name('p99'), 'ms', p99, null, 'lower-is-better', {
          goal: { text: `≤ ${SCHEDULER_GOAL_P99_MS} ms`, met: p99 <= SCHEDULER_GOAL_P99_MS },
        }),
      ];
    } finally {
      for (const r of replicas) await r.stop();
      for (const s of stores) await s.close();
    }
  });
}
