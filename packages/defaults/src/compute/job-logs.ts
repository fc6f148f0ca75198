import { appendFile, type FileHandle, open, rm, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

/** `Date#toISOString()` is always this long (years 0-9999), so a stamped line's prefix has a known size. */
const STAMP_LENGTH = 24;

/**
 * One replica attempt's log while it runs. The program writes stdout and stderr straight into the raw file (so it
 * keeps writing when the platform restarts); the backend reads what was appended every `pollMs`, stamps each line
 * with the time it saw it, and appends it to the stamped file that readers and followers read. When the attempt
 * ends, `finish` takes in the rest; the caller then uploads the stamped file to the ArtifactStore.
 */
export class AttemptLog {
  readonly rawPath: string;
  readonly stampedPath: string;
  #offset: number;
  #partial = '';
  #timer: NodeJS.Timeout | undefined;
  #reading: Promise<void> = Promise.resolve();
  #done = false;
  #waiters: (() => void)[] = [];

  private constructor(rawPath: string, stampedPath: string, offset: number) {
    this.rawPath = rawPath;
    this.stampedPath = stampedPath;
    this.#offset = offset;
  }

  /** Creates both files for a new attempt and returns the raw file's descriptor for the program (close it after spawn). */
  static async create(base: string): Promise<{ log: AttemptLog; outputFd: FileHandle }> {
    const outputFd = await open(`${base}.out`, 'a', 0o600);
    await appendFile(`${base}.log`, '', { mode: 0o600 });
    return { log: new AttemptLog(`${base}.out`, `${base}.log`, 0), outputFd };
  }

  /**
   * Picks up an attempt after a restart: the raw bytes already stamped are the stamped file's size less one stamp
   * and space per line, so reading resumes where the previous platform stopped (a line it had half read is read whole).
   */
  static async resume(base: string): Promise<AttemptLog> {
    let stamped = '';
    try {
      stamped = await readText(`${base}.log`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await appendFile(`${base}.log`, '', { mode: 0o600 });
    }
    const lines = stamped === '' ? 0 : stamped.split('\n').length - 1;
    const offset = Buffer.byteLength(stamped) - lines * (STAMP_LENGTH + 1);
    return new AttemptLog(`${base}.out`, `${base}.log`, Math.max(0, offset));
  }

  get done(): boolean {
    return this.#done;
  }

  start(pollMs: number): void {
    this.#timer = setInterval(() => {
      void this.#read();
    }, pollMs);
    this.#timer.unref();
  }

  /** Stops reading without finishing: the platform is stopping and the program keeps running. */
  stop(): void {
    clearInterval(this.#timer);
    this.#wake();
  }

  /** Takes in what the program wrote last, stamps a last line without newline, and wakes followers. */
  async finish(): Promise<void> {
    clearInterval(this.#timer);
    await this.#read();
    if (this.#partial !== '') {
      await appendFile(this.stampedPath, `${new Date().toISOString()} ${this.#partial}\n`);
      this.#partial = '';
    }
    this.#done = true;
    this.#wake();
  }

  /** Resolves at the next append or when the attempt ends, or after `ms` at the latest. */
  changed(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  async remove(): Promise<void> {
    await Promise.all([rm(this.rawPath, { force: true }), rm(this.stampedPath, { force: true })]);
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  #read(): Promise<void> {
    // Reads never overlap: each starts where the previous one stopped.
    this.#reading = this.#reading.then(() => this.#readOnce()).catch(() => undefined);
    return this.#reading;
  }

  async #readOnce(): Promise<void> {
    let size: number;
    try {
      size = (await stat(this.rawPath)).size;
    } catch {
      return;
    }
    if (size <= this.#offset) return;
    const handle = await open(this.rawPath, 'r');
    try {
      const length = size - this.#offset;
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, this.#offset);
      this.#offset += bytesRead;
      // A multi-byte character split across reads stays in #partial until its line is complete.
      const text = this.#partial + buffer.subarray(0, bytesRead).toString('latin1');
      const parts = text.split('\n');
      this.#partial = parts.pop() ?? '';
      if (parts.length === 0) return;
      const now = new Date().toISOString();
      const stamped = parts.map((p) => `${now} ${Buffer.from(p, 'latin1').toString('utf8')}\n`).join('');
      await appendFile(this.stampedPath, stamped);
    } finally {
      await handle.close();
    }
    this.#wake();
  }
}

async function readText(path: string): Promise<string> {
  const handle = await open(path, 'r');
  try {
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}

/** Stamped lines of a stream (a finished attempt's log from the ArtifactStore). */
export async function* stampedLines(body: Readable): AsyncIterable<string> {
  const lines = createInterface({ input: body, crlfDelay: Number.POSITIVE_INFINITY });
  try {
    for await (const line of lines) yield line;
  } finally {
    lines.close();
    body.destroy();
  }
}

/**
 * Stamped lines of a running attempt's file: the last `tail` of those there now (all when absent), then, with
 * `follow`, each new one until the attempt ends. The file handle stays open, so lines remain readable when the
 * finished file is removed meanwhile.
 */
export async function* liveLines(
  log: AttemptLog,
  options: { readonly follow: boolean; readonly tail?: number; readonly signal?: AbortSignal },
): AsyncIterable<string> {
  const handle = await open(log.stampedPath, 'r');
  try {
    let position = 0;
    let partial = '';
    const chunk = Buffer.alloc(64 * 1024);
    const readMore = async (): Promise<string[] | undefined> => {
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
      if (bytesRead === 0) return undefined;
      position += bytesRead;
      const parts = (partial + chunk.subarray(0, bytesRead).toString('utf8')).split('\n');
      partial = parts.pop() ?? '';
      return parts;
    };
    if (options.tail !== undefined) {
      // What is there now, cut to its last lines; whatever follows streams through whole.
      const ring: string[] = [];
      for (let parts = await readMore(); parts; parts = await readMore()) {
        ring.push(...parts);
        if (ring.length > options.tail) ring.splice(0, ring.length - options.tail);
      }
      yield* ring;
    }
    for (;;) {
      const wasDone = log.done;
      const parts = await readMore();
      if (parts) {
        yield* parts;
        continue;
      }
      if (!options.follow || wasDone || options.signal?.aborted) return;
      await log.changed(250);
    }
  } finally {
    await handle.close();
  }
}

/** The last `tail` lines of a finished attempt's stamped lines (all when absent). */
export async function* lastLines(lines: AsyncIterable<string>, tail?: number): AsyncIterable<string> {
  if (tail === undefined) {
    yield* lines;
    return;
  }
  const ring: string[] = [];
  for await (const line of lines) {
    ring.push(line);
    if (ring.length > tail) ring.shift();
  }
  yield* ring;
}

/** A stamped line as a caller asked for it: with its RFC 3339 stamp and a space, or without. */
export function unstamp(line: string, timestamps: boolean | undefined): string {
  return timestamps ? line : line.slice(STAMP_LENGTH + 1);
}
