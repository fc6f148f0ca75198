import { type SpanContext as PlatformSpanContext, parseTraceContext, type TraceContext } from '@mlplane/core';
import {
  defaultTextMapGetter,
  defaultTextMapSetter,
  ROOT_CONTEXT,
  type SpanContext,
  TraceFlags,
  trace,
} from '@opentelemetry/api';
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
 * The trace context of the request's own span (a child of the caller's, or the root of a new trace), as the W3C
 * propagator writes it, for what the request logs and records. Undefined when the platform's tracer made ids
 * that are not W3C ids (a third-party Tracer), so a request never fails for its trace.
 */
export function requestTraceContext(
  span: PlatformSpanContext,
  parent: SpanContext | undefined,
): TraceContext | undefined {
  const carrier: Record<string, string> = {};
  const context = trace.setSpanContext(ROOT_CONTEXT, {
    traceId: span.traceId,
    spanId: span.spanId,
    // The caller's sampling decision travels on; a trace started here is marked sampled, since the platform's
    // tracer records every span it starts.
    traceFlags: parent?.traceFlags ?? TraceFlags.SAMPLED,
    ...(parent?.traceState ? { traceState: parent.traceState } : {}),
  });
  propagator.inject(context, carrier, defaultTextMapSetter);
  if (carrier.traceparent === undefined) return undefined;
  const traceparent = carrier.traceparent;
  // A tracestate beyond what events may carry (512 printable chars) is dropped; the trace itself goes on.
  for (const tracestate of carrier.tracestate ? [carrier.tracestate, undefined] : [undefined]) {
    try {
      return parseTraceContext({ traceparent, ...(tracestate ? { tracestate } : {}) });
    } catch {}
  }
  return undefined;
}
