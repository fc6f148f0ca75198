/// <reference path="./types/fs-native-extensions.d.ts" />
import { type FileHandle, open, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { UnavailableError } from '@mlplane/core';
import { tryLock } from 'fs-native-extensions';
import pRetry from 'p-retry';

/** Who holds a lock, as the holder wrote it into the lock file. */
export interface LockHolder {
  readonly pid: number;
  readonly hostname: string;
  /** ISO time the holder took the lock. */
  readonly since: string;
}

export interface AcquireOptions {
  /** How long to wait for another holder to let go before UnavailableError (default 10 s). */
  readonly timeoutMs?: number;
}

class LockBusy extends Error {}

/**
 * An advisory lock the operating system keeps on a lock file: an open-file-description lock on Linux, flock on
 * macOS and the BSDs, LockFileEx on Windows (through fs-native-extensions). It excludes every other handle on the
 * file, in this process and in others, and the OS drops it when the holder closes the file or dies, so a crash
 * never leaves a stale lock behind. The lock file itself is never deleted (deleting it would let two processes lock
 * two different files under one name); it holds the holder's pid for the messages of those who wait.
 */
export class FileLock {
  readonly path: string;
  #handle: FileHandle | undefined;

  private constructor(path: string, handle: FileHandle) {
    this.path = path;
    this.#handle = handle;
  }

  /** Takes the lock when no other handle holds it, creating the file (mode 0600); undefined when one does. */
  static async tryAcquire(path: string): Promise<FileLock | undefined> {
    let handle: FileHandle;
    try {
      // a+ creates the file without truncating it: the holder's pid stays readable for whoever is refused.
      handle = await open(path, 'a+', 0o600);
    } catch (err) {
      throw new UnavailableError(`cannot open lock file ${path}: ${(err as Error).message}`, { cause: err });
    }
    let granted: boolean;
    try {
      granted = tryLock(handle.fd);
    } catch (err) {
      await handle.close();
      throw new UnavailableError(`cannot lock ${path}: ${(err as Error).message}`, { cause: err });
    }
    if (!granted) {
      await handle.close();
      return undefined;
    }
    const lock = new FileLock(path, handle);
    try {
      await lock.#recordHolder();
    } catch (err) {
      await lock.release();
      throw new UnavailableError(`cannot write lock file ${path}: ${(err as Error).message}`, { cause: err });
    }
    return lock;
  }

  /** Waits for the lock, polling with backoff; UnavailableError naming the holder when `timeoutMs` passes. */
  static async acquire(path: string, options: AcquireOptions = {}): Promise<FileLock> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    try {
      return await pRetry(
        async () => {
          const lock = await FileLock.tryAcquire(path);
          if (!lock) throw new LockBusy();
          return lock;
        },
        {
          retries: Number.POSITIVE_INFINITY,
          minTimeout: 2,
          maxTimeout: 50,
          factor: 1.5,
          randomize: true,
          maxRetryTime: timeoutMs,
          shouldRetry: ({ error }) => error instanceof LockBusy,
        },
      );
    } catch (err) {
      if (!(err instanceof LockBusy)) throw err;
      throw new UnavailableError(
        `${path} stayed locked by ${describeHolder(await readLockHolder(path))} for ${timeoutMs} ms; try again`,
      );
    }
  }

  /** Runs `fn` holding the lock on `path`, released however `fn` ends. */
  static async with<T>(path: string, fn: () => Promise<T>, options?: AcquireOptions): Promise<T> {
    const lock = await FileLock.acquire(path, options);
    try {
      return await fn();
    } finally {
      await lock.release();
    }
  }

  get held(): boolean {
    return this.#handle !== undefined;
  }

  /** Closing the handle drops the lock. Idempotent. */
  async release(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    await handle?.close();
  }

  async #recordHolder(): Promise<void> {
    const holder: LockHolder = { pid: process.pid, hostname: hostname(), since: new Date().toISOString() };
    await this.#handle!.truncate(0);
    await this.#handle!.write(`${JSON.stringify(holder)}\n`);
  }
}

/** The holder recorded in a lock file; undefined when it is empty (being written) or unreadable. */
export async function readLockHolder(path: string): Promise<LockHolder | undefined> {
  try {
    const holder = JSON.parse(await readFile(path, 'utf8')) as Partial<LockHolder>;
    return typeof holder.pid === 'number' && typeof holder.hostname === 'string' && typeof holder.since === 'string'
      ? (holder as LockHolder)
      : undefined;
  } catch {
    return undefined;
  }
}

/** `process 4242 on host build-1 (since ...)`, marking this very process. */
export function describeHolder(holder: LockHolder | undefined): string {
  if (!holder) return 'another process (it has not recorded its pid yet)';
  const self = holder.pid === process.pid && holder.hostname === hostname() ? ', this process' : '';
  return `process ${holder.pid} on host ${holder.hostname} (since ${holder.since}${self})`;
}
