// Frozen: this file describes the schema of its moment and imports nothing from the application.
import { type Kysely, SqliteAdapter, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
  await db.schema
    .createTable('outbox')
    .addColumn('seq', sqlite ? 'integer' : 'bigint', (c) =>
      sqlite ? c.primaryKey().autoIncrement() : c.primaryKey().generatedAlwaysAsIdentity(),
    )
    .addColumn('id', sqlite ? 'text' : 'uuid', (c) => c.notNull().unique())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('actor', 'text')
    .addColumn('project', 'text')
    .addColumn('payload', sqlite ? 'text' : 'jsonb', (c) => c.notNull())
    .addColumn('occurred_at', sqlite ? 'text' : 'timestamptz', (c) => c.notNull())
    .addColumn('relayed_at', sqlite ? 'text' : 'timestamptz')
    .execute();
  // The relay's work queue: only unrelayed rows, in seq order.
  await db.schema
    .createIndex('outbox_unrelayed')
    .on('outbox')
    .column('seq')
    .where(sql.ref('relayed_at'), 'is', null)
    .execute();
  await db.schema.createIndex('outbox_subject_seq').on('outbox').columns(['subject', 'seq']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('outbox').execute();
}
