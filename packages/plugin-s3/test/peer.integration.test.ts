// Checks the S3 peer (`scripts/peers up s3`): a real S3-compatible server (versitygw) reached with the AWS SDK.
import { createHash, randomBytes } from 'node:crypto';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run scripts/peers up s3, then eval "$(scripts/peers env)"`);
  return value;
}

describe('s3 peer', () => {
  let s3: S3Client;
  let bucket: string;
  const prefix = `mlplane-it-${Date.now().toString(36)}/`;
  const keys: string[] = [];

  beforeAll(() => {
    s3 = new S3Client({
      endpoint: requireEnv('MLPLANE_S3_ENDPOINT'),
      region: requireEnv('MLPLANE_S3_REGION'),
      credentials: {
        accessKeyId: requireEnv('MLPLANE_S3_ACCESS_KEY'),
        secretAccessKey: requireEnv('MLPLANE_S3_SECRET_KEY'),
      },
      forcePathStyle: true,
    });
    bucket = requireEnv('MLPLANE_S3_BUCKET');
  });

  afterAll(async () => {
    for (const Key of keys) await s3?.send(new DeleteObjectCommand({ Bucket: bucket, Key }));
    s3?.destroy();
  });

  it('has the bucket that the peer created', async () => {
    const head = await s3.send(new HeadBucketCommand({ Bucket: bucket }));
    expect(head.$metadata.httpStatusCode).toBe(200);
  });

  it('puts an object with a SHA-256 checksum and gets the same bytes back', async () => {
    const Key = `${prefix}model.bin`;
    keys.push(Key);
    const body = randomBytes(256 * 1024 + 7);
    const sha256 = createHash('sha256').update(body).digest('base64');
    const md5 = createHash('md5').update(body).digest('hex');

    const put = await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key,
        Body: body,
        ContentType: 'application/octet-stream',
        ChecksumAlgorithm: 'SHA256',
        Metadata: { stage: 'test' },
      }),
    );
    expect(put.ChecksumSHA256).toBe(sha256);
    expect(put.ETag).toBe(`"${md5}"`);

    const got = await s3.send(new GetObjectCommand({ Bucket: bucket, Key, ChecksumMode: 'ENABLED' }));
    const bytes = Buffer.from(await got.Body!.transformToByteArray());
    expect(bytes.equals(body)).toBe(true);
    expect(got.ChecksumSHA256).toBe(sha256);
    expect(got.ETag).toBe(`"${md5}"`);
    expect(got.ContentLength).toBe(body.length);
    expect(got.Metadata).toEqual({ stage: 'test' });
  });

  it('lists objects under a prefix', async () => {
    const Key = `${prefix}notes/readme.txt`;
    keys.push(Key);
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key, Body: 'hello' }));
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
    expect((listed.Contents ?? []).map((o) => o.Key).sort()).toEqual([`${prefix}model.bin`, Key]);
  });

  it('answers NoSuchKey for a missing object', async () => {
    await expect(s3.send(new GetObjectCommand({ Bucket: bucket, Key: `${prefix}missing` }))).rejects.toMatchObject({
      name: 'NoSuchKey',
    });
  });
});
