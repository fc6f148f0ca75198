import { createHash } from 'node:crypto';
import {
  ConflictError,
  MIGRATION_NAME_PATTERN,
  MIGRATION_OWNER_PATTERN,
  type Migration,
  type MigrationResult,
  ValidationError,
} from '@mlplane/core';
import { type Kysely, sql, type Transaction } from 'kysely';

/** Table that records an owner's applied migrations; identifiers are capped at Postgres's 63 bytes. */
export function migrationTableName(owner: string): string {
  const name = `mlplane_migrations_${owner}`;
  if (name.length <= 63) return name;
  const digest = createHash('sha256').update(owner).digest('hex').slice(0, 8);
  return `mlplane_migrations_${owner.slice(0, 35)}_${digest}`;
}

export interface MigrateOptions {
  /**
   * Takes the owner's migration lock inside `trx`, held until it ends. Postgres: a transaction-scoped
   * advisory lock; SQLite: nothing, because every write transaction there already begins IMMEDIATE.
   */
  readonly lock: (trx: Transaction<any>, owner: string) => Promise<void>;
}

/**
 * Applies `owner`'s pending migrations in name order, one transaction per migration. Each transaction takes
 * the lock first and then re-reads what is applied, so concurrent callers serialize and apply each migration
 * once, and a crash leaves every migration either fully applied and recorded or not at all.
 */
export async function runMigrations(
  db: Kysely<any>,
  owner: string,
  migrations: Readonly<Record<string, Migration>>,
  options: MigrateOptions,
): Promise<MigrationResult> {
  if (typeof owner !== 'string' || !MIGRATION_OWNER_PATTERN.test(owner)) {
    throw new ValidationError(
      `migration owner '${owner}' is invalid: use lowercase letters, digits, '_' and '-', starting with a letter`,
      { field: 'owner' },
    );
  }
  const names = Object.keys(migrations).sort();
  for (const name of names) {
    if (!MIGRATION_NAME_PATTERN.test(name)) {
      throw new ValidationError(
        `migration name '${name}' of owner '${owner}' must look like 20250301T120000_create_runs (UTC timestamp, '_', snake_case)`,
        { field: 'migrations' },
      );
    }
    if (typeof migrations[name]?.up !== 'function') {
      throw new ValidationError(`migration '${owner}/${name}' has no up() function`, { field: 'migrations' });
    }
  }
  const table = migrationTableName(owner);
  const applied: string[] = [];
  for (;;) {
    const next = await db.transaction().execute(async (trx) => {
      await options.lock(trx, owner);
      await trx.schema
        .createTable(table)
        .ifNotExists()
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('applied_at', 'bigint', (c) => c.notNull())
        .execute();
      const rows = await trx.selectFrom(table).select('name').execute();
      const done = new Set(rows.map((r) => r.name as string));
      const unknown = [...done].filter((n) => !(n in migrations)).sort();
      if (unknown.length > 0) {
        throw new ConflictError(
          `the database holds migration${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => `'${owner}/${n}'`).join(', ')} that this code does not know: it is older than the schema; deploy the newer code`,
        );
      }
      const pending = names.find((n) => !done.has(n));
      if (pending === undefined) return undefined;
      await migrations[pending]!.up(trx);
      await trx.insertInto(table).values({ name: pending, applied_at: Date.now() }).execute();
      return pending;
    });
    if (next === undefined) return { applied };
    applied.push(next);
  }
}

/**
 * The Postgres migration lock: an advisory lock keyed by schema and owner, released when the transaction
 * ends, so that owners and schemas sharing one database never wait on each other.
 */
export async function postgresMigrationLock(trx: Transaction<any>, owner: string): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ${`:mlplane.migrate:${owner}`}, 0))`.execute(
    trx,
  );
}
