import { describe, expect, it } from 'vitest';
import { intercept } from '../../src/kernel/port.js';

class Counter {
  #count = 0;
  increment(): number {
    return ++this.#count;
  }
  read(): number {
    return this.#count;
  }
}

describe('intercept', () => {
  it('hands out one bound function per method, so a hot call allocates no new binding', () => {
    const counter = new Counter();
    const seen = intercept(counter, {});
    const first = seen.increment;
    expect(seen.increment).toBe(first);
    // Bound to the provider: its private fields work however the method is called.
    const { increment } = seen;
    expect(increment()).toBe(1);
    expect(first()).toBe(2);
    expect(seen.read()).toBe(2);
  });

  it('binds a method anew when the provider replaces it, and never serves the replaced one', () => {
    const counter = new Counter() as Counter & { read: () => number };
    const seen = intercept(counter, {});
    const before = seen.read;
    expect(before()).toBe(0);
    counter.read = function (this: Counter) {
      return -1;
    };
    expect(seen.read).not.toBe(before);
    expect(seen.read()).toBe(-1);
  });

  it('serves an override in place of the provider method', () => {
    const counter = new Counter();
    const seen = intercept(counter, { read: () => 42 });
    expect(seen.read()).toBe(42);
    expect(seen.increment()).toBe(1);
  });
});
