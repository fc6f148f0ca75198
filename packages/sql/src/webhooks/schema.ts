import type { Migration } from '@mlplane/core';
import type { Generated } from 'kysely';
import * as createWebhooks from './migrations/20261127T110000_create_webhooks.js';

/** Owner of the webhook tables' migrations. */
export const WEBHOOKS_OWNER = 'webhooks';

export const WEBHOOKS_MIGRATIONS: Readonly<Record<string, Migration>> = Object.freeze({
  '20261127T110000_create_webhooks': createWebhooks,
});

/** Times are epoch milliseconds; booleans are 0/1 smallints so that both dialects bind them the same way. */
export interface WebhookSubscriptionTable {
  id: string;
  url: string;
  /** JSON array of type filters. */
  event_types: string;
  /** Name of the signing secret in the SecretStore; the value is never stored here. */
  secret_name: string;
  /** 1 when the platform generated the secret (and deletes it with the subscription). */
  secret_generated: number;
  description: string;
  active: number;
  created_at: number;
  updated_at: number;
}

export interface WebhookDeliveryTable {
  id: Generated<number>;
  subscription_id: string;
  event_id: string;
  event_type: string;
  /** 1 for the first try of an event. */
  attempt: number;
  /** `delivered`, `retrying` (another attempt follows) or `failed` (given up: dead-lettered). */
  outcome: string;
  status_code: number | null;
  error: string | null;
  duration_ms: number;
  delivered_at: number;
}

export interface WebhooksDatabase {
  webhook_subscriptions: WebhookSubscriptionTable;
  webhook_deliveries: WebhookDeliveryTable;
}
