// plugin-mlflow behaviour beyond the conformance suites, on the MLflow peer: batching, error mapping, artifacts,
// registry specifics and the plugin wired into a platform.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { ConflictError, experimentTrackerRef, modelRegistryRef, NotFoundError, ValidationError } from '@mlplane/core';
import { startTestPlatform } from '@mlplane/defaults/testing';
import { afterAll, describe, expect, it } from 'vitest';
import {
  MlflowApiError,
  MlflowClient,
  MlflowExperimentTracker,
  MlflowModelRegistry,
  mlflowPlugin,
} from '../src/index.js';
import { mlflowUrl } from './support.js';

const client = new MlflowClient({
  trackingUri: mlflowUrl(),
  connections: 4,
  connectTimeoutMs: 5000,
  requestTimeoutMs: 60_000,
  retries: 2,
});
const tracker = new MlflowExperimentTracker(client);
const registry = new MlflowModelRegistry(client);
const tag = () => randomBytes(4).toString('hex');

afterAll(() => client.close());

async function newRun() {
  const experiment = await tracker.createExperiment({ name: `plugin-it-${tag()}` });
  return tracker.createRun({ experimentId: experiment.id });
}

async function readAll(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

describe('logBatch batching', () => {
  it('delivers a 2,500-metric batch with 250 params and 250 tags whole, across several requests', async () => {
    const run = await newRun();
    const metrics = Array.from({ length: 2500 }, (_, i) => ({
      key: 'loss',
      value: 1 / (i + 1),
      step: i,
      timestamp: 1_700_000_000_000 + i,
    }));
    const params = Array.from({ length: 250 }, (_, i) => ({ key: `p${i}`, value: String(i) }));
    const tags = Array.from({ length: 250 }, (_, i) => ({ key: `t${i}`, value: String(i) }));
    await tracker.logBatch(run.info.id, { metrics, params, tags });
    const history = await tracker.getMetricHistory(run.info.id, 'loss');
    expect(history.items).toHaveLength(2500);
    expect(history.items.map((p) => p.step)).toEqual(Array.from({ length: 2500 }, (_, i) => i));
    const data = (await tracker.getRun(run.info.id)).data;
    expect(Object.keys(data.params)).toHaveLength(250);
    expect(Object.keys(data.tags)).toHaveLength(250);
    expect(data.metrics.loss?.step).toBe(2499);
  });
});

/** The MLflow error code found down an error's cause chain. */
function mlflowCode(err: unknown): string | undefined {
  for (let e = err as { cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e instanceof MlflowApiError) return e.errorCode;
  }
  return undefined;
}

describe('error mapping against the server', () => {
  it('maps RESOURCE_ALREADY_EXISTS (HTTP 400) to ConflictError and RESOURCE_DOES_NOT_EXIST to NotFoundError', async () => {
    const name = `dup-${tag()}`;
    await tracker.createExperiment({ name });
    const conflict = await tracker.createExperiment({ name }).catch((e) => e);
    expect(conflict).toBeInstanceOf(ConflictError);
    expect(mlflowCode(conflict)).toBe('RESOURCE_ALREADY_EXISTS');
    const missing = await client
      .call('GET', 'mlflow/runs/get', { params: { run_id: 'f'.repeat(32) }, idempotent: true })
      .catch((e) => e);
    expect(missing).toBeInstanceOf(NotFoundError);
  });

  it('maps INVALID_PARAMETER_VALUE to ValidationError', async () => {
    const err = await client
      .call('GET', 'mlflow/experiments/get', { params: { experiment_id: 'not-a-number' }, idempotent: true })
      .catch((e) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect(mlflowCode(err)).toBe('INVALID_PARAMETER_VALUE');
  });
});

describe('run artifacts through the proxy', () => {
  it('uploads, lists and streams back; a directory is not a file', async () => {
    const run = await newRun();
    const bytes = randomBytes(300_000);
    const info = await tracker.logArtifact(
      run.info.id,
      'model/weights.bin',
      Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]),
    );
    expect(info.key).toBe(`${run.info.artifactUri}/model/weights.bin`);
    expect(info.size).toBe(bytes.length);
    const opened = await tracker.openArtifact(run.info.id, 'model/weights.bin');
    expect(opened.info).toEqual({ path: 'model/weights.bin', isDir: false, size: bytes.length });
    expect((await readAll(opened.body)).equals(bytes)).toBe(true);
    await expect(tracker.openArtifact(run.info.id, 'model')).rejects.toBeInstanceOf(NotFoundError);
    await expect(tracker.openArtifact(run.info.id, 'missing.txt')).rejects.toBeInstanceOf(NotFoundError);
    await expect(tracker.openArtifact(run.info.id, '../x')).rejects.toBeInstanceOf(ValidationError);
  });

  it('stores nothing when a streamed body misses expectedSha256, and keeps the file already there', async () => {
    const run = await newRun();
    await tracker.logArtifact(run.info.id, 'data.txt', 'original');
    const err = await tracker
      .logArtifact(run.info.id, 'data.txt', Readable.from([Buffer.from('tampered '), Buffer.from('content')]), {
        expectedSha256: '0'.repeat(64),
      })
      .catch((e) => e);
    // The mismatch was found, so the upload was cut short before its last chunk.
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.message).toContain('nothing was stored');
    expect((await readAll((await tracker.openArtifact(run.info.id, 'data.txt')).body)).toString()).toBe('original');
    const fresh = await tracker
      .logArtifact(run.info.id, 'new.txt', Readable.from([Buffer.from('a'), Buffer.from('b')]), {
        expectedSha256: 'f'.repeat(64),
      })
      .catch((e) => e);
    expect(fresh).toBeInstanceOf(ValidationError);
    await expect(tracker.openArtifact(run.info.id, 'new.txt')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('refuses metadata it cannot store and an existing path with ifNotExists', async () => {
    const run = await newRun();
    await expect(tracker.logArtifact(run.info.id, 'a.txt', 'x', { metadata: { k: 'v' } })).rejects.toBeInstanceOf(
      ValidationError,
    );
    await tracker.logArtifact(run.info.id, 'a.txt', 'x');
    await expect(tracker.logArtifact(run.info.id, 'a.txt', 'y', { ifNotExists: true })).rejects.toBeInstanceOf(
      ConflictError,
    );
  });
});

describe('registry specifics', () => {
  it('keeps who registered a version, refuses signatures it cannot store, and reserves its user tag', async () => {
    const name = `reg-${tag()}`;
    await registry.createModel({ name });
    const v = await registry.createVersion({ name, source: 's3://models/a', userId: 'alice', tags: { k: 'v' } });
    expect(v).toMatchObject({ userId: 'alice', tags: { k: 'v' } });
    expect((await registry.getVersion(name, 1)).userId).toBe('alice');
    const signature = { inputs: [{ kind: 'column' as const, type: 'double' }], outputs: [] };
    const err = await registry.createVersion({ name, source: 's3://models/b', signature }).catch((e) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.field).toBe('signature');
    await expect(registry.setVersionTag(name, 1, 'mlplane.userId', 'mallory')).rejects.toBeInstanceOf(ValidationError);
    await expect(registry.getTransitionHistory(name)).rejects.toThrow('keeps no stage transition history');
    // The refused calls registered nothing.
    expect((await registry.createVersion({ name, source: 's3://models/c' })).version).toBe(2);
  });
});

describe('mlflowPlugin', () => {
  it('provides the tracker and the registry of a platform', async () => {
    await using platform = await startTestPlatform({
      plugins: [mlflowPlugin()],
      config: { mlflow: { trackingUri: mlflowUrl(), connections: 4 } },
    });
    const t = await platform.get(experimentTrackerRef);
    const r = await platform.get(modelRegistryRef);
    expect(t).toBeInstanceOf(MlflowExperimentTracker);
    expect(r).toBeInstanceOf(MlflowModelRegistry);
    const experiment = await t.createExperiment({ name: `platform-${tag()}` });
    expect(experiment.artifactLocation).toMatch(/^mlflow-artifacts:\//);
  });

  it('refuses a config without a usable tracking URI, naming the path', async () => {
    await expect(
      startTestPlatform({ plugins: [mlflowPlugin()], config: { mlflow: { trackingUri: 'not a url' } } }),
    ).rejects.toThrow(/mlflow\.trackingUri/);
  });
});
