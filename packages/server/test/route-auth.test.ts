import type { Server } from 'node:http';
import { ALL_PROJECTS, authorizerRef, type Permission } from '@mlplane/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouteDefinition } from '../src/http/route.js';
import { v1Routes } from '../src/index.js';
import { type Fixtures, fixturePath, listen, RoleTokens, sampleRequest, seedFixtures } from './route-samples.js';
import { startTestApi, type TestApi } from './support.js';

/**
 * The auth matrix, generated from the route table: every route of v1Routes is called over HTTP with no token, an
 * expired token, a revoked token, a token of another project, a token whose role holds every permission but the
 * route's, and a token whose role holds the route's permission alone. A route added to the table is walked too.
 */

const PROJECT = 'walk';
const OTHER = 'elsewhere';

let t: TestApi;
let server: Server;
let base: string;
let fixtures: Fixtures;
let roles: RoleTokens;
const expired = { secret: '' };
const revoked = { secret: '' };
let otherProject: string;

beforeAll(async () => {
  t = await startTestApi();
  ({ server, base } = await listen(t));
  fixtures = await seedFixtures(t, PROJECT);
  roles = new RoleTokens(t);
  const authorizer = await t.platform.get(authorizerRef);
  const admin = await authorizer.getPrincipal('admin', 'user');
  const soon = Date.now() + 1_000;
  expired.secret = (
    await authorizer.createToken({
      principal: admin,
      name: 'expiring',
      projects: [ALL_PROJECTS],
      roles: ['admin'],
      expiresAt: new Date(soon),
    })
  ).secret;
  const toRevoke = await authorizer.createToken({
    principal: admin,
    name: 'revoked',
    projects: [ALL_PROJECTS],
    roles: ['admin'],
    expiresAt: new Date(Date.now() + 3_600_000),
  });
  await authorizer.revokeToken(toRevoke.id);
  revoked.secret = toRevoke.secret;
  otherProject = await t.token('other-admin', [OTHER], ['admin']);
  // The expiring token must be past its expiry before the walk starts.
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, soon - Date.now() + 50)));
}, 30_000);

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  await t?.[Symbol.asyncDispose]();
});

/** Where a route's permission is checked: the project in its path (or in its body), or every project. */
const scopeOf = (route: RouteDefinition) => (route.scope === 'platform' ? ALL_PROJECTS : PROJECT);

/** The allowed caller's role, which grant and token routes name in their input (a grant may not exceed it). */
const allowedRole = (route: RouteDefinition) =>
  route.permission === 'authenticated' ? 'admin' : RoleTokens.onlyRole(route.permission);

async function call(route: RouteDefinition, token: string | undefined): Promise<{ status: number; body: any }> {
  const role = allowedRole(route);
  const hints = {
    projects: [PROJECT],
    roles: [role],
    experimentId: fixtures.experimentId,
    experimentIds: [fixtures.experimentId],
    url: 'http://127.0.0.1:9/walked',
    eventTypes: ['run.*'],
    permissions: ['model.read'],
    source: 's3://bucket/walked',
    stage: 'Staging',
    version: 1,
  };
  const path = fixturePath(route, PROJECT, fixtures, 'walked', role);
  const request = sampleRequest(route, hints);
  const headers: Record<string, string> = {};
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  if (request.contentType) headers['content-type'] = request.contentType;
  const res = await fetch(`${base}${path}${request.query ? `?${request.query}` : ''}`, {
    method: route.method,
    headers,
    ...(request.body !== undefined ? { body: request.body } : {}),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, body };
}

const label = (route: RouteDefinition) => `${route.method} ${route.path} (${route.operationId}, ${route.permission})`;

describe('every route of the table checks authentication and its permission', () => {
  it('walks a table that has routes', () => {
    expect(v1Routes.length).toBeGreaterThan(40);
  });

  // Deletions last, so that the allowed calls before them find the fixtures and run their handlers.
  const walk = [...v1Routes.filter((r) => r.method !== 'DELETE'), ...v1Routes.filter((r) => r.method === 'DELETE')];
  for (const route of walk) {
    describe(label(route), () => {
      it('answers 401 without a token, with an expired one and with a revoked one', async () => {
        for (const token of [undefined, expired.secret, revoked.secret, 'mlp_not-a-token']) {
          const res = await call(route, token);
          expect(res.status, `token ${token?.slice(0, 8)}`).toBe(401);
          expect(res.body.code).toBe('UNAUTHENTICATED');
        }
      });

      it('answers 403 to a token of another project', async () => {
        const res = await call(route, otherProject);
        if (route.permission === 'authenticated') expect(res.status).not.toBe(403);
        else {
          expect(res.status).toBe(403);
          expect(res.body.code).toBe('PERMISSION_DENIED');
        }
      });

      it.skipIf(route.permission === 'authenticated')(
        'answers 403 to a role holding every permission but the route’s',
        async () => {
          const res = await call(route, await roles.lacking(route.permission as Permission, scopeOf(route)));
          expect(res.status).toBe(403);
          expect(res.body.code).toBe('PERMISSION_DENIED');
          expect(res.body.message).toContain(route.permission);
        },
      );

      it('lets a role holding the route’s permission alone through', async () => {
        const token =
          route.permission === 'authenticated' ? otherProject : await roles.only(route.permission, scopeOf(route));
        const res = await call(route, token);
        expect([401, 403], JSON.stringify(res.body)).not.toContain(res.status);
        expect(res.status, JSON.stringify(res.body)).toBeLessThan(500);
      });
    });
  }
});
