import type { CompiledQuery } from 'kysely';

/**
 * Hot reads (alias resolution) build their SQL once and run it with new values, and mark that SQL so that a store
 * able to keep a statement prepared per connection does so: PostgreSQL then parses and plans it once per connection
 * instead of on every call (a named statement). Stores that cannot, or need not (SQLite's store caches every
 * statement by its text), run the SQL as it is: the mark is a comment.
 *
 * Mark only fixed shapes: each marked text becomes one statement per connection for the connection's life. List the
 * columns: PostgreSQL refuses to run a prepared `SELECT *` once a migration has added a column to the table ("cached
 * plan must not change result type").
 */
const MARK = '/* mlplane:prepared ';
const LABEL = /^[a-z][a-zA-Z0-9_.]{0,39}$/;

/** A reusable compiled query: `bind` gives the query to execute with new parameter values. */
export interface PreparedQuery {
  readonly sql: string;
  bind(parameters: readonly unknown[]): CompiledQuery;
}

/**
 * Compiles `query` once under `label` (e.g. `registry.versionByAlias`); `placeholders` are the values it was built
 * with, which must be exactly its parameters in order, so that `bind` puts new values where they belong.
 */
export function prepareQuery(label: string, query: CompiledQuery, placeholders: readonly unknown[]): PreparedQuery {
  if (!LABEL.test(label)) throw new TypeError(`prepared query label '${label}' must match ${LABEL}`);
  const same =
    query.parameters.length === placeholders.length && query.parameters.every((p, i) => Object.is(p, placeholders[i]));
  if (!same) {
    throw new TypeError(
      `prepared query ${label}: its parameters (${query.parameters.length}) are not the placeholders it was built with (${placeholders.length})`,
    );
  }
  const sql = `${MARK}${label} */ ${query.sql}`;
  const { query: node, queryId } = query;
  return {
    sql,
    bind: (parameters) => {
      if (parameters.length !== placeholders.length) {
        throw new TypeError(
          `prepared query ${label} takes ${placeholders.length} parameters, got ${parameters.length}`,
        );
      }
      return { query: node, queryId, sql, parameters };
    },
  };
}

/** The label of SQL marked by prepareQuery, for a store deciding whether to prepare it; undefined when unmarked. */
export function preparedQueryLabel(sql: string): string | undefined {
  if (!sql.startsWith(MARK)) return undefined;
  const end = sql.indexOf(' */', MARK.length);
  const label = end < 0 ? '' : sql.slice(MARK.length, end);
  return LABEL.test(label) ? label : undefined;
}
