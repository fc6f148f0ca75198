// Frozen: this file describes the schema of its moment and imports nothing from the application.
import { type Kysely, SqliteAdapter } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
  const bigint = sqlite ? 'integer' : 'bigint';
  await db.schema
    .createTable('mlplane_pipeline_runs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('pipeline', 'text', (c) => c.notNull())
    .addColumn('project', 'text', (c) => c.notNull())
    .addColumn('definition_hash', 'text', (c) => c.notNull())
    .addColumn('params', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('tracker_run_id', 'text')
    .addColumn('error', 'text')
    .addColumn('created_at', bigint, (c) => c.notNull())
    .addColumn('updated_at', bigint, (c) => c.notNull())
    .addColumn('finished_at', bigint)
    .execute();
  await db.schema
    .createIndex('mlplane_pipeline_runs_by_pipeline')
    .on('mlplane_pipeline_runs')
    .columns(['project', 'pipeline', 'created_at'])
    .execute();
  // One row per step execution of a run: a plain step, a fan-out (its summary) and each item of a fan-out.
  await db.schema
    .createTable('mlplane_pipeline_steps')
    .addColumn('run_id', 'text', (c) => c.notNull().references('mlplane_pipeline_runs.id').onDelete('cascade'))
    .addColumn('step_id', 'text', (c) => c.notNull())
    .addColumn('node', 'text', (c) => c.notNull())
    .addColumn('pipeline', 'text', (c) => c.notNull())
    .addColumn('project', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('attempt', 'integer', (c) => c.notNull())
    .addColumn('job_id', 'text')
    .addColumn('cache_key', 'text')
    .addColumn('cache_inputs', 'text')
    .addColumn('inputs', 'text')
    .addColumn('outputs', 'text')
    .addColumn('explanation', 'text')
    .addColumn('tracker_run_id', 'text')
    .addColumn('error', 'text')
    .addColumn('started_at', bigint)
    .addColumn('finished_at', bigint)
    .addColumn('updated_at', bigint, (c) => c.notNull())
    .addPrimaryKeyConstraint('mlplane_pipeline_steps_pk', ['run_id', 'step_id'])
    .execute();
  await db.schema
    .createIndex('mlplane_pipeline_steps_by_cache_key')
    .on('mlplane_pipeline_steps')
    .columns(['project', 'cache_key', 'finished_at'])
    .execute();
  await db.schema
    .createIndex('mlplane_pipeline_steps_by_step')
    .on('mlplane_pipeline_steps')
    .columns(['project', 'pipeline', 'step_id', 'finished_at'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('mlplane_pipeline_steps').execute();
  await db.schema.dropTable('mlplane_pipeline_runs').execute();
}
