import { likeToGlob } from '@mlplane/sql';
import { describe, expect, it } from 'vitest';
import { parseFilter, parseOrderTerm } from '../../src/infra/filter/parser.js';
import { tokenize } from '../../src/infra/filter/tokenizer.js';
import { ValidationError } from '../../src/ports/errors.js';

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
