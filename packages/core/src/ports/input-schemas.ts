import { z } from 'zod';
import { textProblem } from '../infra/validation/text.js';
import { describeValue, ValidationError } from './errors.js';

/**
 * Building blocks of the ports' argument schemas (see port-inputs.ts): strings, arrays and records whose
 * overflow messages name the port's limit, and the house wording of zod's own issues. Internal to the ports.
 */

const article = (noun: string) => (/^[aeiou]/.test(noun) ? `an ${noun}` : `a ${noun}`);

const EXPECTED: Readonly<Record<string, string>> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'a boolean',
  array: 'an array',
  tuple: 'an array',
  object: 'an object',
  record: 'an object',
  date: 'a valid Date',
  bigint: 'a bigint',
};

/**
 * The house wording of zod's issues, for schemas that give no message of their own: a predicate that follows the
 * field's name ("must be a string, got null"), naming the expected type or bound and describing, never quoting,
 * what was received.
 */
export function houseMessage(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      return `must be ${EXPECTED[issue.expected] ?? article(issue.expected)}, got ${describeValue(issue.input)}`;
    case 'too_big': {
      const max = Number(issue.maximum);
      const size = sizeOf(issue.input);
      if (issue.origin === 'string') return `has ${size} chars; the limit is ${max}`;
      if (issue.origin === 'array' || issue.origin === 'set') return `holds ${size} items; the limit is ${max}`;
      return `must be at most ${max}`;
    }
    case 'too_small': {
      const min = Number(issue.minimum);
      if ((issue.origin === 'string' || issue.origin === 'array') && min === 1) return 'must not be empty';
      if (issue.origin === 'string') return `must have at least ${min} chars`;
      if (issue.origin === 'array') return `must hold at least ${min} items`;
      return `must be at least ${min}`;
    }
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => String(v)).join(', ')}`;
    case 'unrecognized_keys':
      return `has unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys
        .slice(0, 5)
        .map((k) => (k.length > 40 ? `${k.slice(0, 40)}...` : k))
        .join(', ')}`;
    case 'invalid_format':
      return 'is not in the expected format';
    case 'invalid_key':
      return 'has a key that is not allowed';
    case 'invalid_union':
      return 'matches none of the allowed forms';
    case 'not_multiple_of':
      return `must be a multiple of ${String(issue.divisor)}`;
    default:
      return 'is invalid';
  }
}

export function sizeOf(input: unknown): number {
  if (typeof input === 'string' || Array.isArray(input)) return input.length;
  if (input instanceof Set) return input.size;
  return Number.NaN;
}

/**
 * A string of at most `max` characters whose overflow message names the limit: `has 6001 chars; the
 * paramValueLength limit is 6000`. With `nonEmpty`, the empty (or blank) string and a non-string are refused as
 * `must be a non-empty string`.
 */
export function limitedString(
  limit: string,
  max: number,
  options: { readonly nonEmpty?: boolean; readonly blankIsEmpty?: boolean } = {},
): z.ZodString {
  const nonEmpty = options.nonEmpty === true;
  let schema = z
    .string({
      error: (issue) => (nonEmpty ? `must be a non-empty string, got ${describeValue(issue.input)}` : undefined),
    })
    .max(max, {
      error: (issue) => `has ${sizeOf(issue.input)} chars; the ${limit} limit is ${max}`,
      abort: true,
    });
  if (nonEmpty) {
    schema = schema.refine((value) => (options.blankIsEmpty ? value.trim() !== '' : value !== ''), {
      error: 'must be a non-empty string',
      abort: true,
    }) as unknown as z.ZodString;
  }
  return schema;
}

/** An array of at most `max` items whose overflow message names the limit, then `advice` (how to get under it). */
export function limitedArray<T extends z.ZodType>(
  item: T,
  limit: string,
  max: number,
  noun = 'items',
  advice = ': split the call',
): z.ZodArray<T> {
  return z.array(item).max(max, {
    error: (issue) => `holds ${sizeOf(issue.input)} ${noun}; the ${limit} limit is ${max}${advice}`,
  });
}

/**
 * A record of at most `max` entries (tags, metadata) whose keys pass `key` and values pass `value`. Keys are checked
 * one by one, so an issue names the key (`tags.<key>`) and says what is wrong with it.
 */
export function limitedRecord<K extends z.ZodType<string>, V extends z.ZodType>(
  key: K,
  value: V,
  limit: string,
  max: number,
) {
  return z
    .record(z.string(), value, { error: (issue) => `must be an object, got ${describeValue(issue.input)}` })
    .check((ctx) => {
      const keys = Object.keys(ctx.value);
      if (keys.length > max) {
        ctx.issues.push({
          code: 'custom',
          input: undefined,
          message: `holds ${keys.length} entries; the ${limit} limit is ${max}: split the call`,
        });
        return;
      }
      for (const k of keys) {
        const result = key.safeParse(k, { reportInput: true, error: houseMessage });
        if (!result.success) {
          ctx.issues.push({ code: 'custom', input: undefined, path: [k], message: result.error.issues[0]!.message });
        }
      }
    }) as unknown as z.ZodType<Record<z.output<K>, z.output<V>>>;
}

/** An integer (safe, no fraction) from `min` to `max`, refused as `must be an integer from <min> to <max>`. */
export function integerBetween(min: number, max: number, what = 'an integer'): z.ZodNumber {
  const message =
    max === Number.MAX_SAFE_INTEGER ? `must be ${what} of at least ${min}` : `must be ${what} from ${min} to ${max}`;
  return z
    .number({ error: (issue) => `${message}, got ${describeValue(issue.input)}` })
    .refine((n) => Number.isSafeInteger(n) && n >= min && n <= max, {
      error: (issue) => `${message}, got ${describeValue(issue.input)}`,
    }) as unknown as z.ZodNumber;
}

/** A safe integer (no fraction, within ±2^53), refused as `must be an integer`. */
export const safeInteger = z
  .number({ error: (issue) => `must be an integer, got ${describeValue(issue.input)}` })
  .refine(Number.isSafeInteger, { error: (issue) => `must be an integer, got ${describeValue(issue.input)}` });

/** An integer of at least 1, refused as `must be a positive integer`. */
export const positiveInteger = z
  .number({ error: (issue) => `must be a positive integer, got ${describeValue(issue.input)}` })
  .refine((n) => Number.isSafeInteger(n) && n >= 1, {
    error: (issue) => `must be a positive integer, got ${describeValue(issue.input)}`,
  });

/** Any number, NaN and ±Infinity included (zod's number refuses those). */
export const anyNumber = z.custom<number>((v) => typeof v === 'number', {
  error: (issue) => `must be a number, got ${describeValue(issue.input)}`,
});

/** A Date that holds a time (`new Date('x')` does not). */
export const validDate = z.date({ error: (issue) => `must be a valid Date, got ${describeValue(issue.input)}` });

/** A string among `values`, refused as `must be one of A, B, C`. */
export function oneOf<const V extends readonly [string, ...string[]]>(values: V): z.ZodEnum<{ [K in V[number]]: K }> {
  return z.enum(values, { error: (issue) => `must be one of ${values.join(', ')}, got ${quoteShort(issue.input)}` });
}

function quoteShort(value: unknown): string {
  return typeof value === 'string' && value.length <= 64 ? `'${value}'` : describeValue(value);
}

/**
 * A check that applies an existing validator (one that throws ValidationError, like `validateArtifactLocation`), so
 * a schema and the implementations refuse the same values with the same words. The validator's message is kept
 * whole (it names what is wrong itself), and so is its `field`, unless `field: 'path'` asks for the field of where
 * the schema sits (an artifact key checked as `from` or `to`).
 */
export function fromValidator<T>(validate: (value: T) => unknown, options: { readonly field?: 'own' | 'path' } = {}) {
  return (ctx: { value: T; issues: unknown[] }): void => {
    try {
      validate(ctx.value);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      const field = options.field === 'path' ? undefined : err.field;
      ctx.issues.push({ code: 'custom', input: undefined, message: err.message, params: { whole: true, field } });
    }
  };
}

/** A check refusing text that holds characters its kind refuses (see `textProblem`: free text, one line, a name). */
export function textCheck(kind: 'text' | 'line' | 'name') {
  return (ctx: { value: string; issues: unknown[] }): void => {
    const found = textProblem(ctx.value, kind);
    if (found) ctx.issues.push({ code: 'custom', input: undefined, message: found });
  };
}
