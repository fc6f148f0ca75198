import { z } from 'zod';
import { ValidationError } from './errors.js';
import { houseMessage } from './input-schemas.js';

/**
 * Argument schemas of port operations, and the wrapper that checks every call against them.
 *
 * Each port with inputs exports, beside its interface, one object mapping operation name to a zod tuple of its
 * arguments (`experimentTrackerInputs`, `modelRegistryInputs`...). `validatePortInputs(impl, inputs)` returns the
 * implementation behind a wrapper that parses each call's arguments first and refuses a bad call with a
 * ValidationError whose `field` is the path of the offending value (`metrics[0].value`, `resource.kind`) and whose
 * message names the expected type or the limit, never echoing a large input. The kernel wraps every chosen provider
 * this way, so an HTTP API (or any caller) gets the same checks whatever backend serves the port.
 */

/** How the issues of one argument are named. */
interface ArgumentNaming {
  readonly name: string;
  /** Whether a path inside the argument is prefixed by its name (`resource.kind`) or stands alone (`metrics[0]`). */
  readonly prefixed: boolean;
}

const argumentNaming = z.registry<ArgumentNaming>();

/**
 * An argument whose inner fields are named under it: `resource.kind`, `principal.roles`; the argument itself is
 * `name` (`version`, `key`).
 */
export function portArg<T extends z.ZodType>(name: string, schema: T): T {
  const named = schema.clone() as T;
  argumentNaming.add(named, { name, prefixed: true });
  return named;
}

/**
 * An operation's input object, whose fields are named as they are (`metrics[0].value`, `tags.team`, `name`), as
 * the port's documentation and MLflow name them; the object itself is `name` (`batch`, `input`).
 */
export function portInput<T extends z.ZodType>(name: string, schema: T): T {
  const named = schema.clone() as T;
  argumentNaming.add(named, { name, prefixed: false });
  return named;
}

const synchronousOperations = z.registry<{ readonly synchronous: true }>();

/**
 * Marks the arguments schema of an operation that returns its result directly (ArtifactStore.uri): a refused call
 * throws its ValidationError instead of returning a rejected promise.
 */
export function synchronous<T extends z.ZodType>(schema: T): T {
  const marked = schema.clone() as T;
  synchronousOperations.add(marked, { synchronous: true });
  return marked;
}

type Method = (...args: any[]) => any;
/** The operations of a port: its function-valued members, optional ones included. */
export type OperationOf<T> = {
  [K in keyof T]-?: NonNullable<T[K]> extends Method ? K : never;
}[keyof T] &
  string;

/**
 * Per operation of port `T`, a zod tuple of its arguments (optional trailing arguments as `.optional()` items).
 * Operations left out are not checked. The schemas' outputs must fit the operations' parameter types, so a
 * schema cannot drift from its interface unnoticed.
 */
export type PortInputs<T> = {
  readonly [K in OperationOf<T>]?: z.ZodType<Parameters<Extract<NonNullable<T[K]>, Method>>>;
};

/**
 * The operations of `T` whose schema in `inputs` takes another number of arguments (optional ones counted) than the
 * operation: `never` when every schema fits. `PortInputs` cannot see a schema that leaves out an optional trailing
 * argument (a shorter tuple still fits the parameters), so the ports' type tests assert this is `never`.
 */
export type PortInputsArityMismatch<T, I> = {
  [K in keyof I & OperationOf<T>]: I[K] extends z.ZodType
    ? [Parameters<Extract<NonNullable<T[K]>, Method>>['length']] extends [
        z.output<I[K]> extends readonly unknown[] ? z.output<I[K]>['length'] : never,
      ]
      ? [z.output<I[K]> extends readonly unknown[] ? z.output<I[K]>['length'] : never] extends [
          Parameters<Extract<NonNullable<T[K]>, Method>>['length'],
        ]
        ? never
        : K
      : K
    : K;
}[keyof I & OperationOf<T>];

/**
 * `impl` behind a wrapper that checks each call of an operation listed in `inputs` before `impl` sees it. A
 * refused call returns a rejected promise with a ValidationError (or throws it, for operations marked
 * `synchronous`) and never reaches `impl`. The arguments `impl` receives are the caller's own, unchanged: the check builds nothing
 * (streams and bodies are never read, Dates and class instances keep their identity). Operations without a schema,
 * and every other member, pass through; methods run with `impl` as `this`, so private fields keep working.
 */
export function validatePortInputs<T extends object>(impl: T, inputs: PortInputs<T>): T {
  const schemas = inputs as Readonly<Record<string, z.ZodType | undefined>>;
  const wrappers = new Map<PropertyKey, { readonly original: unknown; readonly wrapper: unknown }>();
  return new Proxy(impl, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      const cached = wrappers.get(property);
      if (cached?.original === value) return cached.wrapper;
      const method = value as (...args: unknown[]) => unknown;
      const schema = typeof property === 'string' && Object.hasOwn(schemas, property) ? schemas[property] : undefined;
      const wrapper =
        schema === undefined
          ? method.bind(target)
          : synchronousOperations.has(schema)
            ? (...args: unknown[]) => {
                const refused = argumentsError(schema, args, String(property));
                if (refused) throw refused;
                return method.apply(target, args);
              }
            : (...args: unknown[]) => {
                const refused = argumentsError(schema, args, String(property));
                return refused ? Promise.reject(refused) : method.apply(target, args);
              };
      wrappers.set(property, { original: value, wrapper });
      return wrapper;
    },
  });
}

/** The ValidationError for a call of `operation` whose arguments `schema` refuses; undefined when it accepts them. */
export function argumentsError(
  schema: z.ZodType,
  args: readonly unknown[],
  operation: string,
): ValidationError | undefined {
  const result = schema.safeParse(args, { reportInput: true, error: houseMessage });
  if (result.success) return undefined;
  return toValidationError(result.error.issues, (path, issue) => {
    const [index, ...inner] = path;
    // A check over the whole argument list (one rule relating two arguments) names its own field.
    if (typeof index !== 'number' && issue.code !== 'too_small' && issue.code !== 'too_big') return {};
    if (typeof index !== 'number') {
      // The argument list itself: too few arguments (name the first one missing) or too many.
      const count = args.length;
      if (issue.code === 'too_small') {
        const missing = argumentNamingAt(schema, count)?.name ?? `argument ${count + 1}`;
        return {
          field: missing,
          message: `${missing} is missing: ${operation} takes at least ${issue.minimum} arguments, got ${count}`,
        };
      }
      const maximum = issue.code === 'too_big' ? issue.maximum : args.length;
      return { message: `${operation} takes at most ${maximum} arguments, got ${count}` };
    }
    const naming = argumentNamingAt(schema, index) ?? { name: `argument ${index + 1}`, prefixed: true };
    return { field: fieldOf(naming, inner) };
  });
}

/**
 * Throws the ValidationError the port boundary would raise for a call of `operation` with `args`; nothing when
 * `inputs` has no schema for it. An implementation calls it where it wants its own errors to match the boundary's
 * (e.g. single writes delegating to a batch: `value`, not `params[0].value`).
 */
export function assertArguments<T>(inputs: PortInputs<T>, operation: OperationOf<T>, args: readonly unknown[]): void {
  const schema = (inputs as Readonly<Record<string, z.ZodType | undefined>>)[operation];
  const refused = schema ? argumentsError(schema, args, operation) : undefined;
  if (refused) throw refused;
}

/**
 * Checks one value (an input object, a key) with `schema`; throws a ValidationError naming the first issue. Fields
 * inside it are named as they are, or under `name` when `prefixed`; the value itself is `name`. Implementations use
 * it to apply a port's schema themselves (e.g. `validateLogBatch`).
 */
export function checkInput(schema: z.ZodType, value: unknown, name: string, prefixed = false): void {
  const result = schema.safeParse(value, { reportInput: true, error: houseMessage });
  if (result.success) return;
  throw toValidationError(result.error.issues, (path) => ({ field: fieldOf({ name, prefixed }, path) }));
}

function toValidationError(
  issues: readonly z.core.$ZodIssue[],
  locate: (path: readonly PropertyKey[], issue: z.core.$ZodIssue) => { field?: string; message?: string },
): ValidationError {
  const first = issues[0]!;
  const located = locate(first.path, first);
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''})` : '';
  // A message taken whole from an existing validator (`fromValidator`) names what is wrong itself, and its own
  // field, when it gives one, is more precise than where the check sits (`metadata.note` rather than `options`).
  const params =
    first.code === 'custom' ? (first.params as { whole?: boolean; field?: string } | undefined) : undefined;
  const whole = params?.whole === true;
  const field = whole && params?.field !== undefined ? params.field : located.field;
  const message = located.message;
  const text = message ?? (field === undefined || whole ? first.message : `${field} ${first.message}`);
  return new ValidationError(`${text}${more}`, field === undefined ? {} : { field });
}

function argumentNamingAt(schema: z.ZodType, index: number): ArgumentNaming | undefined {
  const def = (schema as unknown as { def: { type: string; items?: readonly z.ZodType[]; rest?: z.ZodType | null } })
    .def;
  if (def.type !== 'tuple') return undefined;
  let item: z.ZodType | undefined | null = def.items?.[index] ?? def.rest;
  // `.optional()` and friends wrap the named schema; look through them.
  while (item) {
    const naming = argumentNaming.get(item);
    if (naming) return naming;
    const inner = (item as unknown as { def: { type: string; innerType?: z.ZodType } }).def;
    item = ['optional', 'nullable', 'default', 'nonoptional', 'readonly'].includes(inner.type)
      ? inner.innerType
      : undefined;
  }
  return undefined;
}

/** Record keys longer than this are cut in field names; every key limit is shorter, so such a key is wrong anyway. */
const FIELD_SEGMENT_LENGTH = 300;

function fieldOf(naming: ArgumentNaming, path: readonly PropertyKey[]): string {
  let field = naming.prefixed || path.length === 0 ? naming.name : '';
  for (const segment of path) {
    if (typeof segment === 'number') field += `[${segment}]`;
    else {
      const text = String(segment);
      const shown = text.length > FIELD_SEGMENT_LENGTH ? `${text.slice(0, 100)}...` : text;
      field += field === '' ? shown : `.${shown}`;
    }
  }
  return field;
}
