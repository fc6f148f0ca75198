// plugin-mlflow and plugin-s3 together, against the peers: the MLflow peer stores proxied artifacts in the S3 peer's
// bucket (`--artifacts-destination s3://...`), so a run's artifact logged through the platform's ExperimentTracker is
// an object in that bucket, read back by the platform's ArtifactStore and listed by MLflow's own REST API.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteObjectsCommand, GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { artifactStoreRef, experimentTrackerRef, type Platform } from '@mlplane/core';
import { createPlatform } from '@mlplane/defaults';
import { MlflowExperimentTracker, mlflowPlugin } from '@mlplane/plugin-mlflow';
import { S3ArtifactStore, s3Plugin } from '@mlplane/plugin-s3';
import { afterEach, describe, expect, it } from 'vitest';
import { artifactKeyInBucket, mlflowS3SettingsFromEnv } from '../src/mlflow-s3-platform.js';

const settings = () => mlflowS3SettingsFromEnv();

/** The S3 peer through the AWS SDK itself, independent of plugin-s3. */
function rawS3() {
  const { s3 } = settings();
  return new S3Client({
    endpoint: s3.endpoint!,
    region: s3.region!,
    forcePathStyle: true,
    credentials: s3.credentials!,
  });
}

async function mlflowArtifacts(runId: string, path?: string) {
  const query = new URLSearchParams({ run_id: runId, ...(path ? { path } : {}) });
  const res = await fetch(`${settings().trackingUri}/api/2.0/mlflow/artifacts/list?${query}`);
  expect(res.status).toBe(200);
  return (await res.json()) as { root_uri: string; files?: { path: string; is_dir: boolean; file_size?: number }[] };
}

describe('a platform composed of plugin-mlflow and plugin-s3', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function start(): Promise<Platform> {
    const dataDir = await mkdtemp(join(tmpdir(), 'mlplane-mlflow-s3-it-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const { trackingUri, s3 } = settings();
    const platform = createPlatform({
      plugins: [mlflowPlugin(), s3Plugin()],
      config: {
        platform: { signals: [] },
        embedded: { dataDir, secrets: { masterKey: randomBytes(32).toString('base64') } },
        mlflow: { trackingUri },
        s3,
      },
      log: { level: 'silent' },
    });
    await platform.start();
    cleanups.push(() => platform.stop());
    return platform;
  }

  it("stores a run's artifact in the S3 bucket, where MLflow lists it and the platform's ArtifactStore reads it", async () => {
    const platform = await start();
    const tracker = await platform.get(experimentTrackerRef);
    const store = await platform.get(artifactStoreRef);
    // The platform's ports are the two plugins', not the embedded defaults.
    expect(tracker).toBeInstanceOf(MlflowExperimentTracker);
    expect(store).toBeInstanceOf(S3ArtifactStore);
    expect(store.uri('x')).toBe(`s3://${settings().s3.bucket}/x`);

    const { id: experimentId } = await tracker.createExperiment({
      name: `mlflow-s3-${randomBytes(4).toString('hex')}`,
    });
    const run = await tracker.createRun({ experimentId, name: 'train' });
    const runId = run.info.id;
    await tracker.logBatch(runId, {
      params: [{ key: 'lr', value: '0.01' }],
      metrics: [0.7, 0.4].map((value, step) => ({ key: 'loss', value, step })),
    });
    const content = randomBytes(70_000);
    const logged = await tracker.logArtifact(runId, 'model/weights.bin', content);
    await tracker.updateRun({ runId, status: 'FINISHED' });
    expect(logged.sha256).toBe(createHash('sha256').update(content).digest('hex'));

    const key = artifactKeyInBucket(settings(), run.info.artifactUri, 'model/weights.bin');
    const runPrefix = key.slice(0, -'model/weights.bin'.length);
    const s3 = rawS3();
    cleanups.push(async () => {
      const listed = await s3.send(new ListObjectsV2Command({ Bucket: settings().s3.bucket, Prefix: runPrefix }));
      const objects = (listed.Contents ?? []).map((o) => ({ Key: o.Key! }));
      if (objects.length > 0)
        await s3.send(new DeleteObjectsCommand({ Bucket: settings().s3.bucket, Delete: { Objects: objects } }));
      s3.destroy();
    });

    // In the bucket, as S3 itself lists it, under MLflow's artifact destination, with the same bytes.
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: settings().s3.bucket, Prefix: runPrefix }));
    expect((listed.Contents ?? []).map((o) => [o.Key, o.Size])).toEqual([[key, content.length]]);
    const raw = await s3.send(new GetObjectCommand({ Bucket: settings().s3.bucket, Key: key }));
    expect(Buffer.from(await raw.Body!.transformToByteArray()).equals(content)).toBe(true);

    // Through the platform's ArtifactStore (plugin-s3): the object and its s3:// URI.
    const { info, body } = await store.get(key);
    const chunks: Buffer[] = [];
    for await (const chunk of body) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).equals(content)).toBe(true);
    expect(info.size).toBe(content.length);
    expect(store.uri(key)).toBe(
      `${settings().mlflowArtifactsUri}/${experimentId}/${runId}/artifacts/model/weights.bin`,
    );

    // MLflow's own REST API lists it, at the run's artifact root.
    const top = await mlflowArtifacts(runId);
    expect(top.root_uri).toBe(run.info.artifactUri);
    expect(top.files).toEqual([{ path: 'model', is_dir: true }]);
    expect((await mlflowArtifacts(runId, 'model')).files).toEqual([
      { path: 'model/weights.bin', is_dir: false, file_size: content.length },
    ]);
    // And the tracker reads the run's params and metrics back from MLflow.
    const stored = await tracker.getRun(runId);
    expect(stored.data.params).toEqual({ lr: '0.01' });
    expect(stored.data.metrics.loss).toMatchObject({ value: 0.4, step: 1 });
  });
});
