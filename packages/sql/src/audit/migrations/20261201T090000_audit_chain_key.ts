// Frozen: this file describes the schema of its moment and imports nothing from the application.
import type { Kysely } from 'kysely';

/**
 * The chain becomes keyed (HMAC under a key from the SecretStore). The head records which key, by its id, so that a
 * log opened with another key says so instead of reporting every entry as tampered. Null until the log is first
 * opened with a key; a log that already holds entries is then re-chained under the key by the application.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('audit_head').addColumn('key_id', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('audit_head').dropColumn('key_id').execute();
}
