import { ValidationError } from '../../ports/errors.js';

/**
 * Unicode's Bidi_Control characters: the marks U+061C, U+200E, U+200F, the embeddings and overrides U+202A–U+202E and
 * the isolates U+2066–U+2069. They change how the text around them is displayed, so a name holding one can show as
 * another name ('Trojan Source').
 */
const BIDI_CONTROLS = new Set([
  0x061c, 0x200e, 0x200f, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069,
]);
/** Tab, line feed and carriage return: free text (descriptions, notes) may hold them, names may not. */
const TEXT_WHITESPACE = new Set([0x09, 0x0a, 0x0d]);

type Refused = 'a control character' | 'a bidirectional control character' | 'a lone surrogate (not valid Unicode)';

/**
 * The first character of `value` that `rules` refuse, with its index: C0 controls, DEL and C1 controls (they reach
 * terminals and logs as escape sequences; PostgreSQL text cannot hold NUL), lone surrogates (no UTF-8 form), and
 * with `bidi` the Bidi_Control characters.
 */
function firstRefused(
  value: string,
  rules: { readonly bidi: boolean; readonly textWhitespace: boolean },
): { index: number; codePoint: number; kind: Refused } | undefined {
  for (let index = 0; index < value.length; index++) {
    const unit = value.charCodeAt(index);
    if (unit >= 0xd800 && unit <= 0xdfff) {
      const next = value.charCodeAt(index + 1);
      if (unit <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        index++;
        continue;
      }
      return { index, codePoint: unit, kind: 'a lone surrogate (not valid Unicode)' };
    }
    if ((unit < 0x20 || (unit >= 0x7f && unit <= 0x9f)) && !(rules.textWhitespace && TEXT_WHITESPACE.has(unit))) {
      return { index, codePoint: unit, kind: 'a control character' };
    }
    if (rules.bidi && BIDI_CONTROLS.has(unit))
      return { index, codePoint: unit, kind: 'a bidirectional control character' };
  }
  return undefined;
}

export interface NameRules {
  /** Reported as the ValidationError's `field`. */
  readonly field: string;
  /** What the name names, for the message: `experiment name`, `model name`. */
  readonly what: string;
  /** Longest accepted, in UTF-16 code units after normalisation. */
  readonly maxLength: number;
  /** The limit's name in the port's limits object, for the message (`experimentNameLength`). */
  readonly limitName?: string;
  /** Whether '' (and blank names) are accepted; run names may be empty, as in MLflow. */
  readonly allowEmpty?: boolean;
}

/**
 * The stored form of a name someone chose (experiment, run, model, API token): NFC-normalised, so two names that are
 * the same text in different Unicode encodings (a precomposed `é` and `e` + U+0301) are one name. Adapters store and
 * look names up in this form, so such names collide (ConflictError) instead of coexisting as look-alikes.
 * ValidationError naming `rules.field` for a non-string, an empty or blank name (unless allowed), a name longer than
 * `maxLength`, and a name holding a control character, a bidi control or a lone surrogate.
 */
export function normalizeName(value: unknown, rules: NameRules): string {
  const { field, what } = rules;
  if (typeof value !== 'string' || (!rules.allowEmpty && value.trim() === '')) {
    throw new ValidationError(`${what} must be a non-empty string`, { field });
  }
  refuse(value, field, what, { bidi: true, textWhitespace: false });
  const name = value.normalize('NFC');
  if (name.length > rules.maxLength) {
    const limit = rules.limitName
      ? `the ${rules.limitName} limit is ${rules.maxLength}`
      : `the limit is ${rules.maxLength}`;
    throw new ValidationError(`${what} has ${name.length} chars; ${limit}`, { field });
  }
  return name;
}

/**
 * Free text stored as given (descriptions, tag and param values): ValidationError naming `field` when it holds a
 * control character other than tab, line feed and carriage return, or a lone surrogate. PostgreSQL text cannot
 * hold NUL, and the rule is the same on every backend so that data moves between them.
 */
export function validateText(value: string, field: string, what: string): void {
  refuse(value, field, what, { bidi: false, textWhitespace: true });
}

/** ValidationError unless `value` is free of every control character, tab and line breaks included (URLs, ids). */
export function validateNoControlCharacters(value: string, field: string, what: string): void {
  refuse(value, field, what, { bidi: false, textWhitespace: false });
}

/**
 * What `value` holds that its kind refuses, as a predicate (`contains a control character (U+0000 at index 3); remove
 * it`); undefined when nothing is refused. `text`: free text (validateText); `line`: no control character at all
 * (validateNoControlCharacters); `name`: as normalizeName, bidi controls refused too. Port schemas use it.
 */
export function textProblem(value: string, kind: 'text' | 'line' | 'name'): string | undefined {
  const found = firstRefused(value, { bidi: kind === 'name', textWhitespace: kind === 'text' });
  if (!found) return undefined;
  const at = `U+${found.codePoint.toString(16).toUpperCase().padStart(4, '0')} at index ${found.index}`;
  return `contains ${found.kind} (${at}); remove it`;
}

function refuse(
  value: string,
  field: string,
  what: string,
  rules: { readonly bidi: boolean; readonly textWhitespace: boolean },
): void {
  const problem = textProblem(value, rules.bidi ? 'name' : rules.textWhitespace ? 'text' : 'line');
  if (problem) throw new ValidationError(`${what} ${problem}`, { field });
}
