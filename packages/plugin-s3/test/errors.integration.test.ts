// Each way an S3 store can be misconfigured or out of reach ends in the port's typed error, with a message that
// names the bucket and the endpoint to look at. The access-denied case needs accounts, so it runs on a private
// versitygw with its internal IAM service; the others only read from the shared peer.
import {
  NotFoundError,
  PermissionDeniedError,
  quoteArtifactKey,
  UnavailableError,
  ValidationError,
} from '@mlplane/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3ConfigInput } from '../src/config.js';
import { S3ArtifactStore } from '../src/s3-artifact-store.js';
import { peerConfig } from './peer.js';
import { freePort, type PrivateS3, startPrivateS3 } from './private-s3.js';

async function connectError(config: S3ConfigInput): Promise<Error> {
  const err = await S3ArtifactStore.connect(config).then(
    (store) => {
      store.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(err, 'connect should fail').toBeInstanceOf(Error);
  return err as Error;
}

describe('S3 failures as typed errors', () => {
  it('a missing bucket is NotFoundError naming bucket and endpoint', async () => {
    const config = peerConfig({ bucket: 'mlplane-no-such-bucket' });
    const err = await connectError(config);
    expect(err).toBeInstanceOf(NotFoundError);
    expect(err.message).toContain(`bucket 'mlplane-no-such-bucket' at ${config.endpoint} does not exist`);
  });

  it('a wrong secret or an unknown access key is PermissionDeniedError', async () => {
    const good = peerConfig();
    for (const credentials of [
      { accessKeyId: good.credentials!.accessKeyId, secretAccessKey: 'not-the-secret' },
      { accessKeyId: 'nobody-has-this-key', secretAccessKey: 'whatever-secret' },
    ]) {
      const err = await connectError({ ...good, credentials });
      expect(err).toBeInstanceOf(PermissionDeniedError);
      expect(err.message).toContain(`bucket '${good.bucket}' at ${good.endpoint} rejected the credentials`);
      // The secret never appears in a message.
      expect(err.message).not.toContain(credentials.secretAccessKey);
    }
  });

  it('an unreachable endpoint is UnavailableError after the configured attempts', async () => {
    const endpoint = `http://127.0.0.1:${await freePort()}`;
    const err = await connectError(peerConfig({ endpoint, maxAttempts: 3, connectTimeoutMs: 1_000 }));
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err.message).toContain(`at ${endpoint} is unavailable`);
    expect(err.message).toContain('after 3 attempts');
    expect(err.message).toContain('ECONNREFUSED');
    // The retries were the SDK's: its metadata on the cause counts them.
    expect((err.cause as { $metadata?: { attempts?: number } }).$metadata?.attempts).toBe(3);
  });

  it('a missing key is NotFoundError naming key, bucket and endpoint', async () => {
    const config = peerConfig();
    const store = await S3ArtifactStore.connect(config);
    try {
      for (const call of [() => store.get('no/such/key'), () => store.head('no/such/key')]) {
        const err = (await call().catch((e: unknown) => e)) as Error;
        expect(err).toBeInstanceOf(NotFoundError);
        expect(err.message).toBe(
          `artifact ${quoteArtifactKey('no/such/key')} does not exist (bucket '${config.bucket}' at ${config.endpoint})`,
        );
      }
      await expect(store.copy('no/such/key', 'elsewhere')).rejects.toBeInstanceOf(NotFoundError);
    } finally {
      store.close();
    }
  });

  it("uses the SDK's default credential chain when the config has none", async () => {
    const { credentials, ...config } = peerConfig();
    const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
    process.env.AWS_ACCESS_KEY_ID = credentials!.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = credentials!.secretAccessKey;
    try {
      const store = await S3ArtifactStore.connect(config);
      try {
        await store.put('from-env-credentials.txt', 'ok');
        expect(await store.exists('from-env-credentials.txt')).toBe(true);
        await store.delete('from-env-credentials.txt');
      } finally {
        store.close();
      }
    } finally {
      for (const [name, value] of [
        ['AWS_ACCESS_KEY_ID', saved.id],
        ['AWS_SECRET_ACCESS_KEY', saved.secret],
      ] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });

  it('rejects a bad config before any request, naming the field', () => {
    expect(() => new S3ArtifactStore({ bucket: 'Not_A_Bucket' })).toThrow(ValidationError);
    const err = (() => {
      try {
        new S3ArtifactStore({ bucket: 'fine-bucket', prefix: '/absolute/' });
      } catch (e) {
        return e as ValidationError;
      }
    })();
    expect(err?.field).toBe('prefix');
  });
});

describe('access denied, on a private versitygw with accounts', () => {
  let s3: PrivateS3;
  beforeAll(async () => {
    s3 = await startPrivateS3({ iam: true });
    await s3.admin('create-user', '--access', 'reader', '--secret', 'reader-secret-1234', '--role', 'user');
  }, 600_000);
  afterAll(async () => {
    await s3?.down();
  });

  it('an account without access to the bucket gets PermissionDeniedError naming bucket and endpoint', async () => {
    const config = s3.config({ credentials: { accessKeyId: 'reader', secretAccessKey: 'reader-secret-1234' } });
    const err = await connectError(config);
    expect(err).toBeInstanceOf(PermissionDeniedError);
    expect(err.message).toContain(`bucket '${config.bucket}' at ${config.endpoint} denied`);
    // The root account of the same server is let in, so the denial is about the account.
    const root = await S3ArtifactStore.connect(s3.config());
    root.close();
  });
});
