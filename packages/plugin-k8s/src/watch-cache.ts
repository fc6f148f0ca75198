import type { Informer, KubernetesObject, ObjectCache } from '@kubernetes/client-node';

export interface WatchCacheOptions {
  /** First wait before restarting after an error; doubled per consecutive failure up to 30 s. */
  readonly restartBackoffMs: number;
  readonly onError?: (error: unknown, restartInMs: number) => void;
}

const MAX_RESTART_BACKOFF_MS = 30_000;

/**
 * An informer (list, then watch from the list's resourceVersion) kept alive. The client's ListWatch re-lists by
 * itself on 410 Gone and resumes from the last resourceVersion after a watch times out, but stops on any other
 * error (API server down, 5xx, a refused connection): here it is then restarted with exponential backoff, resuming
 * from its last resourceVersion, and re-listing when that is gone. `synced` resolves after the first list.
 */
export class WatchCache<T extends KubernetesObject> {
  private stopped = false;
  private failures = 0;
  private errors = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly syncedPromise: Promise<void>;
  private markSynced!: () => void;
  /** Restarts so far, for tests and telemetry. */
  restarts = 0;

  constructor(
    private readonly informer: Informer<T> & ObjectCache<T>,
    private readonly options: WatchCacheOptions,
  ) {
    this.syncedPromise = new Promise((resolve) => {
      this.markSynced = resolve;
    });
    informer.on('connect', () => {
      // A (re)connect follows a successful list or resumes a watch: the cache is current again.
      this.failures = 0;
    });
    informer.on('error', (error) => {
      this.errors++;
      this.scheduleRestart(error);
    });
  }

  get synced(): Promise<void> {
    return this.syncedPromise;
  }

  on(verb: 'add' | 'update' | 'delete', cb: (obj: T) => void): void {
    this.informer.on(verb, cb);
  }

  list(): readonly T[] {
    return this.informer.list();
  }

  get(name: string, namespace?: string): T | undefined {
    return this.informer.get(name, namespace);
  }

  async start(): Promise<void> {
    this.stopped = false;
    this.launch();
  }

  private launch(): void {
    // start() resolves once the list is in and the watch is open, or after a failed list has been reported as an
    // error (then a restart is already scheduled).
    const errorsBefore = this.errors;
    this.informer.start().then(
      () => {
        if (this.errors === errorsBefore) this.markSynced();
      },
      (error: unknown) => this.scheduleRestart(error),
    );
  }

  private scheduleRestart(error: unknown): void {
    if (this.stopped || this.timer) return;
    const wait = Math.min(this.options.restartBackoffMs * 2 ** this.failures, MAX_RESTART_BACKOFF_MS);
    this.failures++;
    this.options.onError?.(error, wait);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.stopped) return;
      this.restarts++;
      this.launch();
    }, wait);
    this.timer.unref?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.informer.stop();
  }
}
