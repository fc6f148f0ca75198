import { createHash, randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';

/** A short random tag that keeps each test's keys, names and groups apart on a shared backend. */
export function uniqueTag(): string {
  return randomBytes(4).toString('hex');
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Hashes a stream chunk by chunk, so large bodies are checked without holding them in memory. */
export async function hashStream(stream: AsyncIterable<Uint8Array>): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    hash.update(chunk);
    size += chunk.byteLength;
  }
  return { sha256: hash.digest('hex'), size };
}

export async function readAll(stream: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** Polls `check` until it stops throwing; rethrows its last error after `timeoutMs`. */
export async function eventually(check: () => void | Promise<void>, timeoutMs: number, intervalMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await delay(intervalMs);
    }
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A promise with its resolver exposed, to hold a handler open until the test releases it. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/** Resolves to whether `promise` settled within `ms`. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

type ErrorClass = new (...args: any[]) => Error;

/** Asserts the promise rejects with `type` and a message matching `message`; returns the error. */
export async function rejects<E extends Error>(
  promise: Promise<unknown>,
  type: new (...args: any[]) => E,
  message: RegExp | string,
): Promise<E> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${type.name}`).toBeInstanceOf(type as ErrorClass);
  if (typeof message === 'string') expect((err as Error).message).toContain(message);
  else expect((err as Error).message).toMatch(message);
  return err as E;
}

/**
 * `it` where the backend under test has a capability; elsewhere the case is skipped with the reason in its name,
 * so a run's report shows what was not checked and why.
 */
export function itWhen(capable: boolean, reason: string) {
  return (name: string, fn: () => Promise<void>) =>
    capable ? it(name, fn) : it.skip(`${name} [skipped: ${reason}]`, fn);
}
