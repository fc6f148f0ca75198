import pg from 'pg';
import { pgUrl } from '../../../test-support/pg-env.js';

async function client(schema: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: pgUrl() });
  await c.connect();
  await c.query(`SET search_path TO "${schema}"`);
  return c;
}

/**
 * Runs `change` while another transaction, holding `statement` uncommitted, has locked the rows it changes; checks
 * that `change` really waits on that transaction (the race is hit, not skipped), commits it, and returns how
 * `change` ended: 'succeeded' or the error it threw.
 */
export async function raceWithTransaction(
  schema: string,
  statement: { readonly sql: string; readonly params: readonly unknown[] },
  change: () => Promise<unknown>,
): Promise<unknown> {
  const other = await client(schema);
  const observer = await client(schema);
  try {
    const { rows } = await other.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    await other.query('BEGIN');
    const result = await other.query(statement.sql, [...statement.params]);
    if (result.rowCount === 0) throw new Error(`the racing statement changed nothing: ${statement.sql}`);
    const outcome = change().then(
      () => 'succeeded',
      (e: unknown) => e,
    );
    const deadline = Date.now() + 10_000;
    for (;;) {
      const blocked = await observer.query<{ n: string }>(
        'SELECT count(*) AS n FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))',
        [rows[0]!.pid],
      );
      if (Number(blocked.rows[0]!.n) > 0) break;
      if (Date.now() > deadline) throw new Error('the change never waited for the racing transaction');
      await new Promise((r) => setTimeout(r, 10));
    }
    await other.query('COMMIT');
    return await outcome;
  } finally {
    await other.end();
    await observer.end();
  }
}
