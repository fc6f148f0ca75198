import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { experimentTrackerRef } from '@mlplane/core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type RunningDistribution, startDistribution } from '../src/index.js';
import { cleanEnv } from './processes.js';

let dir: string;
let up: RunningDistribution;
let token: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mlplane-job-tracking-'));
  up = await startDistribution({ dataDir: join(dir, 'data'), port: 0, env: cleanEnv() });
  token = up.newAdminToken!;
});
afterAll(async () => {
  await up?.stop();
  await rm(dir, { recursive: true, force: true });
});

const api = (path: string, init: RequestInit = {}) =>
  fetch(`${up.urls.api}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...init.headers },
  });

describe('jobs under mlplane up log to its tracking API', () => {
  it('gives a job MLFLOW_TRACKING_URI and a token of its project, with which it logs into its own run', async () => {
    // What the stock mlflow client does for log_param, done by node so that the test needs no Python.
    const script = [
      'const uri = process.env.MLFLOW_TRACKING_URI;',
      "fetch(uri + '/api/2.0/mlflow/runs/log-parameter', {",
      "  method: 'POST',",
      "  headers: { authorization: 'Bearer ' + process.env.MLFLOW_TRACKING_TOKEN, 'content-type': 'application/json' },",
      "  body: JSON.stringify({ run_id: process.env.MLFLOW_RUN_ID, key: 'logged_by', value: 'job' }),",
      '}).then(async (r) => { console.log(r.status); if (!r.ok) { console.log(await r.text()); process.exit(1); } });',
    ].join('\n');
    const submitted = await api('/projects/team-a/jobs', {
      method: 'POST',
      body: JSON.stringify({
        name: 'logs-to-tracking',
        replicaGroups: [{ role: 'main', command: [process.execPath, '-e', script] }],
      }),
    });
    expect(submitted.status).toBe(201);
    const job = (await submitted.json()) as { id: string };
    let status: { phase: string; runId?: string } = { phase: 'Pending' };
    await vi.waitFor(
      async () => {
        status = (await (await api(`/projects/team-a/jobs/${job.id}`)).json()) as typeof status;
        expect(['Succeeded', 'Failed']).toContain(status.phase);
      },
      { timeout: 20_000, interval: 200 },
    );
    const log = await (await api(`/projects/team-a/jobs/${job.id}/logs`)).text();
    expect(status.phase, log).toBe('Succeeded');
    expect(log.trim()).toBe('200');
    const tracker = await up.platform.get(experimentTrackerRef);
    const run = await tracker.getRun(status.runId!);
    expect(run.data.params.logged_by).toBe('job');
  });
});
