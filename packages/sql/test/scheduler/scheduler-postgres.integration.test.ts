// The scheduler with two replicas on the PostgreSQL peer, each with its own connection pool, as two processes
// would have: no double dispatch under contention, quotas never exceeded, takeover after a lease expires, fencing.
import { setTimeout as delay } from 'node:timers/promises';
import { actingAs, type ComputeBackend, type JobSpec, type JobStatus, UnavailableError } from '@mlplane/core';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { dropSchema, freshSchema, pgUrl } from '../../../../test-support/pg-env.js';
import { readOutbox } from '../../src/outbox/outbox.js';
import { SCHEDULE_ANNOTATIONS, SqlScheduler, type SqlSchedulerOptions } from '../../src/scheduler/sql-scheduler.js';
import { RecordingBackend, through } from './recording-backend.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function schema(): Promise<string> {
  const name = freshSchema('mlplane_scheduler');
  cleanups.push(() => dropSchema(name));
  return name;
}

async function replica(
  schemaName: string,
  backend: ComputeBackend,
  options: Partial<SqlSchedulerOptions> & Pick<SqlSchedulerOptions, 'queues'>,
): Promise<{ scheduler: SqlScheduler; store: PostgresMetadataStore }> {
  const store = await PostgresMetadataStore.connect({ connectionString: pgUrl(), schema: schemaName });
  const scheduler = await SqlScheduler.open(store, backend, { followIntervalMs: 0, ...options });
  cleanups.push(async () => {
    await scheduler.stop();
    await store.close();
  });
  return { scheduler, store };
}

const job = (project: string, i: number, cpu = 1, queue?: string): JobSpec => ({
  name: `job-${i}`,
  project,
  ...(queue ? { queue } : {}),
  replicaGroups: [{ role: 'main', command: ['true'], resources: { cpu } }],
});

describe('SqlScheduler with two replicas on PostgreSQL', () => {
  it('dispatches 10,000 jobs exactly once each, never beyond a quota or queue limit at any moment', async () => {
    const name = await schema();
    const backend = new RecordingBackend();
    // Jobs run 0-4 ms in the backend, so admission, release and following all contend.
    backend.autoCompleteMs = () => Math.floor(Math.random() * 5);
    const quotas = { a: { cpu: 16 }, b: { cpu: 8, maxRunning: 6 }, c: { cpu: 24, weight: 2 }, d: { cpu: 4 } };
    const options = {
      queues: [{ name: 'batch' }, { name: 'small', maxRunning: 5 }],
      quotas,
      pollIntervalMs: 5,
      admitBatch: 64,
      leaseTtlMs: 10_000,
    };
    const one = await replica(name, backend, { ...options, replica: 'one' });
    const two = await replica(name, backend, { ...options, replica: 'two' });
    const projects = ['a', 'b', 'c', 'd'];
    const specs = Array.from({ length: 10_000 }, (_, i) =>
      job(projects[i % 4]!, i, 1 + (i % 3), i % 10 === 0 ? 'small' : undefined),
    );
    // Both replicas dispatch while the jobs are still being submitted through both.
    one.scheduler.start();
    two.scheduler.start();
    const submitted: JobStatus[] = [];
    for (let i = 0; i < specs.length; i += 500) {
      const via = (i / 500) % 2 === 0 ? one : two;
      submitted.push(...(await via.scheduler.submitMany(specs.slice(i, i + 500))));
    }
    expect(new Set(submitted.map((s) => s.id)).size).toBe(10_000);

    // What the database says is held, sampled while the replicas work: never above a quota or a queue limit.
    const db = one.store.db();
    let samples = 0;
    const overQuota: string[] = [];
    const deadline = Date.now() + 240_000;
    for (;;) {
      const used = await sql<{ project: string; cpu: string; jobs: string }>`
        SELECT project, sum(cpu_milli) AS cpu, count(*) AS jobs FROM scheduler_jobs
        WHERE phase IN ('Admitted', 'Running') GROUP BY project`.execute(db);
      for (const u of used.rows) {
        const q = quotas[u.project as keyof typeof quotas];
        if (Number(u.cpu) > q.cpu * 1000) overQuota.push(`${u.project} held ${u.cpu} milli-CPUs`);
        if ('maxRunning' in q && Number(u.jobs) > q.maxRunning) overQuota.push(`${u.project} ran ${u.jobs} jobs`);
      }
      const small = await sql<{ jobs: string }>`
        SELECT count(*) AS jobs FROM scheduler_jobs WHERE phase IN ('Admitted', 'Running') AND queue = 'small'`.execute(
        db,
      );
      if (Number(small.rows[0]!.jobs) > 5) overQuota.push(`queue small ran ${small.rows[0]!.jobs}`);
      samples++;
      const left = await sql<{ n: string }>`
        SELECT count(*) AS n FROM scheduler_jobs WHERE phase NOT IN ('Succeeded', 'Failed', 'Cancelled')`.execute(db);
      if (Number(left.rows[0]!.n) === 0 || Date.now() > deadline) break;
      await delay(20);
    }
    expect(overQuota).toEqual([]);
    expect(samples).toBeGreaterThan(10);

    // Every job succeeded, each handed to the backend exactly once.
    const phases = await sql<{ phase: string; n: string }>`
      SELECT phase, count(*) AS n FROM scheduler_jobs GROUP BY phase`.execute(db);
    expect(phases.rows.map((r) => [r.phase, Number(r.n)])).toEqual([['Succeeded', 10_000]]);
    expect(backend.created.size).toBe(10_000);
    expect(backend.submitCalls).toHaveLength(10_000);
    const handedOver = new Set(backend.submitCalls.map((c) => c.spec.idempotencyKey));
    expect(handedOver.size).toBe(10_000);

    // The backend's own view, at every submission: never more held than the quota.
    for (const [project, q] of Object.entries(quotas)) {
      const peak = backend.peaks.get(project)!;
      expect(peak.cpuMilli).toBeLessThanOrEqual(q.cpu * 1000);
      if ('maxRunning' in q) expect(peak.jobs).toBeLessThanOrEqual(q.maxRunning);
    }
    // Both replicas did part of the work (the contention was real).
    const byOwner = await sql<{ replica: string; n: string }>`
      SELECT r.replica, count(*) AS n FROM scheduler_jobs j JOIN scheduler_replicas r ON r.fencing_token = j.owner_token
      GROUP BY r.replica`.execute(db);
    const owners = Object.fromEntries(byOwner.rows.map((r) => [r.replica, Number(r.n)]));
    expect(owners.one).toBeGreaterThan(0);
    expect(owners.two).toBeGreaterThan(0);
    const outbox = await readOutbox(db, { limit: 100_000 });
    const count = (type: string) => outbox.filter((e) => e.event.type === type).length;
    expect([count('job.queued'), count('job.started'), count('job.finished')]).toEqual([10_000, 10_000, 10_000]);
  }, 300_000);

  it("takes over a dead replica's jobs after its lease expires, handing over again those it died handing over without a second backend job", async () => {
    const name = await schema();
    const backend = new RecordingBackend();
    // Replica a hands its first three jobs over; for the other three the backend creates the job but a's connection
    // drops before the answer arrives (it dies mid-handoff): the backend has them, the database does not know.
    let answered = 3;
    const flaky = through(backend, {
      submit: async (spec: JobSpec) => {
        const status = await backend.submit(spec);
        if (answered-- <= 0) throw new UnavailableError('connection to the backend lost');
        return status;
      },
    });
    const options = { queues: [{ name: 'batch' }], leaseTtlMs: 1_000, heartbeatIntervalMs: 300 };
    const a = await replica(name, flaky, { ...options, replica: 'a' });
    const b = await replica(name, backend, { ...options, replica: 'b' });
    const jobs = await a.scheduler.submitMany(Array.from({ length: 6 }, (_, i) => job('a', i)));
    const first = await a.scheduler.runOnce();
    expect(first).toMatchObject({ admitted: 6, dispatched: 3 });
    expect(answered).toBeLessThan(0); // the lost answers happened
    // a tried the three again in the same round (stranded Admitted jobs), and lost those answers too.
    expect(backend.submitCalls).toHaveLength(9);
    expect(backend.created.size).toBe(6);
    // a is gone (no more heartbeats); b finds nothing to take while a's lease lasts.
    expect((await b.scheduler.runOnce()).takenOver).toBe(0);
    await delay(1_200);
    const round = await b.scheduler.runOnce();
    expect(round.takenOver).toBe(6);
    expect(round.dispatched).toBe(3);
    const statuses = await Promise.all(jobs.map((j) => b.scheduler.get(j.id)));
    expect(statuses.map((s) => s.phase)).toEqual(Array(6).fill('Running'));
    // b handed the three over again under the same idempotency keys: the backend returned the jobs it had.
    expect(backend.submitCalls).toHaveLength(12);
    expect(backend.created.size).toBe(6);
    backend.completeAll();
    expect((await b.scheduler.runOnce()).finished).toBe(6);
  });

  it('a replica that lost its lease cannot complete a job: its write is fenced', async () => {
    const name = await schema();
    const backend = new RecordingBackend();
    let gate: Promise<void> | undefined;
    let entered: () => void = () => {};
    const reachedGet = new Promise<void>((resolve) => {
      entered = resolve;
    });
    // Replica a's reads of the backend can be held, as a long GC pause or a stalled network would hold them.
    const slow = through(backend, {
      get: async (id: string) => {
        const status = await backend.get(id);
        if (gate) {
          entered();
          await gate;
        }
        return status;
      },
    });
    const options = { queues: [{ name: 'batch' }], leaseTtlMs: 1_000, heartbeatIntervalMs: 300 };
    const a = await replica(name, slow, { ...options, replica: 'a' });
    const b = await replica(name, backend, { ...options, replica: 'b' });
    const submitted = await a.scheduler.submit(job('a', 1));
    await a.scheduler.runOnce();
    const tokenA = a.scheduler.fencingToken!;
    backend.completeAll();
    let release: () => void = () => {};
    gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    // a reads the Succeeded status, then stalls before writing it.
    const paused = a.scheduler.runOnce();
    await reachedGet;
    await delay(1_200);
    const takeover = await b.scheduler.runOnce();
    expect(takeover.takenOver).toBe(1);
    gate = undefined;
    release();
    const late = await paused;
    expect(late.fenced).toBe(1);
    expect(late.finished).toBe(0);
    const row = await sql<{ owner_token: string; phase: string }>`
      SELECT owner_token, phase FROM scheduler_jobs WHERE id = ${submitted.id}`.execute(a.store.db());
    expect(Number(row.rows[0]!.owner_token)).toBe(b.scheduler.fencingToken);
    expect(Number(row.rows[0]!.owner_token)).toBeGreaterThan(tokenA);
    // b completed it, not a: one job.finished event, written by b's round.
    expect(await a.scheduler.heartbeat()).toBe(false);
    const outbox = await readOutbox(a.store.db(), { limit: 1000 });
    expect(outbox.filter((e) => e.event.type === 'job.finished')).toHaveLength(1);
    expect((await b.scheduler.get(submitted.id)).phase).toBe('Succeeded');
  });

  it('stores concurrent submits in shared statements, each job.queued naming its own submitter', async () => {
    const name = await schema();
    const { scheduler, store } = await replica(name, new RecordingBackend(), { queues: [{ name: 'batch' }] });
    const submitted = await Promise.all(
      Array.from({ length: 40 }, (_, i) => actingAs({ actor: `user-${i}` }, () => scheduler.submit(job('a', i)))),
    );
    const again = await Promise.all([
      scheduler.submit({ ...job('a', 1), idempotencyKey: 'once' }),
      scheduler.submit({ ...job('a', 1), idempotencyKey: 'once' }),
    ]);
    expect(again[0]!.id).toBe(again[1]!.id);
    const queued = (await readOutbox(store.db(), { limit: 1000 })).filter((e) => e.event.type === 'job.queued');
    expect(queued).toHaveLength(41);
    submitted.forEach((s, i) => {
      const event = queued.find((e) => e.event.subject === `job:${s.id}`)!;
      expect(event.event.actor).toBe(`user-${i}`);
      expect(event.event.payload).toEqual({
        jobId: s.id,
        name: `job-${i}`,
        queue: 'batch',
        priority: 'normal',
        cpu: 1,
        memoryBytes: 0,
        gpus: 0,
      });
    });
  });

  it('fires a cron schedule once per time with two replicas polling it', async () => {
    const name = await schema();
    const backend = new RecordingBackend();
    const options = { queues: [{ name: 'batch' }], pollIntervalMs: 10 };
    const one = await replica(name, backend, { ...options, replica: 'one' });
    const two = await replica(name, backend, { ...options, replica: 'two' });
    await one.scheduler.schedule({ name: 'every-second', cron: '* * * * * *', spec: job('a', 1) });
    one.scheduler.start();
    two.scheduler.start();
    await delay(3_500);
    await one.scheduler.stop();
    await two.scheduler.stop();
    const times = backend.submitCalls.map((c) => c.spec.annotations![SCHEDULE_ANNOTATIONS.scheduledFor]!);
    expect(times.length).toBeGreaterThanOrEqual(3);
    expect(new Set(times).size).toBe(times.length);
    const jobs = (await one.scheduler.list()).items;
    expect(jobs).toHaveLength(times.length);
    for (const j of jobs) {
      const due = Date.parse(
        backend.submitCalls.find((c) => c.spec.idempotencyKey === `scheduler-${j.id}`)!.spec.annotations![
          SCHEDULE_ANNOTATIONS.scheduledFor
        ]!,
      );
      expect(j.submittedAt.getTime() - due).toBeLessThan(500);
    }
  });
});
