// Frozen: this file describes the schema of its moment and imports nothing from the application.
import { type Kysely, SqliteAdapter } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
  // A released lease keeps its row (expired), so fencing tokens keep growing across holders.
  await db.schema
    .createTable('mlplane_leases')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('token', 'text', (c) => c.notNull())
    .addColumn('fencing_token', sqlite ? 'integer' : 'bigint', (c) => c.notNull())
    .addColumn('expires_at', sqlite ? 'integer' : 'bigint', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('mlplane_leases').execute();
}
