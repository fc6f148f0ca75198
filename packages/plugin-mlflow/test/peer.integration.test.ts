// Checks the MLflow peer (`scripts/peers up mlflow`): the REST API 2.0 of a real tracking server.
import { describe, expect, it } from 'vitest';

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run scripts/peers up mlflow, then eval "$(scripts/peers env)"`);
  return value;
}

interface Experiment {
  experiment_id: string;
  name: string;
  artifact_location: string;
  lifecycle_stage: string;
  tags?: { key: string; value: string }[];
}

async function call<T>(
  method: 'GET' | 'POST',
  path: string,
  body?: Record<string, unknown>,
): Promise<{ status: number; json: T }> {
  const base = requireEnv('MLPLANE_MLFLOW_URL');
  const url = new URL(`/api/2.0/mlflow/${path}`, base);
  if (method === 'GET' && body) for (const [k, v] of Object.entries(body)) url.searchParams.set(k, String(v));
  const res = await fetch(url, {
    method,
    headers: method === 'POST' ? { 'content-type': 'application/json' } : {},
    body: method === 'POST' ? JSON.stringify(body ?? {}) : undefined,
  });
  return { status: res.status, json: (await res.json()) as T };
}

describe('mlflow peer', () => {
  const name = `mlplane-it-${Date.now().toString(36)}`;

  it('answers /health', async () => {
    const res = await fetch(new URL('/health', requireEnv('MLPLANE_MLFLOW_URL')));
    expect(res.status).toBe(200);
  });

  it('creates an experiment and reads it back', async () => {
    const created = await call<{ experiment_id: string }>('POST', 'experiments/create', {
      name,
      tags: [{ key: 'owner', value: 'mlplane' }],
    });
    expect(created.status).toBe(200);
    const id = created.json.experiment_id;
    expect(id).toMatch(/^\d+$/);

    const got = await call<{ experiment: Experiment }>('GET', 'experiments/get', { experiment_id: id });
    expect(got.status).toBe(200);
    expect(got.json.experiment).toMatchObject({ experiment_id: id, name, lifecycle_stage: 'active' });
    expect(got.json.experiment.tags).toContainEqual({ key: 'owner', value: 'mlplane' });
    expect(got.json.experiment.artifact_location).toMatch(/^mlflow-artifacts:\//);

    const byName = await call<{ experiment: Experiment }>('GET', 'experiments/get-by-name', { experiment_name: name });
    expect(byName.json.experiment.experiment_id).toBe(id);
  });

  it('rejects a duplicate name with RESOURCE_ALREADY_EXISTS', async () => {
    const again = await call<{ error_code: string; message: string }>('POST', 'experiments/create', { name });
    expect(again.status).toBe(400);
    expect(again.json.error_code).toBe('RESOURCE_ALREADY_EXISTS');
  });

  it('logs a run with a metric and a param', async () => {
    const { json: exp } = await call<{ experiment: Experiment }>('GET', 'experiments/get-by-name', {
      experiment_name: name,
    });
    const { json: run } = await call<{ run: { info: { run_id: string } } }>('POST', 'runs/create', {
      experiment_id: exp.experiment.experiment_id,
      start_time: 1_700_000_000_000,
    });
    const runId = run.run.info.run_id;
    const logged = await call('POST', 'runs/log-batch', {
      run_id: runId,
      metrics: [{ key: 'acc', value: 0.75, timestamp: 1_700_000_000_001, step: 1 }],
      params: [{ key: 'lr', value: '0.01' }],
    });
    expect(logged.status).toBe(200);
    const { json } = await call<{ run: { data: { metrics: unknown[]; params: unknown[] } } }>('GET', 'runs/get', {
      run_id: runId,
    });
    expect(json.run.data.metrics).toEqual([{ key: 'acc', value: 0.75, timestamp: 1_700_000_000_001, step: 1 }]);
    expect(json.run.data.params).toEqual([{ key: 'lr', value: '0.01' }]);
  });
});
