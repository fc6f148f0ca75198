import type { Kysely, Transaction } from 'kysely';
import { createServiceRef } from '../kernel/service-ref.js';

export { ConflictError, UnavailableError, ValidationError } from './errors.js';

/** Owners name their migration set (a plugin id or core module): lowercase, digits, `_`, `-`. */
export const MIGRATION_OWNER_PATTERN = /^[a-z][a-z0-9_-]{0,62}$/;
/**
 * Migration names start with a UTC timestamp so that name order is apply order:
 * `20250301T120000_create_runs` (`YYYYMMDDTHHMMSS_snake_case`).
 */
export const MIGRATION_NAME_PATTERN = /^\d{8}T\d{6}_[a-z0-9_]+$/;

/**
 * One schema change, frozen in time: it never imports application code, and takes `Kysely<any>` because
 * the schema it sees is the one of its own moment. Same shape as kysely's `Migration`.
 */
export interface Migration {
  up(db: Kysely<any>): Promise<void>;
  down?(db: Kysely<any>): Promise<void>;
}

export interface MigrationResult {
  /** Names applied by this call, in order; empty when already up to date. */
  readonly applied: readonly string[];
}

/**
 * The platform's SQL database. Tables belong to one owner each; only that owner's migrations change them.
 * Connection failures raise UnavailableError with the driver error as cause.
 */
export interface MetadataStore {
  /** SQL dialect, so that owners can branch where Postgres and SQLite differ (PGlite reports `postgres`). */
  readonly dialect: 'postgres' | 'sqlite';
  /** The shared connection pool; type it with your own `Database` interface. */
  db<DB = any>(): Kysely<DB>;
  /**
   * Runs `fn` in one transaction, committing when it resolves and rolling back when it throws (rethrown).
   * Not reentrant: inside `fn` use `trx`, never `db()`, or the work escapes the transaction.
   * Domain events of the change are written to the outbox with the same `trx`.
   */
  transaction<T, DB = any>(fn: (trx: Transaction<DB>) => Promise<T>): Promise<T>;
  /**
   * Applies the owner's pending migrations in name order, each in its own transaction, recorded in
   * a table per owner. Holds a database lock while it runs, so processes starting together apply each
   * migration once. ValidationError for bad owner or migration names; ConflictError when the database
   * holds an applied migration missing from `migrations` (code older than the schema).
   */
  migrate(owner: string, migrations: Readonly<Record<string, Migration>>): Promise<MigrationResult>;
  /** Waits for in-flight queries and closes the pool; idempotent. */
  close(): Promise<void>;
}

export const metadataStoreRef = createServiceRef<MetadataStore>({ id: 'core.metadataStore' });
