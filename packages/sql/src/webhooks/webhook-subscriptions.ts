import { randomBytes, randomUUID } from 'node:crypto';
import type { MetadataStore } from '@mlplane/core';
import {
  NotFoundError,
  SECRET_NAME_PATTERN,
  type SecretStore,
  ValidationError,
  validateNoControlCharacters,
  validateText,
} from '@mlplane/core';
import type { Kysely, Transaction } from 'kysely';
import { domainEvent, OUTBOX_MIGRATIONS, OUTBOX_OWNER, recordEvent } from '../outbox/outbox.js';
import { WEBHOOKS_MIGRATIONS, WEBHOOKS_OWNER, type WebhookSubscriptionTable, type WebhooksDatabase } from './schema.js';
import type { WebhookDelivery } from './webhook-dispatcher.js';

/** A receiver of events: where they are POSTed, which types, and which secret signs them. */
export interface WebhookSubscription {
  readonly id: string;
  /** http(s) URL the events are POSTed to. */
  readonly url: string;
  /** Exact types (`model.alias.set`) or prefixes (`model.*`); `*` alone means every event. */
  readonly eventTypes: readonly string[];
  /** Name of the signing secret in the SecretStore; its value is never returned after creation. */
  readonly secretName: string;
  readonly description: string;
  /** Inactive subscriptions keep their log but receive nothing. */
  readonly active: boolean;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface CreateWebhookInput {
  readonly url: string;
  readonly eventTypes: readonly string[];
  /**
   * An existing secret in the SecretStore to sign with. When absent, a random secret is generated, stored in the
   * SecretStore as `webhooks/<id>` and returned once by `create`.
   */
  readonly secretName?: string;
  readonly description?: string;
  readonly active?: boolean;
}

export interface UpdateWebhookInput {
  readonly url?: string;
  readonly eventTypes?: readonly string[];
  readonly secretName?: string;
  readonly description?: string;
  readonly active?: boolean;
}

export interface CreatedWebhook {
  readonly subscription: WebhookSubscription;
  /** The generated signing secret: shown this once, to configure the receiver. Absent when `secretName` was given. */
  readonly secret?: string;
}

const EVENT_TYPE = /^[a-z][a-z0-9]*(\.[a-z][a-zA-Z0-9]*)+$/;
const TYPE_PREFIX = /^[a-z][a-z0-9]*(\.[a-z][a-zA-Z0-9]*)*\.\*$/;
const MAX_URL_LENGTH = 2048;
const MAX_TYPES = 100;
const MAX_DESCRIPTION = 1000;

/**
 * Webhook subscriptions in the MetadataStore (migration owner `webhooks`). Every change records a
 * `webhook.subscription.*` domain event in the same transaction (without the secret, and with the URL's query
 * string removed since it may carry a token). Listeners registered with `onChange` (the dispatcher) hear about
 * changes made through this instance at once; other processes pick them up on their next refresh.
 */
export class WebhookSubscriptions {
  readonly #store: MetadataStore;
  readonly #secrets: SecretStore;
  readonly #listeners = new Set<() => void>();

  private constructor(store: MetadataStore, secrets: SecretStore) {
    this.#store = store;
    this.#secrets = secrets;
  }

  /** Applies the outbox and webhooks migrations, then returns a ready repository. */
  static async open(options: {
    readonly store: MetadataStore;
    readonly secrets: SecretStore;
  }): Promise<WebhookSubscriptions> {
    await options.store.migrate(OUTBOX_OWNER, OUTBOX_MIGRATIONS);
    await options.store.migrate(WEBHOOKS_OWNER, WEBHOOKS_MIGRATIONS);
    return new WebhookSubscriptions(options.store, options.secrets);
  }

  get #db(): Kysely<WebhooksDatabase> {
    return this.#store.db<WebhooksDatabase>();
  }

  /**
   * The subscription's row, locked until the transaction ends on Postgres (SQLite's write transactions already
   * exclude each other): an update or delete racing a delete then finds it gone, instead of changing nothing and
   * still recording an event.
   */
  #lockRow(trx: Transaction<WebhooksDatabase>, id: string): Promise<WebhookSubscriptionTable | undefined> {
    const q = trx.selectFrom('webhook_subscriptions').selectAll().where('id', '=', id);
    return (this.#store.dialect === 'postgres' ? q.forUpdate() : q).executeTakeFirst();
  }

  /** Calls `listener` after every change made through this instance; returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** ValidationError for a bad URL, type filter or secret name, or when no secret can be stored. */
  async create(input: CreateWebhookInput, actor?: string): Promise<CreatedWebhook> {
    if (typeof input !== 'object' || input === null) throw new ValidationError('create needs an input object');
    const url = validateUrl(input.url);
    const eventTypes = validateEventTypes(input.eventTypes);
    const description = validateDescription(input.description ?? '');
    const id = randomUUID();
    let secretName: string;
    let secret: string | undefined;
    if (input.secretName !== undefined) {
      secretName = await this.#existingSecret(input.secretName);
    } else {
      if (!this.#secrets.capabilities.writable || !this.#secrets.set) {
        throw new ValidationError(
          'the SecretStore is read-only, so no signing secret can be generated: create the secret there and pass its secretName',
          { field: 'secretName' },
        );
      }
      secretName = `webhooks/${id}`;
      secret = generateSecret();
      await this.#secrets.set(secretName, secret);
    }
    const now = Date.now();
    const row: WebhookSubscriptionTable = {
      id,
      url,
      event_types: JSON.stringify(eventTypes),
      secret_name: secretName,
      secret_generated: secret === undefined ? 0 : 1,
      description,
      active: input.active === false ? 0 : 1,
      created_at: now,
      updated_at: now,
    };
    try {
      await this.#store.transaction<void, WebhooksDatabase>(async (trx) => {
        await trx.insertInto('webhook_subscriptions').values(row).execute();
        await recordEvent(
          trx,
          domainEvent('webhook.subscription.created', subject(id), summary(row), { actor: actor ?? undefined }),
        );
      });
    } catch (err) {
      // A generated secret without its subscription would be a signing credential nothing owns or deletes.
      if (secret !== undefined) await this.#secrets.delete?.(secretName).catch(() => undefined);
      throw err;
    }
    this.#changed();
    const subscription = toSubscription(row);
    return secret === undefined ? { subscription } : { subscription, secret };
  }

  /** NotFoundError for an unknown id. */
  async get(id: string): Promise<WebhookSubscription> {
    const row = await this.#db.selectFrom('webhook_subscriptions').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw notFound(id);
    return toSubscription(row);
  }

  /** All subscriptions (or only active ones), oldest first. */
  async list(options: { readonly activeOnly?: boolean } = {}): Promise<readonly WebhookSubscription[]> {
    let query = this.#db.selectFrom('webhook_subscriptions').selectAll().orderBy('created_at').orderBy('id');
    if (options.activeOnly) query = query.where('active', '=', 1);
    return (await query.execute()).map(toSubscription);
  }

  /** Changes the given fields; NotFoundError for an unknown id, ValidationError as for `create`. */
  async update(id: string, changes: UpdateWebhookInput, actor?: string): Promise<WebhookSubscription> {
    const set: Partial<WebhookSubscriptionTable> = {};
    if (changes.url !== undefined) set.url = validateUrl(changes.url);
    if (changes.eventTypes !== undefined) set.event_types = JSON.stringify(validateEventTypes(changes.eventTypes));
    if (changes.description !== undefined) set.description = validateDescription(changes.description);
    if (changes.active !== undefined) set.active = changes.active ? 1 : 0;
    if (changes.secretName !== undefined) {
      set.secret_name = await this.#existingSecret(changes.secretName);
      set.secret_generated = 0;
    }
    const { row, replacedSecret } = await this.#store.transaction<
      { row: WebhookSubscriptionTable; replacedSecret: string | undefined },
      WebhooksDatabase
    >(async (trx) => {
      const before = await this.#lockRow(trx, id);
      if (!before) throw notFound(id);
      const after: WebhookSubscriptionTable = { ...before, ...set, updated_at: Date.now() };
      await trx
        .updateTable('webhook_subscriptions')
        .set({ ...set, updated_at: after.updated_at })
        .where('id', '=', id)
        .execute();
      await recordEvent(trx, domainEvent('webhook.subscription.updated', subject(id), summary(after), { actor }));
      const replaced = before.secret_generated === 1 && after.secret_name !== before.secret_name;
      return { row: after, replacedSecret: replaced ? before.secret_name : undefined };
    });
    if (replacedSecret) await this.#secrets.delete?.(replacedSecret);
    this.#changed();
    return toSubscription(row);
  }

  /**
   * Replaces the signing secret with a newly generated one (stored as `webhooks/<id>`) and returns it once; the
   * next attempt is signed with it, so update the receiver first or let it accept both for a while. A named
   * secret the subscription used before is left in the SecretStore. NotFoundError for an unknown id.
   */
  async rotateSecret(id: string, actor?: string): Promise<CreatedWebhook & { readonly secret: string }> {
    const set = this.#secrets.set?.bind(this.#secrets);
    if (!this.#secrets.capabilities.writable || !set) {
      throw new ValidationError('the SecretStore is read-only, so no signing secret can be generated', {
        field: 'secretName',
      });
    }
    // Fails with NotFoundError before any secret is written.
    await this.get(id);
    const secretName = `webhooks/${id}`;
    const secret = generateSecret();
    await set(secretName, secret);
    const row = await this.#store.transaction<WebhookSubscriptionTable, WebhooksDatabase>(async (trx) => {
      const updated = await trx
        .updateTable('webhook_subscriptions')
        .set({ secret_name: secretName, secret_generated: 1, updated_at: Date.now() })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirst();
      if (!updated) throw notFound(id);
      await recordEvent(
        trx,
        domainEvent(
          'webhook.subscription.updated',
          subject(id),
          { ...summary(updated), secretRotated: true },
          { actor },
        ),
      );
      return updated;
    });
    this.#changed();
    return { subscription: toSubscription(row), secret };
  }

  /** Deletes the subscription, its delivery log and a generated secret; idempotent. */
  async delete(id: string, actor?: string): Promise<void> {
    const removed = await this.#store.transaction<WebhookSubscriptionTable | undefined, WebhooksDatabase>(
      async (trx) => {
        const row = await this.#lockRow(trx, id);
        if (!row) return undefined;
        await trx.deleteFrom('webhook_deliveries').where('subscription_id', '=', id).execute();
        await trx.deleteFrom('webhook_subscriptions').where('id', '=', id).execute();
        await recordEvent(trx, domainEvent('webhook.subscription.deleted', subject(id), { id }, { actor }));
        return row;
      },
    );
    if (!removed) return;
    if (removed.secret_generated === 1) await this.#secrets.delete?.(removed.secret_name);
    this.#changed();
  }

  /**
   * The delivery log of a subscription (every HTTP attempt the dispatcher made, in any process), newest first,
   * optionally of one event; at most `limit` rows (default 100, at most 1000). NotFoundError for an unknown id.
   */
  async deliveries(
    id: string,
    options: { readonly eventId?: string; readonly limit?: number } = {},
  ): Promise<readonly WebhookDelivery[]> {
    if (
      options.limit !== undefined &&
      !(Number.isInteger(options.limit) && options.limit >= 1 && options.limit <= 1000)
    ) {
      throw new ValidationError('limit must be an integer from 1 to 1000', { field: 'limit' });
    }
    await this.get(id);
    return readDeliveries(this.#db, id, options);
  }

  async #existingSecret(name: string): Promise<string> {
    if (typeof name !== 'string' || !SECRET_NAME_PATTERN.test(name)) {
      throw new ValidationError(`secretName ${JSON.stringify(name)} is not a valid secret name`, {
        field: 'secretName',
      });
    }
    try {
      await this.#secrets.get(name);
    } catch (err) {
      if (err instanceof NotFoundError) {
        throw new ValidationError(`secret '${name}' does not exist in the SecretStore; create it first`, {
          field: 'secretName',
          cause: err,
        });
      }
      throw err;
    }
    return name;
  }

  #changed(): void {
    for (const listener of this.#listeners) listener();
  }
}

/** The delivery log rows of a subscription, newest first; shared by the dispatcher and the repository. */
export async function readDeliveries(
  db: Kysely<WebhooksDatabase>,
  subscriptionId: string,
  options: { readonly eventId?: string; readonly limit?: number },
): Promise<readonly WebhookDelivery[]> {
  let query = db
    .selectFrom('webhook_deliveries')
    .selectAll()
    .where('subscription_id', '=', subscriptionId)
    .orderBy('id', 'desc')
    .limit(options.limit ?? 100);
  if (options.eventId !== undefined) query = query.where('event_id', '=', options.eventId);
  return (await query.execute()).map((r) => ({
    subscriptionId: r.subscription_id,
    eventId: r.event_id,
    eventType: r.event_type,
    attempt: Number(r.attempt),
    outcome: r.outcome as WebhookDelivery['outcome'],
    ...(r.status_code !== null ? { statusCode: Number(r.status_code) } : {}),
    ...(r.error !== null ? { error: r.error } : {}),
    durationMs: Number(r.duration_ms),
    at: new Date(Number(r.delivered_at)),
  }));
}

/** 256 random bits, prefixed so that a leaked value is recognizable as a webhook secret. */
function generateSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

function subject(id: string): string {
  return `webhook:${id}`;
}

/** What change events carry: no secret, and the URL without its query string. */
function summary(row: WebhookSubscriptionTable) {
  const url = new URL(row.url);
  return {
    id: row.id,
    url: `${url.origin}${url.pathname}`,
    eventTypes: JSON.parse(row.event_types) as string[],
    active: row.active === 1,
  };
}

function notFound(id: string): NotFoundError {
  return new NotFoundError(`webhook subscription '${id}' does not exist`);
}

export function toSubscription(row: WebhookSubscriptionTable): WebhookSubscription {
  return {
    id: row.id,
    url: row.url,
    eventTypes: JSON.parse(row.event_types) as string[],
    secretName: row.secret_name,
    description: row.description,
    active: Number(row.active) === 1,
    createdAt: new Date(Number(row.created_at)),
    updatedAt: new Date(Number(row.updated_at)),
  };
}

/** ValidationError (field `url`) unless `url` is an absolute http(s) URL without credentials. */
export function validateUrl(url: unknown): string {
  if (typeof url !== 'string' || url.length === 0 || url.length > MAX_URL_LENGTH) {
    throw new ValidationError(`url must be a string of 1 to ${MAX_URL_LENGTH} characters`, { field: 'url' });
  }
  // The URL parser silently drops tabs and line breaks and trims outer spaces, so the URL stored and shown would
  // not be the one events are sent to.
  validateNoControlCharacters(url, 'url', 'url');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new ValidationError(`url '${url}' is not an absolute URL`, { field: 'url', cause });
  }
  if (url.includes(' ')) {
    throw new ValidationError("url must not contain spaces: percent-encode them as '%20'", { field: 'url' });
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ValidationError(`url must use http or https, not '${parsed.protocol.replace(/:$/, '')}'`, {
      field: 'url',
    });
  }
  if (parsed.username || parsed.password) {
    throw new ValidationError('url must not contain credentials; the signature authenticates the sender', {
      field: 'url',
    });
  }
  return url;
}

/** ValidationError (field `eventTypes`) unless a non-empty list of types, `prefix.*` filters, or `*`. */
export function validateEventTypes(types: unknown): string[] {
  if (!Array.isArray(types) || types.length === 0 || types.length > MAX_TYPES) {
    throw new ValidationError(`eventTypes must list 1 to ${MAX_TYPES} event types (or '*' for every event)`, {
      field: 'eventTypes',
    });
  }
  for (const t of types) {
    if (typeof t !== 'string' || !(t === '*' || EVENT_TYPE.test(t) || TYPE_PREFIX.test(t))) {
      throw new ValidationError(
        `event type ${JSON.stringify(t)} must be a type like 'model.alias.set', a prefix like 'model.*', or '*'`,
        { field: 'eventTypes' },
      );
    }
  }
  return [...new Set(types as string[])].sort();
}

function validateDescription(description: unknown): string {
  if (typeof description !== 'string' || description.length > MAX_DESCRIPTION) {
    throw new ValidationError(`description must be a string of at most ${MAX_DESCRIPTION} characters`, {
      field: 'description',
    });
  }
  validateText(description, 'description', 'description');
  return description;
}
