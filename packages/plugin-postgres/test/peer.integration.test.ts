// Checks the PostgreSQL peer (`scripts/peers up postgres`): a SQL round trip over MLPLANE_PG_URL.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run scripts/peers up postgres, then eval "$(scripts/peers env)"`);
  return value;
}

describe('postgres peer', () => {
  let client: pg.Client;
  const table = `mlplane_it_${Date.now().toString(36)}`;

  beforeAll(async () => {
    client = new pg.Client({ connectionString: requireEnv('MLPLANE_PG_URL') });
    await client.connect();
  });

  afterAll(async () => {
    await client?.query(`DROP TABLE IF EXISTS ${table}`);
    await client?.end();
  });

  it('runs PostgreSQL 15 or newer', async () => {
    const { rows } = await client.query<{ server_version_num: string }>('SHOW server_version_num');
    expect(Number(rows[0]?.server_version_num)).toBeGreaterThanOrEqual(150000);
  });

  it('writes rows and reads them back', async () => {
    await client.query(
      `CREATE TABLE ${table} (id bigint PRIMARY KEY, name text NOT NULL, score double precision, meta jsonb)`,
    );
    await client.query(`INSERT INTO ${table} VALUES ($1, $2, $3, $4), ($5, $6, $7, $8)`, [
      1,
      'alpha',
      0.5,
      { tags: ['a'] },
      2,
      'beta',
      1.25,
      { tags: [] },
    ]);
    const { rows } = await client.query<{ id: string; name: string; score: number; meta: unknown }>(
      `SELECT id, name, score, meta FROM ${table} ORDER BY id`,
    );
    expect(rows).toEqual([
      { id: '1', name: 'alpha', score: 0.5, meta: { tags: ['a'] } },
      { id: '2', name: 'beta', score: 1.25, meta: { tags: [] } },
    ]);
  });

  it('rolls back an aborted transaction', async () => {
    await client.query('BEGIN');
    await client.query(`INSERT INTO ${table} VALUES (3, 'gamma', 0, NULL)`);
    await client.query('ROLLBACK');
    const { rows } = await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`);
    expect(rows[0]?.n).toBe('2');
  });
});
