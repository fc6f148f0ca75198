import { describe, expect, it } from 'vitest';
import { isMediaType, validateMediaType } from '../../src/infra/validation/media-type.js';
import { normalizeName, validateNoControlCharacters, validateText } from '../../src/infra/validation/text.js';
import { ValidationError } from '../../src/ports/errors.js';

const rules = { field: 'name', what: 'experiment name', maxLength: 10, limitName: 'experimentNameLength' };

function refusal(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error('expected a ValidationError');
}

describe('normalizeName', () => {
  it('returns the NFC form, so canonically equal names are one name', () => {
    expect(normalizeName('cafe\u0301', rules)).toBe('caf\u00e9');
    expect(normalizeName('\u212b', rules)).toBe('\u00c5');
    expect(normalizeName('plain-name', rules)).toBe('plain-name');
    expect(normalizeName('😀 émoji', { ...rules, maxLength: 20 })).toBe('😀 émoji');
  });

  it('refuses C0, DEL and C1 controls, bidi controls and lone surrogates, naming the field and the character', () => {
    const cases: [string, string][] = [
      ['a\u0000b', 'a control character (U+0000 at index 1)'],
      ['a\tb', 'a control character (U+0009 at index 1)'],
      ['line\nbreak', 'a control character (U+000A'],
      ['esc\u001b[2J', 'a control character (U+001B'],
      ['del\u007f', 'a control character (U+007F'],
      ['nel\u0085', 'a control character (U+0085'],
      ['abc\u202Egpj', 'a bidirectional control character (U+202E at index 3)'],
      ['\u2066iso\u2069', 'a bidirectional control character (U+2066'],
      ['mark\u200F', 'a bidirectional control character (U+200F'],
      ['half\ud800', 'a lone surrogate'],
      ['\udc00half', 'a lone surrogate'],
    ];
    for (const [value, message] of cases) {
      const err = refusal(() => normalizeName(value, rules));
      expect(err.field, value).toBe('name');
      expect(err.message, value).toContain(`experiment name contains ${message}`);
    }
  });

  it('refuses non-strings, blank names unless allowed, and names over the limit after normalisation', () => {
    expect(refusal(() => normalizeName(3, rules)).message).toBe('experiment name must be a non-empty string');
    expect(refusal(() => normalizeName('  ', rules)).message).toContain('non-empty');
    expect(normalizeName('', { ...rules, allowEmpty: true })).toBe('');
    expect(refusal(() => normalizeName('x'.repeat(11), rules)).message).toBe(
      'experiment name has 11 chars; the experimentNameLength limit is 10',
    );
    // Ten decomposed characters are twenty code units before NFC and ten after: the limit applies to the stored form.
    expect(normalizeName('e\u0301'.repeat(10), rules)).toBe('\u00e9'.repeat(10));
  });
});

describe('validateText and validateNoControlCharacters', () => {
  it('lets free text keep tabs and line breaks, and bidi characters, but no other control', () => {
    validateText('line one\r\n\tline two \u202Eok', 'description', 'description');
    for (const value of ['nul\u0000', 'bell\u0007', 'c1\u009b31m', 'bad\ud800']) {
      expect(refusal(() => validateText(value, 'tags.note', 'tag value')).field).toBe('tags.note');
    }
  });

  it('refuses every control character, tabs and line breaks included', () => {
    validateNoControlCharacters('https://example.com/hook?a=1', 'url', 'url');
    for (const value of ['https://exa\tmple.com', 'https://example.com\r\n', 'x\u0000']) {
      expect(refusal(() => validateNoControlCharacters(value, 'url', 'url')).message).toContain('control character');
    }
  });
});

describe('media types', () => {
  it('accepts type/subtype with parameters as HTTP writes them', () => {
    for (const value of [
      'application/octet-stream',
      'text/csv; charset=utf-8',
      'text/plain;charset="utf-8"',
      'multipart/form-data; boundary="a b\\"c"',
      'application/vnd.mlplane.model+json; version=2; q=0.9',
      'text/plain ;',
    ]) {
      expect(isMediaType(value), value).toBe(true);
    }
  });

  it('refuses CR/LF, missing subtypes, spaces in tokens, non-ASCII and over-long values', () => {
    for (const value of [
      'text/plain\r\nX-Injected: 1',
      'text/plain\n',
      'text/html; charset=utf-8\r\n',
      'text',
      'text/',
      '/plain',
      'text/pl ain',
      'text/plain; charset',
      'text/plain; charset=ütf-8',
      'text/plain; a="unterminated',
      `text/${'x'.repeat(260)}`,
      '',
    ]) {
      expect(isMediaType(value), JSON.stringify(value)).toBe(false);
    }
    const err = refusal(() => validateMediaType('text/plain\r\nSet-Cookie: a=b'));
    expect(err.field).toBe('contentType');
    expect(err.message).toContain('is not a media type');
    expect(refusal(() => validateMediaType(42, 'options.contentType')).field).toBe('options.contentType');
  });
});
