import { definePort } from '../kernel/port.js';
import { createServiceRef } from '../kernel/service-ref.js';
import { createEventBusHooks, guardEventBus } from './guards/event-bus.js';
import type { TraceContextHeaders } from './trace-context.js';

export { NotFoundError, UnavailableError, ValidationError } from './errors.js';

/**
 * A domain event: something that happened, typed and versioned. Events are immutable facts;
 * consumers must tolerate duplicates (delivery is at-least-once) by keying on `id`.
 */
export interface DomainEvent<TType extends string = string, TPayload = unknown> {
  /** Unique id (UUID); consumers deduplicate on it. */
  readonly id: string;
  /** Dotted name, past tense: `model.version.promoted`. */
  readonly type: TType;
  /** Schema version of `payload` for this `type`. */
  readonly version: number;
  /** ISO-8601 instant the change happened. */
  readonly occurredAt: string;
  /** The entity the event is about, e.g. `model:fraud/3`; ordering is kept per subject. */
  readonly subject: string;
  /** Who caused it (user or token id); absent for system actions. */
  readonly actor?: string;
  /** Tenant (project) the subject belongs to. */
  readonly project?: string;
  /**
   * The W3C trace context of the work that caused it (an HTTP request carrying `traceparent`), so a consumer can
   * continue the trace: the kernel runs every handler inside it (`withTraceContext`). Absent for untraced work.
   */
  readonly traceContext?: TraceContextHeaders;
  readonly payload: TPayload;
}

export interface EventBusCapabilities {
  /** Events survive a process restart. */
  readonly durable: boolean;
  /** Delivery order guaranteed for events of one subject. */
  readonly orderedPerSubject: boolean;
  /** A new group can read events published before it subscribed. */
  readonly replay: boolean;
}

export type EventHandler = (event: DomainEvent) => Promise<void>;

export interface SubscribeOptions {
  /** Consumer group: every group sees every event; within a group each event goes to one subscriber. */
  readonly group: string;
  /** Type filters: exact (`run.created`) or prefix (`model.*`); all events when absent. */
  readonly types?: readonly string[];
  readonly handler: EventHandler;
  /** Attempts before an event goes to the dead-letter list (default 5). */
  readonly maxAttempts?: number;
  /** Exponential backoff between attempts. */
  readonly backoff?: { readonly initialMs: number; readonly maxMs: number };
}

export interface Subscription {
  readonly group: string;
  /** Stops delivery after in-flight handlers finish. */
  close(): Promise<void>;
}

export interface DeadLetter {
  readonly group: string;
  readonly event: DomainEvent;
  readonly attempts: number;
  readonly lastError: string;
  readonly failedAt: string;
}

export interface EventBus {
  readonly capabilities: EventBusCapabilities;
  /** Resolves once the events are accepted (durably, where `capabilities.durable`). */
  publish(events: DomainEvent | readonly DomainEvent[]): Promise<void>;
  subscribe(options: SubscribeOptions): Promise<Subscription>;
  /** Events a group gave up on after `maxAttempts`, oldest first. */
  deadLetters(group: string, options?: { limit?: number }): Promise<readonly DeadLetter[]>;
  /** Re-delivers a dead letter to its group and removes it from the list. */
  redeliver(group: string, eventId: string): Promise<void>;
}

export const eventBusRef = createServiceRef<EventBus>({ id: 'core.eventBus' });

/**
 * The port as the kernel knows it: its hook (`event.handled`, under `platform.hooks.event`) and the guard that fires
 * it and runs each handler inside its event's trace context, for whichever bus is chosen.
 */
export const eventBusPort = definePort({
  ref: eventBusRef,
  hooksKey: 'event',
  createHooks: createEventBusHooks,
  guard: guardEventBus,
});

/** Matches an event type against a subscription filter (`model.*` is a prefix match). */
export function matchesEventType(type: string, filters: readonly string[] | undefined): boolean {
  if (!filters || filters.length === 0) return true;
  return filters.some((f) => (f.endsWith('.*') ? type.startsWith(f.slice(0, -1)) : f === type));
}
