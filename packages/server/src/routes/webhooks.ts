import type { DomainEvent } from '@mlplane/core';
import {
  WEBHOOK_GROUP_PREFIX,
  type WebhookDelivery,
  type WebhookSubscription,
  type WebhookSubscriptions,
} from '@mlplane/sql';
import { z } from 'zod';
import { actorOf } from '../http/auth.js';
import { HttpError } from '../http/errors.js';
import { defineRoute } from '../http/route.js';
import type { ApiServices } from '../http/services.js';
import { iso, isoDate } from './wire.js';

const subscriptionSchema = z.object({
  id: z.string(),
  url: z.string(),
  eventTypes: z.array(z.string()),
  secretName: z.string(),
  description: z.string(),
  active: z.boolean(),
  createdAt: isoDate,
  updatedAt: isoDate,
});
const subscriptionWire = (s: WebhookSubscription): z.infer<typeof subscriptionSchema> => ({
  id: s.id,
  url: s.url,
  eventTypes: [...s.eventTypes],
  secretName: s.secretName,
  description: s.description,
  active: s.active,
  createdAt: iso(s.createdAt),
  updatedAt: iso(s.updatedAt),
});
const createdSchema = z.object({ subscription: subscriptionSchema, secret: z.string().optional() });

const deliverySchema = z.object({
  subscriptionId: z.string(),
  eventId: z.string(),
  eventType: z.string(),
  attempt: z.number().int(),
  outcome: z.enum(['delivered', 'retrying', 'failed']),
  statusCode: z.number().int().optional(),
  error: z.string().optional(),
  durationMs: z.number(),
  at: isoDate,
});
const deliveryWire = (d: WebhookDelivery): z.infer<typeof deliverySchema> => ({
  subscriptionId: d.subscriptionId,
  eventId: d.eventId,
  eventType: d.eventType,
  attempt: d.attempt,
  outcome: d.outcome,
  ...(d.statusCode !== undefined ? { statusCode: d.statusCode } : {}),
  ...(d.error !== undefined ? { error: d.error } : {}),
  durationMs: d.durationMs,
  at: iso(d.at),
});

const eventSchema = z.object({
  id: z.string(),
  type: z.string(),
  version: z.number().int(),
  occurredAt: z.string(),
  subject: z.string(),
  actor: z.string().optional(),
  project: z.string().optional(),
  payload: z.unknown(),
});
const eventWire = (e: DomainEvent): z.infer<typeof eventSchema> => ({
  id: e.id,
  type: e.type,
  version: e.version,
  occurredAt: e.occurredAt,
  subject: e.subject,
  ...(e.actor !== undefined ? { actor: e.actor } : {}),
  ...(e.project !== undefined ? { project: e.project } : {}),
  payload: e.payload,
});
const deadLetterSchema = z.object({
  event: eventSchema,
  attempts: z.number().int(),
  lastError: z.string(),
  failedAt: z.string(),
});

// The repository validates URLs, type filters and secret names itself (ValidationError naming the field); the
// schemas here check the JSON shapes and bound the sizes.
const url = z.string().min(1).max(2048);
const eventTypes = z.array(z.string().max(256)).min(1).max(100);
const secretName = z.string().min(1).max(255);
const description = z.string().max(1000);
const idParams = z.object({ id: z.uuid() });

/** The subscriptions, or 501 on a platform without the SQL management layer that keeps them. */
function webhooksOf(services: ApiServices): WebhookSubscriptions {
  if (!services.webhooks) {
    throw new HttpError(501, 'NOT_IMPLEMENTED', 'this platform keeps no webhook subscriptions (no management plugin)');
  }
  return services.webhooks;
}

/**
 * Webhook subscriptions receive the events of every project, so they are the platform's: changing them (which
 * sends events to a URL of the caller's choosing, signed with a SecretStore secret) takes `admin` in every project,
 * reading them and their delivery log takes audit.read there.
 */
export const webhookRoutes = [
  defineRoute({
    operationId: 'createWebhook',
    method: 'POST',
    path: '/webhooks',
    summary: 'Subscribe a URL to events (types, `prefix.*` or `*`); a generated signing secret is returned once',
    tag: 'webhooks',
    permission: 'admin',
    scope: 'platform',
    body: z
      .object({
        url,
        eventTypes,
        secretName: secretName.optional(),
        description: description.optional(),
        active: z.boolean().optional(),
      })
      .strict(),
    response: createdSchema,
    status: 201,
    async handle({ body, principal, services }) {
      const created = await webhooksOf(services).create(body, actorOf(principal));
      return {
        subscription: subscriptionWire(created.subscription),
        ...(created.secret ? { secret: created.secret } : {}),
      };
    },
  }),
  defineRoute({
    operationId: 'listWebhooks',
    method: 'GET',
    path: '/webhooks',
    summary: 'Webhook subscriptions, oldest first (never their secrets)',
    tag: 'webhooks',
    permission: 'audit.read',
    scope: 'platform',
    query: z.object({ activeOnly: z.enum(['true', 'false']).optional() }),
    response: z.object({ items: z.array(subscriptionSchema) }),
    async handle({ query, services }) {
      const items = await webhooksOf(services).list({ activeOnly: query.activeOnly === 'true' });
      return { items: items.map(subscriptionWire) };
    },
  }),
  defineRoute({
    operationId: 'getWebhook',
    method: 'GET',
    path: '/webhooks/{id}',
    summary: 'A webhook subscription',
    tag: 'webhooks',
    permission: 'audit.read',
    scope: 'platform',
    params: idParams,
    response: subscriptionSchema,
    async handle({ params, services }) {
      return subscriptionWire(await webhooksOf(services).get(params.id));
    },
  }),
  defineRoute({
    operationId: 'updateWebhook',
    method: 'PATCH',
    path: '/webhooks/{id}',
    summary: 'Change a subscription’s URL, event types, signing secret, description or active flag',
    tag: 'webhooks',
    permission: 'admin',
    scope: 'platform',
    params: idParams,
    body: z
      .object({
        url: url.optional(),
        eventTypes: eventTypes.optional(),
        secretName: secretName.optional(),
        description: description.optional(),
        active: z.boolean().optional(),
      })
      .strict(),
    response: subscriptionSchema,
    async handle({ params, body, principal, services }) {
      return subscriptionWire(await webhooksOf(services).update(params.id, body, actorOf(principal)));
    },
  }),
  defineRoute({
    operationId: 'deleteWebhook',
    method: 'DELETE',
    path: '/webhooks/{id}',
    summary: 'Delete a subscription with its delivery log and generated secret (idempotent)',
    tag: 'webhooks',
    permission: 'admin',
    scope: 'platform',
    params: idParams,
    response: 'empty',
    async handle({ params, principal, services }) {
      await webhooksOf(services).delete(params.id, actorOf(principal));
      return undefined;
    },
  }),
  defineRoute({
    operationId: 'rotateWebhookSecret',
    method: 'POST',
    path: '/webhooks/{id}/rotate-secret',
    summary: 'Replace the signing secret with a generated one, returned once',
    tag: 'webhooks',
    permission: 'admin',
    scope: 'platform',
    params: idParams,
    response: z.object({ subscription: subscriptionSchema, secret: z.string() }),
    async handle({ params, principal, services }) {
      const rotated = await webhooksOf(services).rotateSecret(params.id, actorOf(principal));
      return { subscription: subscriptionWire(rotated.subscription), secret: rotated.secret };
    },
  }),
  defineRoute({
    operationId: 'listWebhookDeliveries',
    method: 'GET',
    path: '/webhooks/{id}/deliveries',
    summary: 'The delivery log of a subscription (every HTTP attempt), newest first; ?eventId= for one event',
    tag: 'webhooks',
    permission: 'audit.read',
    scope: 'platform',
    params: idParams,
    query: z.object({
      eventId: z.string().min(1).max(255).optional(),
      maxResults: z.coerce.number().int().min(1).max(1000).optional(),
    }),
    response: z.object({ items: z.array(deliverySchema) }),
    async handle({ params, query, services }) {
      const items = await webhooksOf(services).deliveries(params.id, {
        ...(query.eventId ? { eventId: query.eventId } : {}),
        ...(query.maxResults ? { limit: query.maxResults } : {}),
      });
      return { items: items.map(deliveryWire) };
    },
  }),
  defineRoute({
    operationId: 'listWebhookDeadLetters',
    method: 'GET',
    path: '/webhooks/{id}/dead-letters',
    summary: 'Events the dispatcher gave up on for a subscription (after its attempts), oldest first',
    tag: 'webhooks',
    permission: 'audit.read',
    scope: 'platform',
    params: idParams,
    query: z.object({ maxResults: z.coerce.number().int().min(1).max(1000).optional() }),
    response: z.object({ items: z.array(deadLetterSchema) }),
    async handle({ params, query, services }) {
      await webhooksOf(services).get(params.id);
      const letters = await services.events.deadLetters(`${WEBHOOK_GROUP_PREFIX}${params.id}`, {
        limit: query.maxResults ?? 100,
      });
      return {
        items: letters.map((l) => ({
          event: eventWire(l.event),
          attempts: l.attempts,
          lastError: l.lastError,
          failedAt: l.failedAt,
        })),
      };
    },
  }),
  defineRoute({
    operationId: 'redeliverWebhookEvent',
    method: 'POST',
    path: '/webhooks/{id}/dead-letters/{eventId}/redeliver',
    summary: 'Send a dead-lettered event to its subscription again (after the receiver was fixed)',
    tag: 'webhooks',
    permission: 'admin',
    scope: 'platform',
    params: idParams.extend({ eventId: z.string().min(1).max(255) }),
    response: 'empty',
    async handle({ params, services }) {
      await webhooksOf(services).get(params.id);
      await services.events.redeliver(`${WEBHOOK_GROUP_PREFIX}${params.id}`, params.eventId);
      return undefined;
    },
  }),
];
