// Frozen: this file describes the schema of its moment and imports nothing from the application.
import type { Kysely } from 'kysely';
import { SqliteAdapter } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
  const int64 = sqlite ? 'integer' : 'bigint';

  // seq is assigned by the appender (head + 1 under the head lock), not by a sequence, so it never skips.
  await db.schema
    .createTable('audit_log')
    .addColumn('seq', int64, (c) => c.primaryKey())
    .addColumn('id', 'text', (c) => c.notNull().unique())
    // The ISO-8601 string exactly as hashed; at_ms mirrors it for range queries.
    .addColumn('at', 'text', (c) => c.notNull())
    .addColumn('at_ms', 'bigint', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('resource', 'text', (c) => c.notNull())
    .addColumn('project', 'text', (c) => c.notNull())
    .addColumn('outcome', 'text', (c) => c.notNull())
    // Canonical JSON text, so reading it back and re-hashing reproduces the stored hash.
    .addColumn('details', 'text', (c) => c.notNull())
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    // The domain event an entry was made from; unique so a redelivered event is recorded once.
    .addColumn('event_id', 'text', (c) => c.unique())
    .execute();
  for (const column of ['actor', 'action', 'resource', 'project', 'at_ms']) {
    await db.schema.createIndex(`audit_log_${column}`).on('audit_log').columns([column, 'seq']).execute();
  }

  // One row holding the chain's end; appenders lock it, so the chain never forks and truncation is visible.
  await db.schema
    .createTable('audit_head')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('seq', int64, (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .execute();
  await db
    .insertInto('audit_head')
    .values({ id: 1, seq: 0, hash: '0'.repeat(64) })
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('audit_head').execute();
  await db.schema.dropTable('audit_log').execute();
}
