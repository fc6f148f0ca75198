import type { Logger } from '@mlplane/core';
import { ValidationError } from '@mlplane/core';
import { type Redis, ReplyError } from 'ioredis';
import { LRUCache } from 'lru-cache';

/** Where Redis publishes invalidation messages to RESP2 connections that receive them through Pub/Sub. */
const INVALIDATION_CHANNEL = '__redis__:invalidate';
/** Name of the invalidation connection in `CLIENT LIST`, for operators. */
const CONNECTION_NAME = 'mlplane-cache-invalidation';
const HEARTBEAT_INTERVAL_MS = 1_000;
/**
 * How long a request on the invalidation connection (its setup or a heartbeat PING) may go unanswered before the
 * link counts as broken. A half-open connection (a peer that vanished without a FIN, an idle flow a load
 * balancer forgot) raises no 'close'; without this the near tier would keep serving values nobody invalidates.
 */
const UNANSWERED_LIMIT_MS = 3_000;

export interface NearCacheOptions {
  /** Most entries held in this process (default 10,000); the least recently used make room. */
  readonly maxEntries?: number;
  /**
   * Longest an entry is served without asking Redis (default: the cache's `defaultTtlMs`); an entry never outlives
   * its Redis key's remaining TTL either.
   */
  readonly maxAgeMs?: number;
}

export interface NearCacheSettings {
  readonly maxEntries: number;
  readonly maxAgeMs: number;
}

/** Validated settings; ValidationError naming the field (`nearCache.maxEntries`...) when one is out of range. */
export function nearCacheSettings(options: NearCacheOptions, defaultMaxAgeMs: number): NearCacheSettings {
  const maxEntries = options.maxEntries ?? 10_000;
  if (!Number.isInteger(maxEntries) || maxEntries < 1) {
    throw new ValidationError(`nearCache.maxEntries must be a positive integer, got ${maxEntries}`, {
      field: 'nearCache.maxEntries',
    });
  }
  const maxAgeMs = options.maxAgeMs ?? defaultMaxAgeMs;
  if (!Number.isInteger(maxAgeMs) || maxAgeMs < 1) {
    throw new ValidationError(`nearCache.maxAgeMs must be a positive integer of milliseconds, got ${maxAgeMs}`, {
      field: 'nearCache.maxAgeMs',
    });
  }
  return { maxEntries, maxAgeMs };
}

export interface NearCacheSetup extends NearCacheSettings {
  /** The connection the cache reads through; the near tier is bypassed while it is not ready. */
  readonly data: Redis;
  /** Redis key prefix of the cached values (logical key = Redis key less this prefix). */
  readonly valuePrefix: string;
  readonly logger: Logger | undefined;
}

/**
 * The process-local tier of RedisCache: encoded values by logical key, in an LRU bounded by entries and age, kept
 * coherent by Redis server-assisted client-side caching in broadcast mode. A connection of its own (a duplicate
 * of the data connection, owned and closed here) turns tracking on with itself as the redirect target
 * (`CLIENT TRACKING ON REDIRECT <own id> BCAST PREFIX <value prefix>`) and subscribes to `__redis__:invalidate`;
 * from then on every change to a value key, by any client (delete, fill, expiry, eviction, flush), is announced on
 * that connection. Tracking lives and dies with that one connection, so the caller's client is never touched and
 * caches sharing a client cannot redirect each other's messages away.
 *
 * Entries are served only while tracking is established and the data connection is ready; when either connection
 * drops the tier is emptied, and it fills again only after tracking is set up anew (a reconnected connection has a
 * new client id and no tracking state). The epoch counts everything that may make a value read from Redis stale
 * before it lands here (an invalidation message, a local write, a change of tracking state): a read's value is
 * kept only if the epoch did not move between sending the read and handling its reply, since its reply and the
 * invalidation of a later write travel on different sockets and may arrive in either order.
 */
export class NearCache {
  readonly #entries: LRUCache<string, string>;
  readonly #data: Redis;
  readonly #tracker: Redis;
  readonly #trackedPrefix: string;
  readonly #maxAgeMs: number;
  readonly #logger: Logger | undefined;
  readonly #heartbeat: NodeJS.Timeout;
  readonly #firstSetup: Promise<void>;
  readonly #dataDown = () => this.forgetAll();
  #epoch = 0;
  #tracking = false;
  #everTracked = false;
  /** Bumped whenever the invalidation connection drops, so that answers meant for an older connection are ignored. */
  #session = 0;
  /** When the oldest unanswered request on the invalidation connection was sent; undefined when none is. */
  #awaitingSince: number | undefined;
  #unsupported = false;
  #closed = false;

  constructor(setup: NearCacheSetup) {
    this.#entries = new LRUCache<string, string>({ max: setup.maxEntries, ttl: setup.maxAgeMs });
    this.#data = setup.data;
    this.#maxAgeMs = setup.maxAgeMs;
    this.#logger = setup.logger;
    // Invalidation messages name Redis keys, which carry the client's own key prefix when it has one.
    this.#trackedPrefix = (setup.data.options.keyPrefix ?? '') + setup.valuePrefix;
    this.#tracker = setup.data.duplicate({
      lazyConnect: true,
      // Under RESP3, invalidations come as push frames ioredis does not surface; under RESP2 as Pub/Sub messages.
      protocol: 2,
      // A reconnected connection must set up tracking before it subscribes (CLIENT is refused in subscriber mode).
      autoResubscribe: false,
      enableAutoPipelining: false,
      enableOfflineQueue: false,
      keyPrefix: undefined,
      connectionName: CONNECTION_NAME,
    });
    // Errors surface as 'close' and failed commands; an unhandled 'error' event would crash the process.
    this.#tracker.on('error', () => {});
    this.#tracker.on('close', () => this.#lost());
    this.#tracker.on('reconnecting', () => this.#lost());
    this.#tracker.on('end', () => this.#lost());
    this.#tracker.on('messageBuffer', (channel: Buffer, payload: unknown) => this.#invalidated(channel, payload));
    let settled!: () => void;
    this.#firstSetup = new Promise<void>((resolve) => {
      settled = resolve;
    });
    this.#tracker.on('ready', () => void this.#establish().finally(settled));
    // The data connection dropping is often the first sign of a broken link or a restarted Redis, noticed before
    // the quiet invalidation connection notices anything.
    for (const event of ['close', 'end', 'reconnecting'] as const) this.#data.on(event, this.#dataDown);
    this.#heartbeat = setInterval(() => this.#beat(), HEARTBEAT_INTERVAL_MS);
    this.#heartbeat.unref();
    this.#tracker.connect().catch(() => settled());
  }

  /** Resolves once the first attempt to set up tracking has ended, however it ended. */
  settled(): Promise<void> {
    return this.#firstSetup;
  }

  /** The encoded value of `key` when the tier may serve it. */
  lookup(key: string): string | undefined {
    return this.#serving() ? this.#entries.get(key) : undefined;
  }

  /** Taken before sending a read; hand it back to `offer` with the read's answer. */
  get epoch(): number {
    return this.#epoch;
  }

  /** Keeps a value read from Redis, unless anything that may have made it stale happened since `epoch`. */
  offer(key: string, text: string, epoch: number, remainingTtlMs: number): void {
    if (epoch !== this.#epoch || !this.#serving()) return;
    // PTTL is -1 for a key without TTL; the cache never writes one, but a foreign writer might.
    const ttl = remainingTtlMs > 0 ? Math.min(remainingTtlMs, this.#maxAgeMs) : this.#maxAgeMs;
    this.#entries.set(key, text, { ttl });
  }

  /** Drops keys this process is writing; reads in flight keep their values out (the epoch moves). */
  forget(keys: readonly string[]): void {
    this.#epoch++;
    for (const key of keys) this.#entries.delete(key);
  }

  /** Drops everything, for a write whose keys are not known here; reads in flight keep their values out. */
  forgetAll(): void {
    this.#epoch++;
    this.#entries.clear();
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#heartbeat);
    for (const event of ['close', 'end', 'reconnecting'] as const) this.#data.off(event, this.#dataDown);
    this.#tracker.disconnect();
    this.forgetAll();
  }

  #serving(): boolean {
    return this.#tracking && this.#data.status === 'ready';
  }

  async #establish(): Promise<void> {
    const session = this.#session;
    this.#awaitingSince = performance.now();
    try {
      const id = await this.#tracker.client('ID');
      await this.#tracker.call(
        'CLIENT',
        'TRACKING',
        'ON',
        'REDIRECT',
        String(id),
        'BCAST',
        'PREFIX',
        this.#trackedPrefix,
      );
      await this.#tracker.subscribe(INVALIDATION_CHANNEL);
    } catch (err) {
      if (session !== this.#session || this.#closed) return;
      this.#awaitingSince = undefined;
      if (err instanceof ReplyError) {
        // Redis answered, and will answer the same next time: before 6.0 there is no CLIENT TRACKING, and an ACL
        // may forbid it. Reads go to Redis as without a near tier.
        this.#unsupported = true;
        this.#tracker.disconnect();
        this.#logger?.warn(
          { err },
          'Redis refused client-side caching (CLIENT TRACKING needs Redis 6 or later and the permission to run it); the near cache is off, every read goes to Redis',
        );
        return;
      }
      // Timed out or dropped mid-way: a fresh connection sets up from the start.
      this.#tracker.disconnect(true);
      return;
    }
    if (session !== this.#session || this.#closed) return;
    this.#awaitingSince = undefined;
    // Reads sent before now were served while no invalidation could reach this process.
    this.forgetAll();
    this.#tracking = true;
    if (this.#everTracked) this.#logger?.info('near cache serving again: Redis invalidation connection re-established');
    this.#everTracked = true;
  }

  #lost(): void {
    this.#session++;
    this.#awaitingSince = undefined;
    if (this.#tracking) {
      this.#tracking = false;
      if (!this.#closed) {
        this.#logger?.warn(
          'Redis invalidation connection lost; the near cache is emptied and bypassed until it is back',
        );
      }
    }
    this.forgetAll();
  }

  #invalidated(channel: Buffer, payload: unknown): void {
    if (channel.toString() !== INVALIDATION_CHANNEL) return;
    this.#epoch++;
    // A null payload is FLUSHALL or FLUSHDB: everything is gone.
    if (payload === null || payload === undefined) {
      this.#entries.clear();
      return;
    }
    for (const raw of Array.isArray(payload) ? payload : [payload]) {
      const redisKey = String(raw);
      if (redisKey.startsWith(this.#trackedPrefix)) this.#entries.delete(redisKey.slice(this.#trackedPrefix.length));
    }
  }

  #beat(): void {
    if (this.#closed || this.#unsupported) return;
    if (this.#awaitingSince !== undefined) {
      if (performance.now() - this.#awaitingSince > UNANSWERED_LIMIT_MS) this.#broken();
      return;
    }
    if (!this.#tracking) return;
    const session = this.#session;
    this.#awaitingSince = performance.now();
    this.#tracker.ping().then(
      () => {
        if (session === this.#session) this.#awaitingSince = undefined;
      },
      () => {
        if (session === this.#session) this.#broken();
      },
    );
  }

  /** The invalidation link stopped answering: stop serving now and reconnect. */
  #broken(): void {
    this.#lost();
    this.#tracker.disconnect(true);
  }
}
