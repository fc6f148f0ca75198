import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ALL_PERMISSIONS, ALL_PROJECTS, authorizerRef, type Permission } from '@mlplane/core';
import { action, pipeline } from '@mlplane/pipelines';
import { z } from 'zod';
import { pathParameters, type RouteDefinition } from '../src/http/route.js';
import type { TestApi } from './support.js';

/**
 * Requests built from the route table alone: path parameters, bodies and queries sampled from each route's zod
 * schemas, so the auth matrix and the bad-input tests walk every route, including routes added later.
 */

type JsonSchema = {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  prefixItems?: JsonSchema[];
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  format?: string;
  minimum?: number;
  minLength?: number;
  minItems?: number;
  pattern?: string;
};

export function jsonSchemaOf(schema: z.ZodType): JsonSchema {
  return z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
}

export function typeOf(schema: JsonSchema): string | undefined {
  const branch = schema.anyOf?.[0] ?? schema.oneOf?.[0] ?? schema.allOf?.[0];
  if (branch) return typeOf(branch);
  if (schema.enum) return typeof schema.enum[0];
  if (schema.const !== undefined) return typeof schema.const;
  return Array.isArray(schema.type) ? schema.type[0] : schema.type;
}

/** A value the schema accepts, preferring `hints` for fields it names (`projects`, `experimentId`...). */
export function sample(schema: JsonSchema, hints: Readonly<Record<string, unknown>>, name?: string): unknown {
  if (name !== undefined && Object.hasOwn(hints, name)) return hints[name];
  const branch = schema.anyOf?.[0] ?? schema.oneOf?.[0] ?? schema.allOf?.[0];
  if (branch) return sample(branch, hints, name);
  if (schema.const !== undefined) return schema.const;
  if (schema.enum) return schema.enum[0];
  switch (typeOf(schema)) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const key of schema.required ?? []) out[key] = sample(schema.properties?.[key] ?? {}, hints, key);
      return out;
    }
    case 'array':
      return Array.from({ length: Math.max(1, schema.minItems ?? 0) }, () => sample(schema.items ?? {}, hints));
    case 'number':
    case 'integer':
      return Math.max(1, schema.minimum ?? 1);
    case 'boolean':
      return false;
    case 'string':
      if (schema.format === 'date-time') return new Date(Date.now() + 86_400_000).toISOString();
      return 'x'.repeat(Math.max(1, schema.minLength ?? 1));
    default:
      return 'x';
  }
}

/** A value of another JSON type than the schema's. */
export function wrongTypeFor(schema: JsonSchema): unknown {
  switch (typeOf(schema)) {
    case 'string':
      return 12345;
    case 'number':
    case 'integer':
      return 'not a number';
    case 'boolean':
      return 'yes';
    case 'array':
      return { not: 'an array' };
    case 'object':
      return ['not', 'an', 'object'];
    default:
      return Symbol.for('none');
  }
}

/** The URL path of `route` with its parameters filled from `values`; throws when the route's schema refuses them. */
export function fillPath(route: RouteDefinition, values: Readonly<Record<string, string>>): string {
  const filled: Record<string, string> = {};
  for (const { name } of pathParameters(route.path)) {
    const value = values[name];
    if (value === undefined) {
      throw new Error(`no plausible value for path parameter '${name}' of ${route.operationId}: add one to the test`);
    }
    filled[name] = value;
  }
  if (route.params) {
    const parsed = route.params.safeParse(filled);
    if (!parsed.success) {
      throw new Error(`${route.operationId} refuses the plausible path parameters: ${parsed.error.message}`);
    }
  }
  return `/api/v1${route.path.replace(/\{(\w+)(\.\.\.)?\}/g, (_, name: string, rest?: string) =>
    rest ? filled[name]!.split('/').map(encodeURIComponent).join('/') : encodeURIComponent(filled[name]!),
  )}`;
}

/** Builds a route's sample request: the JSON body (or raw bytes for a streamed one) with the query's required fields. */
export function sampleRequest(
  route: RouteDefinition,
  hints: Readonly<Record<string, unknown>>,
): { body?: string | Uint8Array; contentType?: string; query: string } {
  const query = route.query ? (sample(jsonSchemaOf(route.query), hints) as Record<string, unknown>) : {};
  const search = new URLSearchParams(
    Object.entries(query).map(([k, v]): [string, string] => [k, String(v)]),
  ).toString();
  if (route.body === 'stream') {
    return { body: new TextEncoder().encode('sample bytes'), contentType: 'application/octet-stream', query: search };
  }
  if (route.body) {
    return {
      body: JSON.stringify(sample(jsonSchemaOf(route.body), hints)),
      contentType: 'application/json',
      query: search,
    };
  }
  return { query: search };
}

/** The API on a real socket. */
export async function listen(t: TestApi): Promise<{ base: string; server: Server }> {
  const server = createServer(t.api.listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** What exists for the walk to find: one of each resource in `project`. */
export interface Fixtures {
  readonly experimentId: string;
  readonly runId: string;
  readonly modelName: string;
  readonly webhookId: string;
  readonly tokenId: string;
  readonly jobId: string;
  readonly pipelineRunId: string;
}

export async function seedFixtures(t: TestApi, project: string): Promise<Fixtures> {
  const experiment = await t.call('POST', `/api/v1/projects/${project}/experiments`, { body: { name: 'walked' } });
  const run = await t.call('POST', `/api/v1/projects/${project}/runs`, { body: { experimentId: experiment.body.id } });
  const runId = run.body.info.id as string;
  await t.call('PUT', `/api/v1/projects/${project}/runs/${runId}/artifacts/dir/file.txt`, { rawBody: 'hello' });
  await t.call('POST', `/api/v1/projects/${project}/models`, { body: { name: 'walked-model' } });
  await t.call('POST', `/api/v1/projects/${project}/models/walked-model/versions`, {
    body: { source: `runs:/${runId}/model`, runId },
  });
  await t.call('PUT', `/api/v1/projects/${project}/models/walked-model/aliases/champion`, { body: { version: 1 } });
  const webhook = await t.call('POST', '/api/v1/webhooks', {
    body: { url: 'http://127.0.0.1:9/hook', eventTypes: ['model.*'], active: false },
  });
  const token = await t.call('POST', '/api/v1/tokens', {
    body: { name: 'victim', projects: [project], roles: ['viewer'] },
  });
  const job = await t.call('POST', `/api/v1/projects/${project}/jobs`, {
    body: { name: 'walked-job', replicaGroups: [{ role: 'main', command: ['sh', '-c', 'echo walked'] }] },
  });
  const counted = action({ name: 'walked-action', version: '1', outputs: { n: z.number() }, run: () => ({ n: 1 }) });
  const walked = pipeline({ name: 'walked-pipeline' }, (p) => {
    p.step(counted, {});
  });
  const pipelineRun = await t.pipelines.run(walked, {}, { project });
  for (const res of [experiment, run, webhook, token, job]) {
    if (res.status >= 300) throw new Error(`seeding failed: ${res.status} ${JSON.stringify(res.body)}`);
  }
  return {
    experimentId: experiment.body.id,
    runId,
    modelName: 'walked-model',
    webhookId: webhook.body.subscription.id,
    tokenId: token.body.token.id,
    jobId: job.body.id,
    pipelineRunId: pipelineRun.runId,
  };
}

/**
 * The URL path of `route` on the seeded fixtures: `prefix` names what the walk creates itself (a role
 * `<prefix>-role`, a tag key `<prefix>-key`, a principal `<prefix>-principal`), `role` the role a grant route names.
 */
export function fixturePath(
  route: RouteDefinition,
  project: string,
  fixtures: Fixtures,
  prefix: string,
  role: string,
): string {
  return fillPath(route, {
    project,
    experimentId: fixtures.experimentId,
    runId: route.path.includes('/pipeline-runs/') ? fixtures.pipelineRunId : fixtures.runId,
    jobId: fixtures.jobId,
    path: 'dir/file.txt',
    name: route.path.startsWith('/roles/') ? `${prefix}-role` : fixtures.modelName,
    version: '1',
    key: `${prefix}-key`,
    alias: 'champion',
    tokenId: fixtures.tokenId,
    principalId: `${prefix}-principal`,
    role,
    id: fixtures.webhookId,
    eventId: 'no-such-event',
  });
}

/** Tokens holding exactly one permission, or every permission but one, in a project (roles defined on demand). */
export class RoleTokens {
  readonly #cache = new Map<string, string>();
  constructor(private readonly t: TestApi) {}

  /** The role holding only `permission` (`admin` is the built-in role). */
  static onlyRole(permission: Permission): string {
    return permission === 'admin' ? 'admin' : `only-${permission.replace('.', '-')}`;
  }

  /** A token whose only role in `project` grants `permission` alone. */
  only(permission: Permission, project: string): Promise<string> {
    return this.#token(RoleTokens.onlyRole(permission), permission === 'admin' ? undefined : [permission], project);
  }

  /** A token whose only role in `project` grants every permission except `permission` (and never `admin`). */
  lacking(permission: Permission, project: string): Promise<string> {
    const all = ALL_PERMISSIONS.filter((p) => p !== permission && p !== 'admin');
    return this.#token(`lacks-${permission.replace('.', '-')}`, all, project);
  }

  async #token(role: string, permissions: Permission[] | undefined, project: string): Promise<string> {
    const key = `${role}@${project}`;
    const cached = this.#cache.get(key);
    if (cached) return cached;
    const authorizer = await this.t.platform.get(authorizerRef);
    if (permissions && !(await authorizer.listRoles()).some((r) => r.name === role)) {
      await authorizer.defineRole({ name: role, permissions });
    }
    const principalId = `${role}-${project === ALL_PROJECTS ? 'all' : project}`;
    await authorizer.grant(principalId, project, role);
    const created = await authorizer.createToken({
      principal: await authorizer.getPrincipal(principalId, 'user'),
      name: key,
      projects: [project],
      roles: [role],
      expiresAt: new Date(Date.now() + 3_600_000),
    });
    this.#cache.set(key, created.secret);
    return created.secret;
  }
}
