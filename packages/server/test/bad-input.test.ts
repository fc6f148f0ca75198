import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RouteDefinition } from '../src/http/route.js';
import { v1Routes } from '../src/index.js';
import {
  type Fixtures,
  fixturePath,
  jsonSchemaOf,
  listen,
  sample,
  seedFixtures,
  typeOf,
  wrongTypeFor,
} from './route-samples.js';
import { startTestApi, type TestApi } from './support.js';

/**
 * Bad input over HTTP, generated from the route table: every route with a JSON body gets malformed JSON, wrong
 * types and missing required fields (per field, from its schema), unknown fields, an oversized body, 100,000 nested
 * arrays, invalid UTF-8, a wrong or absent body; every route with a query gets wrong types, repeated and unknown
 * parameters. Each answer must be a 4xx with {code, message}; never a 5xx, and the server keeps serving.
 */

const PROJECT = 'bad';
/** Small enough to send past quickly, large enough to hold 100,000 nested arrays (200 KB). */
const JSON_LIMIT = 1024 * 1024;

let t: TestApi;
let server: Server;
let base: string;
let fixtures: Fixtures;
const answers: { route: string; case: string; status: number }[] = [];

beforeAll(async () => {
  t = await startTestApi({ limits: { jsonBodyBytes: JSON_LIMIT } });
  ({ server, base } = await listen(t));
  fixtures = await seedFixtures(t, PROJECT);
});

afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  await t?.[Symbol.asyncDispose]();
});

function pathOf(route: RouteDefinition): string {
  return fixturePath(route, PROJECT, fixtures, 'bad', 'viewer');
}

const hints = {
  projects: [PROJECT],
  roles: ['viewer'],
  experimentId: 'x',
  experimentIds: ['x'],
  url: 'http://127.0.0.1:9/bad',
  eventTypes: ['run.*'],
  permissions: ['model.read'],
};

/** Sends one bad request and checks the answer: a 4xx with the error shape. */
async function expectRefused(
  route: RouteDefinition,
  name: string,
  init: { body?: string | Uint8Array; contentType?: string | null; query?: string },
  expected?: number,
): Promise<void> {
  const headers: Record<string, string> = { authorization: `Bearer ${t.adminToken}` };
  if (init.contentType !== null) headers['content-type'] = init.contentType ?? 'application/json';
  const res = await fetch(`${base}${pathOf(route)}${init.query ? `?${init.query}` : ''}`, {
    method: route.method,
    headers,
    ...(init.body !== undefined ? { body: init.body } : {}),
  });
  const text = await res.text();
  answers.push({ route: route.operationId, case: name, status: res.status });
  const where = `${route.operationId}: ${name} -> ${res.status} ${text.slice(0, 300)}`;
  if (expected !== undefined) expect(res.status, where).toBe(expected);
  expect(res.status, where).toBeGreaterThanOrEqual(400);
  expect(res.status, where).toBeLessThan(500);
  const body = JSON.parse(text);
  expect(typeof body.code, where).toBe('string');
  expect(typeof body.message, where).toBe('string');
  expect(body.message.length, where).toBeGreaterThan(0);
}

const jsonRoutes = v1Routes.filter((r) => r.body !== undefined && r.body !== 'stream');
const queryRoutes = v1Routes.filter((r) => r.query !== undefined);

describe('bad JSON bodies', () => {
  it('covers the routes that take JSON', () => {
    expect(jsonRoutes.length).toBeGreaterThan(15);
  });

  for (const route of jsonRoutes) {
    const schema = jsonSchemaOf(route.body as never);
    const valid = sample(schema, hints) as Record<string, unknown>;

    it(`${route.operationId}: malformed, empty, oversized, deeply nested, not UTF-8, not JSON`, async () => {
      await expectRefused(route, 'malformed JSON', { body: '{"a": ' }, 400);
      await expectRefused(route, 'trailing garbage', { body: '{} x' }, 400);
      await expectRefused(route, 'empty body', { body: '' }, 400);
      await expectRefused(route, 'no body', { contentType: null });
      await expectRefused(route, 'JSON null', { body: 'null' }, 400);
      await expectRefused(route, 'a JSON array', { body: '[]' }, 400);
      await expectRefused(route, 'a JSON string', { body: '"text"' }, 400);
      const big = JSON.stringify({ ...valid, padding: 'x'.repeat(JSON_LIMIT) });
      await expectRefused(route, 'over the JSON limit', { body: big }, 413);
      await expectRefused(route, '100k nested arrays', { body: `${'['.repeat(100_000)}${']'.repeat(100_000)}` }, 400);
      const nestedField = `{"${Object.keys(valid)[0] ?? 'x'}": ${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}}`;
      await expectRefused(route, '50k nested objects in a field', { body: nestedField }, 400);
      const utf8 = new Uint8Array([
        ...new TextEncoder().encode('{"name": "'),
        0xff,
        0xfe,
        0xc3,
        ...new TextEncoder().encode('"}'),
      ]);
      await expectRefused(route, 'invalid UTF-8', { body: utf8 }, 400);
      await expectRefused(
        route,
        'form content type',
        { body: 'a=1', contentType: 'application/x-www-form-urlencoded' },
        415,
      );
    });

    it(`${route.operationId}: wrong types, missing required fields, unknown fields`, async () => {
      await expectRefused(route, 'unknown field', { body: JSON.stringify({ ...valid, unexpectedField: 1 }) }, 400);
      for (const [field, property] of Object.entries(schema.properties ?? {})) {
        const wrong = wrongTypeFor(property);
        if (typeof wrong === 'symbol') continue;
        await expectRefused(
          route,
          `${field} of the wrong type`,
          { body: JSON.stringify({ ...valid, [field]: wrong }) },
          400,
        );
        await expectRefused(route, `${field} null`, { body: JSON.stringify({ ...valid, [field]: null }) }, 400);
        if (typeOf(property) === 'string') {
          await expectRefused(route, `${field} a megabyte long`, {
            body: JSON.stringify({ ...valid, [field]: 'y'.repeat(JSON_LIMIT / 2) }),
          });
        }
      }
      for (const field of schema.required ?? []) {
        const { [field]: _, ...rest } = valid;
        await expectRefused(route, `${field} missing`, { body: JSON.stringify(rest) }, 400);
      }
    });
  }
});

describe('deep nesting where a schema takes any JSON', () => {
  it('refuses it before a port walks the value recursively', async () => {
    // A signature's parameter default is any JSON; the registry measures the signature with JSON.stringify.
    const route = v1Routes.find((r) => r.operationId === 'createModelVersion')!;
    const deep = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;
    const body = `{"source":"s3://b/m","signature":{"inputs":[],"outputs":[],"params":[{"name":"p","type":"double","default":${deep}}]}}`;
    await expectRefused(route, 'deep parameter default', { body }, 400);
  });
});

describe('bad queries', () => {
  for (const route of queryRoutes) {
    const schema = jsonSchemaOf(route.query as never);
    it(`${route.operationId}: wrong types, repeated and unknown parameters`, async () => {
      await expectRefused(route, 'unknown parameter', { query: 'unexpectedParam=1' }, 400);
      for (const [field, property] of Object.entries(schema.properties ?? {})) {
        const type = typeOf(property);
        if (type === 'number' || type === 'integer') {
          for (const value of ['abc', '-1', '1.5', '1e400', '']) {
            await expectRefused(route, `${field}=${value}`, { query: `${field}=${encodeURIComponent(value)}` }, 400);
          }
        }
        if (property.enum || property.format === 'date-time') {
          await expectRefused(route, `${field} not allowed`, { query: `${field}=not-allowed` }, 400);
        }
        if (!property.anyOf) {
          await expectRefused(route, `${field} repeated`, { query: `${field}=a&${field}=b` }, 400);
        }
      }
    });
  }
});

describe('bad path parameters', () => {
  const withParams = v1Routes.filter((r) => /\{/.test(r.path));
  for (const route of withParams) {
    it(`${route.operationId}: overlong, undecodable and control-character parameters`, async () => {
      const names = [...route.path.matchAll(/\{(\w+)(?:\.\.\.)?\}/g)].map((m) => m[1]!);
      for (const name of names) {
        for (const [label, raw] of [
          ['overlong', 'z'.repeat(5000)],
          ['invalid percent-encoding', '%FF%FE'],
          ['a control character', 'a%00b'],
          ['a lone surrogate', '%ED%A0%80'],
        ] as const) {
          const filled = pathOf(route);
          // This parameter's segment of the sampled path replaced (a rest parameter takes the rest of the path).
          const segments = route.path.split('/');
          const index = segments.findIndex((seg) => seg.startsWith(`{${name}`));
          const parts = filled.replace(/^\/api\/v1/, '').split('/');
          const rest = segments[index]!.endsWith('...}');
          const path = `/api/v1${[...parts.slice(0, index), raw, ...(rest ? [] : parts.slice(index + 1))].join('/')}`;
          const headers: Record<string, string> = { authorization: `Bearer ${t.adminToken}` };
          const init: RequestInit = { method: route.method, headers };
          if (route.body === 'stream') init.body = 'bytes';
          else if (route.body) {
            headers['content-type'] = 'application/json';
            init.body = JSON.stringify(sample(jsonSchemaOf(route.body as never), hints));
          }
          const res = await fetch(`${base}${path}`, init);
          const text = await res.text();
          answers.push({ route: route.operationId, case: `${name} ${label}`, status: res.status });
          const where = `${route.operationId}: ${name} ${label} -> ${res.status} ${text.slice(0, 200)}`;
          expect(res.status, where).toBeGreaterThanOrEqual(400);
          expect(res.status, where).toBeLessThan(500);
          expect(typeof JSON.parse(text).code, where).toBe('string');
        }
      }
    });
  }
});

describe('after the bad input', () => {
  it('refused everything with a 4xx and keeps serving', async () => {
    expect(answers.length).toBeGreaterThan(300);
    expect(answers.filter((a) => a.status >= 500)).toEqual([]);
    expect((await fetch(`${base}/health`)).status).toBe(200);
    const me = await fetch(`${base}/api/v1/me`, { headers: { authorization: `Bearer ${t.adminToken}` } });
    expect(me.status).toBe(200);
  });
});
