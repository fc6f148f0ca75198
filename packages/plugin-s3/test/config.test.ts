// The plugin's config schema and what the store derives from it, without a server.
import { describe, expect, it } from 'vitest';
import { s3ConfigSchema } from '../src/config.js';
import { S3ArtifactStore } from '../src/s3-artifact-store.js';

describe('s3 config', () => {
  it('applies defaults', () => {
    expect(s3ConfigSchema.parse({ bucket: 'models' })).toEqual({
      bucket: 'models',
      prefix: '',
      region: 'us-east-1',
      forcePathStyle: false,
      partSizeMiB: 8,
      concurrency: 4,
      multipartCopyThresholdMiB: 5120,
      maxAttempts: 4,
      retryMode: 'standard',
      connectTimeoutMs: 5_000,
      socketTimeoutMs: 120_000,
    });
  });

  it.each([
    [{ bucket: 'A_b' }, 'bucket'],
    [{ bucket: 'ab' }, 'bucket'],
    [{ bucket: 'models', prefix: 'no-slash' }, 'prefix'],
    [{ bucket: 'models', prefix: '/abs/' }, 'prefix'],
    [{ bucket: 'models', prefix: 'a//b/' }, 'prefix'],
    [{ bucket: 'models', prefix: 'a/../' }, 'prefix'],
    [{ bucket: 'models', endpoint: 'ftp://host' }, 'endpoint'],
    [{ bucket: 'models', partSizeMiB: 4 }, 'partSizeMiB'],
    [{ bucket: 'models', partSizeMiB: 5121 }, 'partSizeMiB'],
    [{ bucket: 'models', concurrency: 0 }, 'concurrency'],
    [{ bucket: 'models', retryMode: 'legacy' }, 'retryMode'],
    [{ bucket: 'models', credentials: { accessKeyId: 'a' } }, 'credentials'],
  ])('rejects %j at %s', (config, field) => {
    const result = s3ConfigSchema.safeParse(config);
    expect(result.success).toBe(false);
    expect(result.error!.issues[0]!.path[0]).toBe(field);
  });

  it('gives s3:// URIs under the prefix and shortens the key limit by it, without a request', () => {
    const store = new S3ArtifactStore({ bucket: 'models', prefix: 'team-a/artifacts/' });
    try {
      expect(store.uri('fraud/3/model.onnx')).toBe('s3://models/team-a/artifacts/fraud/3/model.onnx');
      expect(store.capabilities).toEqual({
        presignedUrls: true,
        multipart: true,
        rangeReads: true,
        deduplicates: false,
        maxKeyBytes: 1024 - 'team-a/artifacts/'.length,
      });
      expect(() => store.uri('k'.repeat(1024 - 'team-a/artifacts/'.length + 1))).toThrow(/1024 less its key prefix/);
    } finally {
      store.close();
    }
  });
});
