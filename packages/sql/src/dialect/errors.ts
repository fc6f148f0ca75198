import { UnavailableError, ValidationError } from '@mlplane/core';
import type { CompiledQuery, DatabaseConnection, Dialect, Driver, QueryResult, TransactionSettings } from 'kysely';

interface DriverError {
  readonly code?: unknown;
}

const codeOf = (err: unknown): string | undefined => {
  const code = (err as DriverError | null)?.code;
  return typeof code === 'string' ? code : undefined;
};

/** A unique or primary-key violation, from pg (SQLSTATE 23505) or better-sqlite3. */
export function isUniqueViolation(err: unknown): boolean {
  const code = codeOf(err);
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** Errors that say the database could not serve, so retrying later may succeed. */
export function isUnavailable(err: unknown): boolean {
  const code = codeOf(err);
  if (code === undefined) {
    return (
      err instanceof Error && // pg's own client errors: a dropped connection, a client broken by one, a pool timeout.
      /Connection terminated|not queryable|timeout exceeded when trying to connect/i.test(err.message)
    );
  }
  return (
    ['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH'].includes(code) ||
    // Class 08 (connection exception), 53 (insufficient resources), 57P (operator intervention).
    /^(08|53|57P)/.test(code) ||
    code === 'SQLITE_BUSY' ||
    code.startsWith('SQLITE_CANTOPEN') ||
    code.startsWith('SQLITE_IOERR') ||
    code === 'SQLITE_FULL'
  );
}

/** SQLite's messages for a statement beyond one of its compile-time limits (sqlite.org/limits.html). */
const SQLITE_LIMIT_MESSAGE =
  /too many SQL variables|Expression tree is too large|at most \d+ tables in a join|too many terms in compound SELECT|too many columns|parser stack overflow|too many arguments on function|pattern too complex|too many FROM clause terms|string or blob too big/i;
/** node-postgres refusing a statement with more than 65,535 bound parameters (the protocol counts them in 16 bits). */
const PG_TOO_MANY_PARAMETERS = /bind message has \d+ parameter formats|bind message supplies \d+ parameters/i;

/**
 * A statement the database refused because it exceeds one of the database's own limits (bound parameters,
 * expression depth, tables in a join, an index entry's size), not because of the data's meaning or a failure of
 * the server: pg's SQLSTATE class 54 (program_limit_exceeded, statement_too_complex, too_many_arguments...) and
 * its client's parameter-count error, SQLite's SQLITE_TOOBIG and its limit messages. The request is too big as
 * given; retrying it unchanged will fail again.
 */
export function isDatabaseLimit(err: unknown): boolean {
  const code = codeOf(err);
  const message = err instanceof Error ? err.message : '';
  if (code === 'SQLITE_TOOBIG' || (code === 'SQLITE_ERROR' && SQLITE_LIMIT_MESSAGE.test(message))) return true;
  if (code !== undefined && /^54/.test(code)) return true;
  return PG_TOO_MANY_PARAMETERS.test(message);
}

function mapError(err: unknown, what: string): unknown {
  if (err instanceof UnavailableError || err instanceof ValidationError) return err;
  // Before isUnavailable: pg reports too many parameters as a protocol violation (class 08), which is no outage.
  if (isDatabaseLimit(err)) {
    const reason = (err as Error).message.slice(0, 300);
    return new ValidationError(
      `${what} refused the request because it exceeds a limit of the database (${reason}): send less at once (fewer filter clauses, list values or order terms) or shorter values`,
      { cause: err },
    );
  }
  if (!isUnavailable(err)) return err;
  return new UnavailableError(`${what}: ${(err as Error).message}`, { cause: err });
}

/**
 * Wraps a kysely dialect so that driver errors surface typed on every path (`db()`, transactions and migrations
 * alike): connection-level failures as UnavailableError, statements beyond a database limit (`isDatabaseLimit`) as
 * ValidationError, each with the driver error as cause. Other errors pass unchanged.
 */
export function withDriverErrors(dialect: Dialect, what: string): Dialect {
  return {
    createAdapter: () => dialect.createAdapter(),
    createIntrospector: (db) => dialect.createIntrospector(db),
    createQueryCompiler: () => dialect.createQueryCompiler(),
    createDriver: () => new MappingDriver(dialect.createDriver(), what),
  };
}

class MappingDriver implements Driver {
  readonly #inner: Driver;
  readonly #what: string;
  readonly #wrapped = new WeakMap<DatabaseConnection, DatabaseConnection>();

  constructor(inner: Driver, what: string) {
    this.#inner = inner;
    this.#what = what;
  }

  async #guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw mapError(err, this.#what);
    }
  }

  init(): Promise<void> {
    return this.#guard(() => this.#inner.init());
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    const inner = await this.#guard(() => this.#inner.acquireConnection());
    let wrapped = this.#wrapped.get(inner);
    if (!wrapped) {
      const guard = <T>(fn: () => Promise<T>) => this.#guard(fn);
      wrapped = {
        executeQuery: <R>(query: CompiledQuery): Promise<QueryResult<R>> => guard(() => inner.executeQuery<R>(query)),
        streamQuery: <R>(query: CompiledQuery, chunkSize: number) => inner.streamQuery<R>(query, chunkSize),
      };
      this.#wrapped.set(inner, wrapped);
      innerOf.set(wrapped, inner);
    }
    return wrapped;
  }

  beginTransaction(connection: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    return this.#guard(() => this.#inner.beginTransaction(unwrap(connection), settings));
  }

  commitTransaction(connection: DatabaseConnection): Promise<void> {
    return this.#guard(() => this.#inner.commitTransaction(unwrap(connection)));
  }

  rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    return this.#guard(() => this.#inner.rollbackTransaction(unwrap(connection)));
  }

  releaseConnection(connection: DatabaseConnection): Promise<void> {
    return this.#inner.releaseConnection(unwrap(connection));
  }

  destroy(): Promise<void> {
    return this.#inner.destroy();
  }
}

const innerOf = new WeakMap<DatabaseConnection, DatabaseConnection>();
const unwrap = (connection: DatabaseConnection) => innerOf.get(connection) ?? connection;
