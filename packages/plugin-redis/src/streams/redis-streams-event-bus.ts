import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from '@mlplane/core';
import {
  acceptBatch,
  type DeadLetter,
  type DomainEvent,
  decodeEvent,
  type EventBus,
  type EventBusCapabilities,
  type EventBusStats,
  emptyStats,
  encodeEvent,
  GroupMembers,
  NotFoundError,
  positiveInteger,
  type RecentIds,
  type SubscribeOptions,
  type Subscription,
  sleep,
  subscriberSettings,
  UnavailableError,
  ValidationError,
} from '@mlplane/core';
import { Redis, type RedisOptions } from 'ioredis';
import { RedisGroupMember } from './redis-group-member.js';
import { field, type RawEntry, REDELIVER, type StreamKeys, streamKeys } from './redis-stream-keys.js';

export interface RedisStreamsEventBusOptions {
  /** `redis://[user:password@]host:port[/db]`. */
  readonly url: string;
  /** Extra ioredis options (TLS, timeouts); the bus always speaks RESP2 on its connections. */
  readonly redis?: Omit<RedisOptions, 'protocol' | 'lazyConnect'>;
  /** Stream all events go to (default `mlplane:events`). */
  readonly stream?: string;
  /** Approximate length the event stream is trimmed to on publish (default 100,000): the replay window. */
  readonly maxLen?: number;
  /**
   * How long a publish waits for Redis, reconnecting included, before it rejects with UnavailableError
   * (default 10 s): a dead or unresponsive Redis fails the publish instead of holding its caller.
   */
  readonly publishTimeoutMs?: number;
  /** How long a group remembers an event id as handled in Redis (default 24 h). */
  readonly dedupeTtlMs?: number;
  /** Event ids per group this process also remembers in memory (default 100,000). */
  readonly dedupeWindow?: number;
  /** Lease of the one reader per group (default 10 s): how long a crashed reader holds its group up. */
  readonly leaseMs?: number;
  /** Longest blocking read (default 1 s). */
  readonly blockMs?: number;
  /** Pending entries idle this long are claimed by the reader again (default 30 s). */
  readonly claimIdleMs?: number;
  /** Subjects a group handles at the same time in this process (default 16). */
  readonly concurrencyPerGroup?: number;
  /** Entries a group holds in memory before it reads more (default 256). */
  readonly prefetch?: number;
  /** Where the bus logs; silent when absent. */
  readonly logger?: Logger;
}

/**
 * EventBus on Redis Streams. `publish` appends a batch to one stream in a MULTI transaction.
 * Every group is a Redis consumer group created from the stream's first entry (`replay: true`).
 * One process per group reads at a time, the holder of the group's lease, which keeps each
 * subject in stream order (`orderedPerSubject: true`) while other processes stand by; within the
 * reader, subjects run concurrently and each subject serially. An entry is acknowledged (XACK) in
 * the same transaction that records its id as done for the group (`SET NX`-style key with a TTL),
 * so duplicates are dropped across restarts too; a crashed reader's pending entries are claimed
 * with XAUTOCLAIM by the next one. After `maxAttempts` an event goes to the stream
 * `<stream>:dlq:<group>`; `redeliver` moves it atomically to `<stream>:retry:<group>`, which only
 * that group reads. Events survive a restart when the server persists (`appendonly yes`).
 */
export class RedisStreamsEventBus implements EventBus {
  readonly capabilities: EventBusCapabilities = Object.freeze({
    durable: true,
    orderedPerSubject: true,
    replay: true,
  });

  readonly stream: string;
  readonly #keys: StreamKeys;
  readonly #url: string;
  readonly #redisOptions: RedisOptions;
  readonly #commands: Redis;
  readonly #publisher: Redis;
  /** The last connection error of the publisher, to say why a publish timed out. */
  #publisherError: Error | undefined;
  readonly #maxLen: number;
  readonly #publishTimeoutMs: number;
  readonly #dedupeTtlMs: number;
  readonly #groups: GroupMembers<RedisGroupMember>;
  readonly #leaseMs: number;
  readonly #blockMs: number;
  readonly #claimIdleMs: number;
  readonly #concurrency: number;
  readonly #prefetch: number;
  readonly #logger: Logger | undefined;
  /** This process's consumer name in every group. */
  readonly #consumer = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  readonly #stats = emptyStats();
  /** Members of a group that are stopping; a new member waits so the lease is free first. */
  #state: 'open' | 'closing' | 'closed' = 'open';
  #closing: Promise<void> | undefined;

  constructor(options: RedisStreamsEventBusOptions) {
    if (typeof options?.url !== 'string' || !/^rediss?:\/\//.test(options.url)) {
      throw new ValidationError('RedisStreamsEventBus needs a redis:// or rediss:// url', { field: 'url' });
    }
    this.stream = options.stream ?? 'mlplane:events';
    if (this.stream === '') throw new ValidationError('stream must be a non-empty key', { field: 'stream' });
    this.#keys = streamKeys(this.stream);
    this.#maxLen = positiveInteger(options.maxLen ?? 100_000, 'maxLen');
    this.#publishTimeoutMs = positiveInteger(options.publishTimeoutMs ?? 10_000, 'publishTimeoutMs');
    this.#dedupeTtlMs = positiveInteger(options.dedupeTtlMs ?? 24 * 3600_000, 'dedupeTtlMs');
    this.#groups = new GroupMembers({
      dedupeWindow: positiveInteger(options.dedupeWindow ?? 100_000, 'dedupeWindow'),
      create: (group, recent) => this.#member(group, recent),
    });
    this.#leaseMs = positiveInteger(options.leaseMs ?? 10_000, 'leaseMs');
    this.#blockMs = positiveInteger(options.blockMs ?? 1000, 'blockMs');
    this.#claimIdleMs = positiveInteger(options.claimIdleMs ?? 30_000, 'claimIdleMs');
    this.#concurrency = positiveInteger(options.concurrencyPerGroup ?? 16, 'concurrencyPerGroup');
    this.#prefetch = positiveInteger(options.prefetch ?? 256, 'prefetch');
    this.#logger = options.logger?.child({ component: 'redis-event-bus', stream: this.stream });
    this.#url = options.url;
    // RESP2 keeps stream replies in their documented nested-array shape; lazy so a bus never used never connects.
    this.#redisOptions = { ...options.redis, protocol: 2, lazyConnect: true };
    this.#commands = this.#connection('commands', {});
    // Publishes have a connection without an offline queue: a batch is written only while Redis is connected, so
    // one whose publish gave up at its deadline is not sent later from a queue, behind its caller's back.
    this.#publisher = this.#connection('publisher', { enableOfflineQueue: false });
    this.#publisher.on('error', (err: Error) => {
      this.#publisherError = err;
    });
    this.#publisher.on('ready', () => {
      this.#publisherError = undefined;
    });
  }

  /** Counters since this bus was created. */
  stats(): Readonly<EventBusStats> {
    return { ...this.#stats };
  }

  /**
   * Appends the batch in one MULTI. Rejects with UnavailableError when Redis refuses any of it, or when Redis is not
   * connected or does not answer within `publishTimeoutMs`; a batch whose answer was lost may still have been
   * appended, so publishing it again can duplicate it (groups drop duplicates by event id).
   */
  async publish(events: DomainEvent | readonly DomainEvent[]): Promise<void> {
    if (this.#state === 'closed') {
      throw new UnavailableError('the event bus is closed; events can no longer be published');
    }
    const batch = acceptBatch(events);
    if (batch.length === 0) return;
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), this.#publishTimeoutMs);
    let failure: unknown;
    try {
      await untilReady(this.#publisher, deadline.signal);
      const tx = this.#publisher.multi();
      for (const event of batch) {
        tx.xadd(this.stream, 'MAXLEN', '~', String(this.#maxLen), '*', 'event', encodeEvent(event));
      }
      const results = await untilAborted(tx.exec(), deadline.signal);
      failure = results ? results.find(([err]) => err)?.[0] : new Error('the transaction was discarded');
    } catch (err) {
      failure = deadline.signal.aborted ? this.#timedOut() : err;
    } finally {
      clearTimeout(timer);
    }
    if (failure) {
      throw new UnavailableError(
        `Redis did not accept ${batch.length} event(s) on stream '${this.stream}': ${messageOf(failure)}; publishing again is safe, groups drop duplicates`,
        { cause: failure },
      );
    }
    this.#stats.published += batch.length;
  }

  #timedOut(): Error {
    const connected = this.#publisher.status === 'ready';
    const why = connected
      ? 'no answer'
      : `not connected (${this.#publisherError ? messageOf(this.#publisherError) : this.#publisher.status})`;
    return new Error(`${why} within publishTimeoutMs (${this.#publishTimeoutMs} ms)`, {
      cause: connected ? undefined : this.#publisherError,
    });
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    if (this.#state !== 'open') {
      throw new UnavailableError('the event bus is closed; no new subscriptions are accepted');
    }
    const settings = subscriberSettings(options);
    const group = options.group;
    return this.#groups.subscribe(
      group,
      settings,
      (err) =>
        new UnavailableError(`could not create Redis consumer group '${group}': ${messageOf(err)}`, { cause: err }),
    );
  }

  async deadLetters(group: string, options: { limit?: number } = {}): Promise<readonly DeadLetter[]> {
    const limit = options.limit === undefined ? undefined : positiveInteger(options.limit, 'limit');
    if (this.#state === 'closed') throw new UnavailableError('the event bus is closed; dead letters cannot be read');
    let entries: RawEntry[];
    try {
      const args = limit === undefined ? [] : ['COUNT', String(limit)];
      entries = (await this.#commands.call('XRANGE', this.#keys.deadLetters(group), '-', '+', ...args)) as RawEntry[];
    } catch (err) {
      throw new UnavailableError(`could not read dead letters of group '${group}': ${messageOf(err)}`, { cause: err });
    }
    return entries.flatMap(([, fields]) => {
      const letter = fields && parseDeadLetter(group, fields);
      return letter ? [letter] : [];
    });
  }

  async redeliver(group: string, eventId: string): Promise<void> {
    if (this.#state === 'closed') {
      throw new UnavailableError('the event bus is closed; dead letters cannot be redelivered');
    }
    try {
      const found = await this.#findDeadLetter(group, eventId);
      const moved =
        found &&
        (await this.#commands.eval(
          REDELIVER,
          2,
          this.#keys.deadLetters(group),
          this.#keys.retry(group),
          found.entryId,
          found.event,
          String(this.#maxLen),
        ));
      if (moved !== 1) throw new NotFoundError(`group '${group}' has no dead letter for event '${eventId}'`);
    } catch (err) {
      if (err instanceof NotFoundError) throw err;
      throw new UnavailableError(`could not redeliver event '${eventId}' to group '${group}': ${messageOf(err)}`, {
        cause: err,
      });
    }
    this.#stats.redelivered++;
  }

  /**
   * Stops taking subscriptions, waits for in-flight handlers, releases every group lease and
   * closes the connections; entries not handled stay pending for the group's next reader.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#state = 'closing';
      await this.#groups.closeAll();
      this.#state = 'closed';
      // QUIT waits for Redis while it is away; a closing bus does not, so it falls back to dropping the socket.
      // A publisher that never connected has nothing to quit (a command would only start a connection).
      const publisherQuit = this.#publisher.status === 'ready' ? this.#publisher.quit() : undefined;
      const quit = Promise.all([this.#commands.quit(), publisherQuit]).catch(() => {});
      const gaveUp = new AbortController();
      await Promise.race([quit, sleep(2000, gaveUp.signal)]);
      gaveUp.abort();
      this.#commands.disconnect();
      this.#publisher.disconnect();
    })();
    return this.#closing;
  }

  #member(group: string, recent: RecentIds): RedisGroupMember {
    return new RedisGroupMember({
      group,
      keys: this.#keys,
      commands: this.#commands,
      // A blocking read holds its connection, so each group reads on its own; it retries while Redis is away.
      reader: this.#connection(`reader ${group}`, { maxRetriesPerRequest: null }),
      consumer: this.#consumer,
      leaseMs: this.#leaseMs,
      blockMs: this.#blockMs,
      claimIdleMs: this.#claimIdleMs,
      concurrency: this.#concurrency,
      prefetch: this.#prefetch,
      dedupeTtlMs: this.#dedupeTtlMs,
      recent,
      stats: this.#stats,
      logger: this.#logger,
    });
  }

  #connection(role: string, extra: RedisOptions): Redis {
    const connection = new Redis(this.#url, { ...this.#redisOptions, ...extra });
    // ioredis reports every failed reconnect as an error event; the commands that fail say what matters.
    connection.on('error', (err: Error) => this.#logger?.debug({ role, err }, 'redis connection error'));
    return connection;
  }

  async #findDeadLetter(group: string, eventId: string): Promise<{ entryId: string; event: string } | undefined> {
    let start = '-';
    for (;;) {
      const entries = (await this.#commands.call(
        'XRANGE',
        this.#keys.deadLetters(group),
        start,
        '+',
        'COUNT',
        '500',
      )) as RawEntry[];
      for (const [entryId, fields] of entries) {
        if (fields && field(fields, 'id') === eventId) return { entryId, event: field(fields, 'event') ?? '' };
      }
      if (entries.length < 500) return undefined;
      start = `(${entries[entries.length - 1]![0]}`;
    }
  }
}

/** Resolves once `redis` is connected (connecting a lazy one); rejects when `signal` aborts first or it was closed. */
function untilReady(redis: Redis, signal: AbortSignal): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  if (redis.status === 'end') return Promise.reject(new Error('the connection is closed'));
  // A failed first connect is retried by ioredis like a lost connection; the caller's deadline bounds the wait.
  if (redis.status === 'wait') redis.connect().catch(() => {});
  return untilAborted(
    new Promise<void>((resolve) => {
      redis.once('ready', resolve);
      signal.addEventListener('abort', () => redis.off('ready', resolve), { once: true });
    }),
    signal,
  );
}

/** `promise`, or a rejection once `signal` aborts (the promise itself keeps running). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error('aborted'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

function parseDeadLetter(group: string, fields: readonly string[]): DeadLetter | undefined {
  const event = decodeEvent(field(fields, 'event'));
  if ('malformed' in event) return undefined;
  return Object.freeze({
    group,
    event,
    attempts: Number(field(fields, 'attempts') ?? 0),
    lastError: field(fields, 'lastError') ?? '',
    failedAt: field(fields, 'failedAt') ?? '',
  });
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
