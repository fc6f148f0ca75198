import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import SwaggerParser from '@apidevtools/swagger-parser';
import { describe, expect, it } from 'vitest';
import { openApiPath, pathParameters, type RouteDefinition } from '../src/http/route.js';
import { v1Routes } from '../src/index.js';
import { startTestApi } from './support.js';

/** docs/api.md lists every route with its permission; the list is written from v1Routes and must match it. */

const doc = fileURLToPath(new URL('../../../docs/api.md', import.meta.url));
const START = '<!-- routes:start -->';
const END = '<!-- routes:end -->';

function scopeOf(route: RouteDefinition): string {
  if (route.permission === 'authenticated') return '';
  if (route.scope === 'project') return '`{project}`';
  if (route.scope === 'platform') return 'platform';
  return 'projects in the body';
}

export function routeTable(routes: readonly RouteDefinition[]): string {
  const rows = routes.map((r) => {
    const permission = r.permission === 'authenticated' ? 'any caller' : `\`${r.permission}\``;
    return `| ${r.method} | \`${r.path}\` | ${r.summary.replaceAll('|', '\\|')} | ${permission} | ${scopeOf(r)} |`;
  });
  return ['| method | path | what | permission | checked in |', '| --- | --- | --- | --- | --- |', ...rows].join('\n');
}

describe('docs/api.md', () => {
  it('lists every route of v1Routes with its permission', async () => {
    const text = await readFile(doc, 'utf8');
    const start = text.indexOf(START);
    const end = text.indexOf(END);
    expect(start, 'docs/api.md needs the routes:start and routes:end markers').toBeGreaterThan(0);
    expect(end).toBeGreaterThan(start);
    const expected = `${START}\n${routeTable(v1Routes)}\n${END}`;
    const current = text.slice(start, end + END.length);
    if (current !== expected && process.env.MLPLANE_WRITE_DOCS === '1') {
      await writeFile(doc, text.slice(0, start) + expected + text.slice(end + END.length));
      return;
    }
    expect(current, 'run MLPLANE_WRITE_DOCS=1 pnpm vitest run packages/server/test/api-docs.test.ts').toBe(expected);
  });
});

describe('the route table', () => {
  it('names each operation once and each method and path once', () => {
    const ids = v1Routes.map((r) => r.operationId);
    expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
    const keys = v1Routes.map((r) => `${r.method} ${openApiPath(r.path)}`);
    expect(keys.filter((k, i) => keys.indexOf(k) !== i)).toEqual([]);
  });
});

describe('the OpenAPI document', () => {
  it('is a valid OpenAPI 3.1 document naming every path parameter of every route', async () => {
    const api = await startTestApi();
    try {
      // validate() checks the document against the OpenAPI 3.1 schema; the loop checks what it does not: that every
      // {parameter} of a path is declared, with the route's permission.
      await SwaggerParser.validate(structuredClone(api.api.openapi) as never);
      for (const route of v1Routes) {
        const operation = api.api.openapi.paths[`/api/v1${openApiPath(route.path)}`][route.method.toLowerCase()];
        const declared = operation.parameters.filter((p: { in: string }) => p.in === 'path').map((p: any) => p.name);
        expect(declared.sort(), route.operationId).toEqual(
          pathParameters(route.path)
            .map((p) => p.name)
            .sort(),
        );
        expect(operation['x-mlplane-permission']).toBe(route.permission);
      }
    } finally {
      await api[Symbol.asyncDispose]();
    }
  });
});
