import { randomUUID } from 'node:crypto';
import type { Counter, Logger, Telemetry } from '@mlplane/core';
import { UnavailableError, ValidationError } from '@mlplane/core';
import { Redis, type RedisOptions } from 'ioredis';
import { NearCache, type NearCacheOptions, nearCacheSettings } from './near-cache.js';

export type { NearCacheOptions } from './near-cache.js';

/** How values become Redis strings and back; JSON by default. */
export interface CacheCodec<T> {
  encode(value: T): string;
  decode(text: string): T;
}

export const jsonCodec: CacheCodec<unknown> = Object.freeze({
  encode: (value: unknown) => JSON.stringify(value),
  decode: (text: string) => JSON.parse(text) as unknown,
});

export interface RedisCacheOptions {
  /** A connected ioredis client; the caller owns it (see `RedisCache.connect` for one the cache owns). */
  readonly redis: Redis;
  /** Prefix of every key this cache writes (default `mlplane:cache:`); caches sharing a Redis need distinct ones. */
  readonly keyPrefix?: string;
  /** TTL of entries whose call gives none (default 5 minutes): the longest a missed invalidation can leave a stale value. */
  readonly defaultTtlMs?: number;
  /** How long a miss may take to load before its fill is refused (default 10 s). */
  readonly fillWindowMs?: number;
  /** Hit/miss/error counters and degraded-mode logs; silent when absent. */
  readonly telemetry?: Telemetry;
  /**
   * A process-local tier in front of Redis, kept coherent by Redis itself (server-assisted client-side caching,
   * Redis 6 or later): a hit there costs no round trip. It opens one more connection, which the cache owns. Off
   * when absent; on an older Redis it stays off after one warning.
   */
  readonly nearCache?: NearCacheOptions;
}

export interface LoadOptions<T> {
  /** Entry TTL; the cache's default when absent. */
  readonly ttlMs?: number;
  /** Groups the entry so that `invalidateTags` drops it with the others, e.g. `model:fraud`. */
  readonly tags?: readonly string[];
  readonly codec?: CacheCodec<T>;
}

// On a miss the read also hands out a fill token and files the key under its tags, in one round trip, so that an
// invalidation arriving while the value loads (it deletes the token) makes the late fill a no-op. A hit comes with
// the key's remaining TTL, which a near-tier copy must not outlive.
const READ = `
local v = redis.call('GET', KEYS[1])
if v then return {1, v, redis.call('PTTL', KEYS[1])} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
for i = 3, #KEYS do
  redis.call('SADD', KEYS[i], ARGV[3])
  if redis.call('PTTL', KEYS[i]) < tonumber(ARGV[4]) then redis.call('PEXPIRE', KEYS[i], ARGV[4]) end
end
return {0}`;

const FILL = `
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[2])
  return 1
end
return 0`;

// Tag members are logical keys; ARGV holds the value and fill-token prefixes to build their Redis keys.
const INVALIDATE_TAGS = `
local n = 0
for i = 1, #KEYS do
  for _, k in ipairs(redis.call('SMEMBERS', KEYS[i])) do
    n = n + redis.call('DEL', ARGV[1] .. k, ARGV[2] .. k)
  end
  redis.call('DEL', KEYS[i])
end
return n`;

interface CacheCommands {
  mlplaneCacheRead(numKeys: number, ...args: (string | number)[]): Promise<[0] | [1, string, number]>;
  mlplaneCacheFill(key: string, fillKey: string, token: string, value: string, ttlMs: number): Promise<number>;
  mlplaneCacheInvalidateTags(numKeys: number, ...args: string[]): Promise<number>;
}

interface InFlight {
  readonly promise: Promise<unknown>;
  readonly tags: readonly string[];
}

/**
 * A read-through cache on Redis with JSON values and TTLs. `getOrLoad` returns the cached value or runs the
 * loader, once per key in this process however many callers miss together (single flight), and stores the
 * result unless the key was invalidated while it loaded. Invalidation deletes keys or whole tags; drive it from
 * domain events with `subscribeCacheInvalidation`.
 *
 * Redis is an optimization here, never a dependency: when it cannot be reached the loader's value is returned
 * uncached, and the outage is logged once. Scripts touch keys they do not declare, so the cache needs a single
 * Redis (or a primary with replicas), not Redis Cluster.
 *
 * With `nearCache`, hits are also kept in this process (see NearCache) and served from there while Redis keeps
 * this process informed of every change to them; misses, fills and invalidation work as without it.
 */
export class RedisCache {
  readonly #redis: Redis & CacheCommands;
  readonly #owned: boolean;
  readonly #valuePrefix: string;
  readonly #fillPrefix: string;
  readonly #tagPrefix: string;
  readonly #defaultTtlMs: number;
  readonly #fillWindowMs: number;
  readonly #logger: Logger | undefined;
  readonly #requests: Counter<'result'> | undefined;
  readonly #inFlight = new Map<string, InFlight>();
  readonly #near: NearCache | undefined;
  #degraded = false;

  constructor(options: RedisCacheOptions, owned = false) {
    const prefix = options.keyPrefix ?? 'mlplane:cache:';
    this.#valuePrefix = `${prefix}v:`;
    this.#fillPrefix = `${prefix}f:`;
    this.#tagPrefix = `${prefix}t:`;
    this.#defaultTtlMs = ttl(options.defaultTtlMs ?? 300_000, 'defaultTtlMs');
    this.#fillWindowMs = ttl(options.fillWindowMs ?? 10_000, 'fillWindowMs');
    const near = options.nearCache && nearCacheSettings(options.nearCache, this.#defaultTtlMs);
    this.#owned = owned;
    this.#logger = options.telemetry?.logger.child({ component: 'redis-cache' });
    this.#requests = options.telemetry?.metrics.counter({
      name: 'mlplane_cache_requests_total',
      help: 'Read-through cache lookups by result (near_hit: served in process, hit: from Redis, miss, error: Redis unreachable, loaded uncached)',
      labelNames: ['result'],
    });
    const redis = options.redis as Redis & Partial<CacheCommands>;
    if (typeof redis.mlplaneCacheRead !== 'function') {
      redis.defineCommand('mlplaneCacheRead', { lua: READ });
      redis.defineCommand('mlplaneCacheFill', { numberOfKeys: 2, lua: FILL });
      redis.defineCommand('mlplaneCacheInvalidateTags', { lua: INVALIDATE_TAGS });
    }
    this.#redis = redis as Redis & CacheCommands;
    this.#near = near && new NearCache({ ...near, data: redis, valuePrefix: this.#valuePrefix, logger: this.#logger });
  }

  /**
   * Connects a client the cache owns (closed by `close()`), set up for a cache: a command fails after
   * `commandTimeoutMs` (default 500 ms) or at once while disconnected, so callers fall back to the loader
   * instead of queueing behind a reconnect. UnavailableError when Redis cannot be reached now. With `nearCache`,
   * it also waits for the first attempt to set up invalidation tracking, so that the near tier serves from the
   * start (or has logged why it cannot).
   */
  static async connect(
    url: string,
    options: Omit<RedisCacheOptions, 'redis'> & {
      readonly commandTimeoutMs?: number;
      readonly redis?: RedisOptions;
    } = {},
  ): Promise<RedisCache> {
    const redis = new Redis(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: options.commandTimeoutMs ?? 500,
      // Concurrent lookups share one write to the socket: the hot path is many small reads at once.
      enableAutoPipelining: true,
      ...options.redis,
    });
    // Connection errors surface on commands; an unhandled 'error' event would crash the process.
    redis.on('error', () => {});
    try {
      await redis.connect();
    } catch (cause) {
      redis.disconnect();
      throw new UnavailableError(`cannot connect to Redis for the cache: ${(cause as Error).message}`, { cause });
    }
    const cache = new RedisCache({ ...options, redis }, true);
    await cache.#near?.settled();
    return cache;
  }

  /** The cached value, or undefined on a miss (or when Redis is unreachable). */
  async get<T>(key: string, codec: CacheCodec<T> = jsonCodec as CacheCodec<T>): Promise<T | undefined> {
    validateKey(key);
    const near = this.#near?.lookup(key);
    if (near !== undefined) return codec.decode(near);
    try {
      const text = await this.#redis.get(this.#valuePrefix + key);
      this.#healthy();
      return text === null ? undefined : codec.decode(text);
    } catch (err) {
      this.#unreachable(err);
      return undefined;
    }
  }

  /**
   * The cached value of `key`, or the loader's (stored for `ttlMs`). Concurrent misses of one key in this
   * process share one load; a loader error is thrown to every waiter and nothing is stored. `undefined` results
   * are returned but never stored.
   */
  async getOrLoad<T>(key: string, loader: () => Promise<T>, options: LoadOptions<T> = {}): Promise<T> {
    validateKey(key);
    for (const tag of options.tags ?? []) validateKey(tag, 'tag');
    const near = this.#near?.lookup(key);
    if (near !== undefined) {
      this.#requests?.inc({ result: 'near_hit' });
      // Decoded per call, as a Redis hit is, so that no caller can change what another one gets.
      return (options.codec ?? (jsonCodec as CacheCodec<T>)).decode(near);
    }
    const running = this.#inFlight.get(key);
    if (running) return running.promise as Promise<T>;
    const promise = this.#readThrough(key, loader, options);
    const entry: InFlight = { promise, tags: options.tags ?? [] };
    this.#inFlight.set(key, entry);
    try {
      return await promise;
    } finally {
      if (this.#inFlight.get(key) === entry) this.#inFlight.delete(key);
    }
  }

  /** Deletes entries (and cancels their pending fills); UnavailableError when Redis cannot be reached. */
  async delete(keys: string | readonly string[]): Promise<void> {
    const list = typeof keys === 'string' ? [keys] : [...keys];
    if (list.length === 0) return;
    for (const key of list) {
      validateKey(key);
      this.#inFlight.delete(key);
    }
    this.#near?.forget(list);
    try {
      await this.#write('delete cache keys', () =>
        this.#redis.del(...list.flatMap((k) => [this.#valuePrefix + k, this.#fillPrefix + k])),
      );
    } finally {
      // Again once Redis has answered: the Redis invalidation of this DEL may still be on its way, and whatever
      // was read meanwhile must not outlive the return.
      this.#near?.forget(list);
    }
  }

  /** Deletes every entry filed under any of `tags`; UnavailableError when Redis cannot be reached. */
  async invalidateTags(tags: readonly string[]): Promise<void> {
    if (tags.length === 0) return;
    for (const tag of tags) validateKey(tag, 'tag');
    for (const [key, entry] of this.#inFlight) {
      if (entry.tags.some((t) => tags.includes(t))) this.#inFlight.delete(key);
    }
    // The whole near tier goes, not only the tags' keys: which keys a tag holds is known to Redis, and keeping a
    // local copy of every tag set would cost memory and bookkeeping on every hit for the sake of writes, which are
    // rare; the next read of each key refills it with one round trip.
    this.#near?.forgetAll();
    try {
      await this.#write('invalidate cache tags', () =>
        this.#redis.mlplaneCacheInvalidateTags(
          tags.length,
          ...tags.map((t) => this.#tagPrefix + t),
          // The script builds value and fill keys itself, so a client's own keyPrefix (which ioredis adds to
          // KEYS only) must be part of what it is given.
          (this.#redis.options.keyPrefix ?? '') + this.#valuePrefix,
          (this.#redis.options.keyPrefix ?? '') + this.#fillPrefix,
        ),
      );
    } finally {
      this.#near?.forgetAll();
    }
  }

  /**
   * Closes the Redis client when the cache opened it (`connect`); a caller-owned client stays open. The near
   * tier's invalidation connection is always the cache's own, and closed.
   */
  async close(): Promise<void> {
    this.#near?.close();
    if (this.#owned) this.#redis.disconnect();
  }

  async #readThrough<T>(key: string, loader: () => Promise<T>, options: LoadOptions<T>): Promise<T> {
    const codec = options.codec ?? (jsonCodec as CacheCodec<T>);
    const ttlMs = options.ttlMs === undefined ? this.#defaultTtlMs : ttl(options.ttlMs, 'ttlMs');
    const tags = options.tags ?? [];
    const token = randomUUID();
    const epoch = this.#near?.epoch;
    let hit: [0] | [1, string, number];
    try {
      hit = await this.#redis.mlplaneCacheRead(
        2 + tags.length,
        this.#valuePrefix + key,
        this.#fillPrefix + key,
        ...tags.map((t) => this.#tagPrefix + t),
        token,
        this.#fillWindowMs,
        key,
        ttlMs + this.#fillWindowMs,
      );
      this.#healthy();
    } catch (err) {
      this.#unreachable(err);
      this.#requests?.inc({ result: 'error' });
      return loader();
    }
    if (hit[0] === 1) {
      this.#requests?.inc({ result: 'hit' });
      if (epoch !== undefined) this.#near?.offer(key, hit[1], epoch, hit[2]);
      return codec.decode(hit[1]);
    }
    this.#requests?.inc({ result: 'miss' });
    const value = await loader();
    // A fill is not offered to the near tier: Redis announces the SET to every tracking process, this one
    // included, and the next read takes the value from Redis like any other hit.
    if (value !== undefined) {
      try {
        await this.#redis.mlplaneCacheFill(
          this.#valuePrefix + key,
          this.#fillPrefix + key,
          token,
          codec.encode(value),
          ttlMs,
        );
      } catch (err) {
        this.#unreachable(err);
      }
    }
    return value;
  }

  async #write<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      const result = await fn();
      this.#healthy();
      return result;
    } catch (cause) {
      this.#unreachable(cause);
      throw new UnavailableError(`cannot ${what}: Redis is unreachable (${(cause as Error).message})`, { cause });
    }
  }

  #unreachable(err: unknown): void {
    if (this.#degraded) return;
    this.#degraded = true;
    this.#logger?.warn({ err }, 'Redis cache unreachable; reads go to the source uncached until it is back');
  }

  #healthy(): void {
    if (!this.#degraded) return;
    this.#degraded = false;
    this.#logger?.info('Redis cache reachable again');
  }
}

function validateKey(key: string, field = 'key'): void {
  if (typeof key !== 'string' || key.length === 0 || key.length > 1024) {
    throw new ValidationError(`cache ${field} must be a string of 1 to 1024 characters`, { field });
  }
}

function ttl(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new ValidationError(`${field} must be a positive integer of milliseconds, got ${value}`, { field });
  }
  return value;
}
