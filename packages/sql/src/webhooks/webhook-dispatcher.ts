import { setTimeout as delay } from 'node:timers/promises';
import type {
  Counter,
  DeadLetter,
  DomainEvent,
  EventBus,
  Histogram,
  Logger,
  MetadataStore,
  SecretStore,
  Subscription,
  Telemetry,
} from '@mlplane/core';
import { signWebhook, UnavailableError, ValidationError, WEBHOOK_HEADERS } from '@mlplane/core';
import type { Kysely } from 'kysely';
import pRetry from 'p-retry';
import type { WebhooksDatabase } from './schema.js';
import { readDeliveries, type WebhookSubscription, type WebhookSubscriptions } from './webhook-subscriptions.js';

export interface WebhookDispatcherOptions {
  readonly store: MetadataStore;
  readonly bus: EventBus;
  readonly secrets: SecretStore;
  readonly subscriptions: WebhookSubscriptions;
  readonly telemetry?: Telemetry;
  /** HTTP attempts per event before it goes to the bus's dead letters (default 6). */
  readonly maxAttempts?: number;
  /** Exponential backoff between attempts, randomized by 1x to 2x (default 1 s doubling up to 60 s). */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
  /** Timeout of one HTTP attempt (default 10 s). */
  readonly timeoutMs?: number;
  /** How often subscriptions are re-read, to pick up changes made by other processes (default 30 s). */
  readonly refreshIntervalMs?: number;
  /** Consumer group of a subscription: `<groupPrefix><id>` (default `webhook.`). */
  readonly groupPrefix?: string;
  /** How long stop() lets deliveries finish their retries before cutting them short (default 10 s). */
  readonly stopGraceMs?: number;
}

/**
 * The default `groupPrefix`: subscription `<id>`'s events flow through the EventBus group `webhook.<id>`, whose dead
 * letters are the events the dispatcher gave up on (readable and redeliverable through the EventBus port).
 */
export const WEBHOOK_GROUP_PREFIX = 'webhook.';

/** One row of the delivery log: an HTTP attempt. */
export interface WebhookDelivery {
  readonly subscriptionId: string;
  readonly eventId: string;
  readonly eventType: string;
  readonly attempt: number;
  /** `delivered`; `retrying` when another attempt follows; `failed` when the dispatcher gave up (dead letter). */
  readonly outcome: 'delivered' | 'retrying' | 'failed';
  readonly statusCode?: number;
  readonly error?: string;
  readonly durationMs: number;
  readonly at: Date;
}

/** Why a stop() cut a delivery short; such dead letters are redelivered by the next start(). */
const STOPPED = 'webhook dispatcher stopped before the delivery finished';
const USER_AGENT = 'mlplane-webhooks/1';

class DeliveryError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly statusCode?: number,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

interface Active {
  readonly subscription: WebhookSubscription;
  readonly bus: Subscription;
}

/**
 * Delivers domain events to webhook subscriptions. Each active subscription is a consumer group on the
 * EventBus (`webhook.<id>`) filtered by its event types, so subscriptions progress independently. An event is
 * POSTed as JSON with an HMAC-SHA256 signature; network errors, timeouts, 408, 429 and 5xx are retried with
 * exponential backoff and jitter (p-retry, honouring Retry-After up to the backoff cap), other statuses are
 * not. After `maxAttempts` the handler fails and the bus dead-letters the event (the subscription's group has
 * `maxAttempts: 1` on the bus, since the retries happened here). Every attempt is a row in the delivery log.
 *
 * Delivery is at-least-once: receivers dedupe on `x-mlplane-event-id`. An event already logged as delivered to
 * a subscription is not sent again, and events that happened before a subscription was created are skipped
 * (a durable bus replays history to a new group).
 */
export class WebhookDispatcher {
  readonly #store: MetadataStore;
  readonly #bus: EventBus;
  readonly #secrets: SecretStore;
  readonly #subscriptions: WebhookSubscriptions;
  readonly #maxAttempts: number;
  readonly #backoff: { readonly initialMs: number; readonly maxMs: number };
  readonly #timeoutMs: number;
  readonly #refreshMs: number;
  readonly #groupPrefix: string;
  readonly #stopGraceMs: number;
  readonly #logger: Logger | undefined;
  readonly #metrics: { readonly attempts: Counter<'outcome'>; readonly seconds: Histogram } | undefined;
  readonly #active = new Map<string, Active>();
  readonly #stopping = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #syncing: Promise<void> = Promise.resolve();
  #unlisten: (() => void) | undefined;
  #started = false;
  #stopped: Promise<void> | undefined;

  constructor(options: WebhookDispatcherOptions) {
    this.#store = options.store;
    this.#bus = options.bus;
    this.#secrets = options.secrets;
    this.#subscriptions = options.subscriptions;
    this.#maxAttempts = positiveInteger(options.maxAttempts ?? 6, 'maxAttempts');
    const backoff = options.backoff ?? { initialMs: 1000, maxMs: 60_000 };
    if (!(backoff.initialMs > 0 && backoff.maxMs >= backoff.initialMs)) {
      throw new ValidationError('backoff needs 0 < initialMs <= maxMs', { field: 'backoff' });
    }
    this.#backoff = backoff;
    this.#timeoutMs = positiveInteger(options.timeoutMs ?? 10_000, 'timeoutMs');
    this.#refreshMs = positiveInteger(options.refreshIntervalMs ?? 30_000, 'refreshIntervalMs');
    this.#groupPrefix = options.groupPrefix ?? WEBHOOK_GROUP_PREFIX;
    this.#stopGraceMs = options.stopGraceMs ?? 10_000;
    this.#logger = options.telemetry?.logger.child({ component: 'webhook-dispatcher' });
    const metrics = options.telemetry?.metrics;
    this.#metrics = metrics && {
      attempts: metrics.counter({
        name: 'mlplane_webhook_attempts_total',
        help: 'Webhook HTTP attempts by outcome (delivered, retrying, failed)',
        labelNames: ['outcome'],
      }),
      seconds: metrics.histogram({
        name: 'mlplane_webhook_attempt_seconds',
        help: 'Duration of webhook HTTP attempts',
      }),
    };
  }

  /** The consumer group of a subscription on the bus. */
  groupOf(subscriptionId: string): string {
    return `${this.#groupPrefix}${subscriptionId}`;
  }

  /** Subscribes every active subscription, redelivers what a previous stop() cut short, and starts refreshing. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    this.#unlisten = this.#subscriptions.onChange(() => {
      void this.sync().catch((err: unknown) => this.#logger?.warn({ err }, 'webhook subscription sync failed'));
    });
    await this.sync();
    for (const { subscription } of this.#active.values()) {
      for (const letter of await this.deadLetters(subscription.id)) {
        if (letter.lastError.includes(STOPPED)) await this.redeliver(subscription.id, letter.event.id);
      }
    }
    this.#timer = setInterval(() => {
      void this.sync().catch((err: unknown) => this.#logger?.warn({ err }, 'webhook subscription sync failed'));
    }, this.#refreshMs);
    this.#timer.unref();
  }

  /** Re-reads subscriptions and (un)subscribes groups to match; start() and local changes call it. */
  sync(): Promise<void> {
    const next = this.#syncing.then(() => this.#sync());
    this.#syncing = next.catch(() => {});
    return next;
  }

  async #sync(): Promise<void> {
    if (this.#stopping.signal.aborted) return;
    const wanted = new Map((await this.#subscriptions.list({ activeOnly: true })).map((s) => [s.id, s]));
    for (const [id, active] of this.#active) {
      const now = wanted.get(id);
      if (!now || now.eventTypes.join() !== active.subscription.eventTypes.join()) {
        this.#active.delete(id);
        await active.bus.close();
      } else {
        // URL and secret changes apply to the next attempt without resubscribing.
        this.#active.set(id, { subscription: now, bus: active.bus });
      }
    }
    for (const [id, subscription] of wanted) {
      if (this.#active.has(id) || this.#stopping.signal.aborted) continue;
      const types = subscription.eventTypes.includes('*') ? undefined : subscription.eventTypes;
      const bus = await this.#bus.subscribe({
        group: this.groupOf(id),
        ...(types ? { types } : {}),
        maxAttempts: 1,
        handler: (event) => this.#handle(id, event),
      });
      this.#active.set(id, { subscription, bus });
    }
  }

  /** Events the dispatcher gave up on for a subscription, oldest first. */
  deadLetters(subscriptionId: string, options?: { limit?: number }): Promise<readonly DeadLetter[]> {
    return this.#bus.deadLetters(this.groupOf(subscriptionId), options);
  }

  /** Sends a dead-lettered event to its subscription again (after the receiver was fixed). */
  redeliver(subscriptionId: string, eventId: string): Promise<void> {
    return this.#bus.redeliver(this.groupOf(subscriptionId), eventId);
  }

  /** The delivery log of a subscription, newest first (optionally of one event). */
  deliveries(
    subscriptionId: string,
    options: { readonly eventId?: string; readonly limit?: number } = {},
  ): Promise<readonly WebhookDelivery[]> {
    return readDeliveries(this.#db, subscriptionId, options);
  }

  /**
   * Stops taking events, gives deliveries in their retry loop `stopGraceMs` to finish, then cuts them short
   * (their events go to the dead letters marked as stopped, and the next start() redelivers them).
   */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      clearInterval(this.#timer);
      this.#unlisten?.();
      await this.#syncing;
      const grace = setTimeout(() => this.#stopping.abort(new Error(STOPPED)), this.#stopGraceMs);
      await Promise.all([...this.#active.values()].map((a) => a.bus.close()));
      clearTimeout(grace);
      this.#stopping.abort(new Error(STOPPED));
      this.#active.clear();
    })();
    return this.#stopped;
  }

  get #db(): Kysely<WebhooksDatabase> {
    return this.#store.db<WebhooksDatabase>();
  }

  async #handle(subscriptionId: string, event: DomainEvent): Promise<void> {
    const subscription = this.#active.get(subscriptionId)?.subscription;
    if (!subscription) throw new UnavailableError(STOPPED);
    if (Date.parse(event.occurredAt) < subscription.createdAt.getTime()) return;
    if (await this.#alreadyDelivered(subscriptionId, event.id)) return;
    const body = JSON.stringify(event);
    const signal = this.#stopping.signal;
    let attempt = 0;
    try {
      await pRetry(
        async () => {
          attempt++;
          // Re-read each attempt so a URL or secret change applies to retries too.
          const current = this.#active.get(subscriptionId)?.subscription ?? subscription;
          await this.#attempt(current, event, body, attempt);
        },
        {
          retries: this.#maxAttempts - 1,
          factor: 2,
          minTimeout: this.#backoff.initialMs,
          maxTimeout: this.#backoff.maxMs,
          randomize: true,
          signal,
          shouldRetry: ({ error }) => error instanceof DeliveryError && error.retryable,
          onFailedAttempt: async ({ error, retryDelay, retriesLeft }) => {
            const after = error instanceof DeliveryError ? error.retryAfterMs : undefined;
            if (retriesLeft > 0 && after !== undefined && after > retryDelay && (error as DeliveryError).retryable) {
              await delay(Math.min(after, this.#backoff.maxMs) - retryDelay, undefined, { signal }).catch(() => {});
            }
          },
        },
      );
    } catch (err) {
      if (signal.aborted) throw new UnavailableError(STOPPED, { cause: err });
      this.#logger?.warn(
        { subscriptionId, eventId: event.id, type: event.type, attempts: attempt, err },
        'webhook delivery failed; the event is dead-lettered',
      );
      throw err;
    }
  }

  async #attempt(subscription: WebhookSubscription, event: DomainEvent, body: string, attempt: number): Promise<void> {
    const started = performance.now();
    let statusCode: number | undefined;
    try {
      const secret = await this.#secrets.get(subscription.secretName).catch((cause: unknown) => {
        throw new DeliveryError(
          `cannot read signing secret '${subscription.secretName}': ${(cause as Error).message}`,
          true,
        );
      });
      const timestamp = String(Math.floor(Date.now() / 1000));
      let response: Response;
      try {
        response = await fetch(subscription.url, {
          method: 'POST',
          body,
          redirect: 'manual',
          signal: AbortSignal.timeout(this.#timeoutMs),
          headers: {
            'content-type': 'application/json',
            'user-agent': USER_AGENT,
            [WEBHOOK_HEADERS.eventId]: event.id,
            [WEBHOOK_HEADERS.eventType]: event.type,
            [WEBHOOK_HEADERS.timestamp]: timestamp,
            [WEBHOOK_HEADERS.signature]: signWebhook(secret, timestamp, event.id, event.type, body),
            // The receiver continues the trace of the work that caused the event (W3C Trace Context).
            ...event.traceContext,
          },
        });
      } catch (err) {
        const reason =
          (err as Error).name === 'TimeoutError' ? `timed out after ${this.#timeoutMs} ms` : networkError(err);
        throw new DeliveryError(reason, true);
      }
      statusCode = response.status;
      // The body is not needed, but must be consumed so the connection can be reused.
      await response.arrayBuffer().catch(() => undefined);
      if (statusCode >= 200 && statusCode < 300) {
        await this.#log(subscription.id, event, attempt, 'delivered', started, statusCode);
        return;
      }
      const retryable = statusCode === 408 || statusCode === 429 || statusCode >= 500;
      throw new DeliveryError(
        `receiver answered HTTP ${statusCode}`,
        retryable,
        statusCode,
        retryAfterMs(response.headers.get('retry-after')),
      );
    } catch (err) {
      const error = err instanceof DeliveryError ? err : new DeliveryError((err as Error).message, false);
      const last = !error.retryable || attempt >= this.#maxAttempts;
      await this.#log(
        subscription.id,
        event,
        attempt,
        last ? 'failed' : 'retrying',
        started,
        statusCode,
        error.message,
      );
      throw error;
    }
  }

  async #alreadyDelivered(subscriptionId: string, eventId: string): Promise<boolean> {
    try {
      const row = await this.#db
        .selectFrom('webhook_deliveries')
        .select('id')
        .where('subscription_id', '=', subscriptionId)
        .where('event_id', '=', eventId)
        .where('outcome', '=', 'delivered')
        .executeTakeFirst();
      return row !== undefined;
    } catch (err) {
      // Without the log, sending (possibly again) is the at-least-once choice.
      this.#logger?.warn({ err, subscriptionId, eventId }, 'cannot read the webhook delivery log; delivering anyway');
      return false;
    }
  }

  async #log(
    subscriptionId: string,
    event: DomainEvent,
    attempt: number,
    outcome: WebhookDelivery['outcome'],
    started: number,
    statusCode?: number,
    error?: string,
  ): Promise<void> {
    const seconds = (performance.now() - started) / 1000;
    this.#metrics?.attempts.inc({ outcome });
    this.#metrics?.seconds.observe(seconds);
    try {
      await this.#db
        .insertInto('webhook_deliveries')
        .values({
          subscription_id: subscriptionId,
          event_id: event.id,
          event_type: event.type,
          attempt,
          outcome,
          status_code: statusCode ?? null,
          error: error === undefined ? null : error.slice(0, 2000),
          duration_ms: Math.round(seconds * 1000),
          delivered_at: Date.now(),
        })
        .execute();
    } catch (err) {
      // The HTTP outcome stands whether or not it could be logged.
      this.#logger?.warn(
        { err, subscriptionId, eventId: event.id, attempt, outcome },
        'cannot write the webhook delivery log',
      );
    }
  }
}

function networkError(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  return `network error: ${cause?.code ?? cause?.message ?? (err as Error).message}`;
}

/** Retry-After as seconds or an HTTP date, in milliseconds from now. */
function retryAfterMs(value: string | null): number | undefined {
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function positiveInteger(value: number, field: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new ValidationError(`${field} must be a positive integer, got ${value}`, { field });
  }
  return value;
}

/**
 * Deletes up to `limit` delivery records older than `cutoff` (epoch ms), oldest first; returns how many. The log
 * also keeps an event from being delivered twice to a subscription, so an event replayed after its records were
 * purged is delivered again (at-least-once, as the port promises).
 */
export async function purgeDeliveries(db: Kysely<any>, cutoff: number, limit: number): Promise<number> {
  const webhooks = db as Kysely<WebhooksDatabase>;
  const result = await webhooks
    .deleteFrom('webhook_deliveries')
    .where(
      'id',
      'in',
      webhooks
        .selectFrom('webhook_deliveries')
        .select('id')
        .where('delivered_at', '<', cutoff)
        .orderBy('id')
        .limit(limit),
    )
    .executeTakeFirst();
  return Number(result.numDeletedRows);
}
