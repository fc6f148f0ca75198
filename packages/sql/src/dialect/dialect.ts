import { type Expression, type RawBuilder, type SelectQueryBuilder, type SqlBool, sql, type Transaction } from 'kysely';

/**
 * Every place where PostgreSQL and SQLite need different SQL, so that repositories stay dialect-free.
 * Frozen migrations do not use this module (they may not import application code); they branch on
 * kysely's adapter themselves.
 */
export interface SqlDialect {
  readonly name: 'postgres' | 'sqlite';
  /** Case-sensitive LIKE with `%`/`_` wildcards and `\` as escape (SQLite's LIKE ignores ASCII case). */
  like(column: Expression<unknown>, pattern: string): RawBuilder<SqlBool>;
  /** Case-insensitive LIKE. */
  ilike(column: Expression<unknown>, pattern: string): RawBuilder<SqlBool>;
  /**
   * `column IN (values)` (or NOT IN) over text, with the whole list bound as one parameter (`= ANY($1::text[])` on
   * Postgres, `json_each` on SQLite), so a long list never meets either database's limit on bound parameters.
   */
  inList(column: Expression<unknown>, values: readonly string[], negate?: boolean): RawBuilder<SqlBool>;
  /**
   * Inserts many rows with one statement: `unnest` of typed arrays on Postgres (one plan whatever the row
   * count, 1 parameter per column), multi-row VALUES on SQLite (chunked below its variable limit).
   */
  insertMany<Row extends Record<string, unknown>>(
    trx: Transaction<any>,
    table: string,
    columns: readonly ColumnSpec<Row>[],
    rows: readonly Row[],
  ): Promise<void>;
  /** JSON columns come back parsed on Postgres (jsonb) and as text on SQLite. */
  parseJson(value: unknown): unknown;
  /**
   * Aggregates rows into a JSON array of arrays (`[[a, b], ...]`, `[]` for no rows), so that a parent and its child
   * rows come back in one query; read the result with `parseJson`.
   */
  jsonArrayAgg(items: readonly Expression<unknown>[]): RawBuilder<unknown>;
  /**
   * Locks the selected rows against deletion and key changes until the transaction ends (Postgres
   * `FOR KEY SHARE`); on SQLite the transaction's write lock already excludes every other writer.
   */
  forKeyShare<Q extends SelectQueryBuilder<any, any, any>>(query: Q): Q;
  /**
   * A bound value the query planner must not look at. SQLite (built with STAT4, as better-sqlite3 is) plans a join
   * around the values bound to it and then re-plans the statement every time a value is bound anew: 20-100 µs per
   * execution of a prepared join, several times the indexed lookup itself. `+?` hides the value (an expression, not
   * a bare parameter) and keeps the index. Use it in hot, fixed-shape reads whose plan never depends on the value.
   * PostgreSQL plans a prepared statement generically after a few runs: the value is bound as is.
   */
  opaqueValue<T>(value: T): RawBuilder<T>;
}

export interface ColumnSpec<Row> {
  readonly name: keyof Row & string;
  /** Postgres element type of the unnest array, e.g. `text`, `float8`, `int8`, `int2`. */
  readonly pgType: 'text' | 'float8' | 'int8' | 'int4' | 'int2' | 'uuid' | 'jsonb';
}

/** SQLite's default SQLITE_MAX_VARIABLE_NUMBER is 32766; stay well below it. */
const SQLITE_MAX_PARAMS = 30_000;

/** Translates a LIKE pattern (with `\` escapes) to a GLOB pattern, which SQLite matches case-sensitively. */
export function likeToGlob(pattern: string): string {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\' && i + 1 < pattern.length) {
      out += globLiteral(pattern[++i]!);
    } else if (c === '%') out += '*';
    else if (c === '_') out += '?';
    else out += globLiteral(c);
  }
  return out;
}

function globLiteral(c: string): string {
  return c === '*' || c === '?' || c === '[' ? `[${c}]` : c;
}

const postgres: SqlDialect = {
  name: 'postgres',
  like: (column, pattern) => sql<SqlBool>`${column} LIKE ${pattern}`,
  ilike: (column, pattern) => sql<SqlBool>`${column} ILIKE ${pattern}`,
  inList: (column, values, negate = false) =>
    negate
      ? sql<SqlBool>`${column} <> ALL(${[...values]}::text[])`
      : sql<SqlBool>`${column} = ANY(${[...values]}::text[])`,
  async insertMany(trx, table, columns, rows) {
    if (rows.length === 0) return;
    const names = sql.join(columns.map((c) => sql.ref(c.name)));
    const arrays = sql.join(columns.map((c) => sql`${rows.map((r) => r[c.name] ?? null)}::${sql.raw(c.pgType)}[]`));
    await sql`INSERT INTO ${sql.table(table)} (${names}) SELECT * FROM unnest(${arrays})`.execute(trx);
  },
  parseJson: (value) => value,
  jsonArrayAgg: (items) => sql`coalesce(json_agg(json_build_array(${sql.join(items)})), '[]'::json)`,
  forKeyShare: (query) => query.forKeyShare() as typeof query,
  opaqueValue: <T>(value: T) => sql<T>`${value}`,
};

const sqlite: SqlDialect = {
  name: 'sqlite',
  like: (column, pattern) => sql<SqlBool>`${column} GLOB ${likeToGlob(pattern)}`,
  ilike: (column, pattern) => sql<SqlBool>`lower(${column}) LIKE lower(${pattern}) ESCAPE '\\'`,
  inList: (column, values, negate = false) =>
    sql<SqlBool>`${column} ${sql.raw(negate ? 'NOT IN' : 'IN')} (SELECT value FROM json_each(${JSON.stringify(values)}))`,
  async insertMany(trx, table, columns, rows) {
    const perChunk = Math.max(1, Math.floor(SQLITE_MAX_PARAMS / columns.length));
    for (let start = 0; start < rows.length; start += perChunk) {
      const chunk = rows.slice(start, start + perChunk);
      await trx
        .insertInto(table)
        .values(chunk.map((r) => Object.fromEntries(columns.map((c) => [c.name, r[c.name] ?? null]))))
        .execute();
    }
  },
  parseJson: (value) => (typeof value === 'string' ? JSON.parse(value) : value),
  jsonArrayAgg: (items) => sql`json_group_array(json_array(${sql.join(items)}))`,
  forKeyShare: (query) => query,
  opaqueValue: <T>(value: T) => sql<T>`+${value}`,
};

export function sqlDialect(name: 'postgres' | 'sqlite'): SqlDialect {
  return name === 'postgres' ? postgres : sqlite;
}
