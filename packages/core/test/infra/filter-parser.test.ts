import { likeToGlob } from '@mlplane/sql';
import { describe, expect, it } from 'vitest';
import { parseFilter, parseOrderBy, parseOrderTerm } from '../../src/infra/filter/parser.js';
import { tokenize } from '../../src/infra/filter/tokenizer.js';
import { ValidationError } from '../../src/ports/errors.js';
import { SEARCH_FILTER_LIMITS } from '../../src/ports/search-filter.js';

describe('filter language', () => {
  it('tokenizes words, quoted strings and identifiers, numbers and operators with positions', () => {
    expect(tokenize("metrics.`val loss` <= -1.5e-3 and params.lr != 'it''s'", 'filter')).toEqual([
      { kind: 'word', text: 'metrics.', position: 0 },
      { kind: 'backquoted', text: 'val loss', position: 8 },
      { kind: 'op', text: '<=', position: 19 },
      { kind: 'number', text: '-1.5e-3', position: 22 },
      { kind: 'word', text: 'and', position: 30 },
      { kind: 'word', text: 'params.lr', position: 34 },
      { kind: 'op', text: '!=', position: 44 },
      { kind: 'string', text: "it's", position: 47 },
      { kind: 'end', text: '', position: 54 },
    ]);
  });

  it('parses clauses into an AST, normalizing entity aliases and comparators', () => {
    const ast = parseFilter(
      `metric.acc > 0.9 AND param."learning rate" = "0.01" and tag.mlflow.parentRunId = 'p' and run_id not in ('a', 'b') and attr.status <> 'FAILED' and dataset.name ilike 'tr%'`,
    );
    expect(ast.clauses).toEqual([
      { entity: 'metric', key: 'acc', comparator: '>', value: 0.9, position: 0 },
      { entity: 'param', key: 'learning rate', comparator: '=', value: '0.01', position: 21 },
      { entity: 'tag', key: 'mlflow.parentRunId', comparator: '=', value: 'p', position: 56 },
      { entity: 'attribute', key: 'run_id', comparator: 'NOT IN', value: ['a', 'b'], position: 89 },
      { entity: 'attribute', key: 'status', comparator: '!=', value: 'FAILED', position: 118 },
      { entity: 'dataset', key: 'name', comparator: 'ILIKE', value: 'tr%', position: 146 },
    ]);
    expect(parseFilter('   ').clauses).toEqual([]);
  });

  it('parses order-by terms', () => {
    expect(parseOrderTerm('metrics.`val loss` DESC')).toEqual({
      entity: 'metric',
      key: 'val loss',
      descending: true,
      position: 0,
    });
    expect(parseOrderTerm('start_time')).toEqual({
      entity: 'attribute',
      key: 'start_time',
      descending: false,
      position: 0,
    });
  });

  it('reports errors as ValidationError with field and position', () => {
    const cases: [string, string][] = [
      ['metrics.acc > 1 and', 'position 19: expected an identifier'],
      ["metrics. = 'x'", "position 9: expected a key after 'metrics.'"],
      ['metrics.acc NOT LIKE 1', 'position 16: expected IN after NOT'],
      ['metrics.acc IN 1', "position 15: expected '(' to start the IN list"],
      ["run_id IN ('a',)", 'position 15: expected a quoted string in the IN list'],
      ['metrics.acc > 1x', "position 14: malformed number '1x'"],
    ];
    for (const [input, message] of cases) {
      let error: unknown;
      try {
        parseFilter(input);
      } catch (err) {
        error = err;
      }
      expect(error, input).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).field).toBe('filter');
      expect((error as Error).message, input).toContain(message);
    }
  });

  it('translates LIKE patterns to case-sensitive GLOB for SQLite', () => {
    expect(likeToGlob('a%b_c')).toBe('a*b?c');
    expect(likeToGlob('100\\%*[x]?')).toBe('100%[*][[]x][?]');
  });
});

describe('filter limits', () => {
  const clause = (i: number) => `metrics.m${i} > 0`;

  it('accepts filterClauses clauses and refuses one more, naming the limit', () => {
    const max = SEARCH_FILTER_LIMITS.filterClauses;
    expect(parseFilter(Array.from({ length: max }, (_, i) => clause(i)).join(' and ')).clauses).toHaveLength(max);
    const err = refused(() => parseFilter(Array.from({ length: max + 1 }, (_, i) => clause(i)).join(' and ')));
    expect(err.field).toBe('filter');
    expect(err.message).toContain(`the filterClauses limit is ${max}`);
  });

  it('accepts filterInValues values in an IN list and refuses one more', () => {
    const max = SEARCH_FILTER_LIMITS.filterInValues;
    const list = (n: number) => Array.from({ length: n }, (_, i) => `'r${i}'`).join(',');
    expect(parseFilter(`attributes.run_id IN (${list(max)})`).clauses[0]!.value).toHaveLength(max);
    const err = refused(() => parseFilter(`attributes.run_id NOT IN (${list(max + 1)})`));
    expect(err.message).toContain(`the filterInValues limit is ${max}`);
  });

  it('refuses a filter longer than filterLength before reading it', () => {
    const err = refused(() => parseFilter(`params.p = '${'x'.repeat(SEARCH_FILTER_LIMITS.filterLength)}'`));
    expect(err.field).toBe('filter');
    expect(err.message).toContain(`the filterLength limit is ${SEARCH_FILTER_LIMITS.filterLength}`);
    expect(err.message.length).toBeLessThan(200);
  });

  it('shows only an excerpt of a long malformed filter, around the error', () => {
    const filter = `${Array.from({ length: 15 }, (_, i) => `params.p${i} = '${'v'.repeat(2000)}'`).join(' and ')} and ~`;
    const err = refused(() => parseFilter(filter));
    expect(err.message).toContain(`position ${filter.length - 1}: unexpected character '~'`);
    expect(err.message).toContain(`...${JSON.stringify(filter.slice(filter.length - 61))}`);
    expect(err.message.length).toBeLessThan(300);
    // A short filter is still shown whole.
    expect(refused(() => parseFilter('metrics.acc ~ 1')).message).toContain('(in "metrics.acc ~ 1")');
  });

  it('limits orderBy lists and terms', () => {
    const max = SEARCH_FILTER_LIMITS.orderByTerms;
    expect(parseOrderBy(Array.from({ length: max }, (_, i) => `metrics.m${i}`))).toHaveLength(max);
    const many = refused(() => parseOrderBy(Array.from({ length: 100 }, (_, i) => `metrics.m${i}`)));
    expect(many.field).toBe('orderBy');
    expect(many.message).toContain(`holds 100 terms; the orderByTerms limit is ${max}`);
    const long = refused(() => parseOrderBy([`params.${'k'.repeat(SEARCH_FILTER_LIMITS.orderByTermLength)}`]));
    expect(long.message).toContain('orderByTermLength limit');
  });
});

function refused(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error('expected a ValidationError');
}
