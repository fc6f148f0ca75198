import { SECRET_VALUE_MIN_LENGTH } from '../ports/secret-store.js';

const MASK = '***';

/** Properties of errors that hold further errors or values but are not enumerable (causes, aggregate members). */
const ERROR_LINKS = ['cause', 'errors', 'error', 'suppressed'] as const;

/**
 * Remembers every secret value the platform resolved and scrubs them from text, objects and errors, so secrets
 * never reach logs or error messages even when a library echoes its input.
 *
 * A value is matched as it is and in the forms it takes on its way out: JSON-escaped (once and twice, as in a log
 * line holding a JSON document), URL-encoded (component, form and URL userinfo encodings) and base64 (standard and
 * URL-safe, at any of the three byte alignments, so a password inside a Basic authorization header is caught; the
 * one or two characters that mix secret and neighbouring bytes are left). Other transformations (hashes, hex, a
 * secret cut in two, case changes) are not recognized. Values shorter than SECRET_VALUE_MIN_LENGTH are ignored:
 * stores refuse them and the kernel refuses to resolve them.
 */
export class Redactor {
  readonly #values = new Set<string>();
  #pattern: RegExp | undefined;

  add(value: string): void {
    if (typeof value !== 'string' || value.length < SECRET_VALUE_MIN_LENGTH || this.#values.has(value)) return;
    this.#values.add(value);
    this.#pattern = undefined;
  }

  get size(): number {
    return this.#values.size;
  }

  text(input: string): string {
    if (this.#values.size === 0 || typeof input !== 'string') return input;
    return input.replace(this.#compiled(), MASK);
  }

  /**
   * A copy of `input` with every secret scrubbed from its strings, at any depth; errors become scrubbed copies of
   * the same class (message, stack, causes, aggregate members, own properties). The input is left untouched.
   */
  value<T>(input: T): T {
    if (this.#values.size === 0) return input;
    return this.#copy(input, new Map()) as T;
  }

  /**
   * Scrubs an error in place (message, stack, own properties, causes and aggregate members, at any depth), for
   * errors that are rethrown to a caller who may compare them by identity or class. Returns the same error.
   */
  error(err: unknown): unknown {
    if (this.#values.size === 0) return err;
    this.#scrubInPlace(err, new Set());
    return err;
  }

  #copy(input: unknown, seen: Map<object, unknown>): unknown {
    if (typeof input === 'string') return this.text(input);
    if (input === null || typeof input !== 'object') return input;
    const done = seen.get(input);
    if (done !== undefined) return done;
    if (Array.isArray(input)) {
      const out: unknown[] = [];
      seen.set(input, out);
      for (const item of input) out.push(this.#copy(item, seen));
      return out;
    }
    if (input instanceof Error) {
      const out = Object.create(Object.getPrototypeOf(input)) as Error;
      seen.set(input, out);
      for (const key of ['message', 'stack', ...ERROR_LINKS] as const) {
        if (Object.hasOwn(input, key)) {
          define(out, key, this.#copy((input as unknown as Record<string, unknown>)[key], seen), false);
        }
      }
      for (const [key, v] of Object.entries(input)) define(out, key, this.#copy(v, seen), true);
      // A toJSON of the class may read private fields, which the copy lacks: serialize the original, scrubbed.
      const toJSON = (input as { toJSON?: unknown }).toJSON;
      if (typeof toJSON === 'function') {
        const json = this.#copy(toJSON.call(input), seen);
        define(out, 'toJSON', () => json, false);
      }
      return out;
    }
    if (input instanceof Map) {
      const out = new Map();
      seen.set(input, out);
      for (const [k, v] of input) out.set(this.#copy(k, seen), this.#copy(v, seen));
      return out;
    }
    if (input instanceof Set) {
      const out = new Set();
      seen.set(input, out);
      for (const v of input) out.add(this.#copy(v, seen));
      return out;
    }
    // Dates, buffers, streams and other class instances carry no secret text of their own that a logger would print.
    const proto = Object.getPrototypeOf(input);
    if (proto !== Object.prototype && proto !== null) return input;
    const out: Record<string, unknown> = {};
    seen.set(input, out);
    for (const [k, v] of Object.entries(input)) out[k] = this.#copy(v, seen);
    return out;
  }

  #scrubInPlace(value: unknown, seen: Set<object>): unknown {
    if (typeof value === 'string') return this.text(value);
    if (value === null || typeof value !== 'object' || seen.has(value)) return value;
    seen.add(value);
    if (value instanceof Error) {
      const record = value as unknown as Record<string, unknown>;
      for (const key of ['message', 'stack', ...ERROR_LINKS]) {
        if (Object.hasOwn(value, key)) replace(record, key, this.#scrubInPlace(record[key], seen));
      }
      for (const key of Object.keys(value)) replace(record, key, this.#scrubInPlace(record[key], seen));
      return value;
    }
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) value[i] = this.#scrubInPlace(value[i], seen);
      return value;
    }
    // A plain object hanging off an error (a client's request options, say) is replaced by a scrubbed copy.
    return this.#copy(value, new Map());
  }

  /** One alternation of every form of every value, longest first, so a longer secret is never half-masked. */
  #compiled(): RegExp {
    if (this.#pattern) return this.#pattern;
    const forms = new Set<string>();
    for (const value of this.#values) for (const form of encodedForms(value)) forms.add(form);
    const alternatives = [...forms]
      .filter((f) => f.length > 0)
      .sort((a, b) => b.length - a.length)
      .map(escapeRegExp);
    this.#pattern = new RegExp(alternatives.join('|'), 'g');
    return this.#pattern;
  }
}

function define(target: object, key: string, value: unknown, enumerable: boolean): void {
  Object.defineProperty(target, key, { value, enumerable, writable: true, configurable: true });
}

/** Sets a property that may be read-only or an accessor; one that cannot be changed is left as it is. */
function replace(target: Record<string, unknown>, key: string, value: unknown): void {
  if (target[key] === value) return;
  try {
    target[key] = value;
  } catch {
    // Frozen or accessor-only: redefine below when the property allows it.
  }
  if (target[key] !== value) {
    try {
      define(target, key, value, Object.getOwnPropertyDescriptor(target, key)?.enumerable ?? false);
    } catch {
      // Non-configurable: nothing more can be done without replacing the error itself.
    }
  }
}

/** The value as it is and as it appears after the encodings a secret meets on its way into a log line or URL. */
function encodedForms(value: string): string[] {
  const forms = [value];
  const json = JSON.stringify(value).slice(1, -1);
  forms.push(json, JSON.stringify(json).slice(1, -1));
  forms.push(encodeURIComponent(value), encodeURI(value));
  forms.push(new URLSearchParams({ v: value }).toString().slice(2));
  const url = new URL('http://host/');
  url.password = value;
  forms.push(url.password);
  forms.push(...base64Cores(Buffer.from(value, 'utf8')));
  return forms;
}

/**
 * The base64 characters determined by the value's bytes alone, for each of the three positions the value can start
 * at within a larger encoded string; standard and URL-safe alphabets.
 */
function base64Cores(bytes: Buffer): string[] {
  const out: string[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
    // Character i encodes bits [6i, 6i + 6); keep those lying wholly inside the value's bits.
    const first = Math.ceil((8 * offset) / 6);
    const end = Math.floor((8 * (offset + bytes.length)) / 6);
    const core = encoded.slice(first, end);
    out.push(core, core.replaceAll('+', '-').replaceAll('/', '_'));
  }
  return out;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
