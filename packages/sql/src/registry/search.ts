import {
  type Comparator,
  type Comparison,
  parseFilter,
  parseOrderBy,
  parseOrderTerm,
  syntaxError,
  ValidationError,
} from '@mlplane/core';
import {
  type Expression,
  type ExpressionBuilder,
  type Kysely,
  type SelectQueryBuilder,
  type SqlBool,
  sql,
} from 'kysely';
import type { SqlDialect } from '../dialect/dialect.js';
import {
  asStoredName,
  compareColumn,
  NUMERIC_OPS,
  offsetPageToken,
  queryHash,
  readOffset,
  STRING_OPS,
} from '../dialect/search-support.js';
import type { RegistryDatabase } from './schema.js';

// Search builds queries over dynamic aliases, which kysely's static typing cannot follow.
type AnyEb = ExpressionBuilder<any, any>;
type AnyQuery = SelectQueryBuilder<any, any, any>;

const ID_OPS: readonly Comparator[] = ['=', '!=', 'IN', 'NOT IN'];

interface FieldSpec {
  readonly column: string;
  readonly kind: 'string' | 'number';
  readonly ops: readonly Comparator[];
  /** A name column: values are stored NFC, so filter values are compared in that form. */
  readonly name?: true;
}

/** Filterable attributes of registered models (MLflow's search_registered_models). */
const MODEL_FIELDS: Readonly<Record<string, FieldSpec>> = Object.freeze({
  name: { column: 'm.name', kind: 'string', ops: STRING_OPS, name: true },
});

/** Filterable attributes of model versions (MLflow's search_model_versions). */
const VERSION_FIELDS: Readonly<Record<string, FieldSpec>> = Object.freeze({
  name: { column: 'm.name', kind: 'string', ops: STRING_OPS, name: true },
  version_number: { column: 'v.version', kind: 'number', ops: NUMERIC_OPS },
  run_id: { column: 'v.run_id', kind: 'string', ops: ID_OPS },
  source_path: { column: 'v.source', kind: 'string', ops: STRING_OPS },
});

const MODEL_ORDER: Readonly<Record<string, string>> = Object.freeze({
  name: 'm.name',
  creation_timestamp: 'm.creation_time',
  last_updated_timestamp: 'm.last_update_time',
  timestamp: 'm.last_update_time',
});

const VERSION_ORDER: Readonly<Record<string, string>> = Object.freeze({
  name: 'm.name',
  version_number: 'v.version',
  creation_timestamp: 'v.creation_time',
  last_updated_timestamp: 'v.last_update_time',
  timestamp: 'v.last_update_time',
});

function fail(source: string, c: Comparison, message: string): never {
  const label = c.entity === 'tag' ? `tags.${c.key}` : c.key;
  throw syntaxError('filter', source, c.position, `${label} ${message}`);
}

function check(source: string, c: Comparison, kind: 'string' | 'number', ops: readonly Comparator[]): void {
  if (!ops.includes(c.comparator)) fail(source, c, `does not support ${c.comparator}; use one of ${ops.join(', ')}`);
  if (Array.isArray(c.value)) return;
  if (kind === 'number' && typeof c.value !== 'number')
    fail(source, c, 'compares numbers: write the value unquoted, e.g. 3');
  if (kind === 'string' && typeof c.value !== 'string')
    fail(source, c, `compares strings: quote the value, e.g. '${c.value}'`);
}

function clause(
  eb: AnyEb,
  dialect: SqlDialect,
  source: string,
  c: Comparison,
  fields: Readonly<Record<string, FieldSpec>>,
  tags: (eb: AnyEb) => AnyQuery,
): Expression<SqlBool> {
  if (c.entity === 'tag') {
    check(source, c, 'string', STRING_OPS);
    return eb.exists(
      tags(eb)
        .where('t.key', '=', c.key)
        .where((inner: AnyEb) => compareColumn(inner, dialect, inner.ref('t.value'), c.comparator, c.value)),
    );
  }
  const spec = c.entity === 'attribute' ? fields[c.key] : undefined;
  if (!spec) fail(source, c, `cannot be filtered on: use ${Object.keys(fields).join(', ')} or tags.<key>`);
  check(source, c, spec.kind, spec.ops);
  return compareColumn(eb, dialect, eb.ref(spec.column), c.comparator, spec.name ? asStoredName(c.value) : c.value);
}

function applyOrder(
  q: AnyQuery,
  orderBy: readonly string[],
  columns: Readonly<Record<string, string>>,
  defaults: readonly (readonly [string, 'asc' | 'desc'])[],
  tiebreak: readonly string[],
): AnyQuery {
  const used = new Set<string>();
  orderBy.forEach((raw) => {
    const term = parseOrderTerm(raw);
    const column = term.entity === 'attribute' ? columns[term.key] : undefined;
    if (!column) {
      throw syntaxError(
        'orderBy',
        raw,
        term.position,
        `'${term.key}' cannot be ordered by: use ${Object.keys(columns).join(', ')}`,
      );
    }
    used.add(column);
    q = q.orderBy(sql.ref(column), term.descending ? 'desc' : 'asc');
  });
  if (orderBy.length === 0) for (const [column, direction] of defaults) q = q.orderBy(sql.ref(column), direction);
  for (const column of tiebreak) if (!used.has(column)) q = q.orderBy(sql.ref(column), 'asc');
  return q;
}

export interface RegistrySearch {
  readonly filter: string | undefined;
  readonly orderBy: readonly string[] | undefined;
  readonly maxResults: number;
  readonly pageToken: string | undefined;
}

/** The orderBy list, checked against the order-by limits (each term is parsed where it is applied). */
function validateOrderBy(orderBy: unknown): readonly string[] {
  if (orderBy === undefined) return [];
  parseOrderBy(orderBy as readonly string[]);
  return orderBy as readonly string[];
}

function validateFilter(filter: unknown): string {
  if (filter === undefined) return '';
  if (typeof filter !== 'string') throw new ValidationError('filter must be a string', { field: 'filter' });
  return filter;
}

/** Ids of one page of registered models and the token of the next (offset paging, as MLflow's SQL store). */
export async function searchModelIds(
  db: Kysely<RegistryDatabase>,
  dialect: SqlDialect,
  search: RegistrySearch,
): Promise<{ ids: number[]; nextPageToken?: string }> {
  const filter = validateFilter(search.filter);
  const orderBy = validateOrderBy(search.orderBy);
  const ast = parseFilter(filter);
  const hash = queryHash(['models', filter, orderBy]);
  const offset = readOffset(search.pageToken, hash, 'filter and order');
  let q = (db as unknown as Kysely<any>).selectFrom('registered_models as m').select('m.model_id') as AnyQuery;
  for (const c of ast.clauses) {
    q = q.where((eb: AnyEb) =>
      clause(eb, dialect, ast.source, c, MODEL_FIELDS, (e) =>
        e
          .selectFrom('registered_model_tags as t')
          .select(sql.lit(1).as('one'))
          .whereRef('t.model_id', '=', 'm.model_id'),
      ),
    );
  }
  q = applyOrder(q, orderBy, MODEL_ORDER, [['m.name', 'asc']], ['m.model_id']);
  const rows = await q
    .limit(search.maxResults + 1)
    .offset(offset)
    .execute();
  const ids = rows.slice(0, search.maxResults).map((r: { model_id: number }) => Number(r.model_id));
  return rows.length > search.maxResults
    ? { ids, nextPageToken: offsetPageToken(offset + search.maxResults, hash) }
    : { ids };
}

/** `(model_id, version)` keys of one page of model versions and the token of the next. */
export async function searchVersionKeys(
  db: Kysely<RegistryDatabase>,
  dialect: SqlDialect,
  search: RegistrySearch,
): Promise<{ keys: { modelId: number; version: number }[]; nextPageToken?: string }> {
  const filter = validateFilter(search.filter);
  const orderBy = validateOrderBy(search.orderBy);
  const ast = parseFilter(filter);
  const hash = queryHash(['versions', filter, orderBy]);
  const offset = readOffset(search.pageToken, hash, 'filter and order');
  let q = (db as unknown as Kysely<any>)
    .selectFrom('model_versions as v')
    .innerJoin('registered_models as m', 'm.model_id', 'v.model_id')
    .select(['v.model_id', 'v.version']) as AnyQuery;
  for (const c of ast.clauses) {
    q = q.where((eb: AnyEb) =>
      clause(eb, dialect, ast.source, c, VERSION_FIELDS, (e) =>
        e
          .selectFrom('model_version_tags as t')
          .select(sql.lit(1).as('one'))
          .whereRef('t.model_id', '=', 'v.model_id')
          .whereRef('t.version', '=', 'v.version'),
      ),
    );
  }
  q = applyOrder(
    q,
    orderBy,
    VERSION_ORDER,
    [
      ['m.name', 'asc'],
      ['v.version', 'desc'],
    ],
    ['v.model_id', 'v.version'],
  );
  const rows = await q
    .limit(search.maxResults + 1)
    .offset(offset)
    .execute();
  const keys = rows
    .slice(0, search.maxResults)
    .map((r: { model_id: number; version: number }) => ({ modelId: Number(r.model_id), version: Number(r.version) }));
  return rows.length > search.maxResults
    ? { keys, nextPageToken: offsetPageToken(offset + search.maxResults, hash) }
    : { keys };
}
