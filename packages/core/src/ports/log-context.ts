import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * Fields the platform's logger adds to every line logged during a piece of work (the HTTP API's `requestId`), so
 * a line written deep inside a port operation still says which request it served. The actor (`actingAs`) and the
 * trace (`withTraceContext`) are added from their own contexts; this one carries the rest.
 */
export type LogContext = Record<string, string | number | boolean | undefined>;

const current = new AsyncLocalStorage<LogContext>();

/**
 * Runs `fn` with `fields` added to every line the platform's logger writes inside it (nested calls replace them for
 * their own extent). The caller keeps the object and may set fields later, e.g. the actor once the request is
 * authenticated. Fields given to a log call explicitly win over these.
 */
export function withLogContext<T>(fields: LogContext, fn: () => T): T {
  return current.run(fields, fn);
}

/** The fields of the work in progress; undefined outside `withLogContext`. */
export function currentLogContext(): LogContext | undefined {
  return current.getStore();
}
