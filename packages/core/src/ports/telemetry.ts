import { createServiceRef } from '../kernel/service-ref.js';

export { ConflictError, ValidationError } from './errors.js';

/** Prometheus metric names and label names (label names starting with `__` are reserved). */
export const METRIC_NAME_PATTERN = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
export const LABEL_NAME_PATTERN = /^(?!__)[a-zA-Z_][a-zA-Z0-9_]*$/;
/** Content type of `metricsText()`. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
/** Default histogram buckets in seconds (prom-client's defaults). */
export const DEFAULT_BUCKETS: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]);

export type LogBindings = Readonly<Record<string, unknown>>;

/** pino's call shapes: a message, or an object merged into the line followed by an optional message. */
export interface LogFn {
  (obj: object, msg?: string): void;
  (msg: string): void;
}

/**
 * Structured logger; a pino logger satisfies it. An `err` field holding an Error is serialized with its
 * stack and cause. Implementations scrub secret values before writing.
 */
export interface Logger {
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  /** A logger adding `bindings` to every line. */
  child(bindings: LogBindings): Logger;
}

/** Label values keyed by the metric's declared label names; every declared label must be given. */
export type Labels<L extends string> = Readonly<Record<L, string | number>>;

export interface MetricOptions<L extends string> {
  /** Snake case with a unit suffix, prefixed by the owner: `mlplane_jobs_submitted_total`, `s3_put_seconds`. */
  readonly name: string;
  readonly help: string;
  readonly labelNames?: readonly L[];
}

export interface Counter<L extends string = never> {
  /** Adds `value` (default 1); ValidationError for a negative value. */
  inc(...args: [L] extends [never] ? [value?: number] : [labels: Labels<L>, value?: number]): void;
}

export interface Gauge<L extends string = never> {
  set(...args: [L] extends [never] ? [value: number] : [labels: Labels<L>, value: number]): void;
  inc(...args: [L] extends [never] ? [value?: number] : [labels: Labels<L>, value?: number]): void;
  dec(...args: [L] extends [never] ? [value?: number] : [labels: Labels<L>, value?: number]): void;
}

export interface Histogram<L extends string = never> {
  observe(...args: [L] extends [never] ? [value: number] : [labels: Labels<L>, value: number]): void;
  /** Starts a timer; calling the returned function observes the elapsed seconds and returns them. */
  startTimer(...args: [L] extends [never] ? [] : [labels: Labels<L>]): () => number;
}

/**
 * Prometheus-style metrics. Declaring a metric twice with the same name, kind and label names returns the
 * same handle (plugins may declare in every init); any difference raises ConflictError. Bad names raise
 * ValidationError.
 */
export interface Metrics {
  counter<L extends string = never>(options: MetricOptions<L>): Counter<L>;
  gauge<L extends string = never>(options: MetricOptions<L>): Gauge<L>;
  histogram<L extends string = never>(
    options: MetricOptions<L> & { readonly buckets?: readonly number[] },
  ): Histogram<L>;
  /** Every metric in Prometheus text exposition format (PROMETHEUS_CONTENT_TYPE). */
  metricsText(): Promise<string>;
}

export type AttributeValue = string | number | boolean | readonly string[] | readonly number[] | readonly boolean[];
export type Attributes = Readonly<Record<string, AttributeValue>>;

/** W3C trace-context identifiers of a span. */
export interface SpanContext {
  /** 32 hex chars. */
  readonly traceId: string;
  /** 16 hex chars. */
  readonly spanId: string;
}

export interface Span {
  readonly context: SpanContext;
  setAttribute(key: string, value: AttributeValue): void;
  /** Records the error as an exception event and marks the span failed. */
  recordError(error: unknown): void;
  /** Idempotent; later calls and attribute changes after it are ignored. */
  end(): void;
}

export interface SpanOptions {
  /** Explicit parent; otherwise the span active in the current async context, if any. */
  readonly parent?: SpanContext;
  readonly kind?: 'internal' | 'server' | 'client' | 'producer' | 'consumer';
}

/** OpenTelemetry-compatible subset; the default is a no-op tracer whose spans still carry ids. */
export interface Tracer {
  /** Starts a span the caller must `end`; it does not become active for other code. */
  startSpan(name: string, attributes?: Attributes, options?: SpanOptions): Span;
  /** Runs `fn` with a new span active, ending it when `fn` settles and recording a thrown error (rethrown). */
  withSpan<T>(name: string, fn: (span: Span) => Promise<T>, attributes?: Attributes, options?: SpanOptions): Promise<T>;
}

/** Logs, metrics and traces of the whole platform. */
export interface Telemetry {
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly tracer: Tracer;
}

export const telemetryRef = createServiceRef<Telemetry>({ id: 'core.telemetry' });
