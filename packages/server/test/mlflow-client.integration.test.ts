import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  ALL_PROJECTS,
  artifactStoreRef,
  auditLogRef,
  authorizerRef,
  experimentTrackerRef,
  modelRegistryRef,
} from '@mlplane/core';
import { startTestPlatform, type TestPlatform } from '@mlplane/defaults/testing';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createApi, mountMlflow, v1Routes } from '../src/index.js';

/**
 * The stock `mlflow` client from PyPI, unchanged, against mlplane's MLflow-compatible API on a real socket. The
 * client comes from the virtualenv `scripts/peers` installs for its MLflow peer (MLPLANE_MLFLOW_PYTHON from
 * `scripts/peers env`, else the peers' cache), so it is the same pinned release the MLflow peer runs.
 */
const run = promisify(execFile);
const python =
  process.env.MLPLANE_MLFLOW_PYTHON ??
  join(
    process.env.MLPLANE_PEERS_CACHE ?? join(homedir(), '.cache', 'mlplane-peers'),
    'mlflow',
    'venv',
    'bin',
    'python',
  );
const scripts = join(import.meta.dirname, 'mlflow-client');
const PROJECT = 'ml-team';

let platform: TestPlatform;
let server: Server;
let url: string;
let token: string;
/** The scripts' temporary files (theirs and the client's downloads), removed afterwards. */
let scratch: string;

beforeAll(async () => {
  if (!existsSync(python)) {
    throw new Error(
      `no MLflow client at ${python}: run scripts/peers up mlflow (it installs the pinned mlflow release)`,
    );
  }
  scratch = await mkdtemp(join(tmpdir(), 'mlplane-mlflow-client-'));
  platform = await startTestPlatform();
  const api = await createApi(v1Routes, { platform, rateLimit: false, mount: [mountMlflow()] });
  server = createServer(api.listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const authorizer = await platform.get(authorizerRef);
  // A token for one project, as a data scientist would be given: the client needs nothing else.
  await authorizer.grant('dana', PROJECT, 'editor');
  const created = await authorizer.createToken({
    principal: await authorizer.getPrincipal('dana', 'user'),
    name: 'laptop',
    projects: [PROJECT],
    roles: ['editor'],
    expiresAt: new Date(Date.now() + 3_600_000),
  });
  token = created.secret;
  expect(ALL_PROJECTS).not.toBe(PROJECT);
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  await platform?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

/** Runs one client script and returns the JSON it printed after `RESULT `. */
async function client(script: string): Promise<any> {
  const { stdout, stderr } = await run(python, [join(scripts, script)], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/tmp',
      TMPDIR: scratch,
      MLFLOW_TRACKING_URI: url,
      MLFLOW_TRACKING_TOKEN: token,
      MLFLOW_DISABLE_TELEMETRY: 'true',
      DO_NOT_TRACK: 'true',
      // Fail fast instead of retrying a broken answer for minutes.
      MLFLOW_HTTP_REQUEST_MAX_RETRIES: '0',
      MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR: 'false',
    },
    timeout: 180_000,
    maxBuffer: 16 * 1024 * 1024,
  }).catch((err: { stdout?: string; stderr?: string; message: string }) => {
    throw new Error(`${script} failed: ${err.message}\n${err.stderr?.slice(-4000) ?? ''}`);
  });
  const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`${script} printed no RESULT line\n${stdout.slice(-2000)}\n${stderr.slice(-4000)}`);
  return JSON.parse(line.slice('RESULT '.length));
}

describe('the stock mlflow client against mlplane', () => {
  it('client API: experiments, runs, log_batch, search with filters and paging, history, registry', async () => {
    const out = await client('client_api.py');
    const tracker = await platform.get(experimentTrackerRef);
    const registry = await platform.get(modelRegistryRef);

    expect(out.experiment).toMatchObject({
      name: 'client-api',
      artifact_location: `mlflow-artifacts:/${out.experiment.id}`,
      tags: { team: 'vision', 'mlplane.project': PROJECT },
    });
    expect(out.experiment_by_name).toBe(out.experiment.id);
    expect(out.missing_experiment_by_name).toBe(true);
    expect(out.duplicate_experiment).toBe('RESOURCE_ALREADY_EXISTS');
    expect(out.missing_experiment).toBe('RESOURCE_DOES_NOT_EXIST');
    expect(out.experiment_pages).toEqual([['paged-a', 'paged-b'], ['paged-c'], null]);
    expect(out.experiment_lifecycle).toEqual(['paged-renamed', 'deleted', 'active']);
    const stored = await tracker.getExperiment(out.experiment.id);
    expect(stored.tags['mlplane.project']).toBe(PROJECT);

    expect(out.run).toMatchObject({
      name: 'grid-0',
      status: 'FINISHED',
      end_time_set: true,
      params: { lr: '0.1', epochs: '3' },
      metrics: { acc: 0.6 },
      tags: { i: '0', kind: 'grid', 'mlflow.runName': 'grid-0' },
    });
    expect(out.run.artifact_uri).toBe(`mlflow-artifacts:/${out.experiment.id}/${out.run_ids[0]}/artifacts`);
    expect(out.loss_history).toEqual([
      [0, 0.9],
      [1, 0.4],
      [2, null],
    ]);
    expect(out.param_changed).toBe('INVALID_PARAMETER_VALUE');
    expect(out.note_deleted).toBe(true);

    // lr = 0.01 are runs 1 and 2; acc DESC puts run 2 first, one per page.
    expect(out.search).toEqual({
      page1: [out.run_ids[2]],
      page1_has_token: true,
      page2: [out.run_ids[1]],
      page2_token: null,
    });
    expect(out.search_attr).toEqual(['grid-0', 'grid-1', 'grid-2', 'grid-3']);
    expect(out.search_tag).toBe(4);
    expect(out.after_delete).toBe(3);
    expect(out.after_restore).toBe(4);

    // What landed in the tracker: the batches, every point of the history, the caller as the runs' user.
    const grid1 = await tracker.getRun(out.run_ids[1]);
    expect(grid1.data.params).toEqual({ lr: '0.01', epochs: '3' });
    expect(grid1.info.userId).toBe('dana');
    expect((await tracker.getMetricHistory(out.run_ids[1], 'acc')).items.map((m) => m.value)).toEqual([0.6, 0.7]);

    expect(out.duplicate_model).toBe('RESOURCE_ALREADY_EXISTS');
    expect(out.registry).toMatchObject({
      versions: ['1', '2'],
      source: `${out.run.artifact_uri}/model`,
      alias_version: '2',
      alias_aliases: ['champion'],
      v1_stage: 'Archived',
      staged: ['2'],
      v2: { tags: { reviewed: 'yes' }, description: 'the better one', stage: 'Staging' },
      searched: ['1', '2'],
      model_aliases: { champion: '2' },
      model_tags: { team: 'risk' },
      download_uri: `${out.run.artifact_uri}/model`,
      missing_model: 'RESOURCE_DOES_NOT_EXIST',
    });
    expect(out.version_deleted).toBe('RESOURCE_DOES_NOT_EXIST');
    expect(out.model_description).toBe('still the winner');
    expect(out.alias_deleted).toBe('RESOURCE_DOES_NOT_EXIST');
    expect(out.renamed).toEqual(['client-model-renamed']);

    const model = await registry.getModel('client-model-renamed');
    expect(model.tags['mlplane.project']).toBe(PROJECT);
    // Version 1 was deleted by the script; version 2 shares its source and was promoted by the token's owner.
    const v2 = await registry.getVersion('client-model-renamed', 2);
    expect(v2.source).toBe(`${stored.artifactLocation}/${out.run_ids[0]}/artifacts/model`);
    expect(v2.runId).toBe(out.run_ids[1]);
    const history = await registry.getTransitionHistory('client-model-renamed', 2);
    expect(history.items.map((h) => [h.from, h.to, h.actor])).toEqual([['None', 'Staging', 'dana']]);
  });

  it('fluent API: set_experiment, start_run, log_params/metrics/artifacts, register_model, load by alias', async () => {
    const out = await client('fluent_api.py');
    const tracker = await platform.get(experimentTrackerRef);
    const store = await platform.get(artifactStoreRef);

    expect(out.run).toMatchObject({
      status: 'FINISHED',
      experiment_id: out.experiment_id,
      params: { lr: '0.01', epochs: '3' },
      metrics: { acc: 0.95, loss: 0.1 },
      stage_tag: 'dev',
    });
    expect(out.acc_history).toEqual([
      [1, 0.9],
      [2, 0.95],
    ]);
    expect(out.artifacts).toEqual(['model', 'notes.txt', 'plots']);
    expect(out.plots).toEqual(['plots/a.csv', 'plots/nested']);
    expect(out.notes).toBe('hello from the stock client');

    // The artifacts are in the ArtifactStore below the run's own artifact URI.
    const opened = await tracker.openArtifact(out.run_id, 'plots/nested/b.txt');
    opened.body.destroy();
    expect(opened.info.size).toBe(1);
    const run = await tracker.getRun(out.run_id);
    expect(run.info.artifactUri.startsWith(store.uri('x').slice(0, -1))).toBe(true);
    const listed = await tracker.listRunArtifacts(out.run_id, { path: 'model' });
    expect(listed.items.map((a) => a.path)).toContain('model/MLmodel');

    expect(out.version).toBe('1');
    expect(out.version_source).toBe(`${out.run.artifact_uri}/model`);
    expect(out.prediction).toEqual([2, 4, 6]);
    const registry = await platform.get(modelRegistryRef);
    expect((await registry.getVersionByAlias('fluent-model', 'champion')).version).toBe(1);

    expect(out.child_parent).toBe(out.parent_id);
    expect(out.inputs).toEqual([['tiny', true, { 'mlflow.data.context': 'training' }]]);
    const parentInputs = (await tracker.getRun(out.parent_id)).inputs.datasetInputs;
    expect(parentInputs.map((d) => [d.dataset.name, d.dataset.sourceType])).toEqual([['tiny', expect.any(String)]]);
    // lr = 0.01 in the active experiment: the first run's param (logged as a float) and the nested trial.
    expect(out.search_frame).toEqual([out.run_id, expect.any(String)]);
    expect(out.search_frame_acc).toEqual([0.95, 0.5]);

    expect(out.default_experiment_name).toBe(`Default (${PROJECT})`);
    const defaultExperiment = await tracker.getExperimentByName(`Default (${PROJECT})`);
    expect(out.default_run_experiment).toBe(defaultExperiment.id);

    // Everything ran inside actingAs: the audit log names the token's owner and the project.
    const audit = await platform.get(auditLogRef);
    await vi.waitFor(
      async () => {
        const entries = await audit.list({ maxResults: 1000 });
        const registered = entries.items.find((e) => e.action.startsWith('model.') && e.project === PROJECT);
        expect(registered).toMatchObject({ actor: 'dana' });
      },
      { timeout: 10_000, interval: 100 },
    );
  });
});
