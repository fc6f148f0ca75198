// Frozen: this file describes the schema of its moment and imports nothing from the application.
import type { Kysely } from 'kysely';

export async function up(db: Kysely<any>): Promise<void> {
  // The token whose principal created this one; revoking it revokes this one too. Null for tokens created by a
  // user or service, and for every token created before this migration (their lineage was not recorded).
  await db.schema.alterTable('authz_tokens').addColumn('parent_token_id', 'text').execute();
  // revokeToken walks a token's descendants through this index.
  await db.schema.createIndex('authz_tokens_parent').on('authz_tokens').column('parent_token_id').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('authz_tokens_parent').execute();
  await db.schema.alterTable('authz_tokens').dropColumn('parent_token_id').execute();
}
