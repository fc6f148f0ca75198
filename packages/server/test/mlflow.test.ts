import { artifactStoreRef, experimentTrackerRef, modelRegistryRef } from '@mlplane/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mountMlflow } from '../src/index.js';
import { startTestApi, type TestApi } from './support.js';

let t: TestApi;
beforeAll(async () => {
  t = await startTestApi({ mount: [mountMlflow()] });
});
afterAll(() => t?.[Symbol.asyncDispose]());

const API = '/api/2.0/mlflow';

/** GET with query parameters (repeated keys for arrays), or a JSON body for the other methods. */
async function mlflow(
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  path: string,
  message: Record<string, unknown> = {},
  options: { token?: string | null; headers?: Record<string, string> } = {},
) {
  if (method === 'GET') {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(message)) for (const item of [v].flat()) query.append(k, String(item));
    return t.call('GET', `${API}${path}?${query}`, options);
  }
  return t.call(method, `${API}${path}`, { ...options, body: message });
}

async function experiment(name: string, options: { token?: string; headers?: Record<string, string> } = {}) {
  const res = await mlflow('POST', '/experiments/create', { name }, options);
  expect(res.status).toBe(200);
  return res.body.experiment_id as string;
}

async function run(experimentId: string, extra: Record<string, unknown> = {}) {
  const res = await mlflow('POST', '/runs/create', { experiment_id: experimentId, ...extra });
  expect(res.status).toBe(200);
  return res.body.run.info.run_id as string;
}

describe('MLflow experiments', () => {
  it("answers MLflow's shapes: ids as strings, times as ms numbers, tags as key/value lists", async () => {
    const before = Date.now();
    const create = await mlflow('POST', '/experiments/create', {
      name: 'shapes',
      tags: [{ key: 'team', value: 'vision' }],
    });
    expect(create.status).toBe(200);
    expect(create.body).toEqual({ experiment_id: expect.stringMatching(/^\d+$/) });
    const id = create.body.experiment_id;
    const got = await mlflow('GET', '/experiments/get', { experiment_id: id });
    expect(got.body.experiment).toEqual({
      experiment_id: id,
      name: 'shapes',
      artifact_location: `mlflow-artifacts:/${id}`,
      lifecycle_stage: 'active',
      creation_time: expect.any(Number),
      last_update_time: expect.any(Number),
      tags: expect.arrayContaining([
        { key: 'team', value: 'vision' },
        { key: 'mlplane.project', value: 'default' },
      ]),
    });
    expect(got.body.experiment.creation_time).toBeGreaterThanOrEqual(before);
    const byName = await mlflow('GET', '/experiments/get-by-name', { experiment_name: 'shapes' });
    expect(byName.body.experiment.experiment_id).toBe(id);
  });

  it('maps taken names to RESOURCE_ALREADY_EXISTS (400) and unknown ids to RESOURCE_DOES_NOT_EXIST (404)', async () => {
    await experiment('taken');
    const again = await mlflow('POST', '/experiments/create', { name: 'taken' });
    expect(again.status).toBe(400);
    expect(again.body).toEqual({ error_code: 'RESOURCE_ALREADY_EXISTS', message: expect.stringContaining('taken') });
    const missing = await mlflow('GET', '/experiments/get', { experiment_id: '987654' });
    expect(missing.status).toBe(404);
    expect(missing.body.error_code).toBe('RESOURCE_DOES_NOT_EXIST');
    const noName = await mlflow('GET', '/experiments/get-by-name', { experiment_name: 'never-made' });
    expect(noName.status).toBe(404);
    expect(noName.body.error_code).toBe('RESOURCE_DOES_NOT_EXIST');
  });

  it('updates, tags, deletes, restores and searches with filters and page tokens', async () => {
    const ids = [await experiment('search-a'), await experiment('search-b'), await experiment('search-c')];
    expect((await mlflow('POST', '/experiments/update', { experiment_id: ids[2], new_name: 'search-z' })).status).toBe(
      200,
    );
    await mlflow('POST', '/experiments/set-experiment-tag', { experiment_id: ids[0], key: 'stage', value: 'x' });
    const first = await mlflow('POST', '/experiments/search', {
      filter: "name LIKE 'search-%'",
      order_by: ['name ASC'],
      max_results: 2,
    });
    expect(first.body.experiments.map((e: { name: string }) => e.name)).toEqual(['search-a', 'search-b']);
    expect(first.body.next_page_token).toEqual(expect.any(String));
    const second = await mlflow('GET', '/experiments/search', {
      filter: "name LIKE 'search-%'",
      order_by: 'name ASC',
      max_results: 2,
      page_token: first.body.next_page_token,
    });
    expect(second.body.experiments.map((e: { name: string }) => e.name)).toEqual(['search-z']);
    expect(second.body.next_page_token).toBeUndefined();
    const tagged = await mlflow('POST', '/experiments/search', { filter: "tags.stage = 'x'" });
    expect(tagged.body.experiments.map((e: { experiment_id: string }) => e.experiment_id)).toEqual([ids[0]]);

    await mlflow('POST', '/experiments/delete', { experiment_id: ids[1] });
    const deleted = await mlflow('POST', '/experiments/search', {
      filter: "name LIKE 'search-%'",
      view_type: 'DELETED_ONLY',
    });
    expect(deleted.body.experiments.map((e: { experiment_id: string }) => e.experiment_id)).toEqual([ids[1]]);
    await mlflow('POST', '/experiments/restore', { experiment_id: ids[1] });
    const restored = await mlflow('GET', '/experiments/get', { experiment_id: ids[1] });
    expect(restored.body.experiment.lifecycle_stage).toBe('active');
  });

  it('serves experiment 0 as the project’s default experiment, created on first use', async () => {
    const zero = await mlflow('GET', '/experiments/get', { experiment_id: '0' });
    expect(zero.status).toBe(200);
    expect(zero.body.experiment.name).toBe('Default');
    const runId = await run('0');
    const tracker = await t.platform.get(experimentTrackerRef);
    const stored = await tracker.getRun(runId);
    expect(stored.info.experimentId).toBe(zero.body.experiment.experiment_id);
    const vision = await t.token('vera', ['vision'], ['editor']);
    const inVision = await mlflow('GET', '/experiments/get', { experiment_id: '0' }, { token: vision });
    expect(inVision.body.experiment.name).toBe('Default (vision)');
    expect(inVision.body.experiment.tags).toContainEqual({ key: 'mlplane.project', value: 'vision' });
  });

  it('takes an artifact location inside the store, shows it through the proxy, and refuses one outside', async () => {
    const created = await mlflow('POST', '/experiments/create', {
      name: 'custom-location',
      artifact_location: 'mlflow-artifacts:/shared/team-a',
    });
    const id = created.body.experiment_id;
    const store = await t.platform.get(artifactStoreRef);
    const tracker = await t.platform.get(experimentTrackerRef);
    expect((await tracker.getExperiment(id)).artifactLocation).toBe(store.uri('shared/team-a'));
    const runId = await run(id);
    const got = await mlflow('GET', '/runs/get', { run_id: runId });
    expect(got.body.run.info.artifact_uri).toBe(`mlflow-artifacts:/${id}/${runId}/artifacts`);
    await t.call('PUT', `/api/2.0/mlflow-artifacts/artifacts/${id}/${runId}/artifacts/f.txt`, { rawBody: 'f' });
    expect(await store.exists(`shared/team-a/${runId}/artifacts/f.txt`)).toBe(true);
    const outside = await mlflow('POST', '/experiments/create', {
      name: 'outside-location',
      artifact_location: 's3://somewhere-else/prefix',
    });
    expect(outside.status).toBe(400);
    expect(outside.body.error_code).toBe('INVALID_PARAMETER_VALUE');
  });

  it('serves the same API under /ajax-api/2.0/mlflow, as MLflow does for its web UI', async () => {
    const id = await experiment('via-ajax');
    const res = await t.call('GET', `/ajax-api/2.0/mlflow/experiments/get?experiment_id=${id}`);
    expect(res.status).toBe(200);
    expect(res.body.experiment.name).toBe('via-ajax');
  });

  it('refuses mlplane.* tags: the project tag is the platform’s', async () => {
    const id = await experiment('reserved');
    const res = await mlflow('POST', '/experiments/set-experiment-tag', {
      experiment_id: id,
      key: 'mlplane.project',
      value: 'other',
    });
    expect(res.status).toBe(400);
    expect(res.body.error_code).toBe('INVALID_PARAMETER_VALUE');
  });
});

describe('MLflow runs', () => {
  it('logs metrics, params and tags and answers the run in MLflow’s shape', async () => {
    const experimentId = await experiment('runs-shape');
    const create = await mlflow('POST', '/runs/create', {
      experiment_id: experimentId,
      start_time: 1_700_000_000_000,
      run_name: 'first',
      user_id: 'laptop-user',
      tags: [{ key: 'mlflow.source.type', value: 'LOCAL' }],
    });
    const runId = create.body.run.info.run_id;
    expect(create.body.run.info).toEqual({
      run_uuid: runId,
      run_id: runId,
      experiment_id: experimentId,
      run_name: 'first',
      user_id: 'admin',
      status: 'RUNNING',
      start_time: 1_700_000_000_000,
      artifact_uri: `mlflow-artifacts:/${experimentId}/${runId}/artifacts`,
      lifecycle_stage: 'active',
    });
    await mlflow('POST', '/runs/log-metric', { run_id: runId, key: 'loss', value: 0.5, timestamp: 1, step: 1 });
    await mlflow('POST', '/runs/log-metric', { run_id: runId, key: 'loss', value: 'NaN', timestamp: 2, step: 2 });
    await mlflow('POST', '/runs/log-parameter', { run_id: runId, key: 'lr', value: '0.01' });
    await mlflow('POST', '/runs/set-tag', { run_id: runId, key: 'note', value: 'hello' });
    await mlflow('POST', '/runs/set-tag', { run_id: runId, key: 'gone', value: 'soon' });
    expect((await mlflow('POST', '/runs/delete-tag', { run_id: runId, key: 'gone' })).status).toBe(200);
    await mlflow('POST', '/runs/set-tag', { run_uuid: runId, key: 'mlflow.runName', value: 'renamed' });
    const got = await mlflow('GET', '/runs/get', { run_id: runId });
    expect(got.body.run.info.run_name).toBe('renamed');
    expect(got.body.run.data).toEqual({
      metrics: [{ key: 'loss', value: 'NaN', timestamp: 2, step: 2 }],
      params: [{ key: 'lr', value: '0.01' }],
      tags: expect.arrayContaining([
        { key: 'note', value: 'hello' },
        { key: 'mlflow.source.type', value: 'LOCAL' },
        { key: 'mlflow.runName', value: 'renamed' },
      ]),
    });
    expect(got.body.run.data.tags.find((tag: { key: string }) => tag.key === 'gone')).toBeUndefined();
    expect(got.body.run.inputs).toEqual({});
    const history = await mlflow('GET', '/metrics/get-history', { run_id: runId, metric_key: 'loss' });
    expect(history.body.metrics).toEqual([
      { key: 'loss', value: 0.5, timestamp: 1, step: 1 },
      { key: 'loss', value: 'NaN', timestamp: 2, step: 2 },
    ]);
    const paged = await mlflow('GET', '/metrics/get-history', { run_id: runId, metric_key: 'loss', max_results: 1 });
    expect(paged.body.metrics).toHaveLength(1);
    expect(paged.body.next_page_token).toEqual(expect.any(String));

    const changed = await mlflow('POST', '/runs/log-parameter', { run_id: runId, key: 'lr', value: '0.1' });
    expect(changed.status).toBe(400);
    expect(changed.body.error_code).toBe('INVALID_PARAMETER_VALUE');

    const ended = await mlflow('POST', '/runs/update', {
      run_id: runId,
      status: 'FINISHED',
      end_time: 1_700_000_000_500,
    });
    expect(ended.body.run_info).toMatchObject({ status: 'FINISHED', end_time: 1_700_000_000_500 });
    await mlflow('POST', '/runs/delete', { run_id: runId });
    expect((await mlflow('GET', '/runs/get', { run_id: runId })).body.run.info.lifecycle_stage).toBe('deleted');
    await mlflow('POST', '/runs/restore', { run_id: runId });
    expect((await mlflow('GET', '/runs/get', { run_id: runId })).body.run.info.lifecycle_stage).toBe('active');
  });

  it('logs a batch and dataset inputs, and searches runs with filters, order and page tokens', async () => {
    const experimentId = await experiment('runs-search');
    const runIds: string[] = [];
    for (const [i, lr] of ['0.1', '0.01', '0.01'].entries()) {
      const runId = await run(experimentId, { run_name: `r${i}` });
      const batch = await mlflow('POST', '/runs/log-batch', {
        run_id: runId,
        metrics: [{ key: 'acc', value: 0.5 + i / 10, timestamp: 10, step: 0 }],
        params: [{ key: 'lr', value: lr }],
        tags: [{ key: 'i', value: String(i) }],
      });
      expect(batch.status).toBe(200);
      expect(batch.body).toEqual({});
      runIds.push(runId);
    }
    const inputs = await mlflow('POST', '/runs/log-inputs', {
      run_id: runIds[0],
      datasets: [
        {
          tags: [{ key: 'mlflow.data.context', value: 'training' }],
          dataset: { name: 'iris', digest: 'abc123', source_type: 'local', source: '{"uri":"/data/iris.csv"}' },
        },
      ],
    });
    expect(inputs.status).toBe(200);
    const withInputs = await mlflow('GET', '/runs/get', { run_id: runIds[0] });
    expect(withInputs.body.run.inputs.dataset_inputs[0].dataset).toMatchObject({ name: 'iris', source_type: 'local' });

    const first = await mlflow('POST', '/runs/search', {
      experiment_ids: [experimentId],
      filter: "params.lr = '0.01' and metrics.acc > 0.55",
      order_by: ['metrics.acc DESC'],
      max_results: 1,
    });
    expect(first.body.runs.map((r: { info: { run_id: string } }) => r.info.run_id)).toEqual([runIds[2]]);
    const second = await mlflow('POST', '/runs/search', {
      experiment_ids: [experimentId],
      filter: "params.lr = '0.01' and metrics.acc > 0.55",
      order_by: ['metrics.acc DESC'],
      max_results: 1,
      page_token: first.body.next_page_token,
    });
    expect(second.body.runs.map((r: { info: { run_id: string } }) => r.info.run_id)).toEqual([runIds[1]]);
    expect(second.body.next_page_token).toBeUndefined();
    // As MLflow: an experiment that is not there contributes no runs.
    const unknown = await mlflow('POST', '/runs/search', { experiment_ids: ['987654'] });
    expect(unknown.status).toBe(200);
    expect(unknown.body).toEqual({});
    const badId = await mlflow('GET', '/experiments/get', { experiment_id: 'abc' });
    expect(badId.status).toBe(400);
    expect(badId.body).toEqual({
      error_code: 'INVALID_PARAMETER_VALUE',
      message: `Invalid value "abc" for parameter 'experiment_id' supplied: Experiment ID must be a valid integer`,
    });
    const bad = await mlflow('POST', '/runs/search', { experiment_ids: [experimentId], filter: 'metrics.acc >>> 1' });
    expect(bad.status).toBe(400);
    expect(bad.body.error_code).toBe('INVALID_PARAMETER_VALUE');
  });

  it('holds log-batch to MLflow’s limits (1000 metrics, 100 params, 100 tags) and writes nothing past them', async () => {
    const runId = await run(await experiment('limits'));
    const metrics = Array.from({ length: 1001 }, (_, i) => ({ key: 'm', value: i, timestamp: 1, step: i }));
    const tooMany = await mlflow('POST', '/runs/log-batch', { run_id: runId, metrics });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body).toEqual({
      error_code: 'INVALID_PARAMETER_VALUE',
      message: expect.stringContaining('at most 1000 metrics. Got 1001'),
    });
    const params = Array.from({ length: 101 }, (_, i) => ({ key: `p${i}`, value: 'v' }));
    const tooManyParams = await mlflow('POST', '/runs/log-batch', { run_id: runId, params });
    expect(tooManyParams.body.message).toContain('at most 100 params. Got 101');
    const tags = Array.from({ length: 101 }, (_, i) => ({ key: `t${i}`, value: 'v' }));
    expect((await mlflow('POST', '/runs/log-batch', { run_id: runId, tags })).body.message).toContain(
      'at most 100 tags. Got 101',
    );
    const tracker = await t.platform.get(experimentTrackerRef);
    const stored = await tracker.getRun(runId);
    expect(stored.data.metrics).toEqual({});
    expect(stored.data.params).toEqual({});
    // The limits themselves pass.
    const atLimit = await mlflow('POST', '/runs/log-batch', { run_id: runId, metrics: metrics.slice(0, 1000) });
    expect(atLimit.status).toBe(200);
    expect((await tracker.getMetricHistory(runId, 'm')).items).toHaveLength(1000);
  });

  it('answers bad messages with INVALID_PARAMETER_VALUE naming the parameter', async () => {
    const missing = await mlflow('POST', '/runs/log-batch', { params: [] });
    expect(missing.status).toBe(400);
    expect(missing.body).toEqual({
      error_code: 'INVALID_PARAMETER_VALUE',
      message: "Missing value for required parameter 'run_id'",
    });
    const wrongType = await mlflow('POST', '/runs/create', { experiment_id: '0', start_time: 'abc' });
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.message).toMatch(/parameter 'start_time'/);
    const malformed = await t.call('POST', `${API}/runs/create`, {
      rawBody: '{"experiment_id": ',
      headers: { 'content-type': 'application/json' },
    });
    expect(malformed.status).toBe(400);
    expect(malformed.body.error_code).toBe('INVALID_PARAMETER_VALUE');
    const unknownRun = await mlflow('GET', '/runs/get', { run_id: 'f'.repeat(32) });
    expect(unknownRun.status).toBe(404);
    expect(unknownRun.body.error_code).toBe('RESOURCE_DOES_NOT_EXIST');
    const unknownEndpoint = await mlflow('POST', '/logged-models', {});
    expect(unknownEndpoint.status).toBe(404);
    expect(unknownEndpoint.body.error_code).toBe('ENDPOINT_NOT_FOUND');
  });
});

describe('MLflow model registry', () => {
  it('registers models and versions, aliases, stages, tags and searches', async () => {
    const experimentId = await experiment('registry-exp');
    const runId = await run(experimentId);
    const created = await mlflow('POST', '/registered-models/create', {
      name: 'fraud',
      description: 'catches fraud',
      tags: [{ key: 'team', value: 'risk' }],
    });
    expect(created.body.registered_model).toMatchObject({
      name: 'fraud',
      description: 'catches fraud',
      creation_timestamp: expect.any(Number),
      tags: expect.arrayContaining([{ key: 'team', value: 'risk' }]),
    });
    const dup = await mlflow('POST', '/registered-models/create', { name: 'fraud' });
    expect(dup.status).toBe(400);
    expect(dup.body.error_code).toBe('RESOURCE_ALREADY_EXISTS');

    const source = `mlflow-artifacts:/${experimentId}/${runId}/artifacts/model`;
    const v1 = await mlflow('POST', '/model-versions/create', { name: 'fraud', source, run_id: runId });
    expect(v1.body.model_version).toEqual({
      name: 'fraud',
      version: '1',
      creation_timestamp: expect.any(Number),
      last_updated_timestamp: expect.any(Number),
      user_id: 'admin',
      current_stage: 'None',
      description: '',
      source,
      run_id: runId,
      status: 'READY',
      run_link: '',
    });
    // Stored as the ArtifactStore's URI, so every part of the platform can read it.
    const registry = await t.platform.get(modelRegistryRef);
    const stored = await registry.getVersion('fraud', 1);
    const tracker = await t.platform.get(experimentTrackerRef);
    const location = (await tracker.getExperiment(experimentId)).artifactLocation;
    expect(stored.source).toBe(`${location}/${runId}/artifacts/model`);
    const uri = await mlflow('GET', '/model-versions/get-download-uri', { name: 'fraud', version: '1' });
    expect(uri.body).toEqual({ artifact_uri: source });

    await mlflow('POST', '/model-versions/create', { name: 'fraud', source, run_id: runId });
    expect(
      (await mlflow('POST', '/registered-models/alias', { name: 'fraud', alias: 'champion', version: '2' })).status,
    ).toBe(200);
    const byAlias = await mlflow('GET', '/registered-models/alias', { name: 'fraud', alias: 'champion' });
    expect(byAlias.body.model_version).toMatchObject({ version: '2', aliases: ['champion'] });
    const reserved = await mlflow('POST', '/registered-models/alias', { name: 'fraud', alias: 'latest', version: '1' });
    expect(reserved.status).toBe(400);
    expect(reserved.body.error_code).toBe('INVALID_PARAMETER_VALUE');

    const staged = await mlflow('POST', '/model-versions/transition-stage', {
      name: 'fraud',
      version: '1',
      stage: 'staging',
      archive_existing_versions: false,
    });
    expect(staged.body.model_version.current_stage).toBe('Staging');
    await mlflow('POST', '/model-versions/transition-stage', {
      name: 'fraud',
      version: '2',
      stage: 'Staging',
      archive_existing_versions: true,
    });
    expect(
      (await mlflow('GET', '/model-versions/get', { name: 'fraud', version: '1' })).body.model_version.current_stage,
    ).toBe('Archived');
    const latest = await mlflow('POST', '/registered-models/get-latest-versions', {
      name: 'fraud',
      stages: ['Staging'],
    });
    expect(latest.body.model_versions.map((v: { version: string }) => v.version)).toEqual(['2']);

    await mlflow('POST', '/model-versions/set-tag', { name: 'fraud', version: '2', key: 'reviewed', value: 'yes' });
    await mlflow('PATCH', '/model-versions/update', { name: 'fraud', version: '2', description: 'v2' });
    const v2 = await mlflow('GET', '/model-versions/get', { name: 'fraud', version: '2' });
    expect(v2.body.model_version).toMatchObject({ description: 'v2', tags: [{ key: 'reviewed', value: 'yes' }] });
    await mlflow('DELETE', '/model-versions/delete-tag', { name: 'fraud', version: '2', key: 'reviewed' });
    expect(
      (await mlflow('GET', '/model-versions/get', { name: 'fraud', version: '2' })).body.model_version.tags,
    ).toBeUndefined();

    const model = await mlflow('GET', '/registered-models/get', { name: 'fraud' });
    expect(model.body.registered_model.aliases).toEqual([{ alias: 'champion', version: '2' }]);
    const versions = await mlflow('GET', '/model-versions/search', { filter: `run_id = '${runId}'` });
    expect(versions.body.model_versions.map((v: { version: string }) => v.version).sort()).toEqual(['1', '2']);

    await mlflow('POST', '/registered-models/set-tag', { name: 'fraud', key: 'owner', value: 'ana' });
    await mlflow('DELETE', '/registered-models/delete-tag', { name: 'fraud', key: 'team' });
    await mlflow('PATCH', '/registered-models/update', { name: 'fraud', description: 'better' });
    const renamed = await mlflow('POST', '/registered-models/rename', { name: 'fraud', new_name: 'fraud-v2' });
    expect(renamed.body.registered_model).toMatchObject({ name: 'fraud-v2', description: 'better' });
    const search = await mlflow('GET', '/registered-models/search', { filter: "name LIKE 'fraud%'" });
    expect(search.body.registered_models.map((m: { name: string }) => m.name)).toEqual(['fraud-v2']);
    expect(search.body.registered_models[0].tags).toContainEqual({ key: 'owner', value: 'ana' });

    await mlflow('DELETE', '/registered-models/alias', { name: 'fraud-v2', alias: 'champion' });
    const noAlias = await mlflow('GET', '/registered-models/alias', { name: 'fraud-v2', alias: 'champion' });
    expect(noAlias.status).toBe(404);
    await mlflow('DELETE', '/model-versions/delete', { name: 'fraud-v2', version: '1' });
    expect((await mlflow('GET', '/model-versions/get', { name: 'fraud-v2', version: '1' })).status).toBe(404);
    await mlflow('DELETE', '/registered-models/delete', { name: 'fraud-v2' });
    const gone = await mlflow('GET', '/registered-models/get', { name: 'fraud-v2' });
    expect(gone.status).toBe(404);
    expect(gone.body.error_code).toBe('RESOURCE_DOES_NOT_EXIST');
  });
});

describe('what MLflow 3 clients send besides', () => {
  it('leaves prompts out of model searches as MLflow 3’s client asks, models without the tag included', async () => {
    await mlflow('POST', '/registered-models/create', { name: 'plain-model' });
    await mlflow('POST', '/registered-models/create', {
      name: 'plain-prompt',
      tags: [{ key: 'mlflow.prompt.is_prompt', value: 'true' }],
    });
    const clientFilter = "name LIKE 'plain-%' AND tag.`mlflow.prompt.is_prompt` != 'true'";
    const models = await mlflow('GET', '/registered-models/search', { filter: clientFilter });
    expect(models.body.registered_models.map((m: { name: string }) => m.name)).toEqual(['plain-model']);
    const all = await mlflow('GET', '/registered-models/search', { filter: "name LIKE 'plain-%'" });
    expect(all.body.registered_models).toHaveLength(2);
  });

  it('answers the logged-models search its client makes when listing a run’s directories, empty', async () => {
    const experimentId = await experiment('logged-models');
    const res = await mlflow('POST', '/logged-models/search', {
      experiment_ids: [experimentId],
      filter: "source_run_id = 'x'",
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({});
    const other = await t.token('lou', ['elsewhere'], ['viewer']);
    const hidden = await mlflow('POST', '/logged-models/search', { experiment_ids: [experimentId] }, { token: other });
    expect(hidden.status).toBe(404);
  });
});

describe('MLflow artifacts proxy', () => {
  it('stores uploads in the ArtifactStore below the experiment, lists, downloads and deletes them', async () => {
    const experimentId = await experiment('artifacts');
    const runId = await run(experimentId);
    const base = `/api/2.0/mlflow-artifacts/artifacts/${experimentId}/${runId}/artifacts`;
    const put = await t.call('PUT', `${base}/model/MLmodel`, {
      rawBody: 'flavors: {}\n',
      headers: { 'content-type': 'text/plain' },
    });
    expect(put.status).toBe(200);
    await t.call('PUT', `${base}/data%20dir/a.txt`, { rawBody: 'aaa' });
    await t.call('PUT', `${base}/top.txt`, { rawBody: 'top' });

    const tracker = await t.platform.get(experimentTrackerRef);
    const opened = await tracker.openArtifact(runId, 'model/MLmodel');
    opened.body.destroy();
    expect(opened.info.size).toBe(12);
    const store = await t.platform.get(artifactStoreRef);
    const location = (await tracker.getExperiment(experimentId)).artifactLocation;
    expect(location.startsWith(store.uri('x').slice(0, -1))).toBe(true);

    const list = await t.call(
      'GET',
      `/api/2.0/mlflow-artifacts/artifacts?path=${encodeURIComponent(`${experimentId}/${runId}/artifacts`)}`,
    );
    expect(list.body, JSON.stringify(list.body)).toHaveProperty('files');
    expect(list.body.files).toEqual([
      { path: 'data dir', is_dir: true },
      { path: 'model', is_dir: true },
      { path: 'top.txt', is_dir: false, file_size: 3 },
    ]);
    const download = await t.call('GET', `${base}/data%20dir/a.txt`);
    expect(download.status).toBe(200);
    expect(download.body).toBe('aaa');
    expect(download.headers.get('content-length')).toBe('3');

    expect((await t.call('PUT', `${base}/empty.txt`, { rawBody: '' })).status).toBe(200);
    const empty = await t.call('GET', `${base}/empty.txt`);
    expect([empty.status, empty.body, empty.headers.get('content-length')]).toEqual([200, undefined, '0']);

    expect((await t.call('DELETE', `${base}/model`)).status).toBe(200);
    const after = await t.call('GET', `${base}/model/MLmodel`);
    expect(after.status).toBe(404);
    expect(after.body.error_code).toBe('RESOURCE_DOES_NOT_EXIST');
    expect((await t.call('GET', `${base}/top.txt`)).body).toBe('top');
  });

  it('refuses paths that leave the experiment and hides other projects’ experiments', async () => {
    const experimentId = await experiment('artifacts-guard');
    const leaving = await t.call('PUT', `/api/2.0/mlflow-artifacts/artifacts/${experimentId}/a/%2E%2E/%2E%2E/x`, {
      rawBody: 'x',
    });
    expect(leaving.status).toBe(400);
    expect(leaving.body.error_code).toBe('INVALID_PARAMETER_VALUE');
    const noExperiment = await t.call('PUT', '/api/2.0/mlflow-artifacts/artifacts/not-an-id/x', { rawBody: 'x' });
    expect(noExperiment.status).toBe(400);
    const other = await t.token('olga', ['other'], ['editor']);
    const hidden = await t.call('GET', `/api/2.0/mlflow-artifacts/artifacts/${experimentId}/a.txt`, { token: other });
    expect(hidden.status).toBe(404);
    expect(hidden.body.error_code).toBe('RESOURCE_DOES_NOT_EXIST');
  });
});

describe('MLflow API limits', () => {
  it('answers REQUEST_LIMIT_EXCEEDED (429) with Retry-After past the rate limit, and 413 past the body limit', async () => {
    const limited = await startTestApi({
      mount: [mountMlflow()],
      rateLimit: { points: 2, durationSeconds: 60 },
      limits: { jsonBodyBytes: 1024 },
    });
    try {
      const call = (body: unknown) =>
        limited.call('POST', `${API}/experiments/search`, { body, token: limited.adminToken });
      const big = await call({ filter: `name = '${'x'.repeat(2000)}'` });
      expect(big.status).toBe(413);
      expect(big.body.error_code).toBe('INVALID_PARAMETER_VALUE');
      expect((await call({})).status).toBe(200);
      const over = await call({});
      expect(over.status).toBe(429);
      expect(over.body.error_code).toBe('REQUEST_LIMIT_EXCEEDED');
      expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0);
    } finally {
      await limited[Symbol.asyncDispose]();
    }
  });
});

describe('MLflow API authentication and projects', () => {
  it('answers UNAUTHENTICATED (401) without a valid token, in MLflow’s error shape', async () => {
    const none = await mlflow('GET', '/experiments/get', { experiment_id: '0' }, { token: null });
    expect(none.status).toBe(401);
    expect(none.body).toEqual({ error_code: 'UNAUTHENTICATED', message: expect.any(String) });
    const bogus = await mlflow('GET', '/experiments/get', { experiment_id: '0' }, { token: `mlp_${'x'.repeat(40)}` });
    expect(bogus.status).toBe(401);
    expect(bogus.body.error_code).toBe('UNAUTHENTICATED');
  });

  it('answers PERMISSION_DENIED (403) when the role lacks the operation’s permission', async () => {
    const viewer = await t.token('vic', ['readers'], ['viewer']);
    const read = await mlflow('POST', '/experiments/search', {}, { token: viewer });
    expect(read.status).toBe(200);
    const write = await mlflow('POST', '/experiments/create', { name: 'by-viewer' }, { token: viewer });
    expect(write.status).toBe(403);
    expect(write.body.error_code).toBe('PERMISSION_DENIED');
    const promote = await mlflow(
      'POST',
      '/registered-models/alias',
      { name: 'x', alias: 'a', version: '1' },
      { token: viewer },
    );
    expect(promote.status).toBe(403);
  });

  it('works in the token’s only project, or the X-Mlplane-Project header, and keeps projects apart', async () => {
    const bob = await t.token('bob', ['team-b'], ['editor']);
    const id = await experiment('in-team-b', { token: bob });
    const tracker = await t.platform.get(experimentTrackerRef);
    expect((await tracker.getExperiment(id)).tags['mlplane.project']).toBe('team-b');
    // Admin sees it only when naming the project.
    expect((await mlflow('GET', '/experiments/get', { experiment_id: id })).status).toBe(404);
    const named = await mlflow(
      'GET',
      '/experiments/get',
      { experiment_id: id },
      { headers: { 'x-mlplane-project': 'team-b' } },
    );
    expect(named.status).toBe(200);
    const searched = await mlflow('POST', '/experiments/search', {}, { token: bob });
    expect(searched.body.experiments.map((e: { name: string }) => e.name)).toEqual(['in-team-b']);
    // Bob has no role in another project.
    const elsewhere = await mlflow(
      'POST',
      '/experiments/search',
      {},
      { token: bob, headers: { 'x-mlplane-project': 'team-c' } },
    );
    expect(elsewhere.status).toBe(403);
    const badHeader = await mlflow(
      'POST',
      '/experiments/search',
      {},
      { token: bob, headers: { 'x-mlplane-project': '../x' } },
    );
    expect(badHeader.status).toBe(400);
    // Runs of another project's experiment are not there for bob.
    const adminRun = await run(await experiment('admin-only'));
    const foreign = await mlflow('GET', '/runs/get', { run_id: adminRun }, { token: bob });
    expect(foreign.status).toBe(404);
    const foreignBatch = await mlflow(
      'POST',
      '/runs/log-batch',
      { run_id: adminRun, params: [{ key: 'a', value: 'b' }] },
      { token: bob },
    );
    expect(foreignBatch.status).toBe(404);
    expect((await tracker.getRun(adminRun)).data.params).toEqual({});
  });
});
