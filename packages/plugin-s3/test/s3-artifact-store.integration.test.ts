// What the S3 adapter does beyond the port's contract, checked on the S3 peer with the SDK's own view of the bucket:
// part sizes as the server received them, no parts left after a failed upload, where the sha256 is recorded.
import { createHash } from 'node:crypto';
import {
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { ValidationError } from '@mlplane/core';
import { afterEach, describe, expect, it } from 'vitest';
import type { S3ConfigInput } from '../src/config.js';
import { S3ArtifactStore, SHA256_METADATA } from '../src/s3-artifact-store.js';
import { peerConfig, removeAll } from './peer.js';

const MiB = 1024 * 1024;
const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest('hex');
const b64 = (hex: string) => Buffer.from(hex, 'hex').toString('base64');

describe('S3ArtifactStore on the S3 peer', () => {
  const stores: S3ArtifactStore[] = [];
  afterEach(async () => {
    await Promise.all(stores.splice(0).map(removeAll));
  });

  async function open(overrides: Partial<S3ConfigInput> = {}) {
    const config = peerConfig(overrides);
    const store = await S3ArtifactStore.connect(config);
    stores.push(store);
    return { store, client: store.client as S3Client, bucket: config.bucket, prefix: config.prefix! };
  }

  /** Open uploads under the store's prefix, as the server lists them. */
  async function openUploads(client: S3Client, bucket: string, prefix: string) {
    const listed = await client.send(new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: prefix }));
    return listed.Uploads ?? [];
  }

  it('sends parts of the configured size, as the server records them', { timeout: 120_000 }, async () => {
    const { store, client, bucket, prefix } = await open({ partSizeMiB: 6, concurrency: 2 });
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    // Two full parts and a 2 MiB tail; the body pauses before its last MiB so the open upload can be inspected
    // (lib-storage hands a part over once it holds more than a part's worth).
    async function* body() {
      for (let i = 0; i < 13; i++) yield Buffer.alloc(MiB, i);
      await held;
      yield Buffer.alloc(MiB, 99);
    }
    const putting = store.put('parts.bin', body());
    let parts: { PartNumber?: number; Size?: number }[] = [];
    for (let i = 0; i < 200 && parts.length < 2; i++) {
      const [upload] = await openUploads(client, bucket, `${prefix}parts.bin`);
      if (upload) {
        const listed = await client.send(
          new ListPartsCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }),
        );
        parts = listed.Parts ?? [];
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(parts.map((p) => [p.PartNumber, p.Size])).toEqual([
      [1, 6 * MiB],
      [2, 6 * MiB],
    ]);
    release();
    const info = await putting;
    expect(info.size).toBe(14 * MiB);
    expect(info.etag).toMatch(/-3"$/);
    const first = await client.send(
      new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}parts.bin`, PartNumber: 1 }),
    );
    expect(first.ContentLength).toBe(6 * MiB);
    expect(await openUploads(client, bucket, prefix)).toEqual([]);
  });

  it('aborts a failed upload in parts: no parts stay on the server', { timeout: 120_000 }, async () => {
    const { store, client, bucket, prefix } = await open({ partSizeMiB: 5 });
    let sent = 0;
    async function* failing() {
      for (let i = 0; i < 17; i++) {
        sent += MiB;
        yield Buffer.alloc(MiB, i);
      }
      throw new Error('the training job crashed while writing');
    }
    await expect(store.put('broken.bin', failing())).rejects.toThrow('the training job crashed while writing');
    expect(sent).toBe(17 * MiB);
    expect(await openUploads(client, bucket, prefix)).toEqual([]);
    expect(await store.exists('broken.bin')).toBe(false);

    // A sha256 mismatch found at the end of a body in parts aborts the same way, before completing.
    async function* body() {
      for (let i = 0; i < 12; i++) yield Buffer.alloc(MiB, i);
    }
    const err = await store.put('checked.bin', body(), { expectedSha256: sha256('other') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).field).toBe('expectedSha256');
    expect(await openUploads(client, bucket, prefix)).toEqual([]);
    expect(await store.exists('checked.bin')).toBe(false);
  });

  it('lets S3 itself refuse a one-request body that differs from expectedSha256', async () => {
    const { store } = await open();
    const err = await store.put('small.txt', 'actual', { expectedSha256: sha256('expected') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toContain(`hashes to sha256 ${sha256('actual')}, not the expected`);
    // The server's verdict is the cause: the store sent the expected hash as x-amz-checksum-sha256.
    expect(((err as Error).cause as { name?: string }).name).toBe('BadDigest');
    expect(await store.exists('small.txt')).toBe(false);
  });

  it("records the sha256 in S3's own checksum for one request and in metadata for parts", {
    timeout: 60_000,
  }, async () => {
    const { store, client, bucket, prefix } = await open({ partSizeMiB: 5 });
    const small = await store.put('small.txt', 'small body');
    const head = await client.send(
      new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}small.txt`, ChecksumMode: 'ENABLED' }),
    );
    expect(head.ChecksumSHA256).toBe(b64(small.sha256));
    expect(head.Metadata?.[SHA256_METADATA]).toBeUndefined();

    const big = Buffer.alloc(11 * MiB, 7);
    const large = await store.put('large.bin', big, { metadata: { run: 'r-1' } });
    expect(large.sha256).toBe(sha256(big));
    const raw = await client.send(
      new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}large.bin`, ChecksumMode: 'ENABLED' }),
    );
    expect(raw.ChecksumType).toBe('COMPOSITE');
    expect(raw.Metadata).toEqual({ run: 'r-1', [SHA256_METADATA]: sha256(big) });
    // The store's own metadata stays out of what callers see.
    expect((await store.head('large.bin')).metadata).toEqual({ run: 'r-1' });

    // With expectedSha256 the hash goes in at the start of the upload: no copy is needed afterwards.
    const known = await store.put('known.bin', big, { expectedSha256: sha256(big) });
    expect(known.etag).toMatch(/-3"$/);
    const knownHead = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: `${prefix}known.bin` }));
    expect(knownHead.Metadata?.[SHA256_METADATA]).toBe(sha256(big));
  });

  it('copies above the multipart copy threshold with UploadPartCopy, keeping content and sha256', {
    timeout: 60_000,
  }, async () => {
    const { store, client, bucket, prefix } = await open({ partSizeMiB: 5, multipartCopyThresholdMiB: 5 });
    const big = Buffer.alloc(12 * MiB, 3);
    big.write('a marker in the middle', 6 * MiB);
    await store.put('weird key/+ (1)!.bin', big, { contentType: 'application/x-model', metadata: { run: 'r-2' } });
    const copied = await store.copy('weird key/+ (1)!.bin', 'copies/model.bin');
    expect(copied).toMatchObject({ size: 12 * MiB, sha256: sha256(big), contentType: 'application/x-model' });
    expect(copied.etag).toMatch(/-3"$/);
    const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: `${prefix}copies/model.bin` }));
    expect(sha256(Buffer.from(await got.Body!.transformToByteArray()))).toBe(sha256(big));
    expect(await store.head('copies/model.bin')).toMatchObject({ metadata: { run: 'r-2' }, sha256: sha256(big) });
    expect(await openUploads(client, bucket, prefix)).toEqual([]);
  });

  it('names objects s3://bucket/prefix/key', async () => {
    const { store, bucket, prefix } = await open();
    expect(store.uri('models/fraud/3/model.onnx')).toBe(`s3://${bucket}/${prefix}models/fraud/3/model.onnx`);
    expect(store.capabilities.maxKeyBytes).toBe(1024 - Buffer.byteLength(prefix));
  });
});
