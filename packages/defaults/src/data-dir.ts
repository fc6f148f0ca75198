import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ConflictError } from '@mlplane/core';
import { describeHolder, FileLock, readLockHolder } from './file-lock.js';

/**
 * One platform's hold on its data dir. The embedded services that keep files there each take a share when created
 * and give it back when disposed: the first share creates the directory (0700) and takes an OS lock on
 * `<dataDir>/owner.lock`, the last one lets it go. A second platform on the same directory, in this process or
 * another, gets a ConflictError naming the owner's pid; the OS drops the lock of an owner that dies.
 */
export class DataDirOwnership {
  #lock: Promise<FileLock> | undefined;
  #shares = 0;

  /** The absolute data dir, owned by this platform until the matching `release`. */
  async acquire(dataDir: string): Promise<string> {
    const path = resolve(dataDir);
    this.#shares++;
    try {
      this.#lock ??= claim(path);
      await this.#lock;
      return path;
    } catch (err) {
      this.#shares--;
      if (this.#shares === 0) this.#lock = undefined;
      throw err;
    }
  }

  async release(): Promise<void> {
    if (this.#shares === 0 || --this.#shares > 0) return;
    const lock = this.#lock;
    this.#lock = undefined;
    await (await lock?.catch(() => undefined))?.release();
  }
}

async function claim(dataDir: string): Promise<FileLock> {
  // Created owner-only; an existing directory keeps its mode (docs/security.md says how to tighten one).
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, 'owner.lock');
  const lock = await FileLock.tryAcquire(path);
  if (lock) return lock;
  throw new ConflictError(
    `data dir ${dataDir} is in use by ${describeHolder(await readLockHolder(path))}: one platform owns a data dir ` +
      'at a time; stop that platform, or give this one another embedded.dataDir',
  );
}
