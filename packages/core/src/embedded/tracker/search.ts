import {
  type Expression,
  type ExpressionBuilder,
  type Kysely,
  type SelectQueryBuilder,
  type SqlBool,
  sql,
} from 'kysely';
import type { SqlDialect } from '../../infra/sql/dialect.js';
import { compareColumn, offsetPageToken, queryHash, readOffset } from '../../infra/sql/search-support.js';
import { ValidationError } from '../../ports/errors.js';
import type { ViewType } from '../../ports/experiment-tracker.js';
import { type Comparator, type Comparison, type OrderTerm, parseFilter, parseOrderTerm } from './filter/parser.js';
import { syntaxError } from './filter/tokenizer.js';
import type { TrackerDatabase } from './schema.js';

// Search builds queries over dynamic aliases, which kysely's static typing cannot follow.
type AnyEb = ExpressionBuilder<any, any>;
type AnyQuery = SelectQueryBuilder<any, any, any>;

const NUMERIC_OPS: readonly Comparator[] = ['=', '!=', '>', '>=', '<', '<='];
const STRING_OPS: readonly Comparator[] = ['=', '!=', 'LIKE', 'ILIKE'];
const STRING_LIST_OPS: readonly Comparator[] = [...STRING_OPS, 'IN', 'NOT IN'];

interface AttributeSpec {
  readonly column: string;
  readonly kind: 'string' | 'number';
  readonly ops: readonly Comparator[];
  /** Whether the column can be NULL; NOT NULL columns sort without the nulls-last term, so indexes can order. */
  readonly nullable?: boolean;
}

/** `attributes.<name>` of runs, mapped to columns; the keys are `capabilities.filterAttributes`. */
export const RUN_ATTRIBUTES: Readonly<Record<string, AttributeSpec>> = Object.freeze({
  run_id: { column: 'runs.run_id', kind: 'string', ops: STRING_LIST_OPS },
  run_name: { column: 'runs.name', kind: 'string', ops: STRING_LIST_OPS },
  status: { column: 'runs.status', kind: 'string', ops: STRING_LIST_OPS },
  user_id: { column: 'runs.user_id', kind: 'string', ops: STRING_LIST_OPS, nullable: true },
  artifact_uri: { column: 'runs.artifact_uri', kind: 'string', ops: STRING_LIST_OPS },
  start_time: { column: 'runs.start_time', kind: 'number', ops: NUMERIC_OPS },
  end_time: { column: 'runs.end_time', kind: 'number', ops: NUMERIC_OPS, nullable: true },
});

const EXPERIMENT_ATTRIBUTES: Readonly<Record<string, AttributeSpec>> = Object.freeze({
  name: { column: 'experiments.name', kind: 'string', ops: STRING_LIST_OPS },
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
function runClause(eb: AnyEb, dialect: SqlDialect, source: string, c: Comparison): Expression<SqlBool> {
  switch (c.entity) {
    case 'metric': {
      checkClause(source, c, 'number', NUMERIC_OPS);
      return eb.exists(
        eb
          .selectFrom('latest_metrics as f')
          .select(sql.lit(1).as('one'))
          .whereRef('f.run_id', '=', 'runs.run_id')
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
      return compareColumn(eb, dialect, eb.ref(spec.column), c.comparator, c.value);
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
  return compareColumn(eb, dialect, eb.ref(spec.column), c.comparator, c.value);
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
      throw new ValidationError(`${field} must be ACTIVE_ONLY, DELETED_ONLY or ALL, got '${view}'`, { field });
  }
}

/** Adds one sort key with runs lacking it last, whatever the direction. */
function orderNullsLast(q: AnyQuery, value: Expression<unknown>, descending: boolean): AnyQuery {
  return q.orderBy(sql`(${value} IS NULL)`).orderBy(value, descending ? 'desc' : 'asc');
}

/**
 * Adds ORDER BY terms from `terms[from]` on, then the tie-breaks `start_time DESC, run_id ASC` (skipping a column
 * already ordered). Metric, param and tag terms LEFT JOIN their table; runs lacking the key sort last.
 */
function applyRunOrder(q: AnyQuery, terms: readonly OrderTerm[], raw: readonly string[], from = 0): AnyQuery {
  for (let i = from; i < terms.length; i++) {
    const t = terms[i]!;
    const alias = `o${i}`;
    switch (t.entity) {
      case 'metric': {
        q = q.leftJoin(`latest_metrics as ${alias}`, (j: any) =>
          j.onRef(`${alias}.run_id`, '=', 'runs.run_id').on(`${alias}.key`, '=', t.key),
        );
        q = orderByMetric(q.orderBy(sql`(${sql.ref(`${alias}.value`)} IS NULL)`), alias, t.descending);
        break;
      }
      case 'param':
      case 'tag': {
        q = q.leftJoin(`${t.entity === 'param' ? 'params' : 'run_tags'} as ${alias}`, (j: any) =>
          j.onRef(`${alias}.run_id`, '=', 'runs.run_id').on(`${alias}.key`, '=', t.key),
        );
        q = orderNullsLast(q, sql.ref(`${alias}.value`), t.descending);
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
        q = spec.nullable
          ? orderNullsLast(q, sql.ref(spec.column), t.descending)
          : q.orderBy(sql.ref(spec.column), t.descending ? 'desc' : 'asc');
        break;
      }
      case 'dataset':
        throw syntaxError('orderBy', raw[i]!, t.position, 'runs cannot be ordered by datasets');
    }
  }
  const ordered = (key: string) => terms.some((t) => t.entity === 'attribute' && t.key === key);
  if (!ordered('start_time')) q = q.orderBy('runs.start_time', 'desc');
  if (!ordered('run_id')) q = q.orderBy('runs.run_id', 'asc');
  return q;
}

/** NaN sorts above every number (as Postgres orders it); the index (key, is_nan, value) serves this order. */
function orderByMetric(q: AnyQuery, alias: string, descending: boolean): AnyQuery {
  const direction = descending ? 'desc' : 'asc';
  return q.orderBy(sql.ref(`${alias}.is_nan`), direction).orderBy(sql.ref(`${alias}.value`), direction);
}

export interface RunSearch {
  readonly experimentIds: readonly number[];
  readonly filter: string | undefined;
  readonly orderBy: readonly string[] | undefined;
  readonly viewType: ViewType | undefined;
  readonly maxResults: number;
  readonly pageToken: string | undefined;
}

/** Returns the ids of one page of runs and the token of the next; offsets as MLflow's SQL store. */
export async function searchRunIds(
  db: Kysely<TrackerDatabase>,
  dialect: SqlDialect,
  search: RunSearch,
): Promise<{ ids: string[]; nextPageToken?: string }> {
  const ast = parseFilter(search.filter ?? '');
  const orderBy = search.orderBy ?? [];
  const terms = orderBy.map((term) => parseOrderTerm(term));
  const stages = lifecycleStages(search.viewType, 'runViewType');
  const hash = queryHash(['runs', [...search.experimentIds].sort(), search.filter ?? '', orderBy, stages]);
  const offset = readOffset(search.pageToken, hash, 'filter, order and view');

  let base = (db as unknown as Kysely<any>)
    .selectFrom('runs')
    .select('runs.run_id')
    .where('runs.experiment_id', 'in', [...search.experimentIds])
    .where('runs.lifecycle_stage', 'in', [...stages]) as AnyQuery;
  for (const clause of ast.clauses) base = base.where((eb: AnyEb) => runClause(eb, dialect, ast.source, clause));
  // One extra row tells whether another page exists.
  const wanted = search.maxResults + 1;
  const first = terms[0];
  const rows: { run_id: string }[] =
    first?.entity === 'metric'
      ? await metricOrderedRows(base, search.experimentIds, terms, orderBy, first, offset, wanted)
      : await applyRunOrder(base, terms, orderBy).limit(wanted).offset(offset).execute();
  const ids = rows.slice(0, search.maxResults).map((r) => r.run_id);
  return rows.length > search.maxResults
    ? { ids, nextPageToken: offsetPageToken(offset + search.maxResults, hash) }
    : { ids };
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
  offset: number,
  wanted: number,
): Promise<{ run_id: string }[]> {
  const withMetric = base
    .innerJoin('latest_metrics as o0', (j: any) =>
      j.onRef('o0.run_id', '=', 'runs.run_id').on('o0.key', '=', first.key),
    )
    .where('o0.experiment_id', 'in', [...experimentIds]);
  const rows: { run_id: string }[] = await applyRunOrder(
    orderByMetric(withMetric, 'o0', first.descending),
    terms,
    raw,
    1,
  )
    .limit(wanted)
    .offset(offset)
    .execute();
  if (rows.length === wanted) return rows;
  // How many runs have the metric decides where the page starts among those without it.
  let having = offset + rows.length;
  if (rows.length === 0 && offset > 0) {
    const counted = await withMetric
      .clearSelect()
      .select((eb: AnyEb) => eb.fn.countAll().as('n'))
      .executeTakeFirst();
    having = Number(counted?.n ?? 0);
  }
  const without = base.where((eb: AnyEb) =>
    eb.not(
      eb.exists(
        eb
          .selectFrom('latest_metrics as m')
          .select(sql.lit(1).as('one'))
          .whereRef('m.run_id', '=', 'runs.run_id')
          .where('m.key', '=', first.key),
      ),
    ),
  );
  const rest: { run_id: string }[] = await applyRunOrder(without, terms, raw, 1)
    .limit(wanted - rows.length)
    .offset(Math.max(0, offset - having))
    .execute();
  return [...rows, ...rest];
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
  const terms = orderBy.map((term) => parseOrderTerm(term));
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
