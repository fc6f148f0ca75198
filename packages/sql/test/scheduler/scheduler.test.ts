import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { actingAs, ConflictError, type JobSpec, type MetadataStore, ValidationError } from '@mlplane/core';
import { SqliteMetadataStore } from '@mlplane/defaults';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readOutbox } from '../../src/outbox/outbox.js';
import { SCHEDULE_ANNOTATIONS, SqlScheduler, type SqlSchedulerOptions } from '../../src/scheduler/sql-scheduler.js';
import { RecordingBackend } from './recording-backend.js';

let dir: string;
let store: MetadataStore;
let backend: RecordingBackend;
const open: SqlScheduler[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mlplane-scheduler-'));
  store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
  backend = new RecordingBackend();
});

afterEach(async () => {
  for (const s of open.splice(0)) await s.stop();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function scheduler(options: Partial<SqlSchedulerOptions> = {}): Promise<SqlScheduler> {
  const s = await SqlScheduler.open(store, backend, {
    queues: [{ name: 'default' }, { name: 'gpu', maxRunning: 2 }],
    followIntervalMs: 0,
    ...options,
  });
  open.push(s);
  return s;
}

function spec(
  overrides: Partial<JobSpec> = {},
  resources: JobSpec['replicaGroups'][number]['resources'] = {},
): JobSpec {
  return {
    name: 'train',
    project: 'vision',
    replicaGroups: [{ role: 'main', command: ['python', 'train.py'], resources }],
    ...overrides,
  };
}

async function events(type: string) {
  return (await readOutbox(store.db(), { limit: 100_000 })).filter((e) => e.event.type === type);
}

describe('SqlScheduler on SQLite', () => {
  describe('rejects bad specs with a ValidationError naming the field, and stores nothing', () => {
    const cases: [string, JobSpec, string][] = [
      ['an unknown queue', spec({ queue: 'nope' }), 'queue'],
      ['an unknown priority class', spec({ priority: 'urgent' }), 'priority'],
      [
        'a GPU type the backend lacks',
        spec({}, { gpu: { count: 1, type: 'amd.com/gpu' } }),
        'replicaGroups[0].resources.gpu.type',
      ],
      ['negative CPU', spec({}, { cpu: -1 }), 'replicaGroups[0].resources.cpu'],
      ['negative CPU as a quantity', spec({}, { cpu: '-500m' }), 'replicaGroups[0].resources.cpu'],
      ['negative memory', spec({}, { memory: '-1Gi' }), 'replicaGroups[0].resources.memory'],
      ['a negative GPU count', spec({}, { gpu: { count: -1 } }), 'replicaGroups[0].resources.gpu.count'],
      ['a bad job name', spec({ name: 'Not_A_Name' }), 'name'],
    ];
    for (const [what, bad, field] of cases) {
      it(what, async () => {
        const s = await scheduler();
        const err = await s.submit(bad).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ValidationError);
        expect((err as ValidationError).field).toBe(field);
        expect((await s.list()).items).toHaveLength(0);
        expect(await events('job.queued')).toHaveLength(0);
      });
    }

    it('a job larger than its project quota (it could never be admitted)', async () => {
      const s = await scheduler({ quotas: { vision: { gpus: 2 } } });
      const err = await s.submit(spec({}, { gpu: { count: 4 } })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).field).toBe('replicaGroups');
      expect((err as Error).message).toMatch(/4 GPUs.*quota is 2/);
    });

    it('a batch with one bad spec stores none of them', async () => {
      const s = await scheduler();
      const err = await s.submitMany([spec(), spec({ queue: 'nope' })]).catch((e: unknown) => e);
      expect((err as ValidationError).field).toBe('queue');
      expect((err as Error).message).toMatch(/^spec 1:/);
      expect((await s.list()).items).toHaveLength(0);
    });

    it('bad configuration', async () => {
      const bad = (options: Partial<SqlSchedulerOptions>) =>
        SqlScheduler.open(store, backend, { queues: [{ name: 'default' }], ...options }).catch((e: unknown) => e);
      expect(((await bad({ queues: [] })) as ValidationError).field).toBe('queues');
      expect(((await bad({ quotas: { a: { cpu: 'lots' } } })) as ValidationError).field).toBe('quotas.a.cpu');
      expect(((await bad({ quotas: { a: { gpus: -1 } } })) as ValidationError).field).toBe('quotas.a.gpus');
      expect(((await bad({ defaultQueue: 'x' })) as ValidationError).field).toBe('defaultQueue');
    });
  });

  it('stores a job as Queued, dispatches it, follows it to Succeeded, with job.queued/started/finished events', async () => {
    const s = await scheduler();
    const queued = await s.submit(spec({ labels: { team: 'cv' } }));
    expect(queued).toMatchObject({ phase: 'Queued', queue: 'default', priority: 'normal', project: 'vision' });
    expect(backend.submitCalls).toHaveLength(0);
    expect(await events('job.queued')).toHaveLength(1);

    const round = await s.runOnce();
    expect(round).toMatchObject({ admitted: 1, dispatched: 1 });
    expect(backend.submitCalls).toHaveLength(1);
    // The backend gets the job without the scheduler's queue and priority, under the scheduler's idempotency key.
    expect(backend.submitCalls[0]!.spec).toMatchObject({ idempotencyKey: `scheduler-${queued.id}` });
    expect(backend.submitCalls[0]!.spec.queue).toBeUndefined();
    const running = await s.get(queued.id);
    expect(running.phase).toBe('Running');
    expect(running.startedAt).toBeInstanceOf(Date);
    expect(running.admittedAt).toBeInstanceOf(Date);
    expect(await events('job.started')).toHaveLength(1);

    backend.completeAll();
    expect(await s.runOnce()).toMatchObject({ finished: 1 });
    const done = await s.get(queued.id);
    expect(done).toMatchObject({ phase: 'Succeeded', reason: 'Completed' });
    expect(done.replicas[0]).toMatchObject({ phase: 'Succeeded', exitCode: 0 });
    const finished = await events('job.finished');
    expect(finished).toHaveLength(1);
    expect(finished[0]!.event).toMatchObject({ subject: `job:${queued.id}`, project: 'vision' });
    expect(finished[0]!.event.payload).toMatchObject({ jobId: queued.id, phase: 'Succeeded' });
    expect((await s.list({ labels: { team: 'cv' } })).items.map((j) => j.id)).toEqual([queued.id]);
    expect((await s.list({ labels: { team: 'nlp' } })).items).toHaveLength(0);
  });

  it('admits higher priority classes first', async () => {
    const s = await scheduler({ quotas: { vision: { maxRunning: 1 } } });
    const low = await s.submit(spec({ name: 'low', priority: 'low' }));
    const normal = await s.submit(spec({ name: 'normal' }));
    const high = await s.submit(spec({ name: 'high', priority: 'high' }));
    const order: string[] = [];
    for (let i = 0; i < 3; i++) {
      await s.runOnce();
      order.push(backend.submitCalls.at(-1)!.spec.name);
      backend.completeAll();
      await s.runOnce();
    }
    expect(order).toEqual(['high', 'normal', 'low']);
    expect((await s.get(low.id)).phase).toBe('Succeeded');
    expect((await s.get(normal.id)).phase).toBe('Succeeded');
    expect((await s.get(high.id)).phase).toBe('Succeeded');
  });

  it('never admits beyond a project quota of CPU, memory and GPUs per type, and shows the use', async () => {
    const s = await scheduler({
      quotas: { vision: { cpu: 4, memory: '8Gi', gpus: 3, gpuTypes: { 'nvidia.com/mig-1g.10gb': 1 } } },
    });
    await s.submitMany(Array.from({ length: 5 }, () => spec({}, { cpu: '1500m', memory: '1Gi' })));
    await s.runOnce();
    expect(backend.running('vision')).toBe(2); // 3 x 1.5 CPUs would exceed 4
    let state = await s.queueState();
    expect(state.projects[0]).toMatchObject({ project: 'vision', queued: 3, use: { cpu: 3, running: 2 } });
    expect(state.queues.find((q) => q.name === 'default')).toMatchObject({ queued: 3, running: 2 });

    backend.completeAll();
    await s.runOnce(); // follows: frees the quota
    await s.runOnce();
    expect(backend.running('vision')).toBe(2);
    backend.completeAll();
    await s.runOnce();
    await s.runOnce();
    expect(backend.running('vision')).toBe(1);
    backend.completeAll();
    await s.runOnce();

    // Memory: 3 x 3Gi would exceed 8Gi.
    await s.submitMany(Array.from({ length: 3 }, () => spec({}, { memory: '3Gi' })));
    await s.runOnce();
    expect(backend.running('vision')).toBe(2);
    backend.completeAll();
    await s.runOnce();
    await s.runOnce();
    backend.completeAll();
    await s.runOnce();

    // GPUs: the MIG type has a cap of 1 of its own, whole GPUs only the total of 3.
    await s.submitMany([
      spec({ name: 'mig-a' }, { gpu: { count: 1, type: 'nvidia.com/mig-1g.10gb' } }),
      spec({ name: 'mig-b' }, { gpu: { count: 1, type: 'nvidia.com/mig-1g.10gb' } }),
      spec({ name: 'gpu-a' }, { gpu: { count: 1 } }),
      spec({ name: 'gpu-b' }, { gpu: { count: 1 } }),
    ]);
    await s.runOnce();
    expect(backend.submitCalls.slice(-3).map((c) => c.spec.name)).toEqual(['mig-a', 'gpu-a', 'gpu-b']);
    state = await s.queueState();
    expect(state.projects[0]!.use).toMatchObject({
      gpus: 3,
      gpuTypes: { 'nvidia.com/mig-1g.10gb': 1, 'nvidia.com/gpu': 2 },
    });
    expect(backend.peaks.get('vision')).toMatchObject({ cpuMilli: 3000, gpus: 3 });
  });

  it('keeps a queue within its concurrency limit', async () => {
    const s = await scheduler();
    await s.submitMany(Array.from({ length: 5 }, () => spec({ queue: 'gpu' })));
    await s.submitMany(Array.from({ length: 3 }, () => spec({ queue: 'default' })));
    await s.runOnce();
    const state = await s.queueState();
    expect(state.queues.find((q) => q.name === 'gpu')).toMatchObject({ running: 2, queued: 3, maxRunning: 2 });
    expect(state.queues.find((q) => q.name === 'default')).toMatchObject({ running: 3, queued: 0 });
  });

  it('shares between projects by weighted dominant share, whoever submitted first', async () => {
    const s = await scheduler({
      queues: [{ name: 'default', maxRunning: 6 }],
      quotas: { a: { cpu: 8 }, b: { cpu: 8, weight: 2 } },
    });
    // Project a floods the queue first; b arrives later with fewer jobs.
    await s.submitMany(Array.from({ length: 20 }, () => spec({ project: 'a' }, { cpu: 1 })));
    await s.submitMany(Array.from({ length: 20 }, () => spec({ project: 'b' }, { cpu: 1 })));
    await s.runOnce();
    // Weight 2 entitles b to twice a's share: 6 slots split 2 / 4.
    expect(backend.running('a')).toBe(2);
    expect(backend.running('b')).toBe(4);
    const shares = (await s.queueState()).projects.map((p) => [p.project, p.share]);
    expect(shares).toEqual([
      ['a', 0.25],
      ['b', 0.25],
    ]);
  });

  it('returns the same job for a repeated idempotency key, and a ConflictError for another spec under it', async () => {
    const s = await scheduler();
    const first = await s.submit(spec({ idempotencyKey: 'nightly-1' }));
    const again = await s.submit(spec({ idempotencyKey: 'nightly-1' }));
    expect(again.id).toBe(first.id);
    const [a, b] = await Promise.all([
      s.submit(spec({ idempotencyKey: 'nightly-2' })),
      s.submit(spec({ idempotencyKey: 'nightly-2' })),
    ]);
    expect(a.id).toBe(b.id);
    await expect(s.submit(spec({ idempotencyKey: 'nightly-1', name: 'other' }))).rejects.toBeInstanceOf(ConflictError);
    expect((await s.list()).items).toHaveLength(2);
    expect(await events('job.queued')).toHaveLength(2);
  });

  it('names the submitter as the actor of job.queued, and matches a repeated key whatever the order of its fields', async () => {
    const s = await scheduler();
    const [a, b] = await Promise.all([
      actingAs({ actor: 'alice' }, () => s.submit(spec({ name: 'by-alice' }))),
      actingAs({ actor: 'bob' }, () => s.submit(spec({ name: 'by-bob' }))),
    ]);
    const queued = await events('job.queued');
    expect(queued.find((e) => e.event.subject === `job:${a.id}`)!.event.actor).toBe('alice');
    expect(queued.find((e) => e.event.subject === `job:${b.id}`)!.event.actor).toBe('bob');
    const first = await s.submit({ ...spec(), idempotencyKey: 'k', labels: { a: '1', b: '2' } });
    const again = await s.submit({ labels: { b: '2', a: '1' }, idempotencyKey: 'k', ...spec() });
    expect(again.id).toBe(first.id);
  });

  it('cancels a queued job without dispatching it, and a running one through the backend', async () => {
    const s = await scheduler();
    const queued = await s.submit(spec());
    expect(await s.cancel(queued.id, { reason: 'not needed' })).toMatchObject({
      phase: 'Cancelled',
      message: 'not needed',
    });
    expect((await s.cancel(queued.id)).phase).toBe('Cancelled'); // idempotent
    await s.runOnce();
    expect(backend.submitCalls).toHaveLength(0);

    const running = await s.submit(spec());
    await s.runOnce();
    expect((await s.cancel(running.id)).phase).toBe('Cancelled');
    expect(backend.cancelled).toEqual([backend.submitCalls[0]!.id]);
    expect(backend.running()).toBe(0);
    expect((await events('job.finished')).map((e) => (e.event.payload as { phase: string }).phase)).toEqual([
      'Cancelled',
      'Cancelled',
    ]);
  });

  it('marks a job the backend lost as Failed (Lost) and one it refuses as Failed (Rejected)', async () => {
    const s = await scheduler();
    const job = await s.submit(spec());
    await s.runOnce();
    const original = backend.get.bind(backend);
    backend.get = async (id) => {
      if (id === backend.submitCalls[0]!.id) throw new (await import('@mlplane/core')).NotFoundError('gone');
      return original(id);
    };
    await s.runOnce();
    expect(await s.get(job.id)).toMatchObject({ phase: 'Failed', reason: 'Lost' });

    backend.submit = async () => {
      throw new ValidationError('no such image here', { field: 'replicaGroups[0].image' });
    };
    const refused = await s.submit(spec());
    await s.runOnce();
    expect(await s.get(refused.id)).toMatchObject({ phase: 'Failed', reason: 'Rejected' });
  });

  it('pages through list newest first and watches one job to its end', async () => {
    const s = await scheduler({ watchIntervalMs: 20 });
    const jobs = await s.submitMany(Array.from({ length: 5 }, (_, i) => spec({ name: `job-${i}` })));
    const first = await s.list({ maxResults: 2 });
    expect(first.items.map((j) => j.name)).toEqual(['job-4', 'job-3']);
    const second = await s.list({ maxResults: 2, pageToken: first.nextPageToken! });
    expect(second.items.map((j) => j.name)).toEqual(['job-2', 'job-1']);
    const last = await s.list({ maxResults: 2, pageToken: second.nextPageToken! });
    expect(last.items.map((j) => j.name)).toEqual(['job-0']);
    expect(last.nextPageToken).toBeUndefined();
    await expect(s.list({ pageToken: 'garbage' })).rejects.toMatchObject({ field: 'pageToken' });

    const seen: string[] = [];
    const watching = (async () => {
      for await (const status of s.watch({ id: jobs[0]!.id })) seen.push(status.phase);
    })();
    await new Promise((r) => setTimeout(r, 50));
    await s.runOnce();
    await new Promise((r) => setTimeout(r, 50));
    backend.completeAll();
    await s.runOnce();
    await watching;
    expect(seen).toEqual(['Queued', 'Running', 'Succeeded']);
  });

  it('takes over the jobs of a replica whose lease expired, and fences its late writes', async () => {
    const a = await scheduler({ replica: 'a', leaseTtlMs: 300, heartbeatIntervalMs: 100 });
    const b = await scheduler({ replica: 'b', leaseTtlMs: 300, heartbeatIntervalMs: 100 });
    const job = await a.submit(spec());
    await a.runOnce();
    const tokenA = a.fencingToken!;
    expect((await a.get(job.id)).phase).toBe('Running');
    // a stops heartbeating (a paused or dead process); its lease expires.
    await new Promise((r) => setTimeout(r, 400));
    backend.completeAll();
    const round = await b.runOnce();
    expect(round.takenOver).toBe(1);
    expect(round.finished).toBe(1);
    expect((await b.get(job.id)).phase).toBe('Succeeded');
    // a wakes up: its heartbeat fails, it registers anew under a larger fencing token.
    expect(await a.heartbeat()).toBe(false);
    await a.runOnce();
    expect(a.fencingToken).toBeGreaterThan(tokenA);
    expect(backend.submitCalls).toHaveLength(1);
  });

  it('submits cron jobs at their times (fake clock) and rejects bad expressions', async () => {
    let now = Date.parse('2026-12-02T10:00:00.000Z');
    const s = await scheduler({ clock: () => now });
    await expect(s.schedule({ name: 'nightly', cron: 'every day', spec: spec() })).rejects.toMatchObject({
      field: 'cron',
    });
    await expect(
      s.schedule({ name: 'nightly', cron: '0 3 * * *', timezone: 'Mars/Olympus', spec: spec() }),
    ).rejects.toBeInstanceOf(ValidationError);
    await expect(s.schedule({ name: 'nightly', cron: '0 3 * * *', spec: spec({ queue: 'x' }) })).rejects.toMatchObject({
      field: 'spec.queue',
    });
    const created = await s.schedule({ name: 'nightly', cron: '0 3 * * *', timezone: 'Europe/Paris', spec: spec() });
    // 03:00 in Paris is 02:00 UTC in winter.
    expect(created.nextFireAt.toISOString()).toBe('2026-12-03T02:00:00.000Z');
    await s.runOnce();
    expect((await s.list()).items).toHaveLength(0);

    now = Date.parse('2026-12-03T02:00:00.000Z');
    expect((await s.runOnce()).cronFired).toBe(1);
    const [job] = (await s.list()).items;
    expect(backend.submitCalls[0]!.spec.annotations).toMatchObject({
      [SCHEDULE_ANNOTATIONS.schedule]: 'nightly',
      [SCHEDULE_ANNOTATIONS.scheduledFor]: '2026-12-03T02:00:00.000Z',
    });
    expect(job!.phase).toBe('Running');
    expect((await s.runOnce()).cronFired).toBe(0);

    // Three days with every replica down: one job for the missed times, then the next one in the future.
    now = Date.parse('2026-12-06T12:00:00.000Z');
    expect((await s.runOnce()).cronFired).toBe(1);
    expect((await s.runOnce()).cronFired).toBe(0);
    const [schedule] = await s.listSchedules();
    expect(schedule!.nextFireAt.toISOString()).toBe('2026-12-07T02:00:00.000Z');
    await s.unschedule('nightly');
    await expect(s.unschedule('nightly')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('submits a seconds-field cron job on time with real dispatch loops', async () => {
    const s = await scheduler({ pollIntervalMs: 20 });
    await s.schedule({ name: 'tick', cron: '* * * * * *', spec: spec() });
    s.start();
    await new Promise((r) => setTimeout(r, 2_600));
    await s.stop();
    const jobs = (await s.list()).items;
    expect(jobs.length).toBeGreaterThanOrEqual(2);
    for (const call of backend.submitCalls) {
      const due = Date.parse(call.spec.annotations![SCHEDULE_ANNOTATIONS.scheduledFor]!);
      const job = jobs.find((j) => j.id === call.spec.idempotencyKey!.replace('scheduler-', ''))!;
      // Submitted within a poll interval or so of its time, never before it.
      expect(job.submittedAt.getTime()).toBeGreaterThanOrEqual(due);
      expect(job.submittedAt.getTime() - due).toBeLessThan(500);
    }
  });
});
