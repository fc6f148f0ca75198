// Frozen: this file describes the schema of its moment and imports nothing from the application.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  // Custom roles only: built-in roles live in code, so upgrading the code upgrades them.
  await db.schema
    .createTable('authz_roles')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('description', 'text')
    // JSON array of permission strings.
    .addColumn('permissions', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('authz_grants')
    .addColumn('principal_id', 'text', (c) => c.notNull())
    .addColumn('project', 'text', (c) => c.notNull())
    .addColumn('role', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('authz_grants_pk', ['principal_id', 'project', 'role'])
    .execute();
  // deleteRole refuses roles still granted.
  await db.schema.createIndex('authz_grants_role').on('authz_grants').columns(['role', 'principal_id']).execute();

  await db.schema
    .createTable('authz_tokens')
    .addColumn('token_id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('owner_id', 'text', (c) => c.notNull())
    // Hex sha256 of the secret; the secret itself is never stored.
    .addColumn('secret_hash', 'text', (c) => c.notNull())
    // JSON arrays.
    .addColumn('projects', 'text', (c) => c.notNull())
    .addColumn('roles', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addColumn('last_used_at', 'bigint')
    .addColumn('revoked_at', 'bigint')
    .execute();
  await db.schema.createIndex('authz_tokens_owner').on('authz_tokens').columns(['owner_id', 'created_at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('authz_tokens').execute();
  await db.schema.dropTable('authz_grants').execute();
  await db.schema.dropTable('authz_roles').execute();
}
