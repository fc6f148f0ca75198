import { type DomainEvent, ValidationError } from '../../ports/event-bus.js';
import { parseTraceContext, traceContextHeaders } from '../../ports/trace-context.js';

/**
 * Validation and wire format shared by the broker-backed event buses. The rules are the ones the
 * in-process bus applies, so an event one implementation accepts every implementation accepts.
 */

const EVENT_TYPE = /^[a-z][a-z0-9]*(\.[a-z][a-zA-Z0-9]*)+$/;
const TYPE_PREFIX_FILTER = /^[a-z][a-z0-9]*(\.[a-z][a-zA-Z0-9]*)*\.\*$/;
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

/** Whether `filter` is an event type (`run.created`) or a type prefix (`model.*`). */
export function isTypeFilter(filter: unknown): boolean {
  return typeof filter === 'string' && (EVENT_TYPE.test(filter) || TYPE_PREFIX_FILTER.test(filter));
}

/**
 * Validates a publish argument as a whole and returns frozen JSON copies, so a bad event rejects
 * the batch before anything reaches the broker.
 */
export function acceptBatch(events: DomainEvent | readonly DomainEvent[]): readonly DomainEvent[] {
  const batch = (Array.isArray(events) ? events : [events]) as readonly DomainEvent[];
  return batch.map((event, i) => acceptEvent(event, batch.length > 1 ? `events[${i}]` : 'event'));
}

/** Validates one event and returns a deep-frozen JSON copy; `where` names it in error messages. */
export function acceptEvent(event: DomainEvent, where: string): DomainEvent {
  const fail = (field: string, rule: string) =>
    new ValidationError(`${where}.${field} ${rule}`, { field: `${where}.${field}` });
  if (typeof event !== 'object' || event === null) {
    throw new ValidationError(`${where} must be an object`, { field: where });
  }
  if (typeof event.id !== 'string' || event.id === '') throw fail('id', 'must be a non-empty string (a UUID)');
  if (typeof event.type !== 'string' || !EVENT_TYPE.test(event.type)) {
    throw fail(
      'type',
      `must be a dotted lower-case name like 'model.version.promoted', got ${JSON.stringify(event.type)}`,
    );
  }
  if (!Number.isInteger(event.version) || event.version < 1) {
    throw fail('version', `must be a positive integer, got ${JSON.stringify(event.version)}`);
  }
  if (
    typeof event.occurredAt !== 'string' ||
    !ISO_INSTANT.test(event.occurredAt) ||
    Number.isNaN(Date.parse(event.occurredAt))
  ) {
    throw fail(
      'occurredAt',
      `must be an ISO-8601 instant like '2024-05-01T12:00:00.000Z', got ${JSON.stringify(event.occurredAt)}`,
    );
  }
  if (typeof event.subject !== 'string' || event.subject === '') {
    throw fail('subject', "must be a non-empty string naming the entity, e.g. 'model:fraud/3'");
  }
  if (event.actor !== undefined && typeof event.actor !== 'string') throw fail('actor', 'must be a string when set');
  if (event.project !== undefined && typeof event.project !== 'string') {
    throw fail('project', 'must be a string when set');
  }
  let traceContext: DomainEvent['traceContext'];
  if (event.traceContext !== undefined) {
    try {
      traceContext = traceContextHeaders(parseTraceContext(event.traceContext));
    } catch (err) {
      throw new ValidationError(`${where}.traceContext: ${(err as Error).message}`, {
        field: `${where}.traceContext`,
        cause: err,
      });
    }
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(event.payload);
  } catch (err) {
    throw new ValidationError(
      `${where}.payload must be JSON-serializable: ${err instanceof Error ? err.message : err}`,
      { field: `${where}.payload`, cause: err },
    );
  }
  if (json === undefined) throw fail('payload', 'must be JSON-serializable (use null for no payload)');
  const copy: DomainEvent = {
    id: event.id,
    type: event.type,
    version: event.version,
    occurredAt: event.occurredAt,
    subject: event.subject,
    ...(event.actor === undefined ? {} : { actor: event.actor }),
    ...(event.project === undefined ? {} : { project: event.project }),
    ...(traceContext === undefined ? {} : { traceContext }),
    payload: JSON.parse(json) as unknown,
  };
  return deepFreeze(copy);
}

/** The wire form of an accepted event: its JSON text. */
export function encodeEvent(event: DomainEvent): string {
  return JSON.stringify(event);
}

/**
 * Parses and re-validates an event read from a broker. Anything else may have written to the
 * topic or stream, so a malformed record yields an error message instead of throwing.
 */
export function decodeEvent(text: string | null | undefined): DomainEvent | { readonly malformed: string } {
  if (text === null || text === undefined) return { malformed: 'the record has no event body' };
  try {
    return acceptEvent(JSON.parse(text) as DomainEvent, 'event');
  } catch (err) {
    return { malformed: err instanceof Error ? err.message : String(err) };
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
