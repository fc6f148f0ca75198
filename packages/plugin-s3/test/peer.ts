// Connection to the S3 peer (`scripts/peers up s3`, then `eval "$(scripts/peers env)"`) and cleanup helpers.
import { randomBytes } from 'node:crypto';
import type { S3ConfigInput } from '../src/config.js';
import type { S3ArtifactStore } from '../src/s3-artifact-store.js';

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run scripts/peers up s3, then eval "$(scripts/peers env)"`);
  return value;
}

/** The plugin config for the shared S3 peer; each caller gets its own key prefix. */
export function peerConfig(overrides: Partial<S3ConfigInput> = {}): S3ConfigInput {
  return {
    bucket: requireEnv('MLPLANE_S3_BUCKET'),
    endpoint: requireEnv('MLPLANE_S3_ENDPOINT'),
    region: requireEnv('MLPLANE_S3_REGION'),
    forcePathStyle: true,
    credentials: {
      accessKeyId: requireEnv('MLPLANE_S3_ACCESS_KEY'),
      secretAccessKey: requireEnv('MLPLANE_S3_SECRET_KEY'),
    },
    prefix: `mlplane-it-${randomBytes(4).toString('hex')}/`,
    ...overrides,
  };
}

/** Removes every object and open upload under the store's prefix, then closes it. */
export async function removeAll(store: S3ArtifactStore): Promise<void> {
  try {
    for (;;) {
      const page = await store.list({});
      if (page.items.length > 0) await store.deleteMany(page.items.map((i) => i.key));
      if (!page.nextPageToken && page.items.length === 0) break;
    }
    for (;;) {
      const uploads = await store.listMultipartUploads({});
      for (const upload of uploads.items) await store.abortMultipartUpload(upload);
      if (!uploads.nextPageToken) break;
    }
  } finally {
    store.close();
  }
}
