import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { auditLogRef, authorizerRef, type Principal } from '@mlplane/core';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestApi, type TestApi } from './support.js';

/**
 * The API mounted under a path in a host's own server: plain `http`, Express 5 (what a Backstage backend's router
 * is) and fastify, with the host's own authentication handing the caller in through `authenticate`.
 */

/** What the host's own auth middleware leaves on the request (a session, an SSO header checked upstream). */
interface HostRequest extends IncomingMessage {
  hostUser?: string;
}

let t: TestApi;
beforeAll(async () => {
  const authorizerOf = () => t.platform.get(authorizerRef);
  t = await startTestApi({
    // The host decides who is calling; the API still checks that principal's grants for every route.
    authenticate: async (_request, incoming): Promise<Principal | undefined> => {
      const user = (incoming as HostRequest | undefined)?.hostUser;
      return user ? (await authorizerOf()).getPrincipal(user, 'user') : undefined;
    },
  });
  const authorizer = await t.platform.get(authorizerRef);
  await authorizer.grant('host-alice', 'hosted', 'editor');
});
afterAll(() => t?.[Symbol.asyncDispose]());

async function serve(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The checks every host passes: routes, bodies, the OpenAPI document and docs, errors, all below `prefix`. */
async function exerciseMounted(base: string, prefix: string): Promise<void> {
  const auth = { authorization: `Bearer ${t.adminToken}` };
  const me = await fetch(`${base}${prefix}/api/v1/me`, { headers: auth });
  expect(me.status).toBe(200);
  expect(((await me.json()) as { ownerId: string }).ownerId).toBe('admin');
  const created = await fetch(`${base}${prefix}/api/v1/projects/mounted/experiments`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ name: `in-${prefix.replaceAll('/', '') || 'root'}-${Math.random()}` }),
  });
  expect(created.status).toBe(201);
  const bad = await fetch(`${base}${prefix}/api/v1/projects/mounted/experiments`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: '{"name":',
  });
  expect(bad.status).toBe(400);
  expect(((await bad.json()) as { code: string }).code).toBe('VALIDATION');
  expect((await fetch(`${base}${prefix}/api/v1/me`)).status).toBe(401);
  const doc = await fetch(`${base}${prefix}/api/v1/openapi.json`);
  expect(((await doc.json()) as { openapi: string }).openapi).toBe('3.1.0');
  const html = await (await fetch(`${base}${prefix}/api/v1/docs`)).text();
  // The docs page loads its assets relative to itself, so they resolve below the prefix.
  const asset = /src="([^"]+\.js)"/.exec(html)![1]!;
  expect((await fetch(new URL(asset, `${base}${prefix}/api/v1/docs`))).status).toBe(200);
  expect((await fetch(`${base}${prefix}/health`)).status).toBe(200);
}

describe('mounted in plain http', () => {
  let server: Server;
  afterAll(() => new Promise((resolve) => server?.close(resolve)));

  it('serves below a prefix the host strips, beside the host’s own routes', async () => {
    server = createServer((req, res) => {
      if (req.url === '/mlplane' || req.url?.startsWith('/mlplane/')) {
        req.url = req.url.slice('/mlplane'.length) || '/';
        t.api.listener(req, res);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end('host');
    });
    const base = await serve(server);
    await exerciseMounted(base, '/mlplane');
    expect(await (await fetch(`${base}/elsewhere`)).text()).toBe('host');
  });
});

describe('mounted in Express 5', () => {
  let server: Server;
  afterAll(() => new Promise((resolve) => server?.close(resolve)));

  it('serves below app.use(prefix) and takes the caller from the host’s own auth', async () => {
    const app = express();
    // The host's auth middleware, before the API (as a Backstage backend's httpAuth would run).
    app.use((req: HostRequest, _res, next) => {
      const user = req.headers['x-host-user'];
      if (typeof user === 'string') req.hostUser = user;
      next();
    });
    // Host routes with their own body parser; the API reads its bodies itself, so none runs on its path.
    app.post('/host/echo', express.json(), (req, res) => {
      res.json(req.body);
    });
    app.use('/mlplane', t.api.listener);
    server = createServer(app);
    const base = await serve(server);
    await exerciseMounted(base, '/mlplane');

    const echoed = await fetch(`${base}/host/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    expect(await echoed.json()).toEqual({ a: 1 });

    // No token: the host's user is the caller, with that user's grants.
    const asAlice = await fetch(`${base}/mlplane/api/v1/projects/hosted/experiments`, {
      method: 'POST',
      headers: { 'x-host-user': 'host-alice', 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'from-the-host' }),
    });
    expect(asAlice.status).toBe(201);
    const elsewhere = await fetch(`${base}/mlplane/api/v1/projects/other/experiments`, {
      headers: { 'x-host-user': 'host-alice' },
    });
    expect(elsewhere.status).toBe(403);
    const me = await fetch(`${base}/mlplane/api/v1/me`, { headers: { 'x-host-user': 'host-alice' } });
    expect(await me.json()).toMatchObject({ id: 'host-alice', kind: 'user', roles: { hosted: ['editor'] } });
    const audit = await t.platform.get(auditLogRef);
    await vi.waitFor(
      async () => {
        const entries = await audit.list({ actor: 'host-alice', maxResults: 10 });
        expect(entries.items.map((e) => e.action)).toContain('experiment.created');
      },
      { timeout: 10_000, interval: 100 },
    );
  });
});

describe('mounted in fastify', () => {
  let app: FastifyInstance;
  afterAll(() => app?.close());

  it('serves below a prefix through a catch-all route on the raw request and response', async () => {
    app = Fastify();
    app.get('/host', async () => ({ host: true }));
    await app.register(
      async (scoped) => {
        // The API reads its own bodies: in this scope fastify leaves the request stream unread.
        scoped.removeAllContentTypeParsers();
        scoped.addContentTypeParser('*', (_request, _payload, done) => done(null));
        scoped.all('/*', (request, reply) => {
          reply.hijack();
          request.raw.url = request.raw.url!.slice('/mlplane'.length) || '/';
          t.api.listener(request.raw, reply.raw);
        });
      },
      { prefix: '/mlplane' },
    );
    const base = await app.listen({ port: 0, host: '127.0.0.1' });
    await exerciseMounted(base, '/mlplane');
    expect(await (await fetch(`${base}/host`)).json()).toEqual({ host: true });
  });
});
