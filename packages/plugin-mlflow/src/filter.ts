import {
  type Comparator,
  type Comparison,
  parseFilter,
  parseOrderTerm,
  syntaxError,
  ValidationError,
  type ViewType,
} from '@mlplane/core';

/**
 * mlplane's filter language is MLflow's, so a filter is parsed and checked here with the same rules and messages
 * as the SQL implementations, then written back out in the spelling MLflow's parser reads: keys in backticks,
 * values in single quotes (double quotes when the value holds one; MLflow has no escapes inside quotes).
 */

const NUMERIC: readonly Comparator[] = ['=', '!=', '>', '>=', '<', '<='];
const STRING: readonly Comparator[] = ['=', '!=', 'LIKE', 'ILIKE'];
const STRING_LIST: readonly Comparator[] = [...STRING, 'IN', 'NOT IN'];
const ID_LIST: readonly Comparator[] = ['=', '!=', 'IN', 'NOT IN'];

interface FieldSpec {
  readonly kind: 'string' | 'number';
  readonly ops: readonly Comparator[];
}

/** `attributes.<name>` of runs that MLflow filters and orders on; `capabilities.filterAttributes`. */
export const RUN_ATTRIBUTES: Readonly<Record<string, FieldSpec>> = Object.freeze({
  run_id: { kind: 'string', ops: STRING_LIST },
  run_name: { kind: 'string', ops: STRING_LIST },
  status: { kind: 'string', ops: STRING_LIST },
  user_id: { kind: 'string', ops: STRING_LIST },
  artifact_uri: { kind: 'string', ops: STRING_LIST },
  start_time: { kind: 'number', ops: NUMERIC },
  end_time: { kind: 'number', ops: NUMERIC },
});

const EXPERIMENT_ATTRIBUTES: Readonly<Record<string, FieldSpec>> = Object.freeze({
  name: { kind: 'string', ops: STRING_LIST },
  experiment_id: { kind: 'number', ops: NUMERIC },
  creation_time: { kind: 'number', ops: NUMERIC },
  last_update_time: { kind: 'number', ops: NUMERIC },
});

const DATASET_FIELDS = ['name', 'digest', 'context'];

const MODEL_FIELDS: Readonly<Record<string, FieldSpec>> = Object.freeze({
  name: { kind: 'string', ops: STRING },
});

const VERSION_FIELDS: Readonly<Record<string, FieldSpec>> = Object.freeze({
  name: { kind: 'string', ops: STRING },
  version_number: { kind: 'number', ops: NUMERIC },
  run_id: { kind: 'string', ops: ID_LIST },
  source_path: { kind: 'string', ops: STRING },
});

const ENTITY_PREFIX = { metric: 'metrics', param: 'params', tag: 'tags', attribute: 'attributes', dataset: 'datasets' };

function check(source: string, c: Comparison, label: string, spec: FieldSpec, numberExample: string): void {
  const fail = (message: string) => {
    throw syntaxError('filter', source, c.position, `${label} ${message}`);
  };
  if (!spec.ops.includes(c.comparator)) fail(`does not support ${c.comparator}; use one of ${spec.ops.join(', ')}`);
  if (Array.isArray(c.value)) return;
  if (spec.kind === 'number' && typeof c.value !== 'number') {
    fail(`compares numbers: write the value unquoted, e.g. ${numberExample}`);
  }
  if (spec.kind === 'string' && typeof c.value !== 'string')
    fail(`compares strings: quote the value, e.g. '${c.value}'`);
}

function quoteKey(key: string, source: string, c: Comparison): string {
  if (!key.includes('`')) return `\`${key}\``;
  if (!key.includes('"')) return `"${key}"`;
  throw syntaxError('filter', source, c.position, 'a key holding both ` and " cannot be sent to MLflow');
}

function quoteValue(value: string, source: string, c: Comparison): string {
  if (!value.includes("'")) return `'${value}'`;
  if (!value.includes('"')) return `"${value}"`;
  throw syntaxError('filter', source, c.position, `a value holding both ' and " cannot be sent to MLflow`);
}

function operand(c: Comparison, source: string): string {
  // Experiment and model names are stored in NFC, so a name written in another normal form still matches.
  const form = (v: string) => (c.entity === 'attribute' && c.key === 'name' ? v.normalize('NFC') : v);
  if (Array.isArray(c.value)) return `(${c.value.map((v) => quoteValue(form(v), source, c)).join(', ')})`;
  if (typeof c.value === 'number') return String(c.value);
  return quoteValue(form(c.value as string), source, c);
}

function requireString(value: unknown, field: string): string {
  if (value === undefined) return '';
  if (typeof value !== 'string') throw new ValidationError(`${field} must be a string`, { field });
  return value;
}

function requireTerms(orderBy: unknown): readonly string[] {
  if (orderBy === undefined) return [];
  if (!Array.isArray(orderBy) || orderBy.some((t) => typeof t !== 'string')) {
    throw new ValidationError('orderBy must be an array of strings', { field: 'orderBy' });
  }
  return orderBy;
}

/** A runs filter in MLflow's spelling; ValidationError (field `filter`) as the SQL tracker raises it. */
export function runFilter(filter: unknown): string {
  const ast = parseFilter(requireString(filter, 'filter'));
  return ast.clauses
    .map((c) => {
      const label = `${ENTITY_PREFIX[c.entity]}.${c.key}`;
      switch (c.entity) {
        case 'metric':
          check(ast.source, c, label, { kind: 'number', ops: NUMERIC }, '0.9');
          break;
        case 'param':
        case 'tag':
          check(ast.source, c, label, { kind: 'string', ops: STRING }, '0.9');
          break;
        case 'dataset':
          if (!DATASET_FIELDS.includes(c.key)) {
            throw syntaxError(
              'filter',
              ast.source,
              c.position,
              `${label} is not a dataset field: use datasets.name, datasets.digest or datasets.context`,
            );
          }
          check(ast.source, c, label, { kind: 'string', ops: STRING_LIST }, '0.9');
          break;
        case 'attribute': {
          const spec = RUN_ATTRIBUTES[c.key];
          if (!spec) {
            throw syntaxError(
              'filter',
              ast.source,
              c.position,
              `${label} is not a run attribute: use ${Object.keys(RUN_ATTRIBUTES).join(', ')}`,
            );
          }
          check(ast.source, c, label, spec, '0.9');
        }
      }
      const target = `${ENTITY_PREFIX[c.entity]}.${quoteKey(c.key, ast.source, c)}`;
      if (c.entity === 'attribute' && c.key !== 'run_id' && Array.isArray(c.value)) {
        return attributeList(target, c, ast.source);
      }
      return `${target} ${c.comparator} ${operand(c, ast.source)}`;
    })
    .join(' AND ');
}

const RUN_STATUSES = ['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED'];

/**
 * MLflow takes a list only for run_id. NOT IN is the same as one `!=` per value; IN is `=` for one value and,
 * for status (a closed set), `!=` for every status not listed. Other attributes cannot take IN with several values.
 */
function attributeList(target: string, c: Comparison, source: string): string {
  const values = c.value as readonly string[];
  if (c.comparator === 'NOT IN') return values.map((v) => `${target} != ${quoteValue(v, source, c)}`).join(' AND ');
  if (values.length === 1) return `${target} = ${quoteValue(values[0]!, source, c)}`;
  if (c.key === 'status') {
    const others = RUN_STATUSES.filter((s) => !values.includes(s));
    if (others.length === 0) return `${target} != ''`;
    return others.map((s) => `${target} != '${s}'`).join(' AND ');
  }
  throw syntaxError(
    'filter',
    source,
    c.position,
    `attributes.${c.key} IN with several values cannot be sent to MLflow, which takes lists only for run_id`,
  );
}

/** Run order terms in MLflow's spelling; ValidationError (field `orderBy`) for what runs cannot be ordered by. */
export function runOrderBy(orderBy: unknown): string[] {
  return requireTerms(orderBy).map((raw) => {
    const t = parseOrderTerm(raw);
    if (t.entity === 'dataset') throw syntaxError('orderBy', raw, t.position, 'runs cannot be ordered by datasets');
    if (t.entity === 'attribute' && !RUN_ATTRIBUTES[t.key]) {
      throw syntaxError(
        'orderBy',
        raw,
        t.position,
        `'${t.key}' is not a run attribute: use ${Object.keys(RUN_ATTRIBUTES).join(', ')}`,
      );
    }
    if (t.key.includes('`')) throw syntaxError('orderBy', raw, t.position, 'a key holding ` cannot be sent to MLflow');
    return `${ENTITY_PREFIX[t.entity]}.\`${t.key}\` ${t.descending ? 'DESC' : 'ASC'}`;
  });
}

export function experimentFilter(filter: unknown): string {
  const ast = parseFilter(requireString(filter, 'filter'));
  return ast.clauses
    .map((c) => {
      if (c.entity === 'tag') {
        check(ast.source, c, `tags.${c.key}`, { kind: 'string', ops: STRING }, '0.9');
        return `tags.${quoteKey(c.key, ast.source, c)} ${c.comparator} ${operand(c, ast.source)}`;
      }
      const spec = c.entity === 'attribute' ? EXPERIMENT_ATTRIBUTES[c.key] : undefined;
      if (!spec) {
        throw syntaxError(
          'filter',
          ast.source,
          c.position,
          `${ENTITY_PREFIX[c.entity]}.${c.key} cannot filter experiments: use attributes ${Object.keys(EXPERIMENT_ATTRIBUTES).join(', ')} or tags.<key>`,
        );
      }
      check(ast.source, c, `attributes.${c.key}`, spec, '0.9');
      return `${c.key} ${c.comparator} ${operand(c, ast.source)}`;
    })
    .join(' AND ');
}

export function experimentOrderBy(orderBy: unknown): string[] {
  return requireTerms(orderBy).map((raw) => {
    const t = parseOrderTerm(raw);
    if (t.entity !== 'attribute' || !EXPERIMENT_ATTRIBUTES[t.key]) {
      throw syntaxError(
        'orderBy',
        raw,
        t.position,
        `experiments order by ${Object.keys(EXPERIMENT_ATTRIBUTES).join(', ')}`,
      );
    }
    return `${t.key} ${t.descending ? 'DESC' : 'ASC'}`;
  });
}

function registryFilter(filter: unknown, fields: Readonly<Record<string, FieldSpec>>): string {
  const ast = parseFilter(requireString(filter, 'filter'));
  return ast.clauses
    .map((c) => {
      if (c.entity === 'tag') {
        check(ast.source, c, `tags.${c.key}`, { kind: 'string', ops: STRING }, '3');
        return `tags.${quoteKey(c.key, ast.source, c)} ${c.comparator} ${operand(c, ast.source)}`;
      }
      const spec = c.entity === 'attribute' ? fields[c.key] : undefined;
      if (!spec) {
        throw syntaxError(
          'filter',
          ast.source,
          c.position,
          `${c.key} cannot be filtered on: use ${Object.keys(fields).join(', ')} or tags.<key>`,
        );
      }
      check(ast.source, c, c.key, spec, '3');
      return `${c.key} ${c.comparator} ${operand(c, ast.source)}`;
    })
    .join(' AND ');
}

export const modelFilter = (filter: unknown) => registryFilter(filter, MODEL_FIELDS);
export const versionFilter = (filter: unknown) => registryFilter(filter, VERSION_FIELDS);

/** MLflow orders registered models by name and by last update only (`timestamp` is the same key). */
export const MODEL_ORDER = ['name', 'last_updated_timestamp', 'timestamp'];
const VERSION_ORDER = ['name', 'version_number', 'creation_timestamp', 'last_updated_timestamp', 'timestamp'];

function registryOrderBy(orderBy: unknown, keys: readonly string[], tiebreaks: readonly string[]): string[] {
  const terms = requireTerms(orderBy).map((raw) => {
    const t = parseOrderTerm(raw);
    if (t.entity !== 'attribute' || !keys.includes(t.key)) {
      throw syntaxError('orderBy', raw, t.position, `'${t.key}' cannot be ordered by: use ${keys.join(', ')}`);
    }
    // MLflow's `timestamp` is an alias of last_updated_timestamp.
    return { key: t.key === 'timestamp' ? 'last_updated_timestamp' : t.key, descending: t.descending };
  });
  const used = new Set(terms.map((t) => t.key));
  return [
    ...terms.map((t) => `${t.key} ${t.descending ? 'DESC' : 'ASC'}`),
    ...tiebreaks.filter((k) => !used.has(k.split(' ')[0]!)),
  ];
}

/** Default `name ASC`; MLflow breaks ties by name itself (and refuses a second `name` term). */
export function modelOrderBy(orderBy: unknown): string[] {
  return registryOrderBy(orderBy, MODEL_ORDER, []);
}

/** Default `name ASC, version_number DESC`. */
export function versionOrderBy(orderBy: unknown): string[] {
  const given = requireTerms(orderBy);
  return registryOrderBy(
    given,
    VERSION_ORDER,
    given.length === 0 ? ['name ASC', 'version_number DESC'] : ['name ASC', 'version_number ASC'],
  );
}

export function viewType(view: unknown, field: string): ViewType {
  if (view === undefined) return 'ACTIVE_ONLY';
  if (view === 'ACTIVE_ONLY' || view === 'DELETED_ONLY' || view === 'ALL') return view;
  throw new ValidationError(`${field} must be ACTIVE_ONLY, DELETED_ONLY or ALL, got '${String(view)}'`, { field });
}
