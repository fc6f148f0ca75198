// Frozen: this file describes the schema of its moment and imports nothing from the application.
import type { Kysely } from 'kysely';

/** The W3C trace context of the work that recorded each event (null for untraced work). */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('outbox').addColumn('traceparent', 'text').execute();
  await db.schema.alterTable('outbox').addColumn('tracestate', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('outbox').dropColumn('tracestate').execute();
  await db.schema.alterTable('outbox').dropColumn('traceparent').execute();
}
