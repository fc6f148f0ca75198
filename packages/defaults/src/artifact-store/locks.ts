/** Serializes async work per key; entries are dropped once a key's queue is empty, so memory tracks live keys only. */
export class KeyedMutex {
  readonly #tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => mine);
    this.#tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }
}

/**
 * Many shared holders or one exclusive holder; waiting exclusive requests block new shared
 * ones so a sweep cannot be starved by a steady stream of writes.
 */
export class SharedExclusiveLock {
  #shared = 0;
  #exclusive = false;
  readonly #waiting: { exclusive: boolean; grant: () => void }[] = [];

  async shared<T>(fn: () => Promise<T>): Promise<T> {
    await this.#acquire(false);
    try {
      return await fn();
    } finally {
      this.#shared--;
      this.#grant();
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    await this.#acquire(true);
    try {
      return await fn();
    } finally {
      this.#exclusive = false;
      this.#grant();
    }
  }

  #acquire(exclusive: boolean): Promise<void> {
    const free = exclusive ? !this.#exclusive && this.#shared === 0 : !this.#exclusive;
    if (free && this.#waiting.length === 0) {
      if (exclusive) this.#exclusive = true;
      else this.#shared++;
      return Promise.resolve();
    }
    return new Promise((grant) => this.#waiting.push({ exclusive, grant }));
  }

  #grant(): void {
    while (this.#waiting.length > 0 && !this.#exclusive) {
      const next = this.#waiting[0]!;
      if (next.exclusive) {
        if (this.#shared > 0) return;
        this.#waiting.shift();
        this.#exclusive = true;
        next.grant();
        return;
      }
      this.#waiting.shift();
      this.#shared++;
      next.grant();
    }
  }
}
