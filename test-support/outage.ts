// Lets a fault test prove that its fault was hit: a probe connects to the peer's port every few milliseconds and
// records when it was refused, so the test can ask whether one of its calls was in flight during the outage.
import { connect } from 'node:net';

export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

/** A span of wall-clock time (Date.now() ms) in which the peer's port refused connections; `to` once it took them again. */
export interface OutageWindow {
  readonly from: number;
  to: number | undefined;
}

function accepts({ host, port }: PeerAddress, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (up: boolean) => {
      socket.destroy();
      resolve(up);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** Probes `address` until `stop()`; the outage windows it saw say when the peer was down. */
export class OutageWatch {
  readonly windows: OutageWindow[] = [];
  #running = true;
  readonly #loop: Promise<void>;

  private constructor(address: PeerAddress, intervalMs: number) {
    this.#loop = (async () => {
      while (this.#running) {
        const at = Date.now();
        const up = await accepts(address, 250);
        const open = this.windows.at(-1);
        if (!up && (open === undefined || open.to !== undefined)) this.windows.push({ from: at, to: undefined });
        if (up && open !== undefined && open.to === undefined) open.to = at;
        await new Promise((r) => setTimeout(r, intervalMs));
      }
    })();
  }

  static start(address: PeerAddress, intervalMs = 20): OutageWatch {
    return new OutageWatch(address, intervalMs);
  }

  /** Whether the port refused connections at the last probe. */
  get down(): boolean {
    const open = this.windows.at(-1);
    return open !== undefined && open.to === undefined;
  }

  /** Seconds the port refused connections, in all windows. */
  get downSeconds(): number {
    return this.windows.reduce((sum, w) => sum + ((w.to ?? Date.now()) - w.from), 0) / 1000;
  }

  /** Whether a call that ran from `from` to `to` (Date.now() ms) overlapped an outage window. */
  overlaps(from: number, to: number): boolean {
    return this.windows.some((w) => from <= (w.to ?? Number.POSITIVE_INFINITY) && to >= w.from);
  }

  /** Resolves once the port refuses connections; throws after `timeoutMs` (the fault never came). */
  async untilDown(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.down) {
      if (Date.now() > deadline) throw new Error(`the peer's port still took connections after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
  }
}
