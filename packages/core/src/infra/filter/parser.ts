import { ValidationError } from '../../ports/errors.js';
import { SEARCH_FILTER_LIMITS, type SearchFilterLimits } from '../../ports/search-filter.js';
import { syntaxError, type Token, tokenize } from './tokenizer.js';

export type Entity = 'metric' | 'param' | 'tag' | 'attribute' | 'dataset';
export type Comparator = '=' | '!=' | '>' | '>=' | '<' | '<=' | 'LIKE' | 'ILIKE' | 'IN' | 'NOT IN';

/** `<entity>.<key> <comparator> <value>`; `value` is a list for IN / NOT IN. */
export interface Comparison {
  readonly entity: Entity;
  readonly key: string;
  readonly comparator: Comparator;
  readonly value: string | number | readonly string[];
  /** Where the clause starts in the filter, for error messages. */
  readonly position: number;
}

/** The AST of a filter: comparisons joined by AND (the language has no OR, as MLflow's). */
export interface FilterAst {
  readonly source: string;
  readonly clauses: readonly Comparison[];
}

export interface OrderTerm {
  readonly entity: Entity;
  readonly key: string;
  readonly descending: boolean;
  readonly position: number;
}

const ENTITIES: Readonly<Record<string, Entity>> = Object.freeze({
  metric: 'metric',
  metrics: 'metric',
  param: 'param',
  params: 'param',
  parameter: 'param',
  parameters: 'param',
  tag: 'tag',
  tags: 'tag',
  attribute: 'attribute',
  attributes: 'attribute',
  attr: 'attribute',
  run: 'attribute',
  dataset: 'dataset',
  datasets: 'dataset',
});

const COMPARATOR_LIST = '=, !=, >, >=, <, <=, LIKE, ILIKE, IN, NOT IN';

class Cursor {
  #i = 0;
  constructor(
    readonly tokens: readonly Token[],
    readonly input: string,
    readonly field: string,
  ) {}

  peek(): Token {
    return this.tokens[this.#i]!;
  }

  next(): Token {
    const token = this.tokens[this.#i]!;
    if (token.kind !== 'end') this.#i++;
    return token;
  }

  fail(token: Token, message: string): never {
    throw syntaxError(this.field, this.input, token.position, message);
  }
}

function describe(token: Token): string {
  switch (token.kind) {
    case 'end':
      return 'the end of the input';
    case 'string':
      return `'${token.text}'`;
    case 'dquoted':
      return `"${token.text}"`;
    case 'backquoted':
      return `\`${token.text}\``;
    default:
      return `'${token.text}'`;
  }
}

const isKeyword = (token: Token, word: string) => token.kind === 'word' && token.text.toUpperCase() === word;

/** `metrics.acc`, ``metrics.`val loss` ``, `metrics."val loss"`, or a bare attribute name such as `status`. */
function parseIdentifier(cur: Cursor): { entity: Entity; key: string; position: number } {
  const token = cur.next();
  if (token.kind !== 'word') {
    cur.fail(
      token,
      `expected an identifier such as metrics.<key>, params.<key>, tags.<key> or attributes.<name>, found ${describe(token)}`,
    );
  }
  const dot = token.text.indexOf('.');
  if (dot < 0) return { entity: 'attribute', key: token.text, position: token.position };
  const prefix = token.text.slice(0, dot);
  const entity = ENTITIES[prefix.toLowerCase()];
  if (!entity) {
    cur.fail(token, `unknown entity '${prefix}': use metrics, params, tags, attributes or datasets`);
  }
  let key = token.text.slice(dot + 1);
  if (key === '') {
    const quoted = cur.next();
    if (quoted.kind !== 'backquoted' && quoted.kind !== 'dquoted') {
      cur.fail(quoted, `expected a key after '${token.text}', found ${describe(quoted)}`);
    }
    key = quoted.text;
  }
  if (key === '') cur.fail(token, `empty key after '${prefix}.'`);
  return { entity, key, position: token.position };
}

function parseComparator(cur: Cursor, after: string): Comparator {
  const token = cur.next();
  if (token.kind === 'op') return token.text as Comparator;
  if (token.kind === 'word') {
    const word = token.text.toUpperCase();
    if (word === 'LIKE' || word === 'ILIKE' || word === 'IN') return word;
    if (word === 'NOT') {
      const inToken = cur.next();
      if (isKeyword(inToken, 'IN')) return 'NOT IN';
      cur.fail(inToken, `expected IN after NOT, found ${describe(inToken)}`);
    }
  }
  return cur.fail(token, `expected a comparator (${COMPARATOR_LIST}) after '${after}', found ${describe(token)}`);
}

function parseValue(cur: Cursor, comparator: Comparator, limits: SearchFilterLimits): string | number | string[] {
  const token = cur.next();
  if (comparator === 'IN' || comparator === 'NOT IN') {
    if (token.kind !== 'lparen')
      cur.fail(token, `expected '(' to start the ${comparator} list, found ${describe(token)}`);
    const values: string[] = [];
    for (;;) {
      const item = cur.next();
      if (item.kind !== 'string' && item.kind !== 'dquoted') {
        cur.fail(item, `expected a quoted string in the ${comparator} list, found ${describe(item)}`);
      }
      if (values.length === limits.filterInValues) {
        cur.fail(
          token,
          `the ${comparator} list holds more than ${limits.filterInValues} values; the filterInValues limit is ${limits.filterInValues}`,
        );
      }
      values.push(item.text);
      const sep = cur.next();
      if (sep.kind === 'rparen') return values;
      if (sep.kind !== 'comma') cur.fail(sep, `expected ',' or ')' in the ${comparator} list, found ${describe(sep)}`);
    }
  }
  if (token.kind === 'string' || token.kind === 'dquoted') return token.text;
  if (token.kind === 'number') return Number(token.text);
  return cur.fail(token, `expected a value (a quoted string or a number), found ${describe(token)}`);
}

/**
 * Parses a filter into its AST; the empty filter (or only whitespace) has no clauses. ValidationError (field
 * `field`) for a malformed filter, or one beyond `limits` (filterLength, filterClauses, filterInValues).
 */
export function parseFilter(
  input: string,
  field = 'filter',
  limits: SearchFilterLimits = SEARCH_FILTER_LIMITS,
): FilterAst {
  if (typeof input !== 'string') {
    throw new ValidationError(`${field} must be a string`, { field });
  }
  if (input.length > limits.filterLength) {
    throw new ValidationError(`${field} has ${input.length} chars; the filterLength limit is ${limits.filterLength}`, {
      field,
    });
  }
  const cur = new Cursor(tokenize(input, field), input, field);
  const clauses: Comparison[] = [];
  if (cur.peek().kind === 'end') return { source: input, clauses };
  for (;;) {
    const { entity, key, position } = parseIdentifier(cur);
    if (clauses.length === limits.filterClauses) {
      throw syntaxError(
        field,
        input,
        position,
        `more than ${limits.filterClauses} clauses; the filterClauses limit is ${limits.filterClauses}`,
      );
    }
    const comparator = parseComparator(cur, input.slice(position, cur.peek().position).trim() || key);
    const value = parseValue(cur, comparator, limits);
    clauses.push({ entity, key, comparator, value, position });
    const token = cur.next();
    if (token.kind === 'end') return { source: input, clauses };
    if (isKeyword(token, 'OR')) cur.fail(token, `OR is not supported: the filter language only joins clauses with AND`);
    if (!isKeyword(token, 'AND')) cur.fail(token, `expected AND or the end of the filter, found ${describe(token)}`);
  }
}

/**
 * Parses an orderBy list: ValidationError (field `field`) when it holds more than `orderByTerms` terms, a term is
 * longer than `orderByTermLength`, or a term is malformed.
 */
export function parseOrderBy(
  terms: readonly string[],
  field = 'orderBy',
  limits: SearchFilterLimits = SEARCH_FILTER_LIMITS,
): OrderTerm[] {
  if (!Array.isArray(terms) || terms.some((t) => typeof t !== 'string')) {
    throw new ValidationError(`${field} must be an array of strings`, { field });
  }
  if (terms.length > limits.orderByTerms) {
    throw new ValidationError(
      `${field} holds ${terms.length} terms; the orderByTerms limit is ${limits.orderByTerms}`,
      { field },
    );
  }
  return terms.map((term) => parseOrderTerm(term, field, limits));
}

/** Parses one order-by term: `<entity>.<key> [ASC|DESC]` (default ASC). */
export function parseOrderTerm(
  input: string,
  field = 'orderBy',
  limits: SearchFilterLimits = SEARCH_FILTER_LIMITS,
): OrderTerm {
  if (input.length > limits.orderByTermLength) {
    throw new ValidationError(
      `an ${field} term has ${input.length} chars; the orderByTermLength limit is ${limits.orderByTermLength}`,
      { field },
    );
  }
  const cur = new Cursor(tokenize(input, field), input, field);
  const { entity, key, position } = parseIdentifier(cur);
  let descending = false;
  const token = cur.next();
  if (isKeyword(token, 'DESC')) descending = true;
  else if (!isKeyword(token, 'ASC') && token.kind !== 'end') {
    cur.fail(token, `expected ASC, DESC or the end of the term, found ${describe(token)}`);
  }
  if (token.kind !== 'end') {
    const rest = cur.next();
    if (rest.kind !== 'end') cur.fail(rest, `unexpected ${describe(rest)} after the sort direction`);
  }
  return { entity, key, descending, position };
}
