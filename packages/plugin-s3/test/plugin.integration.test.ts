// s3Plugin on a real platform: it replaces the embedded artifact store, takes its secret from the SecretStore
// through a `${secret:...}` reference, and a wrong bucket fails the store's creation with a message naming it.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { artifactStoreRef, type Platform, secretStoreRef } from '@mlplane/core';
import { createPlatform } from '@mlplane/defaults';
import { afterEach, describe, expect, it } from 'vitest';
import { s3Plugin } from '../src/index.js';
import { S3ArtifactStore } from '../src/s3-artifact-store.js';
import { peerConfig } from './peer.js';

describe('s3Plugin', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function dataDir() {
    const dir = await mkdtemp(join(tmpdir(), 'mlplane-s3-plugin-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    return dir;
  }

  function platform(dir: string, masterKey: string, s3: Record<string, unknown> | undefined): Platform {
    return createPlatform({
      plugins: s3 ? [s3Plugin()] : [],
      config: {
        platform: { signals: [] },
        embedded: { dataDir: dir, secrets: { masterKey } },
        ...(s3 ? { s3 } : {}),
      },
      log: { level: 'silent' },
    });
  }

  it('provides the ArtifactStore, with credentials from the SecretStore', async () => {
    const dir = await dataDir();
    const masterKey = randomBytes(32).toString('base64');
    const { credentials, ...config } = peerConfig();
    // The secret is stored first, as an operator would, then referenced from the config.
    const setup = platform(dir, masterKey, undefined);
    await setup.start();
    await (await setup.get(secretStoreRef)).set!('s3-secret-key', credentials!.secretAccessKey);
    await setup.stop();

    const p = platform(dir, masterKey, {
      ...config,
      credentials: { accessKeyId: credentials!.accessKeyId, secretAccessKey: '${secret:s3-secret-key}' },
    });
    await p.start();
    cleanups.push(() => p.stop());
    const store = await p.get(artifactStoreRef);
    expect(store).toBeInstanceOf(S3ArtifactStore);
    expect(store.uri('a/b')).toBe(`s3://${config.bucket}/${config.prefix}a/b`);
    await store.put('wired.txt', 'through the platform');
    expect((await store.head('wired.txt')).size).toBe(20);
    await store.delete('wired.txt');
  });

  it('fails to create the store naming the plugin, the bucket and the endpoint when the bucket is missing', async () => {
    const dir = await dataDir();
    const config = peerConfig({ bucket: 'mlplane-missing-bucket' });
    const p = platform(dir, randomBytes(32).toString('base64'), config as Record<string, unknown>);
    await p.start();
    cleanups.push(() => p.stop());
    // The kernel creates a service when it is first asked for; that is when the bucket is checked.
    const err = (await p.get(artifactStoreRef).catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toContain("plugin 's3'");
    expect(err.message).toContain(`bucket 'mlplane-missing-bucket' at ${config.endpoint} does not exist`);
  });

  it('rejects an invalid config naming the field', async () => {
    const dir = await dataDir();
    const p = platform(dir, randomBytes(32).toString('base64'), { bucket: 'ok-bucket', partSizeMiB: 1 });
    const err = (await p.start().catch((e: unknown) => e)) as Error;
    expect(err.message).toContain('s3.partSizeMiB');
    await p.stop().catch(() => undefined);
  });
});
