// Frozen: this file describes the schema of its moment and imports nothing from the application.
import { type Kysely, SqliteAdapter, sql } from 'kysely';

/**
 * Param and tag filters test key and value together (`params.lr = '0.01'`). PostgreSQL estimates such a pair as
 * if key and value were independent, which undercounts common pairs by the number of keys; on the search benchmark
 * it guessed 2,755 runs for 8,333 and chose a plan that probed every one of them (100+ ms instead of 20-30).
 * Multivariate MCV statistics give it the pair frequencies. SQLite's planner has no such estimate to fix.
 */
export async function up(db: Kysely<any>): Promise<void> {
  if (db.getExecutor().adapter instanceof SqliteAdapter) return;
  await sql`CREATE STATISTICS params_key_value_mcv (mcv) ON key, value FROM params`.execute(db);
  await sql`CREATE STATISTICS run_tags_key_value_mcv (mcv) ON key, value FROM run_tags`.execute(db);
}
