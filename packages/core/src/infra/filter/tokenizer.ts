import { ValidationError } from '../../ports/errors.js';

export type TokenKind =
  | 'word'
  | 'string'
  | 'dquoted'
  | 'backquoted'
  | 'number'
  | 'op'
  | 'lparen'
  | 'rparen'
  | 'comma'
  | 'end';

export interface Token {
  readonly kind: TokenKind;
  /** Source text for words, numbers and operators; the unescaped content for quoted tokens. */
  readonly text: string;
  /** Zero-based offset of the token's first character in the input. */
  readonly position: number;
}

/** Characters of the input an error shows on each side of the position, so a huge filter is never echoed whole. */
const EXCERPT_RADIUS = 60;

/**
 * Raised for any malformed filter or order-by term; `field` tells the caller which option to fix. The message
 * shows the input around `position` (all of it when short), marking cut ends with `...`.
 */
export function syntaxError(field: string, input: string, position: number, message: string): ValidationError {
  return new ValidationError(`invalid ${field} at position ${position}: ${message} (in ${excerpt(input, position)})`, {
    field,
  });
}

/** The input around `position` as a JSON string, cut to EXCERPT_RADIUS characters on each side. */
export function excerpt(input: string, position: number): string {
  if (input.length <= 2 * EXCERPT_RADIUS) return JSON.stringify(input);
  const start = Math.max(0, position - EXCERPT_RADIUS);
  const end = Math.min(input.length, position + EXCERPT_RADIUS);
  return `${start > 0 ? '...' : ''}${JSON.stringify(input.slice(start, end))}${end < input.length ? '...' : ''}`;
}

const WORD_START = /[\p{L}_]/u;
const WORD_PART = /[\p{L}\p{N}_./-]/u;
const DIGIT = /[0-9]/;
const NUMBER = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/;

/** Splits a filter or order-by term into tokens; quoted tokens unescape `''`/`\'` (and the same for `"`, `` ` ``). */
export function tokenize(input: string, field: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < input.length) {
    const c = input[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const start = i;
    if (c === "'" || c === '"' || c === '`') {
      let text = '';
      i++;
      for (;;) {
        if (i >= input.length) throw syntaxError(field, input, start, `unterminated quote ${c}`);
        const d = input[i]!;
        if (d === '\\' && i + 1 < input.length && (input[i + 1] === c || input[i + 1] === '\\')) {
          text += input[i + 1];
          i += 2;
        } else if (d === c && input[i + 1] === c) {
          text += c;
          i += 2;
        } else if (d === c) {
          i++;
          break;
        } else {
          text += d;
          i++;
        }
      }
      tokens.push({ kind: c === "'" ? 'string' : c === '"' ? 'dquoted' : 'backquoted', text, position: start });
      continue;
    }
    if (DIGIT.test(c) || ((c === '-' || c === '.') && /[0-9.]/.test(input[i + 1] ?? ''))) {
      const match = NUMBER.exec(input.slice(i));
      if (!match) throw syntaxError(field, input, start, `malformed number`);
      i += match[0].length;
      if (i < input.length && WORD_PART.test(input[i]!)) {
        throw syntaxError(field, input, start, `malformed number '${input.slice(start, i + 1)}'`);
      }
      tokens.push({ kind: 'number', text: match[0], position: start });
      continue;
    }
    if (WORD_START.test(c)) {
      while (i < input.length && WORD_PART.test(input[i]!)) i++;
      tokens.push({ kind: 'word', text: input.slice(start, i), position: start });
      continue;
    }
    const two = input.slice(i, i + 2);
    if (two === '!=' || two === '>=' || two === '<=' || two === '<>') {
      tokens.push({ kind: 'op', text: two === '<>' ? '!=' : two, position: start });
      i += 2;
      continue;
    }
    if (c === '=' || c === '>' || c === '<') {
      tokens.push({ kind: 'op', text: c, position: start });
      i++;
      continue;
    }
    if (c === '(' || c === ')' || c === ',') {
      tokens.push({ kind: c === '(' ? 'lparen' : c === ')' ? 'rparen' : 'comma', text: c, position: start });
      i++;
      continue;
    }
    throw syntaxError(field, input, start, `unexpected character '${c}'`);
  }
  tokens.push({ kind: 'end', text: '', position: input.length });
  return tokens;
}
