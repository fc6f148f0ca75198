import type { AddressInfo } from 'node:net';
import { createServer } from 'node:net';
import { ALL_PROJECTS, authorizerRef } from '@mlplane/core';
import { startTestPlatform, type TestPlatform } from '@mlplane/defaults/testing';
import { createApi, type ServedApi, serve, v1Routes } from '@mlplane/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, createClient, type MlplaneClient, ok, type Run } from '../src/index.js';

let platform: TestPlatform;
let served: ServedApi;
let client: MlplaneClient;
let adminToken: string;

beforeAll(async () => {
  platform = await startTestPlatform();
  const authorizer = await platform.get(authorizerRef);
  await authorizer.grant('admin', ALL_PROJECTS, 'admin');
  adminToken = (
    await authorizer.createToken({
      principal: await authorizer.getPrincipal('admin', 'user'),
      name: 'test',
      projects: [ALL_PROJECTS],
      roles: ['admin'],
      expiresAt: new Date(Date.now() + 3_600_000),
    })
  ).secret;
  served = await serve(await createApi(v1Routes, { platform, rateLimit: false }), { port: 0 });
  client = createClient({ url: served.url, token: adminToken });
});
afterAll(async () => {
  await served?.close(1000);
  await platform?.stop();
});

const project = { project: 'default' };

describe('createClient over real HTTP', () => {
  it('creates an experiment, logs a run and reads it back, typed from the OpenAPI document', async () => {
    const experiment = await ok(
      client.POST('/api/v1/projects/{project}/experiments', { params: { path: project }, body: { name: 'typed' } }),
    );
    expect(experiment.name).toBe('typed');
    const run = await ok(
      client.POST('/api/v1/projects/{project}/runs', {
        params: { path: project },
        body: { experimentId: experiment.id, name: 'r1' },
      }),
    );
    await ok(
      client.POST('/api/v1/projects/{project}/runs/{runId}/log-batch', {
        params: { path: { ...project, runId: run.info.id } },
        body: { metrics: [{ key: 'auc', value: 0.91, step: 1 }], params: [{ key: 'lr', value: '0.1' }] },
      }),
    );
    const read: Run = await ok(
      client.GET('/api/v1/projects/{project}/runs/{runId}', { params: { path: { ...project, runId: run.info.id } } }),
    );
    expect(read.data.params).toEqual({ lr: '0.1' });
    expect(read.data.metrics.auc?.value).toBe(0.91);
    const page = await ok(
      client.GET('/api/v1/projects/{project}/experiments', {
        params: { path: project, query: { filter: "name = 'typed'" } },
      }),
    );
    expect(page.items.map((e) => e.id)).toEqual([experiment.id]);
  });

  it('keeps the slashes of rest path parameters (artifact paths), encoding each segment', async () => {
    // Proxies in front of the API often refuse or rewrite an encoded slash (%2F), so the path goes as segments.
    const sent: string[] = [];
    const client = createClient({
      url: served.url,
      token: adminToken,
      fetch: (request) => {
        sent.push(request.url);
        return fetch(request);
      },
    });
    const experiment = await ok(
      client.POST('/api/v1/projects/{project}/experiments', { params: { path: project }, body: { name: 'files' } }),
    );
    const run = await ok(
      client.POST('/api/v1/projects/{project}/runs', {
        params: { path: project },
        body: { experimentId: experiment.id },
      }),
    );
    const path = { ...project, runId: run.info.id, path: 'eval/50% split/report #1.txt' };
    const stored = await ok(
      client.PUT('/api/v1/projects/{project}/runs/{runId}/artifacts/{path}', {
        params: { path },
        body: new TextEncoder().encode('auc 0.93'),
        bodySerializer: (bytes) => bytes,
        headers: { 'content-type': 'text/plain' },
      }),
    );
    expect(stored).toMatchObject({ path: 'eval/50% split/report #1.txt', size: 8 });
    const listed = await ok(
      client.GET('/api/v1/projects/{project}/runs/{runId}/artifacts', {
        params: { path: { ...project, runId: run.info.id }, query: { path: 'eval/50% split' } },
      }),
    );
    expect(listed.items.map((a) => a.path)).toEqual(['eval/50% split/report #1.txt']);
    const text = await ok(
      client.GET('/api/v1/projects/{project}/runs/{runId}/artifacts/{path}', { params: { path }, parseAs: 'text' }),
    );
    expect(text).toBe('auc 0.93');
    const encoded = `/runs/${run.info.id}/artifacts/eval/50%25%20split/report%20%231.txt`;
    expect(sent.filter((url) => url.endsWith(encoded))).toHaveLength(2);
  });

  it('rejects with an ApiError carrying the status, code, message and details', async () => {
    const missing = await client
      .GET('/api/v1/projects/{project}/experiments/{experimentId}', {
        params: { path: { ...project, experimentId: '999999' } },
      })
      .catch((err: unknown) => err);
    expect(missing).toBeInstanceOf(ApiError);
    expect(missing).toMatchObject({ status: 404, code: 'NOT_FOUND' });

    const invalid = await client
      // @ts-expect-error the typed body needs a string name: the server refuses it the same way
      .POST('/api/v1/projects/{project}/experiments', { params: { path: project }, body: { name: 42 } })
      .catch((err: unknown) => err);
    expect(invalid).toMatchObject({ status: 400, code: 'VALIDATION', details: { field: 'name' } });
    expect((invalid as ApiError).message).not.toBe('');

    const anonymous = createClient({ url: served.url });
    await expect(anonymous.GET('/api/v1/me')).rejects.toMatchObject({ status: 401, code: 'UNAUTHENTICATED' });
    const revoked = createClient({ url: served.url, token: 'mlp_not_a_token' });
    await expect(revoked.GET('/api/v1/me')).rejects.toMatchObject({ status: 401 });
  });

  it('reports an unreachable server as an ApiError with status 0', async () => {
    // A port that was free a moment ago: nothing listens there.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise((resolve) => probe.close(resolve));
    const nowhere = createClient({ url: `http://127.0.0.1:${port}`, token: adminToken });
    const err = await nowhere.GET('/api/v1/me').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 0, code: 'UNREACHABLE' });
    expect((err as Error).message).toMatch(
      new RegExp(`cannot reach the mlplane server at http://127.0.0.1:${port}: ECONNREFUSED`),
    );
  });

  it('keeps a proxy’s non-JSON error page as the status with its first line', async () => {
    const proxied = createClient({
      url: 'http://proxy.test',
      fetch: async () => new Response('<html>Bad Gateway</html>\n<body/>', { status: 502, statusText: 'Bad Gateway' }),
    });
    await expect(proxied.GET('/api/v1/me')).rejects.toMatchObject({
      status: 502,
      code: 'HTTP_502',
      message: 'the server answered 502 Bad Gateway: <html>Bad Gateway</html>',
    });
  });
});
