import { authorizerRef, type Principal } from '@mlplane/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MLFLOW_ARTIFACTS_PREFIX, mlflowRoutes, mountMlflow } from '../src/index.js';
import { startTestApi, type TestApi } from './support.js';

/**
 * Every MLflow endpoint, generated from the route table (and the artifact proxy's operations), is walked with each
 * kind of caller that must be refused: no token, a malformed header, an expired token, a revoked token, a token of
 * another project naming this one, and a role lacking the permission. Each is refused before the request message is
 * read (an empty body passes no schema), in MLflow's error shape.
 */
let t: TestApi;
const callers: Record<
  string,
  { token: string | null; headers?: Record<string, string>; status: number; code: string }
> = {};

beforeAll(async () => {
  t = await startTestApi({ mount: [mountMlflow()] });
  const authorizer = await t.platform.get(authorizerRef);
  const tokenFor = async (id: string, project: string, role: string, expiresInMs = 3_600_000) => {
    await authorizer.grant(id, project, role);
    const principal: Principal = await authorizer.getPrincipal(id, 'user');
    return authorizer.createToken({
      principal,
      name: `${id}-token`,
      projects: [project],
      roles: [role],
      expiresAt: new Date(Date.now() + expiresInMs),
    });
  };
  await authorizer.defineRole({ name: 'onlooker', permissions: ['project.read'] });
  const expiring = await tokenFor('eve', 'default', 'editor', 1_000);
  const revoked = await tokenFor('rex', 'default', 'editor');
  await authorizer.revokeToken(revoked.id);
  const otherProject = await tokenFor('olga', 'other', 'editor');
  const lacking = await tokenFor('lena', 'default', 'onlooker');
  // Let the short-lived token expire.
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiring.info.expiresAt.getTime() - Date.now() + 50)));

  const unauthenticated = { status: 401, code: 'UNAUTHENTICATED' };
  const denied = { status: 403, code: 'PERMISSION_DENIED' };
  callers['no token'] = { token: null, ...unauthenticated };
  callers['a header that is not Bearer'] = { token: null, headers: { authorization: 'Basic abc' }, ...unauthenticated };
  callers['an expired token'] = { token: expiring.secret, ...unauthenticated };
  callers['a revoked token'] = { token: revoked.secret, ...unauthenticated };
  callers['a token of another project'] = {
    token: otherProject.secret,
    headers: { 'x-mlplane-project': 'default' },
    ...denied,
  };
  callers['a role lacking the permission'] = { token: lacking.secret, ...denied };
});
afterAll(() => t?.[Symbol.asyncDispose]());

const endpoints = [
  ...mlflowRoutes.map((r) => ({ method: r.method, path: `/api/2.0/mlflow${r.path}` })),
  { method: 'PUT', path: `${MLFLOW_ARTIFACTS_PREFIX}/1/run/artifacts/a.txt` },
  { method: 'GET', path: `${MLFLOW_ARTIFACTS_PREFIX}/1/run/artifacts/a.txt` },
  { method: 'GET', path: `${MLFLOW_ARTIFACTS_PREFIX}?path=1/run/artifacts` },
  { method: 'DELETE', path: `${MLFLOW_ARTIFACTS_PREFIX}/1/run/artifacts/a.txt` },
];

describe('every MLflow endpoint refuses callers it must refuse', () => {
  it('covers the whole route table', () => {
    expect(mlflowRoutes.length).toBeGreaterThanOrEqual(45);
  });

  for (const kind of [
    'no token',
    'a header that is not Bearer',
    'an expired token',
    'a revoked token',
    'a token of another project',
    'a role lacking the permission',
  ]) {
    it(`refuses ${kind}`, async () => {
      const caller = callers[kind]!;
      const answers = await Promise.all(
        endpoints.map(async ({ method, path }) => {
          const res = await t.call(method, path, {
            token: caller.token,
            ...(caller.headers ? { headers: caller.headers } : {}),
            ...(method === 'GET' ? {} : { rawBody: '' }),
          });
          return { endpoint: `${method} ${path}`, status: res.status, code: res.body?.error_code };
        }),
      );
      const wrong = answers.filter((a) => a.status !== caller.status || a.code !== caller.code);
      expect(wrong).toEqual([]);
    });
  }
});
