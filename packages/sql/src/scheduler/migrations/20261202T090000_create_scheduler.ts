// Frozen: this file describes the schema of its moment and imports nothing from the application.
import { type Kysely, SqliteAdapter, sql } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
  const big = sqlite ? 'integer' : 'bigint';
  // One row per job the scheduler accepted; `seq` orders submissions (first come, first served within a priority).
  await db.schema
    .createTable('scheduler_jobs')
    .addColumn('seq', big, (c) =>
      sqlite ? c.primaryKey().autoIncrement() : c.primaryKey().generatedAlwaysAsIdentity(),
    )
    .addColumn('id', 'text', (c) => c.notNull().unique())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('project', 'text', (c) => c.notNull())
    .addColumn('queue', 'text', (c) => c.notNull())
    .addColumn('priority_class', 'text', (c) => c.notNull())
    .addColumn('priority', 'integer', (c) => c.notNull())
    .addColumn('run_id', 'text')
    .addColumn('idempotency_key', 'text')
    .addColumn('spec', 'text', (c) => c.notNull())
    .addColumn('labels', 'text', (c) => c.notNull())
    // What the job holds while Admitted or Running, summed over its replicas: quota use is the sum over such jobs.
    .addColumn('cpu_milli', big, (c) => c.notNull())
    .addColumn('memory_bytes', big, (c) => c.notNull())
    .addColumn('gpus', 'integer', (c) => c.notNull())
    .addColumn('gpu_type', 'text')
    .addColumn('phase', 'text', (c) => c.notNull())
    // Fencing token of the scheduler replica that admitted or took over the job; its writes name it.
    .addColumn('owner_token', big)
    .addColumn('backend_id', 'text')
    .addColumn('retries_used', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('replicas', 'text')
    .addColumn('reason', 'text')
    .addColumn('message', 'text')
    .addColumn('submitted_at', big, (c) => c.notNull())
    .addColumn('admitted_at', big)
    .addColumn('started_at', big)
    .addColumn('finished_at', big)
    // Bumped by every change, so watchers see each one.
    .addColumn('version', big, (c) => c.notNull().defaultTo(1))
    .execute();
  await db.schema
    .createIndex('scheduler_jobs_idempotency')
    .on('scheduler_jobs')
    .columns(['project', 'idempotency_key'])
    .unique()
    .where(sql.ref('idempotency_key'), 'is not', null)
    .execute();
  // Admission reads the queued jobs per project in priority then submission order.
  await db.schema
    .createIndex('scheduler_jobs_queued')
    .on('scheduler_jobs')
    .columns(['project', 'priority', 'seq'])
    .where(sql.ref('phase'), '=', 'Queued')
    .execute();
  // Quota use, takeover and following read the jobs that hold resources.
  await db.schema
    .createIndex('scheduler_jobs_active')
    .on('scheduler_jobs')
    .columns(['owner_token', 'project', 'queue'])
    .where(sql.ref('phase'), 'in', ['Admitted', 'Running'])
    .execute();
  await db.schema.createIndex('scheduler_jobs_project_seq').on('scheduler_jobs').columns(['project', 'seq']).execute();
  // A scheduler replica's lease: each registration gets a new, larger fencing token.
  await db.schema
    .createTable('scheduler_replicas')
    .addColumn('fencing_token', big, (c) =>
      sqlite ? c.primaryKey().autoIncrement() : c.primaryKey().generatedAlwaysAsIdentity(),
    )
    .addColumn('replica', 'text', (c) => c.notNull())
    /** Epoch milliseconds by the database's clock. */
    .addColumn('expires_at', big, (c) => c.notNull())
    .execute();
  // Rows locked while admitting (`project:<name>`, `queue:<name>`), so quota checks and updates serialize per key.
  await db.schema
    .createTable('scheduler_locks')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .execute();
  await db.schema
    .createTable('scheduler_schedules')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('cron', 'text', (c) => c.notNull())
    .addColumn('timezone', 'text')
    .addColumn('spec', 'text', (c) => c.notNull())
    .addColumn('next_fire_at', big, (c) => c.notNull())
    .addColumn('last_fired_at', big)
    .addColumn('last_job_id', 'text')
    .addColumn('created_at', big, (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('scheduler_schedules').execute();
  await db.schema.dropTable('scheduler_locks').execute();
  await db.schema.dropTable('scheduler_replicas').execute();
  await db.schema.dropTable('scheduler_jobs').execute();
}
