// Frozen: this file describes the schema of its moment and imports nothing from the application.
import { type Kysely, SqliteAdapter } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
  const int64 = sqlite ? 'integer' : 'bigint';
  // AUTOINCREMENT on SQLite and identity on Postgres: ids are never reused, as the port requires.
  const identity = (c: any) =>
    sqlite ? c.primaryKey().autoIncrement() : c.primaryKey().generatedByDefaultAsIdentity();

  await db.schema
    .createTable('experiments')
    .addColumn('experiment_id', int64, identity)
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('artifact_location', 'text', (c) => c.notNull())
    .addColumn('lifecycle_stage', 'text', (c) => c.notNull())
    .addColumn('creation_time', 'bigint', (c) => c.notNull())
    .addColumn('last_update_time', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('experiments_last_update')
    .on('experiments')
    .columns(['last_update_time', 'experiment_id'])
    .execute();

  await db.schema
    .createTable('experiment_tags')
    .addColumn('experiment_id', int64, (c) => c.notNull().references('experiments.experiment_id').onDelete('cascade'))
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('value', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('experiment_tags_pk', ['experiment_id', 'key'])
    .execute();

  await db.schema
    .createTable('runs')
    .addColumn('run_id', 'text', (c) => c.primaryKey())
    .addColumn('experiment_id', int64, (c) => c.notNull().references('experiments.experiment_id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('start_time', 'bigint', (c) => c.notNull())
    .addColumn('end_time', 'bigint')
    .addColumn('artifact_uri', 'text', (c) => c.notNull())
    .addColumn('lifecycle_stage', 'text', (c) => c.notNull())
    .addColumn('parent_run_id', 'text', (c) => c.references('runs.run_id'))
    .addColumn('user_id', 'text')
    .addColumn('deleted_time', 'bigint')
    // 1 when the run was deleted by deleting its experiment, so restoring the experiment restores only those.
    .addColumn('deleted_with_experiment', 'smallint', (c) => c.notNull().defaultTo(0))
    .execute();
  // The default search order (start_time DESC, run_id ASC) within an experiment and view, so that a first page
  // is read in index order and the scan stops after it.
  await db.schema
    .createIndex('runs_search')
    .on('runs')
    .columns(['experiment_id', 'lifecycle_stage', 'start_time desc', 'run_id'])
    .execute();
  await db.schema.createIndex('runs_parent').on('runs').column('parent_run_id').execute();

  for (const table of ['run_tags', 'params']) {
    await db.schema
      .createTable(table)
      .addColumn('run_id', 'text', (c) => c.notNull().references('runs.run_id').onDelete('cascade'))
      .addColumn('key', 'text', (c) => c.notNull())
      .addColumn('value', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint(`${table}_pk`, ['run_id', 'key'])
      .execute();
    // Filter terms look rows up by key and value, then correlate on run_id.
    await db.schema.createIndex(`${table}_key_value`).on(table).columns(['key', 'value', 'run_id']).execute();
  }

  await db.schema
    .createTable('metrics')
    .addColumn('id', int64, identity)
    // No foreign key on this hot table: a per-row check costs about a third of batch ingest on Postgres; writers
    // lock the run row (FOR KEY SHARE) instead, and runs are only soft-deleted.
    .addColumn('run_id', 'text', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    // NaN is stored as 0 with is_nan = 1: SQLite turns NaN into NULL, and search must not compare it.
    .addColumn('value', 'double precision', (c) => c.notNull())
    .addColumn('is_nan', 'smallint', (c) => c.notNull())
    .addColumn('step', 'bigint', (c) => c.notNull())
    .addColumn('timestamp', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('metrics_history')
    .on('metrics')
    .columns(['run_id', 'key', 'step', 'timestamp', 'id'])
    .execute();

  await db.schema
    .createTable('latest_metrics')
    .addColumn('run_id', 'text', (c) => c.notNull().references('runs.run_id').onDelete('cascade'))
    // The run's experiment, copied (runs never move), so that a search walks one experiment's values in order.
    .addColumn('experiment_id', int64, (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('value', 'double precision', (c) => c.notNull())
    .addColumn('is_nan', 'smallint', (c) => c.notNull())
    .addColumn('step', 'bigint', (c) => c.notNull())
    .addColumn('timestamp', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('latest_metrics_pk', ['run_id', 'key'])
    .execute();
  // Serves metric filters (key = ?, is_nan = 0, value range) and metric-first ordering (NaN above every number)
  // within an experiment, so a page of the best runs is read in index order instead of sorting them all.
  await db.schema
    .createIndex('latest_metrics_search')
    .on('latest_metrics')
    .columns(['experiment_id', 'key', 'is_nan', 'value', 'run_id'])
    .execute();

  await db.schema
    .createTable('datasets')
    .addColumn('dataset_id', int64, identity)
    .addColumn('experiment_id', int64, (c) => c.notNull().references('experiments.experiment_id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('digest', 'text', (c) => c.notNull())
    .addColumn('source_type', 'text', (c) => c.notNull())
    .addColumn('source', 'text', (c) => c.notNull())
    .addColumn('schema', 'text')
    .addColumn('profile', 'text')
    .addUniqueConstraint('datasets_identity', ['experiment_id', 'name', 'digest'])
    .execute();

  await db.schema
    .createTable('run_inputs')
    .addColumn('input_id', int64, identity)
    .addColumn('run_id', 'text', (c) => c.notNull().references('runs.run_id').onDelete('cascade'))
    .addColumn('dataset_id', int64, (c) => c.notNull().references('datasets.dataset_id').onDelete('cascade'))
    // The `mlflow.data.context` tag, kept as a column so `datasets.context` filters use an index.
    .addColumn('context', 'text')
    .addColumn('tags', 'text', (c) => c.notNull())
    .addUniqueConstraint('run_inputs_once', ['run_id', 'dataset_id'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of [
    'run_inputs',
    'datasets',
    'latest_metrics',
    'metrics',
    'params',
    'run_tags',
    'runs',
    'experiment_tags',
    'experiments',
  ]) {
    await db.schema.dropTable(table).execute();
  }
}
