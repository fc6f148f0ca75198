// Shared by the PostgreSQL integration tests: the peer's URL and throwaway schemas.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export function pgUrl(): string {
  const url = process.env.MLPLANE_PG_URL;
  if (!url)
    throw new Error('MLPLANE_PG_URL is not set: run scripts/peers up postgres, then eval "$(scripts/peers env)"');
  return url;
}

/** A schema name no other test run uses, so runs on one server never collide. */
export function freshSchema(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
}

export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: pgUrl() });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}
