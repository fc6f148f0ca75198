import { join } from 'node:path';
import { ALL_PROJECTS, type Authorizer, authorizerRef, type Principal } from '@mlplane/core';
import { startTestPlatform, type TestPlatform } from '@mlplane/defaults/testing';
import { PipelineOrchestrator } from '@mlplane/pipelines';
import { schedulerPlugin } from '@mlplane/sql';
import { type CreateApiOptions, createApi, type MlplaneApi, v1Routes } from '../src/index.js';

export interface TestApi {
  readonly platform: TestPlatform;
  readonly api: MlplaneApi;
  /** The orchestrator whose runs the API serves under /pipeline-runs. */
  readonly pipelines: PipelineOrchestrator;
  /** An admin token in every project. */
  readonly adminToken: string;
  /** A token for `principalId` holding `roles` in `projects` (granted first), expiring in an hour. */
  token(principalId: string, projects: readonly string[], roles: readonly string[]): Promise<string>;
  /** Calls the API in process (no socket): JSON in, status and JSON out. */
  call(
    method: string,
    path: string,
    options?: {
      token?: string | null;
      body?: unknown;
      rawBody?: string | Uint8Array<ArrayBuffer>;
      headers?: Record<string, string>;
    },
  ): Promise<{ status: number; body: any; headers: Headers }>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A platform on embedded defaults with the API over it, and an admin token. */
export async function startTestApi(options: Partial<CreateApiOptions> = {}): Promise<TestApi> {
  // The durable scheduler in front of the local ComputeBackend, as a production platform would have it.
  const platform = await startTestPlatform({ plugins: [schedulerPlugin()] });
  const pipelines = await PipelineOrchestrator.forPlatform(platform, {
    workspace: join(platform.dataDir, 'pipelines'),
  });
  const api = await createApi(v1Routes, { rateLimit: false, pipelineRuns: pipelines, ...options, platform });
  const authorizer = await platform.get(authorizerRef);
  const token = tokenIssuer(authorizer);
  const adminToken = await token('admin', [ALL_PROJECTS], ['admin']);
  const call = inProcessCaller(api, adminToken);
  return { platform, api, pipelines, adminToken, token, call, [Symbol.asyncDispose]: () => platform.stop() };
}

/** Issues a token for `principalId` holding `roles` in `projects` (granted first), expiring in an hour. */
export function tokenIssuer(authorizer: Authorizer) {
  return async (principalId: string, projects: readonly string[], roles: readonly string[]): Promise<string> => {
    for (const project of projects) for (const role of roles) await authorizer.grant(principalId, project, role);
    const principal: Principal = await authorizer.getPrincipal(principalId, 'user');
    const created = await authorizer.createToken({
      principal,
      name: `${principalId}-token`,
      projects,
      roles,
      expiresAt: new Date(Date.now() + 3_600_000),
    });
    return created.secret;
  };
}

/** Calls the API in process (no socket) with `adminToken` unless told otherwise: JSON in, status, text and JSON out. */
export function inProcessCaller(api: MlplaneApi, adminToken: string) {
  return async (
    method: string,
    path: string,
    o: {
      token?: string | null;
      body?: unknown;
      rawBody?: string | Uint8Array<ArrayBuffer>;
      headers?: Record<string, string>;
    } = {},
  ): Promise<{ status: number; body: any; text: string; headers: Headers }> => {
    const headers: Record<string, string> = { ...o.headers };
    const bearer = o.token === undefined ? adminToken : o.token;
    if (bearer !== null) headers.authorization = `Bearer ${bearer}`;
    let body: string | Uint8Array<ArrayBuffer> | undefined = o.rawBody;
    if (o.body !== undefined) {
      body = JSON.stringify(o.body);
      headers['content-type'] ??= 'application/json';
    }
    const res = await api.fetch(
      new Request(`http://mlplane.test${path}`, { method, headers, ...(body !== undefined ? { body } : {}) }),
    );
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {}
    return { status: res.status, body: parsed, text, headers: res.headers };
  };
}
