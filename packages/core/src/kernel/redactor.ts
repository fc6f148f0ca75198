/**
 * Remembers every secret value the platform resolved and scrubs them from text and objects,
 * so secrets never reach logs or error messages even when a library echoes its input.
 */
export class Redactor {
  readonly #values = new Set<string>();

  add(value: string): void {
    // Very short values would redact ordinary words; secrets that short are rejected elsewhere.
    if (value.length >= 4) this.#values.add(value);
  }

  get size(): number {
    return this.#values.size;
  }

  text(input: string): string {
    let out = input;
    for (const v of this.#values) if (out.includes(v)) out = out.split(v).join('***');
    return out;
  }

  value<T>(input: T): T {
    if (this.#values.size === 0) return input;
    if (typeof input === 'string') return this.text(input) as T;
    if (Array.isArray(input)) return input.map((x) => this.value(x)) as T;
    if (input instanceof Error) return input;
    if (input && typeof input === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(input)) out[k] = this.value(v);
      return out as T;
    }
    return input;
  }

  error(err: unknown): unknown {
    if (!(err instanceof Error) || this.#values.size === 0) return err;
    const scrubbed = this.text(err.message);
    if (scrubbed !== err.message) err.message = scrubbed;
    if (err.stack) err.stack = this.text(err.stack);
    if (err.cause) this.error(err.cause);
    return err;
  }
}
