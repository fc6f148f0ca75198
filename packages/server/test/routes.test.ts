import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { ALL_PROJECTS, auditLogRef, authorizerRef, STAGE_POLICY, veto } from '@mlplane/core';
import { startTestPlatform } from '@mlplane/defaults/testing';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createApi, v1Routes } from '../src/index.js';
import { limitedBody } from '../src/routes/artifacts.js';
import { startTestApi, type TestApi } from './support.js';

let t: TestApi;
let server: Server;
let base: string;
beforeAll(async () => {
  t = await startTestApi();
  server = createServer(t.api.listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  await t?.[Symbol.asyncDispose]();
});

/** Sends `text` on a fresh socket and resolves with what the server answers first. */
function rawRequest(text: string): Promise<string> {
  const { port } = server.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text));
    let answer = '';
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
      if (answer.includes('\r\n\r\n') && answer.includes('}')) {
        socket.destroy();
        resolve(answer);
      }
    });
    socket.on('error', reject);
    socket.on('close', () => resolve(answer));
  });
}

async function newRun(project: string): Promise<{ experimentId: string; runId: string }> {
  const experiment = await t.call('POST', `/api/v1/projects/${project}/experiments`, {
    body: { name: `e-${Math.random().toString(36).slice(2)}` },
  });
  const run = await t.call('POST', `/api/v1/projects/${project}/runs`, {
    body: { experimentId: experiment.body.id },
  });
  return { experimentId: experiment.body.id, runId: run.body.info.id };
}

describe('run artifacts over HTTP', () => {
  it('streams an upload into the store and back with its content-length, paths with slashes included', async () => {
    const { runId } = await newRun('art');
    const bytes = Buffer.alloc(3 * 1024 * 1024 + 7, 'x');
    const sha = createHash('sha256').update(bytes).digest('hex');
    const path = 'model dir/weights/v1.bin';
    const url = `${base}/api/v1/projects/art/runs/${runId}/artifacts/${path.split('/').map(encodeURIComponent).join('/')}`;
    const put = await request(url, {
      method: 'PUT',
      headers: {
        authorization: `Bearer ${t.adminToken}`,
        'content-type': 'application/x-binary',
        'x-content-sha256': sha,
      },
      body: bytes,
    });
    expect(put.statusCode).toBe(201);
    expect(await put.body.json()).toMatchObject({ path, size: bytes.length, sha256: sha });

    const get = await request(url, { headers: { authorization: `Bearer ${t.adminToken}` } });
    expect(get.statusCode).toBe(200);
    expect(get.headers['content-length']).toBe(String(bytes.length));
    const back = Buffer.from(await get.body.arrayBuffer());
    expect(createHash('sha256').update(back).digest('hex')).toBe(sha);

    const root = await t.call('GET', `/api/v1/projects/art/runs/${runId}/artifacts`);
    expect(root.body.items).toEqual([{ path: 'model dir', isDir: true }]);
    const below = await t.call(
      'GET',
      `/api/v1/projects/art/runs/${runId}/artifacts?path=${encodeURIComponent('model dir/weights')}`,
    );
    expect(below.body.items).toEqual([{ path, isDir: false, size: bytes.length }]);
  });

  it('pages the listing, refuses a wrong sha256 and bad paths, and hides other projects’ runs', async () => {
    const { runId } = await newRun('art');
    for (const name of ['a.txt', 'b.txt', 'c.txt']) {
      const res = await t.call('PUT', `/api/v1/projects/art/runs/${runId}/artifacts/${name}`, { rawBody: name });
      expect(res.status).toBe(201);
    }
    const first = await t.call('GET', `/api/v1/projects/art/runs/${runId}/artifacts?maxResults=2`);
    expect(first.body.items.map((a: { path: string }) => a.path)).toEqual(['a.txt', 'b.txt']);
    const second = await t.call(
      'GET',
      `/api/v1/projects/art/runs/${runId}/artifacts?maxResults=2&pageToken=${encodeURIComponent(first.body.nextPageToken)}`,
    );
    expect(second.body.items.map((a: { path: string }) => a.path)).toEqual(['c.txt']);
    expect(second.body.nextPageToken).toBeUndefined();

    const wrong = await t.call('PUT', `/api/v1/projects/art/runs/${runId}/artifacts/a.txt`, {
      rawBody: 'changed',
      headers: { 'x-content-sha256': '0'.repeat(64) },
    });
    expect(wrong.status).toBe(400);
    expect(wrong.body.details.field).toBe('expectedSha256');
    expect((await t.call('GET', `/api/v1/projects/art/runs/${runId}/artifacts/a.txt`)).body).toBe('a.txt');

    // A '%' in a name travels encoded and comes back as itself.
    expect(
      (await t.call('PUT', `/api/v1/projects/art/runs/${runId}/artifacts/100%25%20done`, { rawBody: 'z' })).body.path,
    ).toBe('100% done');
    expect((await t.call('GET', `/api/v1/projects/art/runs/${runId}/artifacts/100%25%20done`)).body).toBe('z');
    // URLs resolve `..` themselves; an empty segment reaches the tracker, which refuses it.
    for (const bad of ['x//a.txt', 'x%2F%2Fa.txt']) {
      const refused = await t.call('GET', `/api/v1/projects/art/runs/${runId}/artifacts/${bad}`);
      expect(refused.status).toBe(400);
      expect(refused.body).toMatchObject({ code: 'VALIDATION', details: { field: 'path' } });
    }
    const missing = await t.call('GET', `/api/v1/projects/art/runs/${runId}/artifacts/nope.txt`);
    expect(missing.status).toBe(404);
    const elsewhere = await t.call('GET', `/api/v1/projects/other/runs/${runId}/artifacts/a.txt`);
    expect(elsewhere.status).toBe(404);
    expect(elsewhere.body.code).toBe('NOT_FOUND');
  });

  it('answers 413 for an upload over the declared limit before reading it', async () => {
    const { runId } = await newRun('art');
    // A raw request, since HTTP clients refuse to declare more bytes than they send.
    const head = await rawRequest(
      `PUT /api/v1/projects/art/runs/${runId}/artifacts/huge.bin HTTP/1.1\r\nHost: x\r\n` +
        `Authorization: Bearer ${t.adminToken}\r\nContent-Length: ${6 * 1024 ** 3}\r\n\r\ntiny`,
    );
    expect(head).toMatch(/^HTTP\/1\.1 413 /);
    expect(head).toContain('PAYLOAD_TOO_LARGE');
    const listed = await t.call('GET', `/api/v1/projects/art/runs/${runId}/artifacts`);
    expect(listed.body.items).toEqual([]);
  });
});

describe('streamed upload limit', () => {
  it('stops a body without a declared length once it passes the limit, and stores nothing', async () => {
    const { runId } = await newRun('art');
    let pulled = 0;
    const chunks = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled++;
        controller.enqueue(new Uint8Array(1024));
        if (pulled === 8) controller.close();
      },
    });
    const request = new Request('http://mlplane.test/upload', {
      method: 'PUT',
      body: chunks,
      duplex: 'half',
    } as RequestInit);
    const upload = t.api.services.tracker.logArtifact(runId, 'over.bin', limitedBody(request, 3000));
    await expect(upload).rejects.toMatchObject({ status: 413, code: 'PAYLOAD_TOO_LARGE' });
    // The store stopped reading soon after the limit rather than draining the whole body.
    expect(pulled).toBeLessThan(8);
    expect((await t.call('GET', `/api/v1/projects/art/runs/${runId}/artifacts`)).body.items).toEqual([]);
  });
});

describe('registered models', () => {
  it('registers versions, moves stages and aliases, keeps history and lineage, and audits the caller', async () => {
    const { runId } = await newRun('reg');
    const created = await t.call('POST', '/api/v1/projects/reg/models', {
      body: { name: 'fraud detector', description: 'd', tags: { team: 'risk' } },
    });
    expect(created.status).toBe(201);
    expect(created.body.tags).toEqual({ team: 'risk', 'mlplane.project': 'reg' });
    const m = `/api/v1/projects/reg/models/${encodeURIComponent('fraud detector')}`;
    const v1 = await t.call('POST', `${m}/versions`, { body: { source: `runs:/${runId}/model`, runId } });
    expect(v1.status).toBe(201);
    expect(v1.body).toMatchObject({ version: 1, stage: 'None', userId: 'admin', runId });
    const v2 = await t.call('POST', `${m}/versions`, { body: { source: 's3://bucket/model/2' } });
    expect(v2.body.version).toBe(2);

    const staged = await t.call('POST', `${m}/versions/1/stage`, { body: { stage: 'production', comment: 'go' } });
    expect(staged.body.stage).toBe('Production');
    const promoted = await t.call('POST', `${m}/versions/2/stage`, {
      body: { stage: 'Production', archiveExistingVersions: true },
    });
    expect(promoted.body.stage).toBe('Production');
    const history = await t.call('GET', `${m}/transitions`);
    expect(history.body.items.map((h: any) => [h.version, h.from, h.to])).toEqual([
      [1, 'None', 'Production'],
      [2, 'None', 'Production'],
      [1, 'Production', 'Archived'],
    ]);
    expect((await t.call('GET', `${m}/transitions?version=2`)).body.items).toHaveLength(1);

    expect((await t.call('PUT', `${m}/aliases/champion`, { body: { version: 2 } })).status).toBe(204);
    const byAlias = await t.call('GET', `${m}/aliases/champion`);
    expect(byAlias.body).toMatchObject({ version: 2, aliases: ['champion'] });
    expect((await t.call('PUT', `${m}/aliases/latest`, { body: { version: 2 } })).status).toBe(400);
    expect((await t.call('DELETE', `${m}/aliases/champion`)).status).toBe(204);
    expect((await t.call('GET', `${m}/aliases/champion`)).status).toBe(404);

    const lineage = await t.call('GET', `${m}/versions/1/lineage`);
    expect(lineage.body).toMatchObject({ version: 1, runId, run: { info: { id: runId } } });

    expect((await t.call('PUT', `${m}/versions/1/tags/quality`, { body: { value: 'ok' } })).status).toBe(204);
    expect((await t.call('GET', `${m}/versions/1`)).body.tags).toEqual({ quality: 'ok' });
    expect((await t.call('PUT', `${m}/tags/mlplane.project`, { body: { value: 'x' } })).status).toBe(400);
    const versions = await t.call('GET', `${m}/versions?maxResults=1`);
    expect(versions.body.items).toHaveLength(1);
    expect(versions.body.nextPageToken).toBeDefined();

    const audit = await t.platform.get(auditLogRef);
    await vi.waitFor(
      async () => {
        const entries = await audit.list({ action: 'model.*', maxResults: 100 });
        expect(entries.items.some((e) => e.actor === 'admin' && e.project === 'reg')).toBe(true);
      },
      { timeout: 10_000, interval: 100 },
    );
  });

  it('answers 409 VETOED with the policy’s reason when a promotion policy refuses, changing nothing', async () => {
    t.platform.hooks.model.beforePromote.tapPromise(
      { name: 'risk-review', stage: STAGE_POLICY },
      async (version, to) =>
        version.name === 'vetoed' && to === 'Production' ? veto('needs a risk review') : undefined,
    );
    await t.call('POST', '/api/v1/projects/reg/models', { body: { name: 'vetoed' } });
    await t.call('POST', '/api/v1/projects/reg/models/vetoed/versions', { body: { source: 's3://b/v' } });
    const refused = await t.call('POST', '/api/v1/projects/reg/models/vetoed/versions/1/stage', {
      body: { stage: 'Production' },
    });
    expect(refused.status).toBe(409);
    expect(refused.body.code).toBe('VETOED');
    expect(refused.body.message).toContain('needs a risk review');
    expect((await t.call('GET', '/api/v1/projects/reg/models/vetoed/versions/1')).body.stage).toBe('None');
    const alias = await t.call('PUT', '/api/v1/projects/reg/models/vetoed/aliases/prod', { body: { version: 1 } });
    expect(alias.status).toBe(204);
  });

  it('keeps models in their project, and follows renames and deletes', async () => {
    await t.call('POST', '/api/v1/projects/reg/models', { body: { name: 'churn' } });
    expect((await t.call('GET', '/api/v1/projects/other/models/churn')).status).toBe(404);
    const listed = await t.call('GET', '/api/v1/projects/other/models');
    expect(listed.body.items.map((x: { name: string }) => x.name)).not.toContain('churn');
    const own = await t.call('GET', `/api/v1/projects/reg/models?filter=${encodeURIComponent("name = 'churn'")}`);
    expect(own.body.items.map((x: { name: string }) => x.name)).toEqual(['churn']);

    const renamed = await t.call('PATCH', '/api/v1/projects/reg/models/churn', {
      body: { newName: 'churn-v2', description: 'renamed' },
    });
    expect(renamed.body).toMatchObject({ name: 'churn-v2', description: 'renamed' });
    // The old name is free: another project may take it, and the owner cache must not still say 'reg'.
    expect((await t.call('POST', '/api/v1/projects/other/models', { body: { name: 'churn' } })).status).toBe(201);
    expect((await t.call('GET', '/api/v1/projects/other/models/churn')).status).toBe(200);
    expect((await t.call('GET', '/api/v1/projects/reg/models/churn')).status).toBe(404);

    expect((await t.call('DELETE', '/api/v1/projects/other/models/churn')).status).toBe(204);
    expect((await t.call('POST', '/api/v1/projects/reg/models', { body: { name: 'churn' } })).status).toBe(201);
    expect((await t.call('GET', '/api/v1/projects/reg/models/churn')).status).toBe(200);
  });

  it('refuses a version pointing at another project’s run', async () => {
    const { runId } = await newRun('elsewhere');
    await t.call('POST', '/api/v1/projects/reg/models', { body: { name: 'borrowed' } });
    const res = await t.call('POST', '/api/v1/projects/reg/models/borrowed/versions', {
      body: { source: 's3://b/m', runId },
    });
    expect(res.status).toBe(404);
    const bySource = await t.call('POST', '/api/v1/projects/reg/models/borrowed/versions', {
      body: { source: `runs:/${runId}/model` },
    });
    expect(bySource.status).toBe(404);
    expect(bySource.body.message).toContain(runId);
  });
});

describe('audit, roles, grants and webhooks', () => {
  it('lists, anchors and verifies the audit log', async () => {
    const audit = await t.platform.get(auditLogRef);
    await vi.waitFor(async () => expect(await audit.head()).toBeDefined(), { timeout: 10_000, interval: 100 });
    const head = await t.call('GET', '/api/v1/audit/head');
    expect(head.body.head.seq).toBeGreaterThan(0);
    const verified = await t.call('POST', '/api/v1/audit/verify', { body: {} });
    expect(verified.body.ok).toBe(true);
    const page = await t.call('GET', '/api/v1/audit?order=asc&maxResults=2');
    expect(page.body.items.map((e: { seq: number }) => e.seq)).toEqual([1, 2]);
    const bad = await t.call('GET', '/api/v1/audit?from=yesterday');
    expect(bad.status).toBe(400);
    expect(bad.body.details.field).toBe('query.from');
  });

  it('defines roles and grants them without letting a grant exceed the granter', async () => {
    const defined = await t.call('PUT', '/api/v1/roles/reviewer', {
      body: { permissions: ['model.read', 'model.promote', 'role.write'], description: 'reviews' },
    });
    expect(defined.body).toMatchObject({ name: 'reviewer', builtIn: false });
    expect((await t.call('PUT', '/api/v1/roles/editor', { body: { permissions: ['model.read'] } })).status).toBe(409);
    const roles = await t.call('GET', '/api/v1/roles');
    expect(roles.body.items.map((r: { name: string }) => r.name)).toEqual(['viewer', 'editor', 'admin', 'reviewer']);

    expect((await t.call('PUT', '/api/v1/projects/p1/grants/carol/roles/reviewer')).status).toBe(204);
    const grants = await t.call('GET', '/api/v1/projects/p1/grants/carol');
    expect(grants.body).toMatchObject({ roles: ['reviewer'], everyProjectRoles: [] });

    // carol may write roles in p1, but not hand out editor, which holds more than she does.
    const carol = await t.token('carol', ['p1'], ['reviewer']);
    const escalate = await t.call('PUT', '/api/v1/projects/p1/grants/carol/roles/editor', { token: carol });
    expect(escalate.status).toBe(403);
    expect(escalate.body.message).toMatch(/lacks project.read in 'p1'/);
    expect((await t.call('PUT', '/api/v1/projects/p1/grants/dave/roles/reviewer', { token: carol })).status).toBe(204);
    expect((await t.call('DELETE', '/api/v1/roles/reviewer')).status).toBe(409);
    expect((await t.call('DELETE', '/api/v1/projects/p1/grants/dave/roles/reviewer')).status).toBe(204);
    // Grants in every project use the project '*', which only a grant in '*' may write.
    expect((await t.call('PUT', '/api/v1/projects/*/grants/erin/roles/viewer')).status).toBe(204);
    expect((await t.call('GET', '/api/v1/projects/p1/grants/erin')).body).toMatchObject({
      roles: [],
      everyProjectRoles: ['viewer'],
    });
    expect((await t.call('PUT', '/api/v1/projects/*/grants/erin/roles/reviewer', { token: carol })).status).toBe(403);
  });

  it('manages webhook subscriptions and reads their delivery log', async () => {
    const created = await t.call('POST', '/api/v1/webhooks', {
      body: { url: 'http://127.0.0.1:9/hook', eventTypes: ['model.*'], description: 'ci' },
    });
    expect(created.status).toBe(201);
    expect(created.body.secret).toMatch(/^whsec_/);
    const id = created.body.subscription.id;
    const listed = await t.call('GET', '/api/v1/webhooks');
    expect(listed.body.items.map((s: { id: string }) => s.id)).toContain(id);
    expect(JSON.stringify(listed.body)).not.toContain(created.body.secret);
    const updated = await t.call('PATCH', `/api/v1/webhooks/${id}`, { body: { active: false } });
    expect(updated.body.active).toBe(false);
    const rotated = await t.call('POST', `/api/v1/webhooks/${id}/rotate-secret`);
    expect(rotated.body.secret).not.toBe(created.body.secret);
    expect((await t.call('GET', `/api/v1/webhooks/${id}/deliveries`)).body.items).toEqual([]);
    const bad = await t.call('POST', '/api/v1/webhooks', { body: { url: 'ftp://x', eventTypes: ['*'] } });
    expect(bad.status).toBe(400);
    expect(bad.body.details.field).toBe('url');
    expect((await t.call('DELETE', `/api/v1/webhooks/${id}`)).status).toBe(204);
    expect((await t.call('GET', `/api/v1/webhooks/${id}`)).status).toBe(404);
  });
});

describe('webhook failures', () => {
  it('shows a failed delivery in the log and dead letters, and redelivers it once the receiver is fixed', async () => {
    // One attempt per event, so a refused connection dead-letters the event at once.
    await using platform = await startTestPlatform({ config: { management: { webhooks: { maxAttempts: 1 } } } });
    const api = await createApi(v1Routes, { platform, rateLimit: false });
    const authorizer = await platform.get(authorizerRef);
    await authorizer.grant('ops', ALL_PROJECTS, 'admin');
    const { secret } = await authorizer.createToken({
      principal: await authorizer.getPrincipal('ops', 'user'),
      name: 'ops',
      projects: [ALL_PROJECTS],
      roles: ['admin'],
      expiresAt: new Date(Date.now() + 3_600_000),
    });
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await api.fetch(
        new Request(`http://mlplane.test/api/v1${path}`, {
          method,
          headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        }),
      );
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : undefined };
    };

    const received: string[] = [];
    const receiver = createServer((req, res) => {
      received.push(String(req.headers['x-mlplane-event-id']));
      req.resume().on('end', () => res.writeHead(204).end());
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    try {
      // A port nothing listens on: take one and free it.
      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const deadPort = (closed.address() as AddressInfo).port;
      await new Promise((resolve) => closed.close(resolve));

      const hook = await call('POST', '/webhooks', {
        url: `http://127.0.0.1:${deadPort}/hook`,
        eventTypes: ['experiment.*'],
      });
      const id = hook.body.subscription.id;
      await call('POST', '/projects/hooked/experiments', { name: 'fires-an-event' });

      const letters = await vi.waitFor(
        async () => {
          const res = await call('GET', `/webhooks/${id}/dead-letters`);
          expect(res.body.items).toHaveLength(1);
          return res.body.items;
        },
        { timeout: 10_000, interval: 100 },
      );
      expect(letters[0].event).toMatchObject({ type: 'experiment.created', project: 'hooked', actor: 'ops' });
      const log = await call('GET', `/webhooks/${id}/deliveries`);
      expect(log.body.items).toMatchObject([{ outcome: 'failed', attempt: 1, eventType: 'experiment.created' }]);

      const port = (receiver.address() as AddressInfo).port;
      await call('PATCH', `/webhooks/${id}`, { url: `http://127.0.0.1:${port}/hook` });
      const eventId = letters[0].event.id;
      expect((await call('POST', `/webhooks/${id}/dead-letters/${eventId}/redeliver`)).status).toBe(204);
      await vi.waitFor(() => expect(received).toEqual([eventId]), { timeout: 10_000, interval: 100 });
      expect((await call('GET', `/webhooks/${id}/dead-letters`)).body.items).toEqual([]);
      expect((await call('GET', `/webhooks/${id}/deliveries?eventId=${eventId}`)).body.items[0].outcome).toBe(
        'delivered',
      );
      expect((await call('POST', `/webhooks/${id}/dead-letters/${eventId}/redeliver`)).status).toBe(404);
    } finally {
      await new Promise((resolve) => receiver.close(resolve));
    }
  });
});

describe('rate limits', () => {
  it('answers 429 with Retry-After once a caller exceeds its budget, and counts each caller apart', async () => {
    const limited = await createApi(v1Routes, { platform: t.platform, rateLimit: { points: 2, durationSeconds: 60 } });
    const me = (token: string) =>
      limited.fetch(new Request('http://mlplane.test/api/v1/me', { headers: { authorization: `Bearer ${token}` } }));
    expect((await me(t.adminToken)).status).toBe(200);
    expect((await me(t.adminToken)).status).toBe(200);
    const refused = await me(t.adminToken);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await refused.json()).toMatchObject({
      code: 'RATE_LIMITED',
      details: { retryAfterSeconds: expect.any(Number) },
    });
    expect((await me(await t.token('rita', ['rl'], ['viewer']))).status).toBe(200);
  });
});
