// Frozen: this file describes the schema of its moment and imports nothing from the application.
import { type Kysely, SqliteAdapter } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
  // seq orders listings (newest first) and pages; id is what callers see.
  await db.schema
    .createTable('mlplane_local_jobs')
    .addColumn('seq', sqlite ? 'integer' : 'bigserial', (c) =>
      sqlite ? c.primaryKey().autoIncrement() : c.primaryKey(),
    )
    .addColumn('id', 'text', (c) => c.notNull().unique())
    .addColumn('project', 'text', (c) => c.notNull())
    .addColumn('host', 'text', (c) => c.notNull())
    .addColumn('idempotency_key', 'text')
    .addColumn('spec_hash', 'text', (c) => c.notNull())
    // The spec as submitted: secretEnv holds references only, never values.
    .addColumn('spec', 'text', (c) => c.notNull())
    .addColumn('phase', 'text', (c) => c.notNull())
    .addColumn('run_id', 'text')
    .addColumn('labels', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    // What the backend needs to find a job's processes again after a restart (pids, start times, slots).
    .addColumn('state', 'text', (c) => c.notNull())
    // Epoch ms when a finished job's logs are due for deletion (ttlSecondsAfterFinished); null when none are.
    .addColumn('logs_expire_at', sqlite ? 'integer' : 'bigint')
    .execute();
  await db.schema
    .createIndex('mlplane_local_jobs_idempotency')
    .on('mlplane_local_jobs')
    .columns(['project', 'idempotency_key'])
    .unique()
    .execute();
  await db.schema
    .createIndex('mlplane_local_jobs_project')
    .on('mlplane_local_jobs')
    .columns(['project', 'seq'])
    .execute();
  await db.schema.createIndex('mlplane_local_jobs_run').on('mlplane_local_jobs').columns(['run_id']).execute();
  await db.schema
    .createIndex('mlplane_local_jobs_logs_expire')
    .on('mlplane_local_jobs')
    .columns(['logs_expire_at'])
    .execute();
  await db.schema.createIndex('mlplane_local_jobs_phase').on('mlplane_local_jobs').columns(['phase']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('mlplane_local_jobs').execute();
}
