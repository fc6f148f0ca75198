import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { ConflictError, computeBackendRef } from '@mlplane/core';
import { createPlatform } from '@mlplane/defaults';
import { afterAll, describe, expect, it } from 'vitest';
import { PipelineOrchestrator } from '../src/index.js';
import { resumePipeline } from './fixtures/resume-pipeline.js';

const fixture = fileURLToPath(new URL('./fixtures/orchestrate.ts', import.meta.url));
const cleanup: string[] = [];
afterAll(async () => {
  for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
});

const count = async (marks: string, step: string) =>
  (await readFile(join(marks, `${step}.log`), 'utf8').catch(() => '')).split('\n').filter((l) => l !== '').length;

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('resume after the orchestrator is killed', () => {
  it('kill -9 mid-run: the resumed run keeps finished steps, finds the running job again and runs the rest once', async () => {
    const root = await mkdtemp(join(tmpdir(), 'mlplane-resume-'));
    cleanup.push(root);
    const dataDir = join(root, 'data');
    const workspace = join(root, 'workspace');
    const marks = join(root, 'marks');
    await import('node:fs/promises').then((fs) => fs.mkdir(marks));
    const masterKey = randomBytes(32).toString('base64');

    const child: ChildProcess = spawn(
      process.execPath,
      ['--conditions=@mlplane/source', '--import', 'tsx', fixture, dataDir, workspace, marks],
      { env: { ...process.env, TEST_MASTER_KEY: masterKey }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr!.on('data', (d) => {
      stderr += d;
    });
    const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
      child.once('exit', (code, signal) => resolve(signal ?? code)),
    );
    const lines = createInterface({ input: child.stdout! });
    const runId = await new Promise<string>((resolve, reject) => {
      lines.on('line', (line) => {
        const msg = JSON.parse(line) as { runId?: string };
        if (msg.runId) resolve(msg.runId);
      });
      exited.then((code) => reject(new Error(`the orchestrator exited (${code}) before starting: ${stderr}`)));
    });

    // Kill the orchestrator while the slow step's job runs (it started, and `first` finished before it).
    await until('the slow step to start', async () => ((await count(marks, 'slow')) > 0 ? true : undefined));
    expect(await count(marks, 'first')).toBe(1);
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    const platform = createPlatform({
      plugins: [],
      config: {
        platform: { signals: [] },
        embedded: { dataDir, secrets: { masterKey }, compute: { cpu: 16, killGraceMs: 500 } },
      },
      log: { level: 'silent' },
    });
    await platform.start();
    try {
      const orchestrator = await PipelineOrchestrator.forPlatform(platform, { workspace, leaseTtlMs: 1000 });
      const before = await orchestrator.result(runId);
      expect(before.status).toBe('Running');
      const slowBefore = before.steps.find((s) => s.stepId === 'slow')!;
      expect(slowBefore.status).toBe('Running');
      expect(slowBefore.jobId).toBeDefined();
      // The restarted backend still knows the job the dead orchestrator started.
      const job = await (await platform.get(computeBackendRef)).get(slowBefore.jobId!);
      expect(['Running', 'Succeeded']).toContain(job.phase);

      // Until the dead orchestrator's lease expires the run is not free to take.
      const result = await until('the lease to expire', async () => {
        try {
          return await orchestrator.resume(runId, resumePipeline);
        } catch (err) {
          if (!(err instanceof ConflictError)) throw err;
          return undefined;
        }
      });
      expect(result.status).toBe('Succeeded');
      expect(result.outputs('last')).toEqual({ n: 3 });
      expect(await count(marks, 'first')).toBe(1);
      expect(await count(marks, 'slow')).toBe(1);
      expect(await count(marks, 'last')).toBe(1);
      expect(result.steps.find((s) => s.stepId === 'slow')!.jobId).toBe(slowBefore.jobId);
      expect(result.steps.find((s) => s.stepId === 'slow')!.attempt).toBe(1);
      const why = await orchestrator.explainCache(runId);
      const first = why.find((e) => e.step === 'first')!;
      expect(first.resumed).toBe(true);
      expect(first.reasons.at(-1)).toContain('finished before the orchestrator restarted');
      expect(why.find((e) => e.step === 'last')!.decision).toBe('ran');

      // Resuming a finished run changes nothing.
      const again = await orchestrator.resume(runId, resumePipeline);
      expect(again.status).toBe('Succeeded');
      expect(await count(marks, 'slow')).toBe(1);
    } finally {
      await platform.stop();
    }
  }, 120_000);

  it('refuses to resume with another definition of the pipeline', async () => {
    const root = await mkdtemp(join(tmpdir(), 'mlplane-resume-'));
    cleanup.push(root);
    const platform = createPlatform({
      plugins: [],
      config: {
        platform: { signals: [] },
        embedded: { dataDir: join(root, 'data'), secrets: { masterKey: randomBytes(32).toString('base64') } },
      },
      log: { level: 'silent' },
    });
    await platform.start();
    try {
      const orchestrator = await PipelineOrchestrator.forPlatform(platform, { workspace: join(root, 'ws') });
      const { pipeline } = await import('../src/index.js');
      const other = pipeline({ name: 'resumable' }, () => {});
      const done = await orchestrator.run(other, {});
      const err = await orchestrator.resume(done.runId, resumePipeline).catch((e) => e);
      expect(err).toBeInstanceOf(ConflictError);
      expect(err.message).toContain('another definition');
    } finally {
      await platform.stop();
    }
  });
});
