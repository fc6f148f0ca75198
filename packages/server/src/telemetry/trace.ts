import { type SpanContext as PlatformSpanContext, parseTraceContext, type TraceContext } from '@mlplane/core';
import { defaultTextMapGetter, ROOT_CONTEXT, type SpanContext, TraceFlags, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';

const propagator = new W3CTraceContextPropagator();

/**
 * The caller's span from a request's `traceparent` and `tracestate` headers, by the W3C propagator's rules: a
 * missing or malformed header (wrong length, version ff, all-zero ids) means no parent, and the request starts a
 * trace of its own.
 */
export function incomingSpan(headers: Headers): SpanContext | undefined {
  const carrier: Record<string, string> = {};
  const traceparent = headers.get('traceparent');
  const tracestate = headers.get('tracestate');
  if (traceparent === null) return undefined;
  carrier.traceparent = traceparent;
  if (tracestate !== null) carrier.tracestate = tracestate;
  return trace.getSpanContext(propagator.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter));
}

/**
 * The trace context of the request's own span (a child of the caller's, or the root of a new trace), for what the
 * request logs and records: version 00 of the header, the caller's flags (a trace started here is marked sampled,
 * since the platform's tracer records every span it starts) and the caller's tracestate as the propagator parsed it.
 * Undefined when the platform's tracer made ids that are not W3C ids (a third-party Tracer), so a request never
 * fails for its trace.
 */
export function requestTraceContext(
  span: PlatformSpanContext,
  parent: SpanContext | undefined,
): TraceContext | undefined {
  const flags = (parent?.traceFlags ?? TraceFlags.SAMPLED).toString(16).padStart(2, '0');
  const traceparent = `00-${span.traceId}-${span.spanId}-${flags}`;
  const tracestate = parent?.traceState?.serialize();
  // A tracestate beyond what events may carry (512 printable chars) is dropped; the trace itself goes on.
  for (const state of tracestate ? [tracestate, undefined] : [undefined]) {
    try {
      return parseTraceContext({ traceparent, ...(state ? { tracestate: state } : {}) });
    } catch {}
  }
  return undefined;
}
