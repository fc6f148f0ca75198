import { createHash } from 'node:crypto';
import type { AuditLog, AuditRecord, DomainEvent, EventHandler, JsonValue } from '@mlplane/core';
import { AUDIT_LIMITS } from '@mlplane/core';

/** Actor recorded for events that name none (system actions). */
export const SYSTEM_ACTOR = 'system';
/** Project recorded for events that carry none, unless the caller names another. */
export const DEFAULT_AUDIT_PROJECT = 'default';

/**
 * The audit entry for a domain event: the event log is the audit trail. The action is the event type, the
 * resource its subject (with `/<version>` for model version events, as `model:fraud/3`), the outcome `succeeded`
 * (an event exists only for a committed change), and the details keep the event's id, version, subject and payload
 * (a payload too large for an audit entry is kept as its size and sha256).
 */
export function auditFromEvent(
  event: DomainEvent,
  options: { readonly defaultProject?: string | undefined } = {},
): AuditRecord {
  return {
    actor: event.actor ?? SYSTEM_ACTOR,
    action: event.type,
    resource: resourceOf(event),
    project: event.project ?? options.defaultProject ?? DEFAULT_AUDIT_PROJECT,
    outcome: 'succeeded',
    at: isoMillis(event.occurredAt),
    details: {
      eventId: event.id,
      eventVersion: event.version,
      subject: event.subject,
      payload: boundedPayload(toJson(event.payload)),
    },
  };
}

/** Room left in the details for the event's id, version and subject. */
const PAYLOAD_BUDGET_BYTES = AUDIT_LIMITS.detailsBytes - 4096;

/**
 * The payload as the entry keeps it: whole when it fits the audit detail limit, otherwise its size and sha256 (of
 * its JSON), which still tie the entry to the event (e.g. a run.params.logged of 100 long params) without copying it.
 */
function boundedPayload(payload: JsonValue): JsonValue {
  const json = JSON.stringify(payload);
  const bytes = Buffer.byteLength(json, 'utf8');
  if (bytes <= PAYLOAD_BUDGET_BYTES) return payload;
  return {
    omitted: `the payload takes ${bytes} bytes as JSON, beyond what an audit entry keeps (${PAYLOAD_BUDGET_BYTES})`,
    bytes,
    sha256: createHash('sha256').update(json).digest('hex'),
  };
}

/**
 * An EventBus handler that audits every event it receives. With a log that has `appendEvent` (SqlAuditLog) each
 * event is recorded once however often it is delivered; other logs get one `append` per delivery.
 */
export function auditEventHandler(
  log: AuditLog & { appendEvent?: (event: DomainEvent) => Promise<unknown> },
  options: { readonly defaultProject?: string } = {},
): EventHandler {
  return async (event) => {
    if (log.appendEvent) await log.appendEvent(event);
    else await log.append(auditFromEvent(event, options));
  };
}

function resourceOf(event: DomainEvent): string {
  const payload = event.payload as { readonly name?: unknown; readonly version?: unknown } | null;
  if (
    event.subject.startsWith('model:') &&
    event.type.startsWith('model.version.') &&
    typeof payload?.name === 'string' &&
    typeof payload.version === 'number'
  ) {
    return `model:${payload.name}/${payload.version}`;
  }
  return event.subject;
}

/** The audit log wants `2025-03-01T12:00:00.000Z`; events may carry any ISO-8601 instant. */
function isoMillis(occurredAt: string): string {
  const ms = Date.parse(occurredAt);
  return Number.isNaN(ms) ? new Date().toISOString() : new Date(ms).toISOString();
}

/** Payloads went through JSON in the outbox; doing the same here drops what JSON cannot hold. */
function toJson(payload: unknown): JsonValue {
  if (payload === undefined) return null;
  return JSON.parse(
    JSON.stringify(payload, (_key, value) => (typeof value === 'bigint' ? value.toString() : value)),
  ) as JsonValue;
}
