// examples/src/mlflow-s3-platform.ts run as a script against the peers, as its comment tells a user to run it; what
// it prints is checked against S3 and MLflow directly.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DeleteObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { artifactKeyInBucket, type LoggedRun, mlflowS3SettingsFromEnv } from '../src/mlflow-s3-platform.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const script = fileURLToPath(new URL('../src/mlflow-s3-platform.ts', import.meta.url));

describe('the mlflow-s3-platform example', () => {
  it('logs a run whose artifact lands in the S3 bucket and prints where', { timeout: 120_000 }, async () => {
    const settings = mlflowS3SettingsFromEnv();
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--conditions=@mlplane/source', '--import', 'tsx', script],
      { cwd: root, env: process.env, timeout: 100_000 },
    );
    const run = JSON.parse(stdout.trim().split('\n').at(-1)!) as LoggedRun;
    const s3 = new S3Client({
      endpoint: settings.s3.endpoint!,
      region: settings.s3.region!,
      forcePathStyle: true,
      credentials: settings.s3.credentials!,
    });
    try {
      expect(run.s3Uri).toBe(`s3://${settings.s3.bucket}/${run.key}`);
      expect(run.s3Uri.startsWith(`${settings.mlflowArtifactsUri}/${run.experimentId}/${run.runId}/artifacts/`)).toBe(
        true,
      );
      // The object is in the bucket with the printed size.
      const head = await s3.send(new HeadObjectCommand({ Bucket: settings.s3.bucket, Key: run.key }));
      expect(head.ContentLength).toBe(run.size);
      // MLflow lists it under the run.
      const dir = run.artifactPath.split('/').slice(0, -1).join('/');
      const res = await fetch(
        `${settings.trackingUri}/api/2.0/mlflow/artifacts/list?${new URLSearchParams({ run_id: run.runId, path: dir })}`,
      );
      const listed = (await res.json()) as { files?: { path: string; file_size?: number }[] };
      expect(listed.files).toContainEqual({ path: run.artifactPath, is_dir: false, file_size: run.size });
    } finally {
      await s3.send(new DeleteObjectCommand({ Bucket: settings.s3.bucket, Key: run.key }));
      s3.destroy();
    }
  });

  it('refuses an MLflow artifact destination outside the ArtifactStore bucket, naming both', () => {
    const settings = { ...mlflowS3SettingsFromEnv(), mlflowArtifactsUri: 's3://other-bucket/mlflow' };
    expect(() => artifactKeyInBucket(settings, 'mlflow-artifacts:/1/abc/artifacts', 'm.bin')).toThrow(
      `MLflow stores its artifacts at 's3://other-bucket/mlflow', not in the bucket '${settings.s3.bucket}'`,
    );
    expect(() => artifactKeyInBucket(mlflowS3SettingsFromEnv(), 's3://b/1/abc/artifacts', 'm.bin')).toThrow(
      "the run keeps its artifacts at 's3://b/1/abc/artifacts', not behind MLflow's proxy",
    );
  });
});
