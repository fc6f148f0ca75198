import { randomUUID } from 'node:crypto';
import type { Logger } from '@mlplane/core';
import { type DeadLetter, decodeEvent, sleep, UnavailableError } from '@mlplane/core';
import type { Admin, Consumer, Kafka, KafkaMessage } from 'kafkajs';

/** Record key of a dead letter in the compacted dead-letter topic: one live record per group and event. */
export function deadLetterKey(group: string, eventId: string): string {
  return JSON.stringify([group, eventId]);
}

export function encodeDeadLetter(letter: DeadLetter): string {
  return JSON.stringify(letter);
}

export interface KafkaDeadLetterViewOptions {
  readonly kafka: Kafka;
  readonly admin: Admin;
  readonly topic: string;
  readonly groupIdPrefix: string;
  readonly fetchMaxWaitMs: number;
  readonly timeoutMs: number;
  readonly logger: Logger | undefined;
}

/**
 * Reads the compacted dead-letter topic from the beginning into memory: a record keyed
 * `[group, eventId]` adds a dead letter, a tombstone (null value) resolves it. The reader joins a
 * throwaway consumer group and never commits, so the view always starts from the first record and
 * the group disappears when the bus closes.
 */
export class KafkaDeadLetterView {
  readonly #options: KafkaDeadLetterViewOptions;
  readonly #consumer: Consumer;
  /** Dead letters per group, oldest first. */
  readonly #letters = new Map<string, Map<string, DeadLetter>>();
  /** Next offset to read per partition. */
  readonly #next = new Map<number, bigint>();

  constructor(options: KafkaDeadLetterViewOptions) {
    this.#options = options;
    this.#consumer = options.kafka.consumer({
      groupId: `${options.groupIdPrefix}dead-letter-view.${randomUUID()}`,
      maxWaitTimeInMs: options.fetchMaxWaitMs,
      allowAutoTopicCreation: false,
    });
  }

  async start(): Promise<void> {
    await this.#consumer.connect();
    await this.#consumer.subscribe({ topic: this.#options.topic, fromBeginning: true });
    await this.#consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => this.#apply(partition, message),
    });
  }

  stop(): Promise<void> {
    return this.#consumer.disconnect();
  }

  /** Waits until the view has read every record written before this call, so callers read their own writes. */
  async catchUp(): Promise<void> {
    const { admin, topic, timeoutMs } = this.#options;
    const offsets = await admin.fetchTopicOffsets(topic);
    const deadline = Date.now() + timeoutMs;
    const behind = () =>
      offsets.some(({ partition, high, low }) => (this.#next.get(partition) ?? BigInt(low)) < BigInt(high));
    while (behind()) {
      if (Date.now() > deadline) {
        throw new UnavailableError(`the dead-letter topic '${topic}' could not be read within ${timeoutMs} ms`);
      }
      await sleep(5);
    }
  }

  list(group: string): readonly DeadLetter[] {
    return [...(this.#letters.get(group)?.values() ?? [])];
  }

  get(group: string, eventId: string): DeadLetter | undefined {
    return this.#letters.get(group)?.get(eventId);
  }

  /** Forgets a dead letter at once; its tombstone, when read, changes nothing more. */
  resolve(group: string, eventId: string): void {
    this.#letters.get(group)?.delete(eventId);
  }

  #apply(partition: number, message: KafkaMessage): void {
    this.#next.set(partition, BigInt(message.offset) + 1n);
    const key = message.key?.toString('utf8');
    let parsed: unknown;
    try {
      parsed = key === undefined ? undefined : JSON.parse(key);
    } catch {
      parsed = undefined;
    }
    if (!Array.isArray(parsed) || typeof parsed[0] !== 'string' || typeof parsed[1] !== 'string') {
      this.#options.logger?.warn({ offset: message.offset }, 'skipping a dead-letter record without a [group, id] key');
      return;
    }
    const [group, eventId] = parsed as [string, string];
    let letters = this.#letters.get(group);
    if (!letters) {
      letters = new Map();
      this.#letters.set(group, letters);
    }
    // Deleting first moves a re-written dead letter to the end, keeping the list oldest first.
    letters.delete(eventId);
    if (message.value === null) return;
    const letter = parseDeadLetter(message.value.toString('utf8'));
    if (letter) letters.set(eventId, letter);
    else this.#options.logger?.warn({ offset: message.offset }, 'skipping a malformed dead-letter record');
  }
}

function parseDeadLetter(text: string): DeadLetter | undefined {
  let raw: Partial<Record<keyof DeadLetter, unknown>>;
  try {
    raw = JSON.parse(text) as typeof raw;
  } catch {
    return undefined;
  }
  const event = decodeEvent(JSON.stringify(raw.event));
  if ('malformed' in event || typeof raw.group !== 'string' || typeof raw.attempts !== 'number') return undefined;
  return Object.freeze({
    group: raw.group,
    event,
    attempts: raw.attempts,
    lastError: String(raw.lastError ?? ''),
    failedAt: String(raw.failedAt ?? ''),
  });
}
