// The SDK's retry strategy, as configured by the plugin, on throttling and server errors: a proxy in front of the
// S3 peer answers the first uploads with 503 SlowDown or 500 InternalError (as S3 does under load) and forwards
// everything else unchanged, so the retried requests reach the real server.
import { createServer, request, type Server } from 'node:http';
import { UnavailableError } from '@mlplane/core';
import { afterEach, describe, expect, it } from 'vitest';
import { S3ArtifactStore } from '../src/s3-artifact-store.js';
import { peerConfig, removeAll } from './peer.js';

interface FaultyProxy {
  readonly endpoint: string;
  /** Requests answered with the injected error, and requests forwarded, per method. */
  readonly counts: { failed: number; forwarded: Record<string, number> };
  close(): Promise<void>;
}

async function faultyProxy(target: string, failPuts: number, status: 500 | 503): Promise<FaultyProxy> {
  const upstream = new URL(target);
  const counts = { failed: 0, forwarded: {} as Record<string, number> };
  const code = status === 503 ? 'SlowDown' : 'InternalError';
  const server: Server = createServer((req, res) => {
    if (req.method === 'PUT' && counts.failed < failPuts) {
      counts.failed++;
      req.resume();
      req.on('end', () => {
        res.writeHead(status, { 'content-type': 'application/xml' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected</Message></Error>`);
      });
      return;
    }
    counts.forwarded[req.method!] = (counts.forwarded[req.method!] ?? 0) + 1;
    // Headers go through unchanged (Host included): the signature covers them.
    const forward = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', (err) => res.destroy(err));
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    counts,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('retries through the SDK retry strategy', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function setup(failPuts: number, status: 500 | 503, maxAttempts: number) {
    const direct = peerConfig();
    const proxy = await faultyProxy(direct.endpoint!, failPuts, status);
    cleanups.push(() => proxy.close());
    const store = await S3ArtifactStore.connect({ ...direct, endpoint: proxy.endpoint, maxAttempts });
    cleanups.push(() => removeAll(store));
    return { store, proxy };
  }

  it('retries a throttled upload (503 SlowDown) until it goes through', async () => {
    const { store, proxy } = await setup(2, 503, 4);
    const info = await store.put('throttled.txt', 'eventually stored');
    expect(proxy.counts.failed).toBe(2);
    expect(proxy.counts.forwarded.PUT).toBe(1);
    expect((await store.head('throttled.txt')).sha256).toBe(info.sha256);
  });

  it('retries 5xx answers and gives up with UnavailableError after maxAttempts', async () => {
    const { store, proxy } = await setup(100, 500, 3);
    const err = (await store.put('failing.txt', 'never stored').catch((e: unknown) => e)) as Error;
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err.message).toContain('after 3 attempts');
    expect(err.message).toContain('InternalError');
    expect(proxy.counts.failed).toBe(3);
    expect(proxy.counts.forwarded.PUT).toBeUndefined();
  });
});
