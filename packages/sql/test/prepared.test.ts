import { CompiledQuery } from 'kysely';
import { describe, expect, it } from 'vitest';
import { preparedQueryLabel, prepareQuery } from '../src/dialect/prepared.js';

describe('prepareQuery', () => {
  const compiled = CompiledQuery.raw('select * from t where a = ? and b = ?', ['\u0000a', 2]);

  it('marks the SQL with its label and binds new values in place of the placeholders', () => {
    const query = prepareQuery('registry.test', compiled, ['\u0000a', 2]);
    const bound = query.bind(['x', 3]);
    expect(bound.sql).toBe(`/* mlplane:prepared registry.test */ ${compiled.sql}`);
    expect(bound.parameters).toEqual(['x', 3]);
    expect(bound.query).toBe(compiled.query);
    expect(preparedQueryLabel(bound.sql)).toBe('registry.test');
  });

  it('refuses placeholders that are not the parameters, a bad label, and a wrong number of values', () => {
    expect(() => prepareQuery('registry.test', compiled, [2, '\u0000a'])).toThrow(/placeholders/);
    expect(() => prepareQuery('registry.test', compiled, ['\u0000a'])).toThrow(/placeholders/);
    expect(() => prepareQuery('has space', compiled, ['\u0000a', 2])).toThrow(/label/);
    expect(() => prepareQuery('x'.repeat(41), compiled, ['\u0000a', 2])).toThrow(/label/);
    expect(() => prepareQuery('registry.test', compiled, ['\u0000a', 2]).bind(['x'])).toThrow(/takes 2 parameters/);
  });

  it('reads no label from unmarked or malformed SQL', () => {
    expect(preparedQueryLabel('select 1')).toBeUndefined();
    expect(preparedQueryLabel('/* mlplane:prepared bad label */ select 1')).toBeUndefined();
    expect(preparedQueryLabel('/* mlplane:prepared unterminated')).toBeUndefined();
    expect(preparedQueryLabel(' /* mlplane:prepared x */ select 1')).toBeUndefined();
  });
});
