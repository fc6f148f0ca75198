import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { openApiPath, pathParameters, type RouteDefinition } from './route.js';

export type OpenApiDocument = Record<string, unknown> & {
  readonly openapi: '3.1.0';
  readonly paths: Record<string, any>;
};

const errorSchema = {
  type: 'object',
  required: ['code', 'message'],
  properties: {
    code: { type: 'string', description: 'Stable error code: VALIDATION, NOT_FOUND, PERMISSION_DENIED...' },
    message: { type: 'string' },
    details: { type: 'object', additionalProperties: true },
  },
} as const;

/** The statuses every authenticated route may answer besides its own. */
const COMMON_ERRORS: Record<string, string> = {
  '400': 'Malformed request or a value breaking a limit',
  '401': 'No valid API token',
  '403': 'The caller lacks the permission',
  '404': 'Not found (in this project)',
  '409': 'Conflicts with the current state',
  '413': 'Request body too large',
  '415': 'A JSON body sent with another content type',
  '429': 'Rate limit exceeded; see Retry-After',
  '503': 'A backend is unavailable; retry later',
};

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const out = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as Record<
    string,
    unknown
  >;
  delete out.$schema;
  return out;
}

/** OpenAPI 3.1 from the route table: paths, parameters, bodies and answers from the routes' own zod schemas. */
export function buildOpenApi(
  routes: readonly RouteDefinition[],
  options: { serverUrl?: string } = {},
): OpenApiDocument {
  const paths: Record<string, any> = {};
  for (const route of routes) {
    const parameters: unknown[] = [];
    const rest = new Set(
      pathParameters(route.path)
        .filter((p) => p.rest)
        .map((p) => p.name),
    );
    for (const [where, schema] of [
      ['path', route.params],
      ['query', route.query],
    ] as const) {
      if (!schema) continue;
      const object = jsonSchema(schema, 'input') as { properties?: Record<string, unknown>; required?: string[] };
      for (const [name, property] of Object.entries(object.properties ?? {})) {
        parameters.push({
          name,
          in: where,
          required: where === 'path' || (object.required ?? []).includes(name),
          schema: property,
          ...(where === 'path' && rest.has(name)
            ? { description: "The rest of the path, '/' included; each segment percent-encoded" }
            : {}),
        });
      }
    }
    const responses: Record<string, unknown> = {};
    if (route.response === 'empty') responses['204'] = { description: 'Done' };
    else if (route.response === 'stream')
      responses['200'] = { description: 'The content', content: { 'application/octet-stream': { schema: {} } } };
    else
      responses[String(route.status ?? 200)] = {
        description: 'OK',
        content: { 'application/json': { schema: jsonSchema(route.response, 'output') } },
      };
    for (const [status, description] of Object.entries(COMMON_ERRORS)) {
      responses[status] = {
        description,
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
      };
    }
    const operation: Record<string, unknown> = {
      operationId: route.operationId,
      summary: route.summary,
      tags: [route.tag],
      parameters,
      responses,
      'x-mlplane-permission': route.permission,
    };
    if (route.body === 'stream') {
      operation.requestBody = { required: true, content: { 'application/octet-stream': { schema: {} } } };
    } else if (route.body) {
      operation.requestBody = {
        required: true,
        content: { 'application/json': { schema: jsonSchema(route.body, 'input') } },
      };
    }
    const path = `/api/v1${openApiPath(route.path)}`;
    paths[path] = { ...paths[path], [route.method.toLowerCase()]: operation };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'mlplane API',
      version: '1',
      description:
        'Every route needs an API token (Authorization: Bearer mlp_...) except /health and /ready. Errors answer {code, message, details}.',
    },
    ...(options.serverUrl ? { servers: [{ url: options.serverUrl }] } : {}),
    security: [{ bearer: [] }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: { Error: errorSchema },
    },
    paths,
  };
}

/** The browsable docs: Swagger UI, served from the package's own copy (no CDN); `documentUrl` relative to /api/v1/. */
export function swaggerUiHtml(documentUrl: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mlplane API</title>
<link rel="stylesheet" href="docs/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script>window.ui = SwaggerUIBundle({ url: ${JSON.stringify(documentUrl)}, dom_id: '#ui', persistAuthorization: true });</script>
</body></html>`;
}

const ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
};
let assetDir: string | undefined;

export async function swaggerUiAsset(
  name: string,
): Promise<{ body: Uint8Array<ArrayBuffer>; contentType: string } | undefined> {
  const contentType = ASSETS[name];
  if (!contentType) return undefined;
  assetDir ??= dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  return { body: new Uint8Array(await readFile(join(assetDir, name))), contentType };
}
