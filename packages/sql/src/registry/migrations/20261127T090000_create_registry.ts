// Frozen: this file describes the schema of its moment and imports nothing from the application.
import { type Kysely, SqliteAdapter } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
  const int64 = sqlite ? 'integer' : 'bigint';
  // AUTOINCREMENT on SQLite and identity on Postgres: ids are never reused.
  const identity = (c: any) =>
    sqlite ? c.primaryKey().autoIncrement() : c.primaryKey().generatedByDefaultAsIdentity();

  // Everything hangs off model_id rather than the name, so a rename touches one row.
  await db.schema
    .createTable('registered_models')
    .addColumn('model_id', int64, identity)
    .addColumn('name', 'text', (c) => c.notNull().unique())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text')
    // Highest version number ever assigned; bumping it with UPDATE ... RETURNING makes numbering race-safe.
    .addColumn('last_version', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('creation_time', 'bigint', (c) => c.notNull())
    .addColumn('last_update_time', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('registered_models_updated')
    .on('registered_models')
    .columns(['last_update_time', 'model_id'])
    .execute();

  await db.schema
    .createTable('registered_model_tags')
    .addColumn('model_id', int64, (c) => c.notNull().references('registered_models.model_id').onDelete('cascade'))
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('value', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('registered_model_tags_pk', ['model_id', 'key'])
    .execute();
  await db.schema
    .createIndex('registered_model_tags_key_value')
    .on('registered_model_tags')
    .columns(['key', 'value', 'model_id'])
    .execute();

  await db.schema
    .createTable('model_versions')
    .addColumn('model_id', int64, (c) => c.notNull().references('registered_models.model_id').onDelete('cascade'))
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('source', 'text', (c) => c.notNull())
    .addColumn('run_id', 'text')
    .addColumn('run_link', 'text')
    // JSON text in both dialects: the registry stores it whole and never queries inside it.
    .addColumn('signature', 'text')
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('status_message', 'text')
    .addColumn('stage', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('user_id', 'text')
    .addColumn('creation_time', 'bigint', (c) => c.notNull())
    .addColumn('last_update_time', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('model_versions_pk', ['model_id', 'version'])
    .execute();
  // Reverse lineage (run -> versions) and latest-per-stage lookups.
  await db.schema
    .createIndex('model_versions_run')
    .on('model_versions')
    .columns(['run_id', 'model_id', 'version'])
    .execute();
  await db.schema
    .createIndex('model_versions_stage')
    .on('model_versions')
    .columns(['model_id', 'stage', 'version'])
    .execute();

  await db.schema
    .createTable('model_version_tags')
    .addColumn('model_id', int64, (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('value', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('model_version_tags_pk', ['model_id', 'version', 'key'])
    .addForeignKeyConstraint(
      'model_version_tags_version',
      ['model_id', 'version'],
      'model_versions',
      ['model_id', 'version'],
      (fk) => fk.onDelete('cascade'),
    )
    .execute();
  await db.schema
    .createIndex('model_version_tags_key_value')
    .on('model_version_tags')
    .columns(['key', 'value', 'model_id', 'version'])
    .execute();

  await db.schema
    .createTable('registered_model_aliases')
    .addColumn('model_id', int64, (c) => c.notNull())
    .addColumn('alias', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addPrimaryKeyConstraint('registered_model_aliases_pk', ['model_id', 'alias'])
    // Deleting a version deletes the aliases pointing at it.
    .addForeignKeyConstraint(
      'registered_model_aliases_version',
      ['model_id', 'version'],
      'model_versions',
      ['model_id', 'version'],
      (fk) => fk.onDelete('cascade'),
    )
    .execute();
  await db.schema
    .createIndex('registered_model_aliases_version')
    .on('registered_model_aliases')
    .columns(['model_id', 'version'])
    .execute();

  // History outlives the versions it describes (only deleting the model removes it): it is the audit of promotions.
  await db.schema
    .createTable('model_stage_transitions')
    .addColumn('transition_id', int64, identity)
    .addColumn('model_id', int64, (c) => c.notNull().references('registered_models.model_id').onDelete('cascade'))
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('from_stage', 'text', (c) => c.notNull())
    .addColumn('to_stage', 'text', (c) => c.notNull())
    .addColumn('actor', 'text')
    .addColumn('reason', 'text')
    .addColumn('caused_by_version', 'integer')
    .addColumn('transition_time', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('model_stage_transitions_version')
    .on('model_stage_transitions')
    .columns(['model_id', 'version', 'transition_id'])
    .execute();

  await db.schema
    .createTable('model_alias_moves')
    .addColumn('move_id', int64, identity)
    .addColumn('model_id', int64, (c) => c.notNull().references('registered_models.model_id').onDelete('cascade'))
    .addColumn('alias', 'text', (c) => c.notNull())
    // Null from_version: the alias is new; null to_version: the alias was deleted.
    .addColumn('from_version', 'integer')
    .addColumn('to_version', 'integer')
    .addColumn('actor', 'text')
    .addColumn('reason', 'text')
    .addColumn('move_time', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema
    .createIndex('model_alias_moves_alias')
    .on('model_alias_moves')
    .columns(['model_id', 'alias', 'move_id'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of [
    'model_alias_moves',
    'model_stage_transitions',
    'registered_model_aliases',
    'model_version_tags',
    'model_versions',
    'registered_model_tags',
    'registered_models',
  ]) {
    await db.schema.dropTable(table).execute();
  }
}
