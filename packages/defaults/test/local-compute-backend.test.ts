import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ComputeBackend,
  computeBackendRef,
  experimentTrackerRef,
  isTerminalJobPhase,
  type JobSpec,
  type JobStatus,
  metadataStoreRef,
  secretStoreRef,
  UnavailableError,
  ValidationError,
} from '@mlplane/core';
import { computeBackendConformance, eventually, rejects } from '@mlplane/core/testing';
import { SqlExperimentTracker } from '@mlplane/sql';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalArtifactStore } from '../src/artifact-store/local-artifact-store.js';
import { LocalComputeBackend, type LocalComputeBackendOptions } from '../src/compute/local-compute-backend.js';
import { parseNvidiaSmi, startTicks } from '../src/compute/processes.js';
import { createPlatform } from '../src/create-platform.js';
import { SqliteMetadataStore } from '../src/metadata-store/sqlite-metadata-store.js';
import { EnvFileSecretStore } from '../src/secret-store/file-secret-store.js';

interface Harness {
  readonly dir: string;
  readonly backend: LocalComputeBackend;
  readonly store: SqliteMetadataStore;
  readonly secrets: EnvFileSecretStore;
  readonly tracker: SqlExperimentTracker;
  readonly artifacts: LocalArtifactStore;
  close(): Promise<void>;
}

async function cancelLeftovers(backend: ComputeBackend): Promise<void> {
  const page = await backend.list({ phases: ['Pending', 'Queued', 'Admitted', 'Running'], maxResults: 1000 });
  await Promise.all(page.items.map((j) => backend.cancel(j.id).catch(() => undefined)));
}

/** A backend on its own SQLite file, artifact dir and secrets file, with a short kill grace so tests stay quick. */
async function harness(options: Partial<LocalComputeBackendOptions> = {}): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-compute-'));
  const store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.db') });
  const artifacts = await LocalArtifactStore.open({ root: join(dir, 'artifacts') });
  const secrets = new EnvFileSecretStore({
    path: join(dir, 'secrets.enc'),
    masterKey: randomBytes(32).toString('base64'),
  });
  const tracker = await SqlExperimentTracker.open({ store, artifacts });
  const backend = await LocalComputeBackend.open({
    store,
    artifacts,
    secrets,
    tracker,
    workDir: join(dir, 'compute'),
    killGraceMs: 1_000,
    restartBackoffMs: 50,
    capacity: { cpu: 64, memory: '64Gi', gpus: 0 },
    ...options,
  });
  return {
    dir,
    backend,
    store,
    secrets,
    tracker,
    artifacts,
    async close() {
      await cancelLeftovers(backend);
      await backend.close();
      await artifacts.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

computeBackendConformance('LocalComputeBackend (host processes, SQLite)', async () => {
  const h = await harness();
  return {
    backend: h.backend,
    shell: (script) => ({ command: ['sh', '-c', script] }),
    putSecret: (name, value) => h.secrets.set(name, value),
    cleanup: () => h.close(),
    jobTimeoutMs: 15_000,
  };
});

const sh = (script: string) => ({ command: ['sh', '-c', script] });
const spec = (script: string, extra: Partial<JobSpec> = {}): JobSpec => ({
  name: 'local',
  project: 'local-tests',
  replicaGroups: [{ role: 'main', ...sh(script) }],
  ...extra,
});

async function finished(backend: ComputeBackend, id: string, timeoutMs = 15_000): Promise<JobStatus> {
  let last: JobStatus | undefined;
  for await (const s of backend.watch({ id }, { signal: AbortSignal.timeout(timeoutMs) })) last = s;
  if (!last || !isTerminalJobPhase(last.phase)) throw new Error(`job ${id} did not finish (last ${last?.phase})`);
  return last;
}

async function lines(backend: ComputeBackend, id: string, options = {}): Promise<string[]> {
  const out: string[] = [];
  for await (const l of backend.logs(id, options)) out.push(l);
  return out;
}

/** Pids of live processes whose command line holds `marker` (a unique string in the job's script). */
function pidsWith(marker: string): number[] {
  let out = '';
  try {
    out = execFileSync('pgrep', ['-f', marker], { encoding: 'utf8' });
  } catch {
    return [];
  }
  return out
    .split('\n')
    .filter(Boolean)
    .map(Number)
    .filter((pid) => pid !== process.pid && startTicks(pid) !== undefined);
}

describe('LocalComputeBackend specifics', () => {
  let h: Harness;
  beforeEach(async () => {
    h = await harness();
  });
  afterEach(async () => {
    await h?.close();
  });

  it('declares host processes with slots: no containers, queues or Kubernetes features', () => {
    expect(h.backend.capabilities).toMatchObject({
      scheduler: 'local',
      gpu: false,
      containers: false,
      queues: false,
      gang: 'placement',
      logsFollow: true,
      secretRefKinds: ['secretStore'],
      statusAfterTtl: true,
    });
  });

  it('cancel kills the whole process group, children the program spawned included', async () => {
    const marker = `mlplane-grandchild-${randomBytes(4).toString('hex')}`;
    const submitted = await h.backend.submit(
      spec(`sh -c 'sleep 60; echo ${marker}' & sh -c 'sleep 61; echo ${marker}' & wait`),
    );
    await eventually(() => expect(pidsWith(marker).length).toBeGreaterThanOrEqual(2), 5_000, 50);
    const cancelled = await h.backend.cancel(submitted.id);
    expect(cancelled.phase).toBe('Cancelled');
    expect(cancelled.replicas[0]).toMatchObject({ phase: 'Failed', reason: 'Cancelled' });
    expect(pidsWith(marker)).toEqual([]);
  });

  it('a program that ignores SIGTERM is killed after the grace period', async () => {
    const marker = `mlplane-stubborn-${randomBytes(4).toString('hex')}`;
    const submitted = await h.backend.submit(spec(`trap '' TERM; echo ${marker}; while true; do sleep 0.1; done`));
    await eventually(async () => expect(await lines(h.backend, submitted.id)).toEqual([marker]), 5_000, 50);
    const started = Date.now();
    const cancelled = await h.backend.cancel(submitted.id);
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(cancelled.phase).toBe('Cancelled');
    expect(pidsWith(marker)).toEqual([]);
  });

  it('admits jobs within the CPU slots, in submission order; the others wait Queued', async () => {
    await h.close();
    h = await harness({ capacity: { cpu: 2, memory: '1Gi', gpus: 0 } });
    const big = await h.backend.submit(
      spec('sleep 1', { name: 'big', replicaGroups: [{ role: 'main', ...sh('sleep 1'), resources: { cpu: 2 } }] }),
    );
    const next = await h.backend.submit(spec('true', { name: 'next' }));
    const seen: JobStatus[] = [];
    for await (const s of h.backend.watch({ id: next.id }, { signal: AbortSignal.timeout(15_000) })) seen.push(s);
    expect(seen.map((s) => s.phase)).toContain('Queued');
    const end = seen.at(-1)!;
    expect(end.phase).toBe('Succeeded');
    const first = await h.backend.get(big.id);
    expect(first.phase).toBe('Succeeded');
    // `next` started only once `big` had released its cores.
    expect(end.startedAt!.getTime()).toBeGreaterThanOrEqual(first.finishedAt!.getTime());
  });

  it('records a job submitted behind one that waits Queued at once, and runs both in order', async () => {
    await h.close();
    h = await harness({ capacity: { cpu: 1, memory: '1Gi', gpus: 0 } });
    const running = await h.backend.submit(spec('sleep 0.5', { name: 'running' }));
    const waiting = await h.backend.submit(spec('true', { name: 'waiting' }));
    await eventually(async () => expect((await h.backend.get(waiting.id)).phase).toBe('Queued'), 5_000, 20);
    const behind = await h.backend.submit(spec('true', { name: 'behind' }));
    expect(behind).toMatchObject({
      phase: 'Queued',
      reason: 'WaitingForSlots',
      message: 'waiting behind 1 earlier job(s)',
    });
    expect((await h.backend.list({ phases: ['Queued'] })).items.map((j) => j.id)).toContain(behind.id);
    const ends = await Promise.all([running, waiting, behind].map((j) => finished(h.backend, j.id)));
    expect(ends.map((e) => e.phase)).toEqual(['Succeeded', 'Succeeded', 'Succeeded']);
    expect(ends[2]!.startedAt!.getTime()).toBeGreaterThanOrEqual(ends[1]!.finishedAt!.getTime());
  });

  it('records a job whose slots are taken Queued at once, and a job that fits Pending', async () => {
    await h.close();
    h = await harness({ capacity: { cpu: 1, memory: '1Gi', gpus: 0 } });
    const running = await h.backend.submit(spec('sleep 0.5', { name: 'running' }));
    expect(running.phase).toBe('Pending');
    await eventually(async () => expect((await h.backend.get(running.id)).phase).toBe('Running'), 5_000, 20);
    const next = await h.backend.submit(spec('true', { name: 'next' }));
    expect(next).toMatchObject({ phase: 'Queued', reason: 'WaitingForSlots' });
    expect(next.message).toContain('waiting for slots (free now: 0 cores');
    expect((await finished(h.backend, next.id)).phase).toBe('Succeeded');
  });

  it('refuses a job that could never fit the host, naming the resource', async () => {
    await h.close();
    h = await harness({ capacity: { cpu: 2, memory: '1Gi', gpus: 0 } });
    const tooMany = spec('true', { replicaGroups: [{ role: 'main', replicas: 3, ...sh('true') }] });
    const err = await rejects(h.backend.submit(tooMany), ValidationError, 'cores');
    expect(err.field).toBe('replicaGroups[0].resources.cpu');
    const second = spec('true', {
      replicaGroups: [
        { role: 'main', ...sh('true'), resources: { cpu: 0.5 } },
        { role: 'big', replicas: 2, ...sh('true'), resources: { cpu: 1 } },
      ],
    });
    expect((await rejects(h.backend.submit(second), ValidationError, '2.5 cores')).field).toBe(
      'replicaGroups[1].resources.cpu',
    );
    const memory = spec('true', {
      replicaGroups: [{ role: 'main', ...sh('true'), resources: { cpu: 1, memory: '2Gi' } }],
    });
    expect((await rejects(h.backend.submit(memory), ValidationError, 'memory')).field).toBe(
      'replicaGroups[0].resources.memory',
    );
    expect((await h.backend.list()).items).toEqual([]);
  });

  it('hands each replica its own GPUs through CUDA_VISIBLE_DEVICES, none to those that ask for none', async () => {
    await h.close();
    h = await harness({ capacity: { cpu: 8, memory: '1Gi', gpus: ['0', '1', '2'] } });
    expect(h.backend.capabilities).toMatchObject({ gpu: true, gpuTypes: ['nvidia.com/gpu'] });
    const print = 'echo "gpus=$CUDA_VISIBLE_DEVICES"';
    const job = await h.backend.submit(
      spec(print, {
        replicaGroups: [
          { role: 'main', replicas: 2, ...sh(print), resources: { gpu: { count: 1 } } },
          { role: 'cpu', ...sh(print) },
        ],
      }),
    );
    expect((await finished(h.backend, job.id)).phase).toBe('Succeeded');
    const a = await lines(h.backend, job.id, { index: 0 });
    const b = await lines(h.backend, job.id, { index: 1 });
    expect(new Set([...a, ...b])).toEqual(new Set(['gpus=0', 'gpus=1']));
    expect(await lines(h.backend, job.id, { role: 'cpu' })).toEqual(['gpus=']);
    const tooMany = spec('true', {
      replicaGroups: [{ role: 'main', ...sh('true'), resources: { gpu: { count: 4 } } }],
    });
    expect((await rejects(h.backend.submit(tooMany), ValidationError, 'GPUs')).field).toBe(
      'replicaGroups[0].resources.gpu.count',
    );
    const product = spec('true', {
      replicaGroups: [{ role: 'main', ...sh('true'), resources: { gpu: { count: 1, product: 'NVIDIA-H100' } } }],
    });
    expect((await rejects(h.backend.submit(product), ValidationError, 'NVIDIA-H100')).field).toBe(
      'replicaGroups[0].resources.gpu.product',
    );
  });

  it('reads GPUs from nvidia-smi output', () => {
    expect(parseNvidiaSmi('0, NVIDIA H200, 143771\n1, NVIDIA H200, 143771\n')).toEqual([
      { id: '0', product: 'NVIDIA-H200', memoryMiB: 143771 },
      { id: '1', product: 'NVIDIA-H200', memoryMiB: 143771 },
    ]);
    expect(parseNvidiaSmi('')).toEqual([]);
  });

  it('creates a tracker run for a job without runId, passes it as MLPLANE_RUN_ID and MLFLOW_RUN_ID, and finishes it', async () => {
    const job = await h.backend.submit(
      spec('echo "$MLPLANE_RUN_ID $MLFLOW_RUN_ID"; exit 4', { experiment: 'local-jobs' }),
    );
    expect(job.runId).toMatch(/^[0-9a-f]{32}$/);
    const end = await finished(h.backend, job.id);
    expect(end.phase).toBe('Failed');
    expect(await lines(h.backend, job.id)).toEqual([`${job.runId} ${job.runId}`]);
    const run = await h.tracker.getRun(job.runId!);
    expect(run.info.status).toBe('FAILED');
    expect(run.data.tags['mlplane.job.id']).toBe(job.id);
    expect((await h.tracker.getExperiment(run.info.experimentId)).name).toBe('local-jobs');
    const ok = await h.backend.submit(spec('true'));
    await finished(h.backend, ok.id);
    const okRun = await h.tracker.getRun(ok.runId!);
    expect(okRun.info.status).toBe('FINISHED');
    expect((await h.tracker.getExperiment(okRun.info.experimentId)).name).toBe('Default');
    // A spec that names its run keeps it: the backend creates none and leaves its status alone.
    const named = await h.backend.submit(spec('true', { runId: ok.runId! }));
    expect(named.runId).toBe(ok.runId);
  });

  it('gives replicas the tracking URI and a project token from the hooks, and none of its own environment', async () => {
    await h.close();
    process.env.MLPLANE_TEST_LEAK = 'leak';
    try {
      h = await harness({
        trackingUri: 'http://127.0.0.1:5000',
        tokenFor: async (project, job) => `token-for-${project}-${job.id.length}`,
      });
      const job = await h.backend.submit(
        spec('echo "$MLFLOW_TRACKING_URI $MLFLOW_TRACKING_TOKEN ${MLPLANE_TEST_LEAK:-none}"'),
      );
      await finished(h.backend, job.id);
      expect(await lines(h.backend, job.id)).toEqual([
        `http://127.0.0.1:5000 token-for-local-tests-${job.id.length} none`,
      ]);
      // The token is handed to the process only: the stored job does not hold it.
      const rows = await h.store.db().selectFrom('mlplane_local_jobs').selectAll().execute();
      expect(JSON.stringify(rows)).not.toContain('token-for-');
    } finally {
      delete process.env.MLPLANE_TEST_LEAK;
    }
  });

  it('never stores a secret value: not in the job row, its status, the run or the spool', async () => {
    const value = `v-${randomBytes(12).toString('hex')}`;
    await h.secrets.set('team/api-key', value);
    const job = await h.backend.submit(
      spec('[ -n "$API_KEY" ] && echo present; sleep 0.5', {
        replicaGroups: [
          {
            role: 'main',
            ...sh('[ -n "$API_KEY" ] && echo present; sleep 0.5'),
            secretEnv: { API_KEY: { kind: 'secretStore', name: 'team/api-key' } },
          },
        ],
      }),
    );
    await eventually(async () => expect((await h.backend.get(job.id)).phase).toBe('Running'), 5_000, 20);
    const spool = join(h.dir, 'compute', 'spool', job.id);
    const spoolFiles = await readdir(spool).catch(() => [] as string[]);
    const spoolText = (await Promise.all(spoolFiles.map((f) => readFile(join(spool, f), 'utf8').catch(() => '')))).join(
      '',
    );
    const end = await finished(h.backend, job.id);
    expect(end.phase).toBe('Succeeded');
    expect(await lines(h.backend, job.id)).toEqual(['present']);
    const rows = await h.store.db().selectFrom('mlplane_local_jobs').selectAll().execute();
    const run = await h.tracker.getRun(end.runId!);
    for (const text of [JSON.stringify(rows), JSON.stringify(end), JSON.stringify(run), spoolText]) {
      expect(text).not.toContain(value);
    }
    expect(JSON.stringify(rows)).toContain('team/api-key');
  });

  it('keeps each attempt log in the ArtifactStore and streams a running one', async () => {
    const job = await h.backend.submit(spec('echo one; sleep 0.6; echo two; exit 1', { retries: 1 }));
    const followed: string[] = [];
    for await (const l of h.backend.logs(job.id, { follow: true })) followed.push(l);
    expect(followed).toEqual(['one', 'two']);
    await finished(h.backend, job.id);
    const listing = await h.artifacts.list({ prefix: `compute/logs/${job.id}/` });
    expect(listing.items.map((i) => i.key).sort()).toEqual([
      `compute/logs/${job.id}/main-0/attempt-1.log`,
      `compute/logs/${job.id}/main-0/attempt-2.log`,
    ]);
    expect(await lines(h.backend, job.id, { attempt: 2, tailLines: 1 })).toEqual(['two']);
    // Nothing of the finished job stays in the spool.
    expect(await readdir(join(h.dir, 'compute', 'spool'))).toEqual([]);
  });

  it('a replica whose working directory does not exist fails to start, and the job says so', async () => {
    const job = await h.backend.submit(
      spec('true', { replicaGroups: [{ role: 'main', ...sh('true'), workingDir: '/nonexistent/mlplane-workdir' }] }),
    );
    const end = await finished(h.backend, job.id);
    expect(end).toMatchObject({ phase: 'Failed', reason: 'BackoffLimitExceeded' });
    expect(end.replicas[0]).toMatchObject({ phase: 'Failed', exitCode: 127, reason: 'StartError' });
    expect(end.message).toContain('could not start');
  });

  it('a deadline or TTL beyond what a timer can wait (24.8 days) does not fire early', async () => {
    const year = 365 * 86_400;
    const job = await h.backend.submit(
      spec('echo kept; sleep 0.3', { timeoutSeconds: year, ttlSecondsAfterFinished: year }),
    );
    const end = await finished(h.backend, job.id);
    expect(end.phase).toBe('Succeeded');
    await new Promise((r) => setTimeout(r, 100));
    expect(await lines(h.backend, job.id)).toEqual(['kept']);
    const listing = await h.artifacts.list({ prefix: `compute/logs/${job.id}/` });
    expect(listing.items).toHaveLength(1);
  });

  it('keeps no object for an attempt that wrote nothing, and its log reads empty once the job is finished', async () => {
    const job = await h.backend.submit(spec('exit 3', { retries: 1 }));
    const end = await finished(h.backend, job.id);
    expect(end).toMatchObject({ phase: 'Failed', retriesUsed: 2 });
    expect((await h.artifacts.list({ prefix: `compute/logs/${job.id}/` })).items).toEqual([]);
    expect(await lines(h.backend, job.id, { attempt: 1 })).toEqual([]);
    expect(await lines(h.backend, job.id, { attempt: 2, tailLines: 5 })).toEqual([]);
    expect(await readdir(join(h.dir, 'compute', 'spool'))).toEqual([]);
  });

  it('refuses bad log options with ValidationError', async () => {
    const job = await h.backend.submit(spec('true'));
    await finished(h.backend, job.id);
    for (const [options, field] of [
      [{ tailLines: -1 }, 'tailLines'],
      [{ attempt: 0 }, 'attempt'],
      [{ index: 1.5 }, 'index'],
    ] as const) {
      expect((await rejects(lines(h.backend, job.id, options), ValidationError, field)).field).toBe(field);
    }
  });
});

describe('LocalComputeBackend across platform restarts', () => {
  let dataDir: string;
  const platforms: ReturnType<typeof createPlatform>[] = [];
  const start = async (compute: Record<string, unknown> = {}) => {
    const platform = createPlatform({
      plugins: [],
      config: {
        platform: { signals: [], shutdownDeadlineMs: 5_000 },
        embedded: {
          dataDir,
          secrets: { masterKey },
          compute: { killGraceMs: 1_000, restartBackoffMs: 50, cpu: 8, ...compute },
        },
      },
      log: { level: process.env.MLPLANE_TEST_LOG ?? 'silent' },
    });
    await platform.start();
    platforms.push(platform);
    return platform;
  };
  let masterKey: string;

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'mlplane-restart-'));
    masterKey = randomBytes(32).toString('base64');
  });
  afterEach(async () => {
    for (const p of platforms.splice(0)) {
      if (p.state === 'running') {
        await cancelLeftovers(await p.get(computeBackendRef));
        await p.stop();
      }
    }
    await rm(dataDir, { recursive: true, force: true });
  });

  it('the embedded platform provides the local backend, and its hooks fire', async () => {
    const platform = await start();
    const backend = await platform.get(computeBackendRef);
    expect(backend.capabilities.scheduler).toBe('local');
    let finishedEvents = 0;
    platform.hooks.job.finished.tapPromise('count', async () => {
      finishedEvents++;
    });
    const job = await backend.submit(spec('true'));
    await finished(backend, job.id);
    await eventually(() => expect(finishedEvents).toBe(1), 5_000, 20);
  });

  it('a job running when the platform stops is found again by the next one and finishes with its exit code', async () => {
    const first = await start();
    const backend = await first.get(computeBackendRef);
    const job = await backend.submit(spec('echo before; sleep 1.5; echo after; exit 3'));
    await eventually(async () => expect(await lines(backend, job.id)).toEqual(['before']), 5_000, 20);
    const running = await backend.get(job.id);
    expect(running.phase).toBe('Running');
    await first.stop();

    const second = await start();
    const again = await second.get(computeBackendRef);
    const found = await again.get(job.id);
    expect(found.phase).toBe('Running');
    const end = await finished(again, job.id);
    expect(end).toMatchObject({ phase: 'Failed', reason: 'BackoffLimitExceeded' });
    expect(end.replicas[0]).toMatchObject({ exitCode: 3, attempt: 1 });
    // The log has what was written under both platforms, each line once.
    expect(await lines(again, job.id)).toEqual(['before', 'after']);
    const run = await (await second.get(experimentTrackerRef)).getRun(end.runId!);
    expect(run.info.status).toBe('FAILED');
  });

  it('a job whose processes vanished while no platform ran is marked Failed with reason Lost, never left Running', async () => {
    const first = await start();
    const backend = await first.get(computeBackendRef);
    const marker = `mlplane-lost-${randomBytes(4).toString('hex')}`;
    const job = await backend.submit(spec(`echo ${marker}; sleep 60`));
    await eventually(async () => expect(await lines(backend, job.id)).toEqual([marker]), 5_000, 20);
    const [row] = await (await first.get(metadataStoreRef))
      .db()
      .selectFrom('mlplane_local_jobs')
      .select('state')
      .where('id', '=', job.id)
      .execute();
    const pid = (JSON.parse(row!.state) as { processes: { pid: number }[] }).processes[0]!.pid;
    await first.stop();
    // The host "crashed" the job: its whole group dies by SIGKILL, the wrapper too, so no exit status is left.
    process.kill(-pid, 'SIGKILL');
    await eventually(() => expect(startTicks(pid)).toBeUndefined(), 5_000, 20);

    const second = await start();
    const again = await second.get(computeBackendRef);
    const end = await finished(again, job.id);
    expect(end).toMatchObject({ phase: 'Failed', reason: 'Lost' });
    expect(end.message).toContain(String(pid));
    expect(end.replicas[0]).toMatchObject({ phase: 'Failed', reason: 'Lost' });
    expect(await lines(again, job.id)).toEqual([marker]);
  });

  it('a cancel under way when the platform stops is finished by the next one, not taken for a failure', async () => {
    const first = await start({ killGraceMs: 60_000 });
    const backend = await first.get(computeBackendRef);
    const marker = `mlplane-stubborn-${randomBytes(4).toString('hex')}`;
    const job = await backend.submit(
      spec(`trap '' TERM; echo ${marker}; while true; do sleep 0.1; done`, { retries: 3 }),
    );
    await eventually(async () => expect(await lines(backend, job.id)).toEqual([marker]), 5_000, 20);
    const cancelling = backend.cancel(job.id).catch((e: unknown) => e);
    const store = await first.get(metadataStoreRef);
    await eventually(
      async () => {
        const [row] = await store
          .db()
          .selectFrom('mlplane_local_jobs')
          .select('state')
          .where('id', '=', job.id)
          .execute();
        expect(row!.state).toContain('"ending"');
      },
      5_000,
      20,
    );
    await first.stop();
    // The cancel's caller learns the platform stopped first; the job is not finished yet.
    expect(await cancelling).toBeInstanceOf(UnavailableError);
    expect(pidsWith(marker).length).toBeGreaterThan(0);

    const second = await start({ killGraceMs: 300 });
    const again = await second.get(computeBackendRef);
    const end = await finished(again, job.id);
    expect(end).toMatchObject({ phase: 'Cancelled', reason: 'Cancelled', retriesUsed: 0 });
    expect(end.replicas[0]!.attempt).toBe(1);
    expect(pidsWith(marker)).toEqual([]);
  });

  it('a job waiting to restart after a failure when the platform stops restarts under the next one', async () => {
    const first = await start({ restartBackoffMs: 1_500 });
    const backend = await first.get(computeBackendRef);
    const job = await backend.submit(spec('echo attempt; exit 1', { retries: 1 }));
    await eventually(async () => expect((await backend.get(job.id)).reason).toBe('Restarting'), 5_000, 10);
    await first.stop();

    const second = await start();
    const again = await second.get(computeBackendRef);
    const end = await finished(again, job.id);
    expect(end).toMatchObject({ phase: 'Failed', reason: 'BackoffLimitExceeded', retriesUsed: 2 });
    expect(end.replicas[0]).toMatchObject({ attempt: 2, exitCode: 1 });
    expect(await lines(again, job.id, { attempt: 1 })).toEqual(['attempt']);
    expect(await lines(again, job.id, { attempt: 2 })).toEqual(['attempt']);
  });

  it('a job waiting for slots when the platform stops runs under the next one; a cancel there stops a found job', async () => {
    const first = await start();
    const backend = await first.get(computeBackendRef);
    const hog = await backend.submit(
      spec('sleep 60', { name: 'hog', replicaGroups: [{ role: 'main', ...sh('sleep 60'), resources: { cpu: 8 } }] }),
    );
    const waiting = await backend.submit(spec('echo ran', { name: 'waiting' }));
    await eventually(async () => expect((await backend.get(waiting.id)).phase).toBe('Queued'), 5_000, 20);
    await first.stop();

    const second = await start();
    const again = await second.get(computeBackendRef);
    expect((await again.get(hog.id)).phase).toBe('Running');
    expect((await again.get(waiting.id)).phase).toBe('Queued');
    const cancelled = await again.cancel(hog.id);
    expect(cancelled).toMatchObject({ phase: 'Cancelled' });
    const end = await finished(again, waiting.id);
    expect(end.phase).toBe('Succeeded');
    expect(await lines(again, waiting.id)).toEqual(['ran']);
  });

  it('the secret store of the platform feeds secretEnv', async () => {
    const platform = await start();
    const secrets = await platform.get(secretStoreRef);
    await secrets.set!('db/password', 'hunter2-not-logged');
    const backend = await platform.get(computeBackendRef);
    const job = await backend.submit(
      spec('true', {
        replicaGroups: [
          {
            role: 'main',
            ...sh('[ "${#PW}" -eq 18 ] && [ "${PW#hunter2}" != "$PW" ] && echo ok'),
            secretEnv: { PW: { kind: 'secretStore', name: 'db/password' } },
          },
        ],
      }),
    );
    const end = await finished(backend, job.id);
    expect(end.phase).toBe('Succeeded');
    expect(await lines(backend, job.id)).toEqual(['ok']);
  });
});
