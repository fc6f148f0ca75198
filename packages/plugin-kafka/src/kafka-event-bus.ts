import type { Logger } from '@mlplane/core';
import {
  acceptBatch,
  type DeadLetter,
  type DomainEvent,
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
  subscriberSettings,
  UnavailableError,
  ValidationError,
} from '@mlplane/core';
import { type Admin, Kafka, type KafkaConfig, Partitioners, type Producer, type RetryOptions } from 'kafkajs';
import { deadLetterKey, encodeDeadLetter, KafkaDeadLetterView } from './kafka-dead-letters.js';
import { KafkaGroupMember, REDELIVER_TO_HEADER } from './kafka-group-member.js';
import { kafkajsLogging } from './kafkajs-logger.js';

export interface KafkaEventBusOptions {
  /** Bootstrap brokers, `host:port`. */
  readonly brokers: readonly string[];
  readonly clientId?: string;
  /** Topic all events go to (default `mlplane.events`); dead letters go to `<topic>.dlq`. */
  readonly topic?: string;
  /** Partitions of the event topic when this bus creates it (default 6): the most subjects handled at once per group. */
  readonly partitions?: number;
  /** Replication factor of topics this bus creates (default: 3, or fewer when the cluster has fewer brokers). */
  readonly replicationFactor?: number;
  /** Prefix of Kafka consumer group ids (default `mlplane.`); group `audit` joins Kafka group `mlplane.audit`. */
  readonly groupIdPrefix?: string;
  /** Event ids per group this process remembers as handled, to drop duplicates (default 100,000). */
  readonly dedupeWindow?: number;
  /** Consumer session timeout (default 30 s): how long a silent member keeps its partitions. */
  readonly sessionTimeoutMs?: number;
  /** Longest wait for a first subscriber of a group to join (default 60 s). */
  readonly joinTimeoutMs?: number;
  /** Longest fetch long-poll (default 500 ms); it also bounds how long closing a group takes. */
  readonly fetchMaxWaitMs?: number;
  /** kafkajs retry policy for publishing and reconnecting (default: 10 retries within 60 s). */
  readonly retry?: RetryOptions;
  /** TLS, SASL and timeouts, passed to kafkajs as they are. */
  readonly connection?: Pick<KafkaConfig, 'ssl' | 'sasl' | 'connectionTimeout' | 'requestTimeout'>;
  /** Where kafkajs and the bus log; silent when absent. */
  readonly logger?: Logger;
}

const DEFAULT_RETRY: RetryOptions = Object.freeze({ retries: 10, initialRetryTime: 300, maxRetryTime: 60_000 });

/**
 * EventBus on Apache Kafka. Events go to one topic keyed by subject, so each subject stays in one
 * partition and in publish order; the idempotent producer waits for all in-sync replicas (acks -1)
 * before `publish` resolves. A consumer group is a Kafka consumer group with one member per bus
 * instance; its subscribers in this process compete for the events the member receives. Offsets
 * are committed only after the event was handled, so delivery is at-least-once; each process keeps
 * the ids its groups handled (bounded LRU) and drops duplicates. After `maxAttempts` the event goes
 * to the compacted topic `<topic>.dlq` keyed by `[group, eventId]`; `redeliver` re-publishes it to
 * the event topic with a header naming its group and writes a tombstone for the dead letter.
 * A group new to Kafka starts at the earliest retained offset (`replay: true`).
 */
export class KafkaEventBus implements EventBus {
  readonly capabilities: EventBusCapabilities = Object.freeze({
    durable: true,
    orderedPerSubject: true,
    replay: true,
  });

  readonly topic: string;
  readonly deadLetterTopic: string;
  readonly #kafka: Kafka;
  readonly #partitions: number;
  readonly #replicationFactor: number | undefined;
  readonly #groupIdPrefix: string;
  readonly #groups: GroupMembers<KafkaGroupMember>;
  readonly #sessionTimeoutMs: number;
  readonly #joinTimeoutMs: number;
  readonly #fetchMaxWaitMs: number;
  readonly #retry: RetryOptions;
  readonly #logger: Logger | undefined;
  readonly #stats = emptyStats();
  /** Members of a group that are leaving; a new member of that group waits so offsets are committed first. */
  #admin: Admin | undefined;
  #producer: Producer | undefined;
  #ready: Promise<void> | undefined;
  #deadLetterView: Promise<KafkaDeadLetterView> | undefined;
  #state: 'open' | 'closing' | 'closed' = 'open';
  #closing: Promise<void> | undefined;

  constructor(options: KafkaEventBusOptions) {
    if (!Array.isArray(options?.brokers) || options.brokers.length === 0) {
      throw new ValidationError('KafkaEventBus needs at least one broker address (host:port)', { field: 'brokers' });
    }
    this.topic = options.topic ?? 'mlplane.events';
    if (!/^[a-zA-Z0-9._-]{1,240}$/.test(this.topic)) {
      throw new ValidationError(`topic ${JSON.stringify(this.topic)} must be 1 to 240 of [a-zA-Z0-9._-]`, {
        field: 'topic',
      });
    }
    this.deadLetterTopic = `${this.topic}.dlq`;
    this.#partitions = positiveInteger(options.partitions ?? 6, 'partitions');
    this.#replicationFactor =
      options.replicationFactor === undefined
        ? undefined
        : positiveInteger(options.replicationFactor, 'replicationFactor');
    this.#groupIdPrefix = options.groupIdPrefix ?? 'mlplane.';
    this.#groups = new GroupMembers({
      dedupeWindow: positiveInteger(options.dedupeWindow ?? 100_000, 'dedupeWindow'),
      create: (group, recent) => this.#member(group, recent),
    });
    this.#sessionTimeoutMs = positiveInteger(options.sessionTimeoutMs ?? 30_000, 'sessionTimeoutMs');
    this.#joinTimeoutMs = positiveInteger(options.joinTimeoutMs ?? 60_000, 'joinTimeoutMs');
    this.#fetchMaxWaitMs = positiveInteger(options.fetchMaxWaitMs ?? 500, 'fetchMaxWaitMs');
    this.#retry = { ...DEFAULT_RETRY, ...options.retry };
    this.#logger = options.logger?.child({ component: 'kafka-event-bus', topic: this.topic });
    this.#kafka = new Kafka({
      ...options.connection,
      clientId: options.clientId ?? 'mlplane',
      brokers: [...options.brokers],
      retry: this.#retry,
      ...kafkajsLogging(options.logger),
    });
  }

  /** Counters since this bus was created. */
  stats(): Readonly<EventBusStats> {
    return { ...this.#stats };
  }

  async publish(events: DomainEvent | readonly DomainEvent[]): Promise<void> {
    if (this.#state === 'closed') {
      throw new UnavailableError('the event bus is closed; events can no longer be published');
    }
    const batch = acceptBatch(events);
    if (batch.length === 0) return;
    const producer = await this.#connected();
    try {
      await producer.send({
        topic: this.topic,
        acks: -1,
        messages: batch.map((event) => ({ key: event.subject, value: encodeEvent(event) })),
      });
    } catch (err) {
      throw new UnavailableError(
        `Kafka did not accept ${batch.length} event(s) on topic '${this.topic}': ${messageOf(err)}; publishing again is safe, consumers drop duplicates`,
        { cause: err },
      );
    }
    this.#stats.published += batch.length;
  }

  async subscribe(options: SubscribeOptions): Promise<Subscription> {
    if (this.#state !== 'open') {
      throw new UnavailableError('the event bus is closed; no new subscriptions are accepted');
    }
    const settings = subscriberSettings(options);
    const group = options.group;
    await this.#connected();
    return this.#groups.subscribe(group, settings, (err) =>
      err instanceof UnavailableError
        ? err
        : new UnavailableError(`could not join the Kafka consumer group of '${group}': ${messageOf(err)}`, {
            cause: err,
          }),
    );
  }

  async deadLetters(group: string, options: { limit?: number } = {}): Promise<readonly DeadLetter[]> {
    const limit = options.limit === undefined ? Number.POSITIVE_INFINITY : positiveInteger(options.limit, 'limit');
    if (this.#state === 'closed') throw new UnavailableError('the event bus is closed; dead letters cannot be read');
    const view = await this.#deadLetters();
    await view.catchUp();
    return view.list(group).slice(0, limit);
  }

  async redeliver(group: string, eventId: string): Promise<void> {
    if (this.#state === 'closed') {
      throw new UnavailableError('the event bus is closed; dead letters cannot be redelivered');
    }
    const view = await this.#deadLetters();
    await view.catchUp();
    const letter = view.get(group, eventId);
    if (!letter) throw new NotFoundError(`group '${group}' has no dead letter for event '${eventId}'`);
    const producer = await this.#connected();
    try {
      // The event goes back first, then the tombstone: a crash in between leaves a dead letter whose
      // second redelivery is a duplicate the group drops, never a lost event.
      await producer.send({
        topic: this.topic,
        acks: -1,
        messages: [
          { key: letter.event.subject, value: encodeEvent(letter.event), headers: { [REDELIVER_TO_HEADER]: group } },
        ],
      });
      await producer.send({
        topic: this.deadLetterTopic,
        acks: -1,
        messages: [{ key: deadLetterKey(group, eventId), value: null }],
      });
    } catch (err) {
      throw new UnavailableError(`could not redeliver event '${eventId}' to group '${group}': ${messageOf(err)}`, {
        cause: err,
      });
    }
    view.resolve(group, eventId);
    this.#stats.redelivered++;
  }

  /**
   * Stops taking subscriptions, waits for in-flight handlers, commits what was handled and leaves
   * every group; events not handled yet stay in Kafka for the next member of their group.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#state = 'closing';
      await this.#groups.closeAll();
      const view = this.#deadLetterView;
      if (view) await view.then((v) => v.stop()).catch(() => {});
      this.#state = 'closed';
      await Promise.allSettled([this.#producer?.disconnect(), this.#admin?.disconnect()]);
    })();
    return this.#closing;
  }

  #member(group: string, recent: RecentIds): KafkaGroupMember {
    return new KafkaGroupMember({
      kafka: this.#kafka,
      topic: this.topic,
      group,
      groupId: `${this.#groupIdPrefix}${group}`,
      concurrency: this.#partitions,
      sessionTimeoutMs: this.#sessionTimeoutMs,
      fetchMaxWaitMs: this.#fetchMaxWaitMs,
      joinTimeoutMs: this.#joinTimeoutMs,
      retry: this.#retry,
      recent,
      stats: this.#stats,
      writeDeadLetter: (letter) => this.#writeDeadLetter(letter),
      logger: this.#logger,
    });
  }

  async #writeDeadLetter(letter: DeadLetter): Promise<void> {
    const producer = await this.#connected();
    await producer.send({
      topic: this.deadLetterTopic,
      acks: -1,
      messages: [{ key: deadLetterKey(letter.group, letter.event.id), value: encodeDeadLetter(letter) }],
    });
  }

  #deadLetters(): Promise<KafkaDeadLetterView> {
    this.#deadLetterView ??= (async () => {
      await this.#connected();
      const view = new KafkaDeadLetterView({
        kafka: this.#kafka,
        admin: this.#admin!,
        topic: this.deadLetterTopic,
        groupIdPrefix: this.#groupIdPrefix,
        fetchMaxWaitMs: this.#fetchMaxWaitMs,
        timeoutMs: this.#joinTimeoutMs,
        logger: this.#logger,
      });
      await view.start();
      return view;
    })().catch((err: unknown) => {
      this.#deadLetterView = undefined;
      throw new UnavailableError(`could not read the dead-letter topic '${this.deadLetterTopic}': ${messageOf(err)}`, {
        cause: err,
      });
    });
    return this.#deadLetterView;
  }

  /** Connects the admin client and producer and creates the topics once; a failed attempt is retried by the next call. */
  #connected(): Promise<Producer> {
    this.#ready ??= this.#connect().catch((err: unknown) => {
      this.#ready = undefined;
      throw new UnavailableError(`could not reach Kafka to set up topic '${this.topic}': ${messageOf(err)}`, {
        cause: err,
      });
    });
    return this.#ready.then(() => this.#producer!);
  }

  async #connect(): Promise<void> {
    this.#admin ??= this.#kafka.admin();
    const admin = this.#admin;
    await admin.connect();
    const existing = new Set(await admin.listTopics());
    const missing = [
      { topic: this.topic, numPartitions: this.#partitions, configEntries: [] },
      {
        topic: this.deadLetterTopic,
        // One partition keeps dead letters in the order they failed; compaction keeps one record per [group, id].
        numPartitions: 1,
        configEntries: [{ name: 'cleanup.policy', value: 'compact' }],
      },
    ].filter((t) => !existing.has(t.topic));
    if (missing.length > 0) {
      const replicationFactor =
        this.#replicationFactor ?? Math.min(3, (await admin.describeCluster()).brokers.length || 1);
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((t) => ({ ...t, replicationFactor })),
      });
    }
    this.#producer ??= this.#kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
      retry: this.#retry,
    });
    await this.#producer.connect();
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
