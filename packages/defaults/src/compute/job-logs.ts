import { appendFile, type FileHandle, open, readFile, rm, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

/**
 * A stamped line is `<time> <tag> <bytes>`: the time the backend saw it (`Date#toISOString()`, always 24 chars for
 * years 0-9999), `F` for a line that ended with a newline in the program's output or `P` for a piece without one (a
 * line cut for length, or the unfinished last line), as the CRI log format tags them, and the bytes as written.
 */
const STAMP_LENGTH = 24;
const PREFIX_LENGTH = STAMP_LENGTH + 3;
const READ_CHUNK = 4 * 1024 * 1024;
/** Longest piece of a line kept whole; a longer line is cut into pieces of this size (tagged P). */
export const MAX_LOG_LINE_BYTES = 64 * 1024;

/**
 * One replica attempt's log while it runs. The program writes stdout and stderr straight into the raw file (so it
 * keeps writing while no platform runs); the backend reads what was appended every `pollMs`, stamps each line with
 * the time it saw it, and appends it to the stamped file that readers and followers read. When the attempt ends,
 * `finish` takes in the rest; the caller then uploads the stamped file to the ArtifactStore.
 */
export class AttemptLog {
  readonly rawPath: string;
  readonly stampedPath: string;
  /** Raw bytes read so far; those of `#partial` are not stamped yet. */
  #offset: number;
  /** The unfinished line, one char per byte (latin1), so that UTF-8 split across reads is rebuilt whole. */
  #partial = '';
  #timer: NodeJS.Timeout | undefined;
  #reading: Promise<void> = Promise.resolve();
  #done = false;
  #stopped = false;
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
   * Picks up an attempt after a restart where the previous platform stopped: the raw bytes stamped so far are each
   * stamped line's bytes, plus its newline when tagged F. A line it had half read is read again whole.
   */
  static async resume(base: string): Promise<AttemptLog> {
    let stamped: Buffer;
    try {
      stamped = await readFile(`${base}.log`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await appendFile(`${base}.log`, '', { mode: 0o600 });
      stamped = Buffer.alloc(0);
    }
    let offset = 0;
    let start = 0;
    for (let end = stamped.indexOf(10); end !== -1; end = stamped.indexOf(10, start)) {
      const tag = stamped[start + STAMP_LENGTH + 1];
      offset += end - start - PREFIX_LENGTH + (tag === 0x46 /* F */ ? 1 : 0);
      start = end + 1;
    }
    return new AttemptLog(`${base}.out`, `${base}.log`, offset);
  }

  get done(): boolean {
    return this.#done;
  }

  /** The platform stopped reading this attempt; followers end (the next platform serves the rest). */
  get stopped(): boolean {
    return this.#stopped;
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
    this.#stopped = true;
    this.#wake();
  }

  /** Takes in what the program wrote last, the unfinished last line too, and wakes followers. */
  async finish(): Promise<void> {
    clearInterval(this.#timer);
    await this.#read();
    if (this.#partial !== '') {
      await this.#append([[this.#partial, 'P']]);
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
    this.#reading = this.#reading.then(() => this.#readNew()).catch(() => undefined);
    return this.#reading;
  }

  async #append(lines: readonly (readonly [string, 'F' | 'P'])[]): Promise<void> {
    const now = new Date().toISOString();
    await appendFile(this.stampedPath, Buffer.from(lines.map(([l, tag]) => `${now} ${tag} ${l}\n`).join(''), 'latin1'));
    this.#wake();
  }

  async #readNew(): Promise<void> {
    let size: number;
    try {
      size = (await stat(this.rawPath)).size;
    } catch {
      return;
    }
    if (size <= this.#offset) return;
    const handle = await open(this.rawPath, 'r');
    try {
      // READ_CHUNK at a time, so a program that prints fast never makes the platform hold its output at once.
      const buffer = Buffer.alloc(Math.min(size - this.#offset, READ_CHUNK));
      while (this.#offset < size) {
        const { bytesRead } = await handle.read(buffer, 0, Math.min(size - this.#offset, buffer.length), this.#offset);
        if (bytesRead === 0) break;
        this.#offset += bytesRead;
        const parts = (this.#partial + buffer.subarray(0, bytesRead).toString('latin1')).split('\n');
        this.#partial = parts.pop() ?? '';
        // Long lines are cut into pieces (P), as container runtimes cut them; so is a line without end yet
        // (progress bars drawn with \r), so that the platform never holds more than a piece of it.
        const lines: [string, 'F' | 'P'][] = [];
        for (let part of parts) {
          for (; part.length > MAX_LOG_LINE_BYTES; part = part.slice(MAX_LOG_LINE_BYTES)) {
            lines.push([part.slice(0, MAX_LOG_LINE_BYTES), 'P']);
          }
          lines.push([part, 'F']);
        }
        for (; this.#partial.length >= MAX_LOG_LINE_BYTES; this.#partial = this.#partial.slice(MAX_LOG_LINE_BYTES)) {
          lines.push([this.#partial.slice(0, MAX_LOG_LINE_BYTES), 'P']);
        }
        if (lines.length > 0) await this.#append(lines);
      }
    } finally {
      await handle.close();
    }
  }
}

/** Stamped lines of a stream (a finished attempt's log from the ArtifactStore), split as `liveLines` splits them. */
export async function* stampedLines(body: Readable): AsyncIterable<string> {
  const decoder = new StringDecoder('utf8');
  let partial = '';
  try {
    for await (const chunk of body) {
      const parts = (partial + decoder.write(chunk as Buffer)).split('\n');
      partial = parts.pop() ?? '';
      yield* parts;
    }
    partial += decoder.end();
    if (partial !== '') yield partial;
  } finally {
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
    // Decodes across chunk boundaries, so a character split between two reads stays whole.
    const decoder = new StringDecoder('utf8');
    const chunk = Buffer.alloc(64 * 1024);
    const readMore = async (): Promise<string[] | undefined> => {
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, position);
      if (bytesRead === 0) return undefined;
      position += bytesRead;
      const parts = (partial + decoder.write(chunk.subarray(0, bytesRead))).split('\n');
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
      if (!options.follow || wasDone || log.stopped || options.signal?.aborted) return;
      await log.changed(250);
    }
  } finally {
    await handle.close();
  }
}

/** The last `tail` of a finished attempt's stamped lines (all when absent). */
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

/** A stamped line as a caller asked for it: with its RFC 3339 time and a space before the text, or the text alone. */
export function unstamp(line: string, timestamps: boolean | undefined): string {
  const text = line.slice(PREFIX_LENGTH);
  return timestamps ? `${line.slice(0, STAMP_LENGTH)} ${text}` : text;
}
