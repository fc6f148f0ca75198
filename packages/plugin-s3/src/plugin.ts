import { artifactStoreRef, definePlugin } from '@mlplane/core';
import { s3ConfigSchema } from './config.js';
import { S3ArtifactStore } from './s3-artifact-store.js';

/**
 * The ArtifactStore on any S3-compatible object store (AWS S3, versitygw, SeaweedFS, Ceph RGW...). It replaces the
 * embedded local store; the tracker and registry keep their artifacts there unchanged. At start the store checks
 * that the bucket answers with these credentials, so a wrong bucket, endpoint or key fails the start with a message
 * naming them.
 */
export const s3Plugin = definePlugin({
  id: 's3',
  description: 'ArtifactStore on an S3-compatible object store',
  configSchema: s3ConfigSchema,
  register(env) {
    env.provide(artifactStoreRef, {
      factory: ({ config }) => S3ArtifactStore.connect(config),
      dispose: (store) => store.close(),
    });
  },
});
