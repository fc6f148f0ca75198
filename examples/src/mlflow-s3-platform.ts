import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { artifactStoreRef, experimentTrackerRef, type Platform } from '@mlplane/core';
import { createPlatform } from '@mlplane/defaults';
import { mlflowPlugin } from '@mlplane/plugin-mlflow';
import { type S3ConfigInput, s3Plugin } from '@mlplane/plugin-s3';

/**
 * A platform whose experiment tracking and model registry are an MLflow tracking server (plugin-mlflow) and whose
 * ArtifactStore is an S3 bucket (plugin-s3), with MLflow itself storing run artifacts in that same bucket: the
 * tracking server is started with `--artifacts-destination s3://<bucket>/<prefix>`, so what a run logs through
 * MLflow's artifact proxy is an object that MLflow lists and that the platform's ArtifactStore reads.
 *
 * Run it against the peers (`scripts/peers up mlflow` starts the S3 peer too, then `eval "$(scripts/peers env)"`):
 *   node --conditions=@mlplane/source --import tsx examples/src/mlflow-s3-platform.ts
 * It logs one run with params, metrics and an artifact, and prints one JSON line saying where the artifact landed.
 */
export interface MlflowS3Settings {
  /** The MLflow tracking server. */
  readonly trackingUri: string;
  /** plugin-s3's config: the bucket MLflow stores its artifacts in, read from the bucket's root. */
  readonly s3: S3ConfigInput;
  /** MLflow's `--artifacts-destination`, `s3://<bucket>/<prefix>`: where `mlflow-artifacts:/` URIs point. */
  readonly mlflowArtifactsUri: string;
}

/** Settings from the variables `scripts/peers env` prints; a missing one is named. */
export function mlflowS3SettingsFromEnv(env: NodeJS.ProcessEnv = process.env): MlflowS3Settings {
  const need = (name: string): string => {
    const value = env[name];
    if (!value) throw new Error(`${name} is not set: run scripts/peers up mlflow, then eval "$(scripts/peers env)"`);
    return value;
  };
  return {
    trackingUri: need('MLPLANE_MLFLOW_URL'),
    mlflowArtifactsUri: need('MLPLANE_MLFLOW_ARTIFACTS_URI'),
    s3: {
      bucket: need('MLPLANE_S3_BUCKET'),
      endpoint: need('MLPLANE_S3_ENDPOINT'),
      region: need('MLPLANE_S3_REGION'),
      forcePathStyle: true,
      credentials: { accessKeyId: need('MLPLANE_S3_ACCESS_KEY'), secretAccessKey: need('MLPLANE_S3_SECRET_KEY') },
    },
  };
}

/** The composition: embedded defaults for the rest, MLflow for tracking and registry, S3 for artifacts. */
export function createMlflowS3Platform(settings: MlflowS3Settings, dataDir: string): Platform {
  return createPlatform({
    plugins: [mlflowPlugin(), s3Plugin()],
    config: {
      platform: { signals: [] },
      embedded: { dataDir },
      mlflow: { trackingUri: settings.trackingUri },
      s3: settings.s3,
    },
    log: { level: 'warn' },
  });
}

/**
 * The key, in the platform's ArtifactStore (rooted at the bucket), of a run artifact MLflow stored through its proxy:
 * the run's `mlflow-artifacts:/<experiment>/<run>/artifacts` root resolved against MLflow's artifact destination.
 */
export function artifactKeyInBucket(settings: MlflowS3Settings, runArtifactUri: string, path: string): string {
  const destination = /^s3:\/\/([^/]+)\/?(.*)$/.exec(settings.mlflowArtifactsUri);
  if (!destination || destination[1] !== settings.s3.bucket)
    throw new Error(
      `MLflow stores its artifacts at '${settings.mlflowArtifactsUri}', not in the bucket '${settings.s3.bucket}' of the platform's ArtifactStore`,
    );
  const proxied = /^mlflow-artifacts:(?:\/\/[^/]*)?\/(.*)$/.exec(runArtifactUri);
  if (!proxied) throw new Error(`the run keeps its artifacts at '${runArtifactUri}', not behind MLflow's proxy`);
  return [destination[2]!.replace(/\/+$/, ''), proxied[1]!.replace(/\/+$/, ''), path].filter((s) => s !== '').join('/');
}

export interface LoggedRun {
  readonly experimentId: string;
  readonly runId: string;
  /** The artifact's path below the run's artifact root. */
  readonly artifactPath: string;
  /** The object's key in the bucket, and its s3:// URI as the platform's ArtifactStore names it. */
  readonly key: string;
  readonly s3Uri: string;
  readonly size: number;
  readonly sha256: string;
}

/** Logs a run with params, metrics and an artifact through the platform's tracker, then finds the artifact in S3. */
export async function logRunWithArtifact(
  platform: Platform,
  settings: MlflowS3Settings,
  experimentName: string,
  artifact: { readonly path: string; readonly content: Buffer },
): Promise<LoggedRun> {
  const tracker = await platform.get(experimentTrackerRef);
  const store = await platform.get(artifactStoreRef);
  const { id: experimentId } = await tracker.createExperiment({ name: experimentName });
  const run = await tracker.createRun({ experimentId, name: 'train-1' });
  const runId = run.info.id;
  await tracker.logBatch(runId, {
    params: [
      { key: 'lr', value: '0.01' },
      { key: 'epochs', value: '3' },
    ],
    metrics: [0.9, 0.5, 0.3].map((value, step) => ({ key: 'loss', value, step })),
  });
  const logged = await tracker.logArtifact(runId, artifact.path, artifact.content);
  await tracker.updateRun({ runId, status: 'FINISHED' });

  // Read back from S3 through the platform's own ArtifactStore: the same bytes MLflow received.
  const key = artifactKeyInBucket(settings, run.info.artifactUri, artifact.path);
  const { info, body } = await store.get(key);
  const hash = createHash('sha256');
  for await (const chunk of body) hash.update(chunk as Buffer);
  const sha256 = hash.digest('hex');
  if (sha256 !== logged.sha256)
    throw new Error(`s3 object ${store.uri(key)} hashes to ${sha256}, not the logged ${logged.sha256}`);
  return { experimentId, runId, artifactPath: artifact.path, key, s3Uri: store.uri(key), size: info.size, sha256 };
}

async function main(): Promise<void> {
  const settings = mlflowS3SettingsFromEnv();
  const dataDir = await mkdtemp(join(tmpdir(), 'mlplane-mlflow-s3-'));
  const platform = createMlflowS3Platform(settings, dataDir);
  try {
    await platform.start();
    const content = Buffer.from(JSON.stringify({ model: 'fraud', weights: [0.1, 0.2, 0.3] }));
    const run = await logRunWithArtifact(platform, settings, `mlflow-s3-example-${Date.now()}`, {
      path: 'model/model.json',
      content,
    });
    console.log(JSON.stringify(run));
  } finally {
    await platform.stop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

// Run when executed as a script, not when imported.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(`mlflow-s3-platform: ${(err as Error).message}`);
    process.exit(1);
  });
}
