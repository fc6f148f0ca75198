import type { DeadLetter, DomainEvent, EventBusStats, Logger } from '@mlplane/core';
import { decodeEvent, type RecentIds, SubscriberSet, sleep } from '@mlplane/core';
import type { Redis } from 'ioredis';
import { CLAIM_LEASE, field, type RawEntry, RELEASE_LEASE, type StreamKeys } from './redis-stream-keys.js';

export interface RedisGroupMemberOptions {
  readonly group: string;
  readonly keys: StreamKeys;
  /** Shared connection for acknowledgements, leases and dead letters. */
  readonly commands: Redis;
  /** Dedicated connection for the blocking XREADGROUP; the member owns and closes it. */
  readonly reader: Redis;
  /** Consumer name of this process in the group. */
  readonly consumer: string;
  readonly leaseMs: number;
  readonly blockMs: number;
  readonly claimIdleMs: number;
  readonly concurrency: number;
  readonly prefetch: number;
  readonly dedupeTtlMs: number;
  readonly recent: RecentIds;
  readonly stats: EventBusStats;
  readonly logger: Logger | undefined;
}

/** One stream entry waiting in a subject queue. */
interface Queued {
  readonly stream: string;
  readonly entryId: string;
  readonly event: DomainEvent;
  /** Came from the group's retry stream: a dead letter sent back by `redeliver`. */
  readonly redelivery: boolean;
}

/**
 * This process's reader for one consumer group of the event stream. Only the holder of the
 * group's lease reads, so a group has one active consumer at a time and events of a subject are
 * handled in stream order; the other processes wait as standbys and take over when the lease
 * lapses. On taking the lease the reader first claims every pending entry of the group
 * (XAUTOCLAIM), oldest first, so what a crashed reader left unacknowledged is handled before
 * anything newer. Within the process, subjects run concurrently and each subject serially.
 */
export class RedisGroupMember {
  readonly subscribers = new SubscriberSet();
  readonly #o: RedisGroupMemberOptions;
  readonly #queues = new Map<string, Queued[]>();
  readonly #waiting = new Set<string>();
  readonly #running = new Set<string>();
  /** `stream id` of entries queued or in flight here, so a claim never queues one twice. */
  readonly #tracked = new Set<string>();
  readonly #wakers: (() => void)[] = [];
  readonly #stop = new AbortController();
  #leader = false;
  #resync = false;
  #renewTimer: NodeJS.Timeout | undefined;
  #started: Promise<void> | undefined;
  #loop: Promise<void> | undefined;
  #stopped: Promise<void> | undefined;

  constructor(options: RedisGroupMemberOptions) {
    this.#o = options;
  }

  get #stopping(): boolean {
    return this.#stop.signal.aborted;
  }

  /** Creates the group on the event and retry streams (from their first entry) and starts reading. */
  start(): Promise<void> {
    this.#started ??= this.#ensureGroups().then(() => {
      if (!this.#stopping) this.#loop = this.#run();
    });
    return this.#started;
  }

  /**
   * Stops reading, waits for handlers in flight, releases the lease and leaves what is not handled
   * pending for the group's next reader.
   */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      this.#stop.abort();
      this.subscribers.interrupt();
      this.#wake();
      clearInterval(this.#renewTimer);
      // Closing the connection is the only way to end a blocking XREADGROUP early.
      this.#o.reader.disconnect();
      await this.#loop;
      await this.#idle();
      const { commands, keys, group, consumer, leaseMs } = this.#o;
      const release = async () => {
        if (this.#leader) await commands.eval(RELEASE_LEASE, 1, keys.lease(group), consumer);
        this.#leader = false;
        // A consumer with nothing pending leaves no trace; one with pending entries stays so they are claimed.
        const pending = (await commands.call('XPENDING', keys.events, group, '-', '+', '1', consumer)) as unknown[];
        if (pending.length === 0) await commands.call('XGROUP', 'DELCONSUMER', keys.events, group, consumer);
      };
      // While Redis is away the commands would wait for it; the lease lapses on its own, so stopping does not wait long.
      const gaveUp = new AbortController();
      const outcome = await Promise.race([
        release().then(
          () => 'released' as const,
          (err: unknown) => err,
        ),
        sleep(Math.min(leaseMs, 2000), gaveUp.signal).then(() => 'timeout' as const),
      ]);
      gaveUp.abort();
      if (outcome !== 'released') {
        this.#o.logger?.warn({ group, err: outcome }, 'could not release the group lease; it lapses on its own');
      }
    })();
    return this.#stopped;
  }

  async #ensureGroups(): Promise<void> {
    const { commands, keys, group } = this.#o;
    for (const stream of [keys.events, keys.retry(group)]) {
      try {
        await commands.call('XGROUP', 'CREATE', stream, group, '0', 'MKSTREAM');
      } catch (err) {
        if (!String((err as Error)?.message).startsWith('BUSYGROUP')) throw err;
      }
    }
  }

  async #run(): Promise<void> {
    const { keys, group, consumer, blockMs, prefetch, claimIdleMs, logger } = this.#o;
    let failures = 0;
    let lastClaim = Date.now();
    while (!this.#stopping) {
      try {
        if (!this.#leader || this.#resync) {
          await this.#idle();
          if (this.#stopping) break;
          if (!this.#leader) {
            if (!(await this.#claimLease())) {
              await sleep(this.#o.leaseMs / 3, this.#stop.signal);
              continue;
            }
            this.#leader = true;
            this.#renewTimer = setInterval(() => void this.#renew(), this.#o.leaseMs / 3);
            this.#renewTimer.unref();
          }
          this.#resync = false;
          // Everything pending in the group is older than what XREADGROUP returns next, so it goes first.
          await this.#claim(0);
          lastClaim = Date.now();
        }
        await this.#capacity();
        if (this.#stopping || !this.#leader || this.#resync) continue;
        const count = Math.max(1, prefetch - this.#tracked.size);
        const reply = (await this.#o.reader.call(
          'XREADGROUP',
          'GROUP',
          group,
          consumer,
          'COUNT',
          String(count),
          'BLOCK',
          String(blockMs),
          'STREAMS',
          keys.events,
          keys.retry(group),
          '>',
          '>',
        )) as [string, RawEntry[]][] | null;
        // Entries read after a stop or a lost lease stay pending; the next reader claims them.
        if (this.#stopping || !this.#leader) continue;
        for (const [stream, entries] of reply ?? []) this.#enqueue(stream, entries);
        if (Date.now() - lastClaim >= claimIdleMs) {
          await this.#claim(claimIdleMs);
          lastClaim = Date.now();
        }
        failures = 0;
      } catch (err) {
        if (this.#stopping) break;
        failures++;
        if (String((err as Error)?.message).startsWith('NOGROUP')) {
          // The stream or group vanished (a Redis without persistence restarted): recreate and start over.
          logger?.warn({ group }, 'the consumer group is gone from Redis; recreating it');
          await this.#ensureGroups().catch(() => {});
        } else {
          logger?.warn({ group, err, failures }, 'reading the event stream failed; retrying');
        }
        await sleep(Math.min(5000, 50 * 2 ** failures), this.#stop.signal);
      }
    }
  }

  async #claimLease(): Promise<boolean> {
    const { commands, keys, group, consumer, leaseMs } = this.#o;
    return (await commands.eval(CLAIM_LEASE, 1, keys.lease(group), consumer, String(leaseMs))) === 1;
  }

  async #renew(): Promise<void> {
    if (!this.#leader || this.#stopping) return;
    try {
      if (await this.#claimLease()) return;
    } catch (err) {
      // Redis is unreachable: nobody else can take the lease over either, so keep it until told otherwise.
      this.#o.logger?.debug({ group: this.#o.group, err }, 'could not renew the group lease');
      return;
    }
    this.#o.logger?.warn({ group: this.#o.group }, 'another process took the group lease over; standing by');
    this.#leader = false;
    clearInterval(this.#renewTimer);
    this.subscribers.interrupt();
    // Queued entries now belong to the new holder; dropping them here avoids handling them twice.
    for (const subject of this.#waiting) {
      for (const left of this.#queues.get(subject) ?? []) this.#tracked.delete(`${left.stream} ${left.entryId}`);
      this.#queues.delete(subject);
    }
    this.#waiting.clear();
  }

  /** Claims pending entries idle for at least `minIdleMs` (all of them with 0) and queues them in id order. */
  async #claim(minIdleMs: number): Promise<void> {
    const { commands, keys, group, consumer } = this.#o;
    for (const stream of [keys.events, keys.retry(group)]) {
      let cursor = '0-0';
      do {
        const [next, entries] = (await commands.call(
          'XAUTOCLAIM',
          stream,
          group,
          consumer,
          String(minIdleMs),
          cursor,
          'COUNT',
          '100',
        )) as [string, RawEntry[], string[]?];
        this.#enqueue(stream, entries);
        cursor = next;
      } while (cursor !== '0-0' && !this.#stopping && this.#leader);
    }
  }

  #enqueue(stream: string, entries: readonly RawEntry[]): void {
    for (const [entryId, fields] of entries) {
      const tag = `${stream} ${entryId}`;
      if (this.#tracked.has(tag)) continue;
      const event = decodeEvent(fields ? field(fields, 'event') : null);
      if ('malformed' in event) {
        this.#o.logger?.warn(
          { group: this.#o.group, stream, entryId, reason: event.malformed },
          'skipping a stream entry that is not a valid domain event',
        );
        void this.#acknowledge(stream, entryId);
        continue;
      }
      this.#tracked.add(tag);
      const redelivery = stream !== this.#o.keys.events;
      let queue = this.#queues.get(event.subject);
      if (!queue) {
        queue = [];
        this.#queues.set(event.subject, queue);
      }
      queue.push({ stream, entryId, event, redelivery });
      if (!this.#running.has(event.subject)) this.#waiting.add(event.subject);
    }
    this.#pump();
  }

  #pump(): void {
    for (const subject of this.#waiting) {
      if (this.#running.size >= this.#o.concurrency) return;
      this.#waiting.delete(subject);
      this.#running.add(subject);
      void this.#runSubject(subject);
    }
  }

  async #runSubject(subject: string): Promise<void> {
    const queue = this.#queues.get(subject)!;
    let interrupted = false;
    let failures = 0;
    while (queue.length > 0) {
      if (this.#stopping || !this.#leader) {
        interrupted = true;
        break;
      }
      let handled: boolean;
      try {
        handled = await this.#handle(queue[0]!);
      } catch (err) {
        // Only Redis calls throw here (the dedupe lookup): wait for Redis and try the same entry again.
        failures++;
        this.#o.logger?.warn({ group: this.#o.group, err, failures }, 'could not handle an entry; retrying');
        await sleep(Math.min(5000, 50 * 2 ** failures), this.#stop.signal);
        continue;
      }
      if (!handled) {
        interrupted = true;
        break;
      }
      failures = 0;
      const done = queue.shift()!;
      this.#tracked.delete(`${done.stream} ${done.entryId}`);
    }
    if (interrupted) {
      // What is left stays pending in Redis; claiming it again later keeps it in stream order.
      for (const left of queue) this.#tracked.delete(`${left.stream} ${left.entryId}`);
      queue.length = 0;
      if (!this.#stopping && this.#leader) this.#resync = true;
    }
    this.#queues.delete(subject);
    this.#running.delete(subject);
    this.#pump();
    this.#wake();
  }

  /** Handles one entry to an acknowledgement; false when it must stay pending. */
  async #handle(item: Queued): Promise<boolean> {
    const { event, redelivery } = item;
    const { recent, stats, commands, keys, group } = this.#o;
    if (this.subscribers.size === 0) return false;
    if (!this.subscribers.wants(event.type)) return this.#acknowledge(item.stream, item.entryId);
    const seen =
      recent.get(event.id) ?? ((await commands.get(keys.done(group, event.id))) as 'handled' | 'dead' | null);
    // A redelivery is the one way a dead-lettered id comes back; everything else already seen is a duplicate.
    if (seen === 'handled' || (seen === 'dead' && !redelivery)) {
      stats.duplicatesDropped++;
      return this.#acknowledge(item.stream, item.entryId);
    }
    const outcome = await this.subscribers.deliver(event, { stopping: () => this.#stopping || !this.#leader });
    switch (outcome.kind) {
      case 'interrupted':
        return false;
      case 'filtered':
        return this.#acknowledge(item.stream, item.entryId);
      case 'handled':
        recent.set(event.id, 'handled');
        stats.handled++;
        return this.#settle(item, 'handled');
      case 'dead': {
        const letter: DeadLetter = {
          group,
          event,
          attempts: outcome.attempts,
          lastError: outcome.lastError,
          failedAt: new Date().toISOString(),
        };
        if (!(await this.#settle(item, 'dead', letter))) return false;
        recent.set(event.id, 'dead');
        stats.deadLettered++;
        return true;
      }
    }
  }

  /**
   * Marks the event id done for the group and acknowledges the entry in one transaction (writing
   * the dead letter too when there is one), retrying while Redis is away.
   */
  async #settle(item: Queued, state: 'handled' | 'dead', letter?: DeadLetter): Promise<boolean> {
    const { commands, keys, group, dedupeTtlMs } = this.#o;
    for (let attempt = 1; ; attempt++) {
      try {
        const tx = commands.multi();
        if (letter) {
          tx.xadd(
            keys.deadLetters(group),
            '*',
            'id',
            letter.event.id,
            'event',
            JSON.stringify(letter.event),
            'attempts',
            String(letter.attempts),
            'lastError',
            letter.lastError,
            'failedAt',
            letter.failedAt,
          );
        }
        tx.set(keys.done(group, item.event.id), state, 'PX', dedupeTtlMs);
        tx.xack(item.stream, group, item.entryId);
        const results = await tx.exec();
        const failed = results?.find(([err]) => err);
        if (!results || failed) throw failed?.[0] ?? new Error('the transaction was discarded');
        return true;
      } catch (err) {
        // A handled event that is never acknowledged comes back to a handler that must be idempotent anyway.
        if (this.#stopping) return state === 'handled';
        this.#o.logger?.warn({ group, eventId: item.event.id, err }, 'could not acknowledge an event; retrying');
        await sleep(Math.min(5000, 50 * 2 ** attempt), this.#stop.signal);
      }
    }
  }

  async #acknowledge(stream: string, entryId: string): Promise<boolean> {
    try {
      await this.#o.commands.xack(stream, this.#o.group, entryId);
    } catch (err) {
      // Left pending, the entry is claimed and skipped again later; nothing is lost.
      this.#o.logger?.debug({ group: this.#o.group, err }, 'could not acknowledge a skipped entry');
    }
    return true;
  }

  /** Resolves once fewer than `prefetch` entries are queued here. */
  #capacity(): Promise<void> {
    if (this.#tracked.size < this.#o.prefetch || this.#stopping) return Promise.resolve();
    return new Promise<void>((resolve) => this.#wakers.push(resolve)).then(() => this.#capacity());
  }

  /** Resolves once no subject is being handled here. */
  #idle(): Promise<void> {
    if (this.#running.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.#wakers.push(resolve)).then(() => this.#idle());
  }

  #wake(): void {
    for (const wake of this.#wakers.splice(0)) wake();
  }
}
