import { AsyncLocalStorage } from 'node:async_hooks';
import { ValidationError } from './errors.js';

/**
 * The W3C trace context of the work in progress, so that what it causes (log lines, domain events) can name the
 * trace it belongs to. Whatever receives traced work (the HTTP API from a `traceparent` header, an event consumer
 * from the event's `traceContext`) runs it inside `withTraceContext`; `domainEvent` copies the context into every
 * event recorded inside, and the platform's logger adds `trace_id` and `span_id` to every line logged inside.
 */
export interface TraceContextHeaders {
  /** `00-<32 hex trace id>-<16 hex parent span id>-<2 hex flags>`, as W3C Trace Context defines it. */
  readonly traceparent: string;
  /** Vendor-specific entries, passed on unchanged. */
  readonly tracestate?: string;
}

export interface TraceContext extends TraceContextHeaders {
  readonly traceId: string;
  /** The span the work in progress runs in (the parent of whatever it starts). */
  readonly spanId: string;
}

/** Version 00 of the header; later versions may append fields after the flags, which a reader of 00 ignores. */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;
const ALL_ZERO = /^0+$/;
/** W3C caps tracestate at 32 list members; 512 chars is what the spec asks every vendor to accept. */
const TRACESTATE_MAX = 512;

/**
 * Parses trace context headers; ValidationError naming the field when the traceparent is malformed (an invalid
 * version `ff`, an all-zero trace or span id) or the tracestate is not printable ASCII up to 512 chars.
 */
export function parseTraceContext(headers: TraceContextHeaders): TraceContext {
  const match = typeof headers?.traceparent === 'string' ? TRACEPARENT.exec(headers.traceparent) : null;
  const [, version, traceId, spanId] = match ?? [];
  if (
    !match ||
    version === 'ff' ||
    (version === '00' && match[5]) ||
    ALL_ZERO.test(traceId!) ||
    ALL_ZERO.test(spanId!)
  ) {
    throw new ValidationError(
      `traceparent must be '00-<32 hex trace id>-<16 hex span id>-<2 hex flags>' with non-zero ids, got ${JSON.stringify(headers?.traceparent)}`,
      { field: 'traceparent' },
    );
  }
  const { tracestate } = headers;
  if (
    tracestate !== undefined &&
    (typeof tracestate !== 'string' || tracestate.length > TRACESTATE_MAX || !/^[\x20-\x7e]*$/.test(tracestate))
  ) {
    throw new ValidationError(`tracestate must be printable ASCII of at most ${TRACESTATE_MAX} chars`, {
      field: 'tracestate',
    });
  }
  return Object.freeze({
    traceparent: headers.traceparent,
    ...(tracestate ? { tracestate } : {}),
    traceId: traceId!,
    spanId: spanId!,
  });
}

const current = new AsyncLocalStorage<TraceContext | undefined>();

/**
 * Runs `fn` inside the trace `headers` name (nested calls replace it for their own extent); `undefined` runs it
 * outside any trace, so work started for one trace never carries another's. ValidationError for malformed headers.
 */
export function withTraceContext<T>(headers: TraceContextHeaders | undefined, fn: () => T): T {
  return current.run(headers === undefined ? undefined : parseTraceContext(headers), fn);
}

/** The trace of the work in progress; undefined outside `withTraceContext`. */
export function currentTraceContext(): TraceContext | undefined {
  return current.getStore();
}

/** The headers of a trace context, as events carry it. */
export function traceContextHeaders(context: TraceContext): TraceContextHeaders {
  return context.tracestate === undefined
    ? { traceparent: context.traceparent }
    : { traceparent: context.traceparent, tracestate: context.tracestate };
}
