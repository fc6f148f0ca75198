// A server lost in the middle of a 256 MiB upload in parts, on a private versitygw (own port and data dir): the put
// fails with UnavailableError, nothing of the object is visible, and the same put succeeds once the server is back.
import { createHash } from 'node:crypto';
import { NotFoundError, UnavailableError } from '@mlplane/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ArtifactStore } from '../src/s3-artifact-store.js';
import { type PrivateS3, startPrivateS3 } from './private-s3.js';

const MiB = 1024 * 1024;
const TOTAL = 256 * MiB;
const STOP_AFTER = 64 * MiB;

/** 256 MiB made on the fly from a counter (cheap, and the same bytes on every call), hashed as it goes. */
function generated(onChunk?: (produced: number) => Promise<void>) {
  const result = { sha256: '', size: 0 };
  async function* body() {
    const hash = createHash('sha256');
    const chunk = Buffer.alloc(MiB);
    for (let i = 0; i < TOTAL / MiB; i++) {
      chunk.fill(i % 251);
      chunk.writeUInt32BE(i, 0);
      await onChunk?.(result.size);
      hash.update(chunk);
      result.size += chunk.length;
      yield Buffer.from(chunk);
    }
    result.sha256 = hash.digest('hex');
  }
  return { body: body(), result };
}

/** Every error in the cause chain, outermost first. */
function causes(err: unknown): unknown[] {
  const out: unknown[] = [];
  for (let e = err; e && out.length < 10; e = (e as { cause?: unknown }).cause) out.push(e);
  return out;
}

describe('S3ArtifactStore when the server is lost mid-upload', () => {
  let s3: PrivateS3;
  let store: S3ArtifactStore;

  beforeAll(async () => {
    s3 = await startPrivateS3();
    store = await S3ArtifactStore.connect(
      s3.config({
        prefix: 'fault/',
        partSizeMiB: 8,
        concurrency: 4,
        maxAttempts: 3,
        connectTimeoutMs: 1_000,
        // A request the dying server accepted but never answers fails in seconds, not the default two minutes.
        socketTimeoutMs: 15_000,
      }),
    );
  }, 600_000);

  afterAll(async () => {
    store?.close();
    await s3?.down();
  });

  it('fails with UnavailableError, shows nothing, and a retry after restart stores the object', {
    timeout: 300_000,
  }, async () => {
    let stoppedAt: number | undefined;
    const first = generated(async (produced) => {
      if (stoppedAt === undefined && produced >= STOP_AFTER) {
        stoppedAt = produced;
        await s3.stop();
      }
    });
    const err = await store.put('model.bin', first.body, { contentType: 'application/x-model' }).then(
      () => undefined,
      (e: unknown) => e,
    );

    // The outage was met: the server went away mid-body, and the SDK's retries ran into it.
    expect(stoppedAt).toBeGreaterThanOrEqual(STOP_AFTER);
    expect(stoppedAt).toBeLessThan(TOTAL);
    expect(err).toBeInstanceOf(UnavailableError);
    const message = (err as Error).message;
    expect(message).toContain(`bucket '${s3.env.MLPLANE_S3_BUCKET}' at ${s3.env.MLPLANE_S3_ENDPOINT}`);
    const network = causes(err).find((e) =>
      /^(ECONNREFUSED|ECONNRESET|EPIPE)$/.test(String((e as { code?: string })?.code)),
    );
    expect(network, `a connection error in the cause chain of: ${message}`).toBeDefined();
    expect(message).toMatch(/after 3 attempts/);

    await s3.start();
    // Nothing of the object is visible: no key, no listing entry.
    await expect(store.head('model.bin')).rejects.toBeInstanceOf(NotFoundError);
    expect((await store.list({})).items).toEqual([]);
    // With the server gone the upload could not be aborted: the error names it, and it is the only one left.
    const leftover = /multipart upload (\S+) could not be removed/.exec(message)?.[1];
    const open = await store.listMultipartUploads({});
    expect(open.items.map((u) => u.uploadId)).toEqual(leftover ? [leftover] : []);
    for (const upload of open.items) await store.abortMultipartUpload(upload);
    expect((await store.listMultipartUploads({})).items).toEqual([]);

    // The same put, retried against the restarted server, stores the whole object.
    const retry = generated();
    const info = await store.put('model.bin', retry.body, { contentType: 'application/x-model' });
    expect(info).toMatchObject({ size: TOTAL, sha256: retry.result.sha256 });
    expect(retry.result.sha256).not.toBe('');
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of (await store.get('model.bin')).body) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    expect({ size, sha256: hash.digest('hex') }).toEqual({ size: TOTAL, sha256: retry.result.sha256 });
    expect((await store.head('model.bin')).sha256).toBe(retry.result.sha256);
    expect((await store.listMultipartUploads({})).items).toEqual([]);
  });
});
