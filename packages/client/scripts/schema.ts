import { buildOpenApi, v1Routes } from '@mlplane/server';
import openapiTS, { astToString, COMMENT_HEADER } from 'openapi-typescript';

/** Where the committed types live, relative to this package. */
export const SCHEMA_FILE = 'src/schema.ts';

/**
 * The TypeScript types of /api/v1 as `src/schema.ts` holds them: openapi-typescript over the OpenAPI document the
 * server builds from its route table, so the client's types are the routes' own zod schemas.
 */
export async function renderSchema(): Promise<string> {
  const document = buildOpenApi(v1Routes);
  const ast = await openapiTS(document as never, { silent: true });
  // OpenAPI has no rest parameters: the route table's `{path...}` is `{path}` in the document, and the client must
  // know to keep its slashes (each segment percent-encoded on its own).
  const rest: Record<string, string[]> = {};
  for (const route of v1Routes) {
    const names = [...route.path.matchAll(/\{(\w+)\.\.\.\}/g)].map((m) => m[1]!);
    if (names.length) rest[`/api/v1${route.path.replace(/\{(\w+)\.\.\.\}/g, '{$1}')}`] = names;
  }
  const restTable =
    '\n/** Path parameters that take the rest of the path, slashes included, by path. */\n' +
    `export const restPathParameters: Readonly<Record<string, readonly string[]>> = ${JSON.stringify(rest, null, 4)};\n`;
  return (
    COMMENT_HEADER.replace(
      ' * Do not make direct changes to the file.\n',
      ' * Do not make direct changes to the file: `pnpm --filter @mlplane/client generate` writes it from the route\n' +
        ' * table of @mlplane/server (packages/client/scripts/generate-schema.ts).\n',
    ) +
    astToString(ast) +
    restTable
  );
}
