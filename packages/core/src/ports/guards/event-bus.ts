import { AsyncParallelHook } from 'tapable';
import { type GuardContext, intercept } from '../../kernel/port.js';
import type { DomainEvent, EventBus } from '../event-bus.js';
import { parseTraceContext, withTraceContext } from '../trace-context.js';

/** One call of a subscriber's handler, as `event.handled` reports it. */
export interface EventHandling {
  readonly group: string;
  readonly event: DomainEvent;
  /** Whether the handler resolved; a failed one is retried or dead-lettered by the bus. */
  readonly ok: boolean;
  /** How long the handler ran. */
  readonly seconds: number;
  /** Seconds from the event's `occurredAt` to the handler settling: how far behind the group is. */
  readonly lagSeconds: number;
}

export function createEventBusHooks() {
  return Object.freeze({
    /** A subscriber's handler settled for one delivery (each retry is one more call): consumer lag and failures. */
    handled: new AsyncParallelHook<[EventHandling]>(['handling']),
  });
}
export type EventBusHooks = ReturnType<typeof createEventBusHooks>;

/**
 * Runs every subscriber's handler inside the event's trace context (so what the handler logs and the events it
 * records continue the trace of the work that caused the event, and never that of whatever subscribed it), and
 * fires `event.handled` after each call.
 */
export function guardEventBus(bus: EventBus, context: GuardContext<EventBusHooks>): EventBus {
  const { hooks } = context;
  return intercept(bus, {
    subscribe(options) {
      const { group, handler } = options;
      const traced = (event: DomainEvent) => withTraceContext(traceOf(event), () => handler(event));
      return bus.subscribe({
        ...options,
        handler: async (event) => {
          if (!hooks.handled.isUsed()) return traced(event);
          const started = performance.now();
          let ok = false;
          try {
            await traced(event);
            ok = true;
          } finally {
            const occurred = Date.parse(event.occurredAt);
            const handling: EventHandling = {
              group,
              event,
              ok,
              seconds: (performance.now() - started) / 1000,
              lagSeconds: Number.isNaN(occurred) ? 0 : Math.max(0, (Date.now() - occurred) / 1000),
            };
            // A failing tap must not fail the delivery: the event was handled (or fails on its own account).
            await hooks.handled.promise(handling).catch((err: unknown) => {
              context.logger.error({ err, hook: 'event.handled', group }, 'hook event.handled failed');
            });
          }
        },
      });
    },
  });
}

/** The event's trace context when it is well formed; buses validate it on publish, so this is only a safety net. */
function traceOf(event: DomainEvent): DomainEvent['traceContext'] {
  const headers = event?.traceContext;
  if (headers === undefined) return undefined;
  try {
    parseTraceContext(headers);
    return headers;
  } catch {
    return undefined;
  }
}
