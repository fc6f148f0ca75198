import { AsyncLocalStorage } from 'node:async_hooks';
import {
  ALL_PROJECTS,
  type LogContext,
  type Logger,
  type Metrics,
  type Platform,
  PROMETHEUS_CONTENT_TYPE,
  type Span,
  telemetryRef,
  withLogContext,
  withTraceContext,
} from '@mlplane/core';
import type { Hono } from 'hono';
import * as prom from 'prom-client';
import type { ApiEnv, ApiInternals, ApiObserver } from '../http/app.js';
import { actorOf } from '../http/auth.js';
import { incomingSpan, requestTraceContext } from './trace.js';

export interface TelemetryOptions {
  /** Where the Prometheus exposition is served, below the API's mount point; default `/metrics`. */
  readonly path?: string;
  /**
   * Serve `/metrics` without a token. Off by default: a scrape needs a Bearer token whose principal holds
   * `telemetry.read` in every project (`*`). Turn it on only where the network keeps strangers out of the port.
   */
  readonly publicMetrics?: boolean;
  /** prom-client's default process and Node.js metrics (CPU, memory, event loop lag, GC); default true. */
  readonly processMetrics?: boolean;
}

/** What `createApi` takes: `createApi(v1Routes, { platform, ...telemetry })`. */
export interface ServerTelemetry {
  /** Request metrics, and the trace and log context of each request. */
  readonly observer: ApiObserver;
  /** Mounts the metrics route. */
  readonly mount: readonly ((app: Hono<ApiEnv>, api: ApiInternals) => void)[];
  /** The platform's logger for the HTTP layer's own lines (`component: http`). */
  readonly logger: Logger;
  /** The whole exposition: the platform's metrics and the process metrics, in Prometheus text format. */
  metricsText(): Promise<string>;
}

/** Route label of requests that matched no route, so probes of random paths cannot grow the label set. */
export const UNMATCHED_ROUTE = 'unmatched';

/** Latency buckets in seconds: fine below 10 ms, where the API's hot paths answer. */
const LATENCY_BUCKETS = Object.freeze([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
/** Consumer lag buckets in seconds: from a healthy relay's sub-second to an outage's minutes. */
const LAG_BUCKETS = Object.freeze([0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900]);

/** What the request in progress carries for the observer's later calls. */
interface RequestState {
  readonly span: Span;
  readonly log: LogContext;
}

/** Platforms whose hooks are tapped already, so a second telemetry on the same platform does not count twice. */
const tapped = new WeakSet<object>();

/**
 * The server's telemetry over a started platform. Metrics are declared on the platform's Telemetry port, so
 * `/metrics` serves them beside every plugin's (outbox relay, webhooks, caches) and a host that swaps the Telemetry
 * provider gets them too:
 * - HTTP: requests, latency and errors per route template and method (from `observer.onResponse`);
 * - ingest: metrics, params and tags logged, counted at the ExperimentTracker port (`run.logged`), so /api/v1, the
 *   MLflow-compatible API and in-process callers all count;
 * - event consumers: lag and handler failures per consumer group, at the EventBus port (`event.handled`).
 * Each request runs in a span of the platform's tracer, a child of the caller's W3C `traceparent` when one is sent;
 * log lines written during the request carry `requestId`, `actor`, `trace_id` and `span_id`, and domain events
 * recorded during it carry the trace context (`event.traceContext`).
 */
export async function createTelemetry(
  platform: Pick<Platform, 'get' | 'hooks'>,
  options: TelemetryOptions = {},
): Promise<ServerTelemetry> {
  const telemetry = await platform.get(telemetryRef);
  const metrics = telemetry.metrics;
  const http = declareHttpMetrics(metrics);
  tapPorts(platform, metrics);

  const processRegistry = new prom.Registry();
  if (options.processMetrics ?? true) prom.collectDefaultMetrics({ register: processRegistry });
  const metricsText = async () => {
    const [own, processText] = await Promise.all([metrics.metricsText(), processRegistry.metrics()]);
    return `${own.trimEnd()}\n${processText}`;
  };

  const active = new AsyncLocalStorage<RequestState>();
  const observer: ApiObserver = {
    around: (request, handle) => {
      const parent = incomingSpan(request.headers);
      http.inFlight.inc();
      return telemetry.tracer
        .withSpan(
          `HTTP ${request.method}`,
          (span) => {
            const log: LogContext = { requestId: request.requestId };
            const traced = () => active.run({ span, log }, () => withLogContext(log, handle));
            return withTraceContext(requestTraceContext(span.context, parent), traced);
          },
          { 'http.request.method': request.method, 'mlplane.request_id': request.requestId },
          { kind: 'server', ...(parent ? { parent: { traceId: parent.traceId, spanId: parent.spanId } } : {}) },
        )
        .finally(() => http.inFlight.dec());
    },
    onAuthenticated: (principal) => {
      const state = active.getStore();
      if (state) state.log.actor = actorOf(principal);
    },
    onResponse: (event) => {
      const route = event.route ?? UNMATCHED_ROUTE;
      const status = String(event.status);
      http.requests.inc({ method: event.method, route, status });
      http.duration.observe({ method: event.method, route }, event.seconds);
      if (event.status >= 400) {
        http.errors.inc({ method: event.method, route, status, code: event.code ?? 'UNKNOWN' });
      }
      const span = active.getStore()?.span;
      span?.setAttribute('http.route', route);
      span?.setAttribute('http.response.status_code', event.status);
      if (event.status >= 500) span?.recordError(new Error(`${event.code ?? 'INTERNAL'} (HTTP ${event.status})`));
    },
  };

  const path = options.path ?? '/metrics';
  const mount = (app: Hono<ApiEnv>, api: ApiInternals) => {
    app.get(path, async (c) => {
      c.set('route', path);
      if (!options.publicMetrics) {
        const principal = await api.authenticate(c);
        await api.services.authorizer.require(principal, 'telemetry.read', {
          project: ALL_PROJECTS,
          kind: 'telemetry',
        });
      }
      return c.body(await metricsText(), 200, { 'content-type': PROMETHEUS_CONTENT_TYPE });
    });
  };

  return {
    observer,
    mount: [mount],
    logger: telemetry.logger.child({ component: 'http' }),
    metricsText,
  };
}

function declareHttpMetrics(metrics: Metrics) {
  return {
    requests: metrics.counter({
      name: 'mlplane_http_requests_total',
      help: 'HTTP requests answered, by method, route template and status',
      labelNames: ['method', 'route', 'status'],
    }),
    duration: metrics.histogram({
      name: 'mlplane_http_request_duration_seconds',
      help: 'Time from receiving an HTTP request to its answer, by method and route template',
      labelNames: ['method', 'route'],
      buckets: LATENCY_BUCKETS,
    }),
    errors: metrics.counter({
      name: 'mlplane_http_errors_total',
      help: "HTTP requests answered with a 4xx or 5xx, by method, route template, status and the error body's code",
      labelNames: ['method', 'route', 'status', 'code'],
    }),
    inFlight: metrics.gauge({
      name: 'mlplane_http_requests_in_flight',
      help: 'HTTP requests being handled now',
    }),
  };
}

/** Taps the ports' hooks once per platform: ingest at the ExperimentTracker, consumer lag at the EventBus. */
function tapPorts(platform: Pick<Platform, 'hooks'>, metrics: Metrics): void {
  if (tapped.has(platform.hooks)) return;
  tapped.add(platform.hooks);
  const ingested = metrics.counter({
    name: 'mlplane_tracking_ingested_total',
    help: 'Metrics, params and tags logged to runs, by kind (metric, param, tag), whichever API logged them',
    labelNames: ['kind'],
  });
  const lag = metrics.histogram({
    name: 'mlplane_event_consumer_lag_seconds',
    help: "Seconds from a domain event's occurrence to a consumer group handling it, by group",
    labelNames: ['group'],
    buckets: LAG_BUCKETS,
  });
  const failures = metrics.counter({
    name: 'mlplane_event_handler_failures_total',
    help: 'Event handler calls that failed (the bus retries or dead-letters the event), by consumer group',
    labelNames: ['group'],
  });
  platform.hooks.run.logged.tap('telemetry', (_runId, batch) => {
    if (batch.metrics?.length) ingested.inc({ kind: 'metric' }, batch.metrics.length);
    if (batch.params?.length) ingested.inc({ kind: 'param' }, batch.params.length);
    if (batch.tags?.length) ingested.inc({ kind: 'tag' }, batch.tags.length);
  });
  platform.hooks.event.handled.tap('telemetry', (handling) => {
    if (handling.ok) lag.observe({ group: handling.group }, handling.lagSeconds);
    else failures.inc({ group: handling.group });
  });
}
