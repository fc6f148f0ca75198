import { createHash } from 'node:crypto';
import type { MetadataStore, Migration, MigrationResult } from '@mlplane/core';
import { ValidationError } from '@mlplane/core';
import { postgresMigrationLock, preparedQueryLabel, runMigrations, withDriverErrors } from '@mlplane/sql';
import { Kysely, PostgresDialect, type PostgresPool, type PostgresPoolClient, sql, type Transaction } from 'kysely';
import pg from 'pg';

export interface PostgresMetadataStoreOptions {
  /** `postgres://user:pass@host:port/db`. */
  readonly connectionString: string;
  /** Schema that holds every table (created when absent); the server's search_path when unset. */
  readonly schema?: string;
  /** Pool size (default 10). */
  readonly maxConnections?: number;
  /** How long to wait for a free or new connection before UnavailableError (default 10 s). */
  readonly connectionTimeoutMs?: number;
  /**
   * Server settings for this store's sessions, over `DEFAULT_SESSION_SETTINGS` (a key set to null keeps the
   * server's own value), e.g. `{ statement_timeout: '30s' }`.
   */
  readonly settings?: Readonly<Record<string, SessionSetting | null>>;
  /**
   * Whether the hot reads that mark their SQL (prepareQuery of @mlplane/sql: alias resolution) run as named prepared
   * statements, parsed and planned once per connection rather than on every call (default true). Turn it off behind
   * a pooler that does not keep prepared statements for a client across transactions (PgBouncer in transaction
   * mode before 1.21).
   */
  readonly preparedStatements?: boolean;
}

export type SessionSetting = string | number | boolean;

/**
 * The metadata store runs short statements: point lookups, paged searches, batch inserts. Two server defaults
 * cost more than they save on them (measured on the search benchmark, 25k runs, 2 cores): a parallel plan spent
 * 40-55 ms starting its workers before the first of 100 rows, against 25-35 ms for the whole serial plan; and a
 * JIT compile is set off by cost estimates of the same size as those of an ordinary search.
 */
export const DEFAULT_SESSION_SETTINGS: Readonly<Record<string, SessionSetting>> = Object.freeze({
  max_parallel_workers_per_gather: 0,
  jit: 'off',
});

const SETTING_NAME = /^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)?$/;
// Startup options are split on spaces and read with backslash escapes; plain tokens need neither.
const SETTING_VALUE = /^[A-Za-z0-9_.:+-]+$/;

const SCHEMA_PATTERN = /^[a-z_][a-z0-9_]{0,62}$/;
const INT8_OID = 20;

/**
 * bigint columns hold epoch milliseconds, steps and identity ids, all within 2^53, so they come back as
 * numbers (pg returns strings by default to be safe for the full int8 range).
 */
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary'
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format)) as pg.CustomTypesConfig['getTypeParser'],
};

/** The production MetadataStore: PostgreSQL through a `pg` Pool and kysely's PostgresDialect. */
export class PostgresMetadataStore implements MetadataStore {
  readonly dialect = 'postgres' as const;
  readonly schema: string | undefined;
  readonly #db: Kysely<any>;
  #closing: Promise<void> | undefined;

  private constructor(db: Kysely<any>, schema: string | undefined) {
    this.#db = db;
    this.schema = schema;
  }

  /** Connects, creating `schema` when given; UnavailableError when the server cannot be reached. */
  static async connect(options: PostgresMetadataStoreOptions): Promise<PostgresMetadataStore> {
    const { schema } = options;
    if (schema !== undefined && !SCHEMA_PATTERN.test(schema)) {
      throw new ValidationError(`schema '${schema}' must be lowercase letters, digits and '_'`, { field: 'schema' });
    }
    const pool = new pg.Pool({
      connectionString: options.connectionString,
      max: options.maxConnections ?? 10,
      connectionTimeoutMillis: options.connectionTimeoutMs ?? 10_000,
      types,
      // Startup parameters, so every pooled connection has them before its first query.
      options: startupOptions(schema, options.settings) || undefined,
    });
    // Idle clients that lose their server emit 'error'; the pool drops them, and an unhandled event would crash.
    pool.on('error', () => {});
    // A checked-out client has no pool listener: a server shutdown between two statements of a transaction would
    // emit an unhandled 'error' and crash the process; its next query fails with UnavailableError instead.
    pool.on('connect', (client) => client.on('error', () => {}));
    const db = new Kysely<any>({
      dialect: withDriverErrors(
        new PostgresDialect({ pool: options.preparedStatements === false ? pool : preparingPool(pool) }),
        'PostgreSQL metadata store',
      ),
    });
    try {
      if (schema) await createSchema(db, schema);
      else await sql`SELECT 1`.execute(db);
    } catch (cause) {
      await db.destroy();
      throw cause;
    }
    return new PostgresMetadataStore(db, schema);
  }

  db<DB = any>(): Kysely<DB> {
    return this.#db as Kysely<DB>;
  }

  transaction<T, DB = any>(fn: (trx: Transaction<DB>) => Promise<T>): Promise<T> {
    return (this.#db as Kysely<DB>).transaction().execute(fn);
  }

  migrate(owner: string, migrations: Readonly<Record<string, Migration>>): Promise<MigrationResult> {
    return runMigrations(this.#db, owner, migrations, { lock: postgresMigrationLock });
  }

  close(): Promise<void> {
    this.#closing ??= this.#db.destroy();
    return this.#closing;
  }
}

/** Most marked SQL texts given a statement name; marked texts are fixed shapes, so this is a guard, not a cache. */
const MAX_PREPARED = 256;

/**
 * The pool as kysely sees it, whose clients run SQL marked by prepareQuery as named statements: pg parses such a
 * statement once per connection and keeps it, and the server plans it once (generically after a few runs) instead of
 * on every call. Unmarked SQL runs as before.
 */
function preparingPool(pool: pg.Pool): PostgresPool {
  // Text to statement name; the name carries a digest of the text, since one name must always mean one text.
  const names = new Map<string, string>();
  const nameOf = (text: string): string | undefined => {
    const known = names.get(text);
    if (known !== undefined) return known;
    const label = preparedQueryLabel(text);
    if (label === undefined || names.size >= MAX_PREPARED) return undefined;
    const name = `${label}_${createHash('sha256').update(text).digest('hex').slice(0, 16)}`;
    names.set(text, name);
    return name;
  };
  const wrapped = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  const wrap = (client: pg.PoolClient): PostgresPoolClient => {
    let seen = wrapped.get(client);
    if (!seen) {
      seen = {
        get processID() {
          return (client as { processID?: number }).processID;
        },
        query: ((text: unknown, values: readonly unknown[]) => {
          const name = typeof text === 'string' ? nameOf(text) : undefined;
          if (name !== undefined) return client.query({ name, text: text as string, values: values as unknown[] });
          return client.query(text as string, values as unknown[]);
        }) as unknown as PostgresPoolClient['query'],
        release: (destroy?: boolean) => client.release(destroy),
      };
      wrapped.set(client, seen);
    }
    return seen;
  };
  return {
    // pg sets Client on every pool (its types leave it out); kysely opens one to cancel an aborted query.
    Client: (pool as unknown as Pick<PostgresPool, 'Client'>).Client,
    options: pool.options,
    connect: async () => wrap(await pool.connect()),
    end: () => pool.end(),
  };
}

function startupOptions(
  schema: string | undefined,
  overrides: Readonly<Record<string, SessionSetting | null>> = {},
): string {
  const settings: Record<string, SessionSetting | null> = { ...DEFAULT_SESSION_SETTINGS, ...overrides };
  if (schema) settings.search_path = schema;
  const parts: string[] = [];
  for (const [name, value] of Object.entries(settings)) {
    if (!SETTING_NAME.test(name)) {
      throw new ValidationError(`settings: '${name}' is not a PostgreSQL setting name`, { field: `settings.${name}` });
    }
    if (value === null) continue;
    const text = String(value);
    if (!SETTING_VALUE.test(text)) {
      throw new ValidationError(
        `settings.${name}: '${text}' must be letters, digits and _ . : + - (no spaces or quotes)`,
        { field: `settings.${name}` },
      );
    }
    parts.push(`-c ${name}=${text}`);
  }
  return parts.join(' ');
}

async function createSchema(db: Kysely<any>, schema: string): Promise<void> {
  try {
    await sql`CREATE SCHEMA IF NOT EXISTS ${sql.id(schema)}`.execute(db);
  } catch (err) {
    // Two processes creating the schema together can still collide on the catalog: then it exists.
    const code = (err as { code?: unknown }).code;
    if (code !== '23505' && code !== '42P06') throw err;
  }
}
