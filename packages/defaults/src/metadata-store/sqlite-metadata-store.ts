import { closeSync, mkdirSync, openSync, realpathSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { MetadataStore, Migration, MigrationResult } from '@mlplane/core';
import { UnavailableError } from '@mlplane/core';
import { isUnavailable, runMigrations, withDriverErrors } from '@mlplane/sql';
import Database from 'better-sqlite3';
import {
  type AbortableQueryOptions,
  type Compilable,
  CompiledQuery,
  type DatabaseConnection,
  type Driver,
  isCompilable,
  Kysely,
  type KyselyConfig,
  type QueryResult,
  SqliteAdapter,
  SqliteDialect,
  type SqliteDialectConfig,
  SqliteDriver,
  sql,
  type Transaction,
} from 'kysely';

export interface SqliteMetadataStoreOptions {
  /**
   * Database file, created owner-only (0600, as are its -wal and -shm files), in a directory created 0700.
   * `:memory:` gives a private, throwaway database.
   */
  readonly path: string;
  /** How long a write waits for another process's write transaction before UnavailableError (default 10 s). */
  readonly busyTimeoutMs?: number;
  /**
   * `FULL` (default) makes every commit durable across power loss; `NORMAL` is faster in WAL mode and
   * only loses the last commits on an OS crash, never on a process crash.
   */
  readonly synchronous?: 'FULL' | 'NORMAL';
}

/**
 * The embedded MetadataStore: SQLite in WAL mode via better-sqlite3, one connection per store.
 * Readers never block writers; write transactions begin IMMEDIATE so that they take the database's write
 * lock up front (no lock upgrade deadlocks between processes). Several stores on one file in one process
 * also share an in-process lock, because better-sqlite3 waits for a busy database synchronously and would
 * otherwise stall the event loop that the lock holder needs.
 */
export class SqliteMetadataStore implements MetadataStore {
  readonly dialect = 'sqlite' as const;
  readonly path: string;
  readonly #db: Kysely<any>;
  #closing: Promise<void> | undefined;

  private constructor(path: string, db: Kysely<any>) {
    this.path = path;
    this.#db = db;
  }

  /** Opens (creating when absent) the database file; UnavailableError when it cannot be opened. */
  static async open(options: SqliteMetadataStoreOptions): Promise<SqliteMetadataStore> {
    const memory = options.path === ':memory:';
    const path = memory ? options.path : resolve(options.path);
    let raw: Database.Database;
    try {
      if (!memory) {
        mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
        // SQLite would create the file 0644 (and its -wal and -shm files with the same mode): create it owner-only
        // first. An empty file is a new database to SQLite; an existing file keeps its mode.
        closeSync(openSync(path, 'a', 0o600));
      }
      raw = new Database(path, { timeout: options.busyTimeoutMs ?? 10_000 });
      raw.pragma('journal_mode = WAL');
      raw.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`);
      raw.pragma('foreign_keys = ON');
      // Planner statistics, bounded in cost: gathered where missing or stale now, refreshed again at close.
      raw.pragma('analysis_limit = 400');
      raw.pragma('optimize = 0x10002');
    } catch (cause) {
      throw new UnavailableError(`cannot open the SQLite metadata store at ${path}: ${(cause as Error).message}`, {
        cause,
      });
    }
    const lockKey = memory ? Symbol('memory') : realpathSync(path);
    const statements = cachingStatements(raw);
    const connection = new ConnectionQueue();
    const what = `SQLite metadata store ${path}`;
    const dialect = new ImmediateSqliteDialect({ database: statements }, fileLock(lockKey), connection);
    const db = new StoreKysely({ dialect: withDriverErrors(dialect, what) }, (query) => {
      // At once only when nothing holds the connection: a transaction's statements must not see this one between
      // theirs, nor this one see theirs.
      if (!connection.tryHold()) return undefined;
      try {
        const statement = statements.prepare(query.sql);
        return statement.reader ? (statement.all(query.parameters) as unknown[]) : undefined;
      } catch (err) {
        throw isUnavailable(err) ? new UnavailableError(`${what}: ${(err as Error).message}`, { cause: err }) : err;
      } finally {
        connection.release();
      }
    });
    return new SqliteMetadataStore(path, db);
  }

  db<DB = any>(): Kysely<DB> {
    return this.#db as Kysely<DB>;
  }

  transaction<T, DB = any>(fn: (trx: Transaction<DB>) => Promise<T>): Promise<T> {
    return (this.#db as Kysely<DB>).transaction().execute(fn);
  }

  migrate(owner: string, migrations: Readonly<Record<string, Migration>>): Promise<MigrationResult> {
    // BEGIN IMMEDIATE (see the driver) is the lock: it excludes every other writer until commit.
    return runMigrations(this.#db, owner, migrations, { lock: async () => {} });
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        await sql`PRAGMA optimize`.execute(this.#db);
      } catch {
        // Statistics are an optimization; a database that cannot take them still closes.
      }
      await this.#db.destroy();
    })();
    return this.#closing;
  }
}

/**
 * The store's kysely. `executeQuery` of an already compiled read (hot reads compile their SQL once, then bind new
 * values) runs at once when the connection is free: the same cached statement on the same connection, without the
 * dozen promise hops of kysely's executor, which cost more than an indexed read. Builders, writes, reads while a
 * transaction or another query holds the connection, and transactions' own queries (a Transaction is a plain
 * Kysely) go the usual way.
 */
class StoreKysely extends Kysely<any> {
  readonly #readNow: (query: CompiledQuery) => unknown[] | undefined;
  #destroyed = false;

  constructor(config: KyselyConfig, readNow: (query: CompiledQuery) => unknown[] | undefined) {
    super(config);
    this.#readNow = readNow;
  }

  override async executeQuery<R>(
    query: CompiledQuery<R> | Compilable<R>,
    options?: AbortableQueryOptions,
  ): Promise<QueryResult<R>> {
    if (!this.#destroyed && !isCompilable(query) && options?.signal === undefined) {
      const rows = this.#readNow(query);
      if (rows) return { rows: rows as R[] };
    }
    return super.executeQuery(query, options);
  }

  override async destroy(): Promise<void> {
    this.#destroyed = true;
    await super.destroy();
  }
}

/** A FIFO mutex; one per database file in this process. */
class AsyncLock {
  #tail: Promise<void> = Promise.resolve();

  acquire(): Promise<() => void> {
    let release!: () => void;
    const held = new Promise<void>((r) => {
      release = r;
    });
    const acquired = this.#tail.then(() => release);
    this.#tail = this.#tail.then(() => held);
    return acquired;
  }
}

const fileLocks = new Map<string | symbol, AsyncLock>();

function fileLock(key: string | symbol): AsyncLock {
  let lock = fileLocks.get(key);
  if (!lock) {
    lock = new AsyncLock();
    fileLocks.set(key, lock);
  }
  return lock;
}

/**
 * The store's one connection, lent to one query or transaction at a time and handed to the waiters in arrival order,
 * each woken once. kysely's own mutex for single-connection dialects wakes every waiter at each release, all but one
 * of which go back to wait: with 32 concurrent readers that costs several times the indexed read itself.
 */
class ConnectionQueue {
  #held = false;
  readonly #waiting: (() => void)[] = [];

  /** Undefined when the connection was free and is now held; otherwise resolves once it is handed over. */
  acquire(): Promise<void> | undefined {
    if (this.tryHold()) return undefined;
    return new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  /** Holds the connection when it is free, and says whether it did. */
  tryHold(): boolean {
    if (this.#held) return false;
    this.#held = true;
    return true;
  }

  release(): void {
    const next = this.#waiting.shift();
    // Handed over: the connection stays held, by the next waiter.
    if (next) next();
    else this.#held = false;
  }
}

/**
 * Tells kysely not to put its own mutex in front of the driver (the only thing the flag decides): the driver below
 * queues for the connection itself. Still a SqliteAdapter, which is what frozen migrations test for.
 */
class QueuedSqliteAdapter extends SqliteAdapter {
  override get supportsMultipleConnections(): boolean {
    return true;
  }
}

class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig;
  readonly #lock: AsyncLock;

  readonly #connection: ConnectionQueue;

  constructor(config: SqliteDialectConfig, lock: AsyncLock, connection: ConnectionQueue) {
    super(config);
    this.#config = config;
    this.#lock = lock;
    this.#connection = connection;
  }

  override createAdapter(): SqliteAdapter {
    return new QueuedSqliteAdapter();
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.#config, this.#lock, this.#connection);
  }
}

class ImmediateSqliteDriver extends SqliteDriver {
  readonly #lock: AsyncLock;
  readonly #connection: ConnectionQueue;
  #release: (() => void) | undefined;

  constructor(config: SqliteDialectConfig, lock: AsyncLock, connection: ConnectionQueue) {
    super(config);
    this.#lock = lock;
    this.#connection = connection;
  }

  override async acquireConnection(): Promise<DatabaseConnection> {
    const handedOver = this.#connection.acquire();
    if (handedOver) await handedOver;
    return super.acquireConnection();
  }

  override async releaseConnection(): Promise<void> {
    this.#connection.release();
  }

  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    // kysely serializes this store's single connection, so at most one transaction is open here at a time.
    const release = await this.#lock.acquire();
    try {
      await connection.executeQuery(CompiledQuery.raw('begin immediate'));
      this.#release = release;
    } catch (err) {
      release();
      throw err;
    }
  }

  override async commitTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await connection.executeQuery(CompiledQuery.raw('commit'));
    } finally {
      this.#releaseLock();
    }
  }

  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await connection.executeQuery(CompiledQuery.raw('rollback'));
    } finally {
      this.#releaseLock();
    }
  }

  #releaseLock(): void {
    const release = this.#release;
    this.#release = undefined;
    release?.();
  }
}

const STATEMENT_CACHE_SIZE = 256;

/** Reuses prepared statements by SQL text, since kysely prepares each query anew and batches repeat shapes. */
function cachingStatements(raw: Database.Database): SqliteDialectConfig['database'] & {
  prepare(sql: string): Database.Statement;
} {
  const cache = new Map<string, Database.Statement>();
  return {
    prepare(sqlText: string) {
      let stmt = cache.get(sqlText);
      if (stmt) {
        cache.delete(sqlText);
      } else {
        stmt = raw.prepare(sqlText);
        if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value as string);
      }
      cache.set(sqlText, stmt);
      return stmt;
    },
    close() {
      cache.clear();
      raw.close();
    },
  };
}
