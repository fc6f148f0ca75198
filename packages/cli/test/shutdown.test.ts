// Graceful shutdown under load: `mlplane up` receives SIGTERM while many log-batch requests are in flight. Every
// request that was answered 2xx must be in the store after a restart, and the process must exit 0.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, ok } from '@mlplane/client';
import { Agent, request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, spawnUp, startUp, type UpProcess } from './processes.js';

const WORKERS = 32;
/** Extra metrics per batch, so each request gives the server some work and many are in flight at once. */
const FILLER = 200;

let dir: string | undefined;
let up: UpProcess | undefined;
afterAll(async () => {
  await up?.stop('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Sent {
  readonly index: number;
  readonly startedAt: number;
  finishedAt?: number;
  status?: number;
  error?: string;
}

describe('mlplane up under load', { timeout: 120_000 }, () => {
  it('loses no acknowledged log-batch when SIGTERM arrives mid-load, and exits 0', async () => {
    dir = await mkdtemp(join(tmpdir(), 'mlplane-shutdown-'));
    const dataDir = join(dir, 'data');
    up = await startUp(['--data-dir', dataDir], { cwd: dir, port: await freePort() });
    const token = (await readFile(join(dataDir, 'admin-token'), 'utf8')).trim();
    const client = createClient({ url: up.url, token });
    const project = { project: 'default' };
    const experiment = await ok(
      client.POST('/api/v1/projects/{project}/experiments', { params: { path: project }, body: { name: 'load' } }),
    );
    const run = await ok(
      client.POST('/api/v1/projects/{project}/runs', {
        params: { path: project },
        body: { experimentId: experiment.id },
      }),
    );
    const logBatch = `${up.url}/api/v1/projects/default/runs/${run.info.id}/log-batch`;

    const agent = new Agent({ connections: WORKERS, pipelining: 1 });
    const sent: Sent[] = [];
    let next = 0;
    let acknowledged = 0;
    let stopped = false;
    const worker = async () => {
      while (!stopped) {
        const entry: Sent = { index: next++, startedAt: performance.now() };
        sent.push(entry);
        const body = JSON.stringify({
          metrics: [
            { key: `m${entry.index}`, value: entry.index, step: 0 },
            ...Array.from({ length: FILLER }, (_, j) => ({ key: 'filler', value: j, step: entry.index * FILLER + j })),
          ],
        });
        try {
          const res = await request(logBatch, {
            method: 'POST',
            dispatcher: agent,
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body,
          });
          await res.body.dump();
          entry.status = res.statusCode;
          if (res.statusCode >= 200 && res.statusCode < 300) acknowledged++;
        } catch (err) {
          entry.error = (err as { code?: string }).code ?? (err as Error).message;
          // The server is gone (refused) or cut the connection: this worker is done.
          return;
        } finally {
          entry.finishedAt = performance.now();
        }
      }
    };
    const workers = Array.from({ length: WORKERS }, worker);
    // Let the load build up, then stop the server in the middle of it.
    while (acknowledged < 200) await new Promise((r) => setTimeout(r, 10));
    const sigtermAt = performance.now();
    up.child.kill('SIGTERM');
    const exitCode = await up.exited;
    stopped = true;
    await Promise.all(workers);
    await agent.close();

    expect(exitCode, up.stderr()).toBe(0);
    expect(up.stderr()).toContain('SIGTERM, stopping');
    const acked = sent.filter((s) => s.status !== undefined && s.status >= 200 && s.status < 300);
    // The fault was met: requests were in flight when SIGTERM arrived and were answered after it.
    const finishedAfterSigterm = acked.filter((s) => s.startedAt < sigtermAt && s.finishedAt! > sigtermAt);
    expect(finishedAfterSigterm.length).toBeGreaterThan(0);
    // And the server stopped taking requests: later ones were refused or never answered.
    expect(sent.some((s) => s.error !== undefined)).toBe(true);
    expect(sent.filter((s) => s.status !== undefined && s.status !== 204)).toEqual([]);

    up = await startUp(['--data-dir', dataDir], { cwd: dir, port: await freePort() });
    const restarted = createClient({ url: up.url, token });
    const after = await ok(
      restarted.GET('/api/v1/projects/{project}/runs/{runId}', {
        params: { path: { ...project, runId: run.info.id } },
      }),
    );
    const missing = acked.map((s) => `m${s.index}`).filter((key) => after.data.metrics[key] === undefined);
    expect(missing).toEqual([]);
    console.log(
      `shutdown under load: ${sent.length} sent, ${acked.length} acknowledged (${finishedAfterSigterm.length} answered after SIGTERM), all stored`,
    );
    expect(await up.stop('SIGTERM')).toBe(0);
  });
});

describe('mlplane up stopped while starting', { timeout: 60_000 }, () => {
  it('finishes the start, shows the admin token once, then stops gracefully with exit code 0', async () => {
    const home = await mkdtemp(join(tmpdir(), 'mlplane-early-'));
    try {
      const child = spawnUp(home, await freePort());
      let out = '';
      // The kernel logs the providers while the platform starts, before the API listens.
      await new Promise<void>((resolve) =>
        child.stdout!.on('data', (b: Buffer) => {
          out += b;
          if (out.includes('port core.')) resolve();
        }),
      );
      const beforeUp = !out.includes('mlplane is up');
      child.kill('SIGTERM');
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      expect(beforeUp).toBe(true);
      expect(code).toBe(0);
      const token = (await readFile(join(home, '.mlplane', 'admin-token'), 'utf8')).trim();
      expect(out.split(token).length - 1).toBe(1);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });
});
