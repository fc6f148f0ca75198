import type { ViewType } from '@mlplane/core';
import {
  type Comparator,
  type Comparison,
  decodePageToken,
  encodePageToken,
  foreignPageToken,
  malformedPageToken,
  type OrderTerm,
  parseFilter,
  parseOrderBy,
  quoteValue,
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
import type { TrackerDatabase } from './schema.js';

// Search builds queries over dynamic aliases, which kysely's static typing cannot follow.
type AnyEb = ExpressionBuilder<any, any>;
type AnyQuery = SelectQueryBuilder<any, any, any>;

const STRING_LIST_OPS: readonly Comparator[] = [...STRING_OPS, 'IN', 'NOT IN'];

interface AttributeSpec {
  readonly column: string;
  readonly kind: 'string' | 'number';
  readonly ops: readonly Comparator[];
  /** Whether the column can be NULL; NOT NULL columns sort without the nulls-last term, so indexes can order. */
  readonly nullable?: boolean;
  /** A name column: values are stored NFC, so filter values are compared in that form. */
  readonly name?: true;
}

/** `attributes.<name>` of runs, mapped to columns; the keys are `capabilities.filterAttributes`. */
export const RUN_ATTRIBUTES: Readonly<Record<string, AttributeSpec>> = Object.freeze({
  run_id: { column: 'runs.run_id', kind: 'string', ops: STRING_LIST_OPS },
  run_name: { column: 'runs.name', kind: 'string', ops: STRING_LIST_OPS, name: true },
  status: { column: 'runs.status', kind: 'string', ops: STRING_LIST_OPS },
  user_id: { column: 'runs.user_id', kind: 'string', ops: STRING_LIST_OPS, nullable: true },
  artifact_uri: { column: 'runs.artifact_uri', kind: 'string', ops: STRING_LIST_OPS },
  start_time: { column: 'runs.start_time', kind: 'number', ops: NUMERIC_OPS },
  end_time: { column: 'runs.end_time', kind: 'number', ops: NUMERIC_OPS, nullable: true },
});

const EXPERIMENT_ATTRIBUTES: Readonly<Record<string, AttributeSpec>> = Object.freeze({
  name: { column: 'experiments.name', kind: 'string', ops: STRING_LIST_OPS, name: true },
  experiment_id: { column: 'experiments.experiment_id', kind: 'number', ops: NUMERIC_OPS },
  creation_time: { column: 'experiments.creation_time', kind: 'number', ops: NUMERIC_OPS },
  last_update_time: { column: 'experiments.last_update_time', kind: 'number', ops: NUMERIC_OPS },
});

const DATASET_FIELDS: Readonly<Record<string, string>> = Object.freeze({
  name: 'd.name',
  digest: 'd.digest',
  context: 'ri.context',
});

const ENTITY_PREFIX = { metric: 'metrics', param: 'params', tag: 'tags', attribute: 'attributes', dataset: 'datasets' };

function clauseError(source: string, c: Comparison, message: string): ValidationError {
  return syntaxError('filter', source, c.position, `${ENTITY_PREFIX[c.entity]}.${c.key} ${message}`);
}

function checkClause(source: string, c: Comparison, kind: 'string' | 'number', ops: readonly Comparator[]): void {
  if (!ops.includes(c.comparator)) {
    throw clauseError(source, c, `does not support ${c.comparator}; use one of ${ops.join(', ')}`);
  }
  if (Array.isArray(c.value)) return;
  if (kind === 'number' && typeof c.value !== 'number') {
    throw clauseError(source, c, `compares numbers: write the value unquoted, e.g. 0.9`);
  }
  if (kind === 'string' && typeof c.value !== 'string') {
    throw clauseError(source, c, `compares strings: quote the value, e.g. '${c.value}'`);
  }
}

/** One filter clause over `runs` as an indexed EXISTS (metrics, params, tags, datasets) or a column test. */
function runClause(
  eb: AnyEb,
  dialect: SqlDialect,
  source: string,
  c: Comparison,
  experimentIds: readonly number[],
): Expression<SqlBool> {
  switch (c.entity) {
    case 'metric': {
      checkClause(source, c, 'number', NUMERIC_OPS);
      return eb.exists(
        eb
          .selectFrom('latest_metrics as f')
          .select(sql.lit(1).as('one'))
          .whereRef('f.run_id', '=', 'runs.run_id')
          // Implied by the run's experiment, and what lets PostgreSQL read the matching values as one range of the
          // (experiment_id, key, is_nan, value) index and hash them, instead of probing the metric of every run
          // that a metric-ordered page walks past: on 25,000 runs, page 5 of `metrics.acc > 0.9 and
          // params.lr = '0.01' order by metrics.loss` read 6,000 buffers instead of 20,000.
          .where('f.experiment_id', 'in', [...experimentIds])
          .where('f.key', '=', c.key)
          .where('f.is_nan', '=', 0)
          .where((inner: AnyEb) => compareColumn(inner, dialect, inner.ref('f.value'), c.comparator, c.value)),
      );
    }
    case 'param':
    case 'tag': {
      checkClause(source, c, 'string', STRING_OPS);
      return eb.exists(
        eb
          .selectFrom(`${c.entity === 'param' ? 'params' : 'run_tags'} as f`)
          .select(sql.lit(1).as('one'))
          .whereRef('f.run_id', '=', 'runs.run_id')
          .where('f.key', '=', c.key)
          .where((inner: AnyEb) => compareColumn(inner, dialect, inner.ref('f.value'), c.comparator, c.value)),
      );
    }
    case 'dataset': {
      const column = DATASET_FIELDS[c.key];
      if (!column)
        throw clauseError(source, c, `is not a dataset field: use datasets.name, datasets.digest or datasets.context`);
      checkClause(source, c, 'string', STRING_LIST_OPS);
      return eb.exists(
        eb
          .selectFrom('run_inputs as ri')
          .innerJoin('datasets as d', 'd.dataset_id', 'ri.dataset_id')
          .select(sql.lit(1).as('one'))
          .whereRef('ri.run_id', '=', 'runs.run_id')
          .where((inner: AnyEb) => compareColumn(inner, dialect, inner.ref(column), c.comparator, c.value)),
      );
    }
    case 'attribute': {
      const spec = RUN_ATTRIBUTES[c.key];
      if (!spec) {
        throw clauseError(source, c, `is not a run attribute: use ${Object.keys(RUN_ATTRIBUTES).join(', ')}`);
      }
      checkClause(source, c, spec.kind, spec.ops);
      return compareColumn(eb, dialect, eb.ref(spec.column), c.comparator, spec.name ? asStoredName(c.value) : c.value);
    }
  }
}

function experimentClause(eb: AnyEb, dialect: SqlDialect, source: string, c: Comparison): Expression<SqlBool> {
  if (c.entity === 'tag') {
    checkClause(source, c, 'string', STRING_OPS);
    return eb.exists(
      eb
        .selectFrom('experiment_tags as f')
        .select(sql.lit(1).as('one'))
        .whereRef('f.experiment_id', '=', 'experiments.experiment_id')
        .where('f.key', '=', c.key)
        .where((inner: AnyEb) => compareColumn(inner, dialect, inner.ref('f.value'), c.comparator, c.value)),
    );
  }
  const spec = c.entity === 'attribute' ? EXPERIMENT_ATTRIBUTES[c.key] : undefined;
  if (!spec) {
    throw clauseError(
      source,
      c,
      `cannot filter experiments: use attributes ${Object.keys(EXPERIMENT_ATTRIBUTES).join(', ')} or tags.<key>`,
    );
  }
  checkClause(source, c, spec.kind, spec.ops);
  return compareColumn(eb, dialect, eb.ref(spec.column), c.comparator, spec.name ? asStoredName(c.value) : c.value);
}

function lifecycleStages(view: ViewType | undefined, field: string): readonly ('active' | 'deleted')[] {
  switch (view ?? 'ACTIVE_ONLY') {
    case 'ACTIVE_ONLY':
      return ['active'];
    case 'DELETED_ONLY':
      return ['deleted'];
    case 'ALL':
      return ['active', 'deleted'];
    default:
      throw new ValidationError(`${field} must be ACTIVE_ONLY, DELETED_ONLY or ALL, got ${quoteValue(view)}`, {
        field,
      });
  }
}

/**
 * One column of a run search's sort order. Nullable keys put NULL last whatever the direction (runs lacking a
 * metric, param or tag, or an unset attribute), as MLflow orders them.
 */
interface SortKey {
  readonly expr: Expression<unknown>;
  readonly descending: boolean;
  readonly nullable: boolean;
}

/** A sort key's value in a page's last row: where the next page starts. */
type KeyValue = string | number | null;

interface OrderedQuery {
  readonly query: AnyQuery;
  readonly keys: readonly SortKey[];
}

/** Orders by `keys` and selects each key's value as `k<i>`, so the last row of a page yields the next page's start. */
function orderAndSelect(q: AnyQuery, keys: readonly SortKey[]): AnyQuery {
  keys.forEach((k, i) => {
    if (k.nullable) q = q.orderBy(sql`(${k.expr} IS NULL)`);
    q = q.orderBy(k.expr, k.descending ? 'desc' : 'asc').select(sql`${k.expr}`.as(`k${i}`));
  });
  return q;
}

/**
 * Adds ORDER BY terms from `terms[from]` on, then the tie-breaks `start_time DESC, run_id ASC` (skipping a column
 * already ordered), which make the order total. Metric, param and tag terms LEFT JOIN their table; runs lacking
 * the key sort last.
 */
function applyRunOrder(q: AnyQuery, terms: readonly OrderTerm[], raw: readonly string[], from = 0): OrderedQuery {
  const keys: SortKey[] = [];
  for (let i = from; i < terms.length; i++) {
    const t = terms[i]!;
    const alias = `o${i}`;
    switch (t.entity) {
      case 'metric': {
        q = q.leftJoin(`latest_metrics as ${alias}`, (j: any) =>
          j.onRef(`${alias}.run_id`, '=', 'runs.run_id').on(`${alias}.key`, '=', t.key),
        );
        keys.push(...metricKeys(alias, t.descending, true));
        break;
      }
      case 'param':
      case 'tag': {
        q = q.leftJoin(`${t.entity === 'param' ? 'params' : 'run_tags'} as ${alias}`, (j: any) =>
          j.onRef(`${alias}.run_id`, '=', 'runs.run_id').on(`${alias}.key`, '=', t.key),
        );
        keys.push({ expr: sql.ref(`${alias}.value`), descending: t.descending, nullable: true });
        break;
      }
      case 'attribute': {
        const spec = RUN_ATTRIBUTES[t.key];
        if (!spec) {
          throw syntaxError(
            'orderBy',
            raw[i]!,
            t.position,
            `'${t.key}' is not a run attribute: use ${Object.keys(RUN_ATTRIBUTES).join(', ')}`,
          );
        }
        keys.push({ expr: sql.ref(spec.column), descending: t.descending, nullable: spec.nullable === true });
        break;
      }
      case 'dataset':
        throw syntaxError('orderBy', raw[i]!, t.position, 'runs cannot be ordered by datasets');
    }
  }
  const ordered = (key: string) => terms.some((t) => t.entity === 'attribute' && t.key === key);
  if (!ordered('start_time')) keys.push({ expr: sql.ref('runs.start_time'), descending: true, nullable: false });
  if (!ordered('run_id')) keys.push({ expr: sql.ref('runs.run_id'), descending: false, nullable: false });
  return { query: q, keys };
}

/**
 * A metric's sort keys: NaN sorts above every number (as Postgres orders it), so `is_nan` leads `value`; the
 * index (experiment_id, key, is_nan, value) serves this order.
 */
function metricKeys(alias: string, descending: boolean, nullable: boolean): SortKey[] {
  return [
    { expr: sql.ref(`${alias}.is_nan`), descending, nullable },
    { expr: sql.ref(`${alias}.value`), descending, nullable },
  ];
}

/**
 * Restricts `q` to the rows after `last` in the order of `keys` (a keyset seek): the rows equal to `last` on
 * keys 0..i-1 and after it on key i, for some i. NULL sorts after every value and ties with NULL.
 */
function seekAfter(q: AnyQuery, keys: readonly SortKey[], last: readonly KeyValue[]): AnyQuery {
  q = q.where((eb: AnyEb) => {
    const equal = (k: SortKey, v: KeyValue) => (v === null ? eb(k.expr, 'is', null) : eb(k.expr, '=', v));
    const branches: Expression<SqlBool>[] = [];
    keys.forEach((k, i) => {
      const v = last[i]!;
      // Nothing sorts after NULL within its key: ties are broken by the next key.
      if (v === null) return;
      const beyond = eb(k.expr, k.descending ? '<' : '>', v);
      branches.push(
        eb.and([
          ...keys.slice(0, i).map((kj, j) => equal(kj, last[j]!)),
          k.nullable ? eb.or([beyond, eb(k.expr, 'is', null)]) : beyond,
        ]),
      );
    });
    return eb.or(branches);
  });
  // The same bound on the leading keys as one range condition, which an index can start its scan at (the OR
  // above is exact but opaque to the planner): keys of one direction that cannot be NULL, compared as a row.
  let lead = 0;
  while (lead < keys.length && !keys[lead]!.nullable && keys[lead]!.descending === keys[0]!.descending) lead++;
  if (lead === 0) return q;
  const exprs = keys.slice(0, lead).map((k) => k.expr);
  const values = last.slice(0, lead).map((v) => sql`${v}`);
  const op = sql.raw(keys[0]!.descending ? '<=' : '>=');
  return q.where(
    lead === 1
      ? sql<SqlBool>`${exprs[0]} ${op} ${values[0]}`
      : sql<SqlBool>`(${sql.join(exprs)}) ${op} (${sql.join(values)})`,
  );
}

export interface RunSearch {
  readonly experimentIds: readonly number[];
  readonly filter: string | undefined;
  readonly orderBy: readonly string[] | undefined;
  readonly viewType: ViewType | undefined;
  readonly maxResults: number;
  readonly pageToken: string | undefined;
}

/** Where a page of a run search starts: the sort-key values of the previous page's last run. */
interface RunCursor {
  /** Metric-first orders only: whether that run had the metric (1), i.e. which of the two phases it came from. */
  readonly m?: 0 | 1;
  readonly k: readonly KeyValue[];
}

type KeyedRow = { run_id: string } & Record<string, unknown>;

/**
 * Returns the ids of one page of runs and the token of the next. Tokens are keyset cursors (the sort keys of the
 * page's last run), not offsets: page 50 costs what page 1 costs, and runs created or deleted while paging never
 * shift a later page onto runs already returned.
 */
export async function searchRunIds(
  db: Kysely<TrackerDatabase>,
  dialect: SqlDialect,
  search: RunSearch,
): Promise<{ ids: string[]; nextPageToken?: string }> {
  const ast = parseFilter(search.filter ?? '');
  const orderBy = search.orderBy ?? [];
  const terms = parseOrderBy(orderBy);
  const stages = lifecycleStages(search.viewType, 'runViewType');
  const hash = queryHash(['runs', [...search.experimentIds].sort(), search.filter ?? '', orderBy, stages]);
  const cursor = readCursor(search.pageToken, hash);

  let base = (db as unknown as Kysely<any>)
    .selectFrom('runs')
    .select('runs.run_id')
    .where('runs.experiment_id', 'in', [...search.experimentIds])
    .where('runs.lifecycle_stage', 'in', [...stages]) as AnyQuery;
  for (const clause of ast.clauses) {
    base = base.where((eb: AnyEb) => runClause(eb, dialect, ast.source, clause, search.experimentIds));
  }
  // One extra row tells whether another page exists.
  const wanted = search.maxResults + 1;
  const first = terms[0];
  let rows: { row: KeyedRow; keys: number; m?: 0 | 1 }[];
  if (first?.entity === 'metric') {
    rows = await metricOrderedRows(base, search.experimentIds, terms, orderBy, first, cursor, wanted);
  } else {
    const { query, keys } = applyRunOrder(base, terms, orderBy);
    if (cursor?.m !== undefined) throw malformedPageToken();
    checkCursor(cursor, keys);
    const ordered = orderAndSelect(query, keys);
    const found: KeyedRow[] = await (cursor ? seekAfter(ordered, keys, cursor.k) : ordered).limit(wanted).execute();
    rows = found.map((row) => ({ row, keys: keys.length }));
  }
  const page = rows.slice(0, search.maxResults);
  const ids = page.map((r) => r.row.run_id);
  const last = page.at(-1);
  if (rows.length <= search.maxResults || !last) return { ids };
  const next: RunCursor = {
    ...(last.m === undefined ? {} : { m: last.m }),
    k: Array.from({ length: last.keys }, (_, i) => keyValue(last.row[`k${i}`])),
  };
  return { ids, nextPageToken: encodePageToken({ q: hash, ...next }) };
}

/**
 * Ordering by a metric first, in two phases, so that the database can walk the (key, is_nan, value) index in
 * order and stop after a page instead of sorting every run: first the runs that have the metric (inner join),
 * then, once those are exhausted, the runs without it (which sort last). Same order as one LEFT JOIN query.
 */
async function metricOrderedRows(
  base: AnyQuery,
  experimentIds: readonly number[],
  terms: readonly OrderTerm[],
  raw: readonly string[],
  first: OrderTerm,
  cursor: RunCursor | undefined,
  wanted: number,
): Promise<{ row: KeyedRow; keys: number; m: 0 | 1 }[]> {
  const withMetric = base
    .innerJoin('latest_metrics as o0', (j: any) =>
      j.onRef('o0.run_id', '=', 'runs.run_id').on('o0.key', '=', first.key),
    )
    .where('o0.experiment_id', 'in', [...experimentIds]);
  const having = applyRunOrder(withMetric, terms, raw, 1);
  const havingKeys = [...metricKeys('o0', first.descending, false), ...having.keys];
  const without = applyRunOrder(
    base.where((eb: AnyEb) =>
      eb.not(
        eb.exists(
          eb
            .selectFrom('latest_metrics as m')
            .select(sql.lit(1).as('one'))
            .whereRef('m.run_id', '=', 'runs.run_id')
            .where('m.key', '=', first.key),
        ),
      ),
    ),
    terms,
    raw,
    1,
  );
  if (cursor && cursor.m === undefined) throw malformedPageToken();
  checkCursor(cursor, cursor?.m === 0 ? without.keys : havingKeys);

  const rows: { row: KeyedRow; keys: number; m: 0 | 1 }[] = [];
  // A cursor in the second phase (its run lacked the metric) skips the first entirely.
  if (cursor?.m !== 0) {
    const ordered = orderAndSelect(having.query, havingKeys);
    const found: KeyedRow[] = await (cursor ? seekAfter(ordered, havingKeys, cursor.k) : ordered)
      .limit(wanted)
      .execute();
    for (const row of found) rows.push({ row, keys: havingKeys.length, m: 1 });
    if (rows.length === wanted) return rows;
  }
  const ordered = orderAndSelect(without.query, without.keys);
  const found: KeyedRow[] = await (cursor?.m === 0 ? seekAfter(ordered, without.keys, cursor.k) : ordered)
    .limit(wanted - rows.length)
    .execute();
  for (const row of found) rows.push({ row, keys: without.keys.length, m: 0 });
  return rows;
}

/** Key values as the driver returns them: numbers (SQLite and pg's int8 parser give numbers), text, NULL. */
function keyValue(value: unknown): KeyValue {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number' || typeof value === 'string') return value;
  if (typeof value === 'bigint') return Number(value);
  return String(value);
}

function readCursor(pageToken: string | undefined, hash: string): RunCursor | undefined {
  if (pageToken === undefined) return undefined;
  const state = decodePageToken<Partial<RunCursor & { q: string }>>(pageToken);
  if (!state || typeof state !== 'object' || !Array.isArray(state.k)) throw malformedPageToken();
  if (state.q !== hash) {
    throw foreignPageToken('filter, order and view');
  }
  if (state.m !== undefined && state.m !== 0 && state.m !== 1) throw malformedPageToken();
  for (const v of state.k) {
    if (v !== null && typeof v !== 'string' && !(typeof v === 'number' && Number.isFinite(v)))
      throw malformedPageToken();
  }
  return { ...(state.m === undefined ? {} : { m: state.m }), k: state.k };
}

/** A cursor must carry one value per sort key, and no NULL where the key cannot be NULL. */
function checkCursor(cursor: RunCursor | undefined, keys: readonly SortKey[]): void {
  if (!cursor) return;
  if (cursor.k.length !== keys.length || keys.some((k, i) => !k.nullable && cursor.k[i] === null)) {
    throw malformedPageToken();
  }
}

export interface ExperimentSearch {
  readonly filter: string | undefined;
  readonly orderBy: readonly string[] | undefined;
  readonly viewType: ViewType | undefined;
  readonly maxResults: number;
  readonly pageToken: string | undefined;
}

export async function searchExperimentIds(
  db: Kysely<TrackerDatabase>,
  dialect: SqlDialect,
  search: ExperimentSearch,
): Promise<{ ids: number[]; nextPageToken?: string }> {
  const ast = parseFilter(search.filter ?? '');
  const orderBy = search.orderBy ?? [];
  const terms = parseOrderBy(orderBy);
  const stages = lifecycleStages(search.viewType, 'viewType');
  const hash = queryHash(['experiments', search.filter ?? '', orderBy, stages]);
  const offset = readOffset(search.pageToken, hash, 'filter, order and view');

  let q = (db as unknown as Kysely<any>)
    .selectFrom('experiments')
    .select('experiments.experiment_id')
    .where('experiments.lifecycle_stage', 'in', [...stages]) as AnyQuery;
  for (const clause of ast.clauses) q = q.where((eb: AnyEb) => experimentClause(eb, dialect, ast.source, clause));
  terms.forEach((t, i) => {
    const spec = t.entity === 'attribute' ? EXPERIMENT_ATTRIBUTES[t.key] : undefined;
    if (!spec) {
      throw syntaxError(
        'orderBy',
        orderBy[i]!,
        t.position,
        `experiments order by ${Object.keys(EXPERIMENT_ATTRIBUTES).join(', ')}`,
      );
    }
    q = q.orderBy(sql.ref(spec.column), t.descending ? 'desc' : 'asc');
  });
  if (terms.length === 0) q = q.orderBy('experiments.last_update_time', 'desc');
  q = q.orderBy('experiments.experiment_id', 'asc');
  const rows = await q
    .limit(search.maxResults + 1)
    .offset(offset)
    .execute();
  const ids = rows.slice(0, search.maxResults).map((r: { experiment_id: number }) => Number(r.experiment_id));
  return rows.length > search.maxResults
    ? { ids, nextPageToken: offsetPageToken(offset + search.maxResults, hash) }
    : { ids };
}
