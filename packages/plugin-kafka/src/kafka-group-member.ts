import type { EventBusStats, Logger } from '@mlplane/core';
import { type DeadLetter, decodeEvent, type RecentIds, SubscriberSet, sleep, UnavailableError } from '@mlplane/core';
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage, RetryOptions } from 'kafkajs';

/** Header naming the only group a redelivered dead letter is meant for. */
export const REDELIVER_TO_HEADER = 'mlplane-redeliver-to';

export interface KafkaGroupMemberOptions {
  readonly kafka: Kafka;
  readonly topic: string;
  readonly group: string;
  readonly groupId: string;
  /** Partitions handled at the same time; each partition is handled serially. */
  readonly concurrency: number;
  readonly sessionTimeoutMs: number;
  readonly fetchMaxWaitMs: number;
  readonly joinTimeoutMs: number;
  readonly retry: RetryOptions;
  /** Handled ids of this group; owned by the bus so it outlives members that come and go. */
  readonly recent: RecentIds;
  readonly stats: EventBusStats;
  /** Writes a dead letter durably; rejects when the broker does not take it. */
  readonly writeDeadLetter: (letter: DeadLetter) => Promise<void>;
  readonly logger: Logger | undefined;
  /** Wait before rejoining after a crash kafkajs does not restart from (default 1 s, doubling up to 30 s). */
  readonly rejoinBackoff?: { readonly initialMs: number; readonly maxMs: number };
}

const DEFAULT_REJOIN_BACKOFF = Object.freeze({ initialMs: 1_000, maxMs: 30_000 });

/**
 * This process's member of one Kafka consumer group. Kafka assigns it partitions; each assigned
 * partition is handled serially, so events of one subject (one key, one partition) are handled in
 * publish order, and an offset is resolved only once its event was handled, filtered out or
 * dead-lettered. A crash or rebalance therefore re-delivers at most the events after the last
 * committed offset, and `recent` drops the ones this process already handled.
 */
export class KafkaGroupMember {
  readonly subscribers = new SubscriberSet();
  readonly #options: KafkaGroupMemberOptions;
  /** Replaced by a fresh one when kafkajs gives up on the current one (see #rejoin). */
  #consumer: Consumer;
  #stopping = false;
  readonly #stop = new AbortController();
  #started: Promise<void> | undefined;
  #stopped: Promise<void> | undefined;
  #rejoining: Promise<void> | undefined;

  constructor(options: KafkaGroupMemberOptions) {
    this.#options = options;
    this.#consumer = this.#newConsumer();
  }

  #newConsumer(): Consumer {
    const options = this.#options;
    return options.kafka.consumer({
      groupId: options.groupId,
      sessionTimeout: options.sessionTimeoutMs,
      // kafkajs' default rebalance timeout (60 s) would hold a rejoin for a member that already left.
      rebalanceTimeout: Math.max(options.sessionTimeoutMs, 10_000),
      maxWaitTimeInMs: options.fetchMaxWaitMs,
      allowAutoTopicCreation: false,
      retry: { ...options.retry, restartOnFailure: async () => !this.#stopping },
    });
  }

  get stopping(): boolean {
    return this.#stopping;
  }

  /** Joins the group; resolves once the member has its partitions. Later calls return the same promise. */
  start(): Promise<void> {
    this.#started ??= this.#join(this.#consumer);
    return this.#started;
  }

  async #join(consumer: Consumer): Promise<void> {
    const { topic, group, joinTimeoutMs, concurrency } = this.#options;
    let onJoin!: () => void;
    const joined = new Promise<void>((resolve) => {
      onJoin = resolve;
    });
    const removeJoin = consumer.on(consumer.events.GROUP_JOIN, () => onJoin());
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (this.#stopping || consumer !== this.#consumer) return;
      const fields = { group, err: payload.error };
      if (payload.restart) {
        this.#options.logger?.warn(fields, `Kafka consumer for group '${group}' crashed and restarts`);
        return;
      }
      // kafkajs gives up on errors it classes as not retriable, some of which a broker restart produces (e.g. no
      // group coordinator while __consumer_offsets loads); the group must not stay without this member for good.
      this.#options.logger?.error(fields, `Kafka consumer for group '${group}' stopped; rejoining with a new consumer`);
      this.#rejoin();
    });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: concurrency,
      autoCommitInterval: 1000,
      autoCommitThreshold: 100,
      eachBatch: (payload) => this.#eachBatch(payload),
    });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), joinTimeoutMs);
    });
    const result = await Promise.race([joined, timedOut]);
    clearTimeout(timer);
    removeJoin();
    if (result === 'timeout') {
      throw new UnavailableError(
        `the Kafka consumer for group '${group}' did not join within ${joinTimeoutMs} ms; check that the brokers are reachable`,
      );
    }
  }

  /** Commits what was handled, leaves the group and disconnects; events not yet handled stay for the group. */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      this.#stopping = true;
      this.#stop.abort();
      this.subscribers.interrupt();
      await this.#rejoining;
      await this.#consumer.disconnect();
    })();
    return this.#stopped;
  }

  /** Replaces a consumer kafkajs stopped for good, with backoff, until one joins or the member stops. */
  #rejoin(): void {
    const { group, logger } = this.#options;
    const backoff = this.#options.rejoinBackoff ?? DEFAULT_REJOIN_BACKOFF;
    this.#rejoining ??= (async () => {
      for (let attempt = 0; !this.#stopping; attempt++) {
        await sleep(Math.min(backoff.maxMs, backoff.initialMs * 2 ** attempt), this.#stop.signal);
        if (this.#stopping) return;
        await this.#consumer.disconnect().catch(() => {});
        this.#consumer = this.#newConsumer();
        try {
          await this.#join(this.#consumer);
          logger?.info({ group, attempts: attempt + 1 }, `Kafka consumer for group '${group}' rejoined`);
          return;
        } catch (err) {
          logger?.warn({ group, err }, `Kafka consumer for group '${group}' could not rejoin; retrying`);
        }
      }
    })().finally(() => {
      this.#rejoining = undefined;
    });
  }

  async #eachBatch({
    batch,
    resolveOffset,
    heartbeat,
    commitOffsetsIfNecessary,
    isRunning,
    isStale,
  }: EachBatchPayload): Promise<void> {
    for (const message of batch.messages) {
      if (!isRunning() || isStale() || this.#stopping) return;
      if (!(await this.#process(message, heartbeat))) return;
      resolveOffset(message.offset);
      await commitOffsetsIfNecessary();
      await heartbeat();
    }
  }

  /** Handles one record; false when it must be left unresolved (the member is stopping or has no subscribers). */
  async #process(message: KafkaMessage, heartbeat: () => Promise<void>): Promise<boolean> {
    const { group, recent, stats, logger } = this.#options;
    const target = headerText(message.headers?.[REDELIVER_TO_HEADER]);
    if (target !== undefined && target !== group) return true;
    const event = decodeEvent(message.value?.toString('utf8'));
    if ('malformed' in event) {
      logger?.warn(
        { group, offset: message.offset, reason: event.malformed },
        'skipping a record that is not a valid domain event',
      );
      return true;
    }
    const seen = recent.get(event.id);
    // A redelivery is the one way a dead-lettered id comes back; everything else already seen is a duplicate.
    if (seen === 'handled' || (seen === 'dead' && target === undefined)) {
      stats.duplicatesDropped++;
      return true;
    }
    const outcome = await this.subscribers.deliver(event, { stopping: () => this.#stopping, keepAlive: heartbeat });
    switch (outcome.kind) {
      case 'interrupted':
        return false;
      case 'filtered':
        return true;
      case 'handled':
        recent.set(event.id, 'handled');
        stats.handled++;
        return true;
      case 'dead': {
        const letter: DeadLetter = {
          group,
          event,
          attempts: outcome.attempts,
          lastError: outcome.lastError,
          failedAt: new Date().toISOString(),
        };
        if (!(await this.#deadLetter(letter, heartbeat))) return false;
        recent.set(event.id, 'dead');
        stats.deadLettered++;
        return true;
      }
    }
  }

  /** Writes the dead letter, retrying while the member runs, so an event is never skipped without a trace. */
  async #deadLetter(letter: DeadLetter, heartbeat: () => Promise<void>): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.#options.writeDeadLetter(letter);
        return true;
      } catch (err) {
        if (this.#stopping) return false;
        this.#options.logger?.warn(
          { group: letter.group, eventId: letter.event.id, err },
          'could not write a dead letter; retrying',
        );
        await sleep(Math.min(5000, 100 * 2 ** attempt));
        await heartbeat();
      }
    }
  }
}

function headerText(value: Buffer | string | (Buffer | string)[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined ? undefined : first.toString();
}
