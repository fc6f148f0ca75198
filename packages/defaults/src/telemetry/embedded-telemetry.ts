import { AsyncLocalStorage } from 'node:async_hooks';
import { randomFillSync } from 'node:crypto';
import {
  type Attributes,
  type AttributeValue,
  ConflictError,
  type Counter,
  DEFAULT_BUCKETS,
  type Gauge,
  type Histogram,
  LABEL_NAME_PATTERN,
  type Logger,
  METRIC_NAME_PATTERN,
  type MetricOptions,
  type Metrics,
  type Span,
  type SpanContext,
  type SpanOptions,
  type Telemetry,
  type Tracer,
  ValidationError,
} from '@mlplane/core';
import * as prom from 'prom-client';

type Kind = 'counter' | 'gauge' | 'histogram';

/**
 * Prometheus metrics on a registry of their own (never prom-client's global one), so two platforms in one
 * process, or a platform and its host app, don't collide.
 */
export class PrometheusMetrics implements Metrics {
  readonly registry = new prom.Registry();
  readonly #declared = new Map<string, { kind: Kind; labels: string; handle: unknown }>();

  counter<L extends string = never>(options: MetricOptions<L>): Counter<L> {
    return this.#declare(options, 'counter', () => {
      const c = new prom.Counter({ ...this.#base(options), registers: [this.registry] });
      return {
        inc: (...args: unknown[]) => {
          const [labels, value] = splitArgs(args, options);
          if (value !== undefined && value < 0) {
            throw new ValidationError(`counter ${options.name} cannot be decreased (inc by ${value})`);
          }
          labels ? c.inc(labels as prom.LabelValues<string>, value ?? 1) : c.inc(value ?? 1);
        },
      };
    }) as Counter<L>;
  }

  gauge<L extends string = never>(options: MetricOptions<L>): Gauge<L> {
    return this.#declare(options, 'gauge', () => {
      const g = new prom.Gauge({ ...this.#base(options), registers: [this.registry] });
      const op =
        (fn: 'set' | 'inc' | 'dec', fallback: number | undefined) =>
        (...args: unknown[]) => {
          const [labels, value] = splitArgs(args, options);
          const v = value ?? fallback;
          if (v === undefined) throw new ValidationError(`gauge ${options.name}.${fn} needs a value`);
          labels ? g[fn](labels as prom.LabelValues<string>, v) : g[fn](v);
        };
      return { set: op('set', undefined), inc: op('inc', 1), dec: op('dec', 1) };
    }) as Gauge<L>;
  }

  histogram<L extends string = never>(
    options: MetricOptions<L> & { readonly buckets?: readonly number[] },
  ): Histogram<L> {
    return this.#declare(options, 'histogram', () => {
      const h = new prom.Histogram({
        ...this.#base(options),
        buckets: [...(options.buckets ?? DEFAULT_BUCKETS)],
        registers: [this.registry],
      });
      return {
        observe: (...args: unknown[]) => {
          const [labels, value] = splitArgs(args, options);
          labels ? h.observe(labels as prom.LabelValues<string>, value!) : h.observe(value!);
        },
        startTimer: (...args: unknown[]) => {
          const labels = args[0] as prom.LabelValues<string> | undefined;
          const start = process.hrtime.bigint();
          return () => {
            const seconds = Number(process.hrtime.bigint() - start) / 1e9;
            labels ? h.observe(labels, seconds) : h.observe(seconds);
            return seconds;
          };
        },
      };
    }) as Histogram<L>;
  }

  metricsText(): Promise<string> {
    return this.registry.metrics();
  }

  #base<L extends string>(options: MetricOptions<L>) {
    return { name: options.name, help: options.help, labelNames: [...(options.labelNames ?? [])] as string[] };
  }

  #declare<L extends string>(options: MetricOptions<L>, kind: Kind, make: () => unknown): unknown {
    if (!METRIC_NAME_PATTERN.test(options.name)) {
      throw new ValidationError(`metric name '${options.name}' must match ${METRIC_NAME_PATTERN}`, { field: 'name' });
    }
    for (const label of options.labelNames ?? []) {
      if (!LABEL_NAME_PATTERN.test(label)) {
        throw new ValidationError(`label name '${label}' of metric ${options.name} must match ${LABEL_NAME_PATTERN}`);
      }
    }
    const labels = [...(options.labelNames ?? [])].sort().join(',');
    const existing = this.#declared.get(options.name);
    if (existing) {
      if (existing.kind !== kind || existing.labels !== labels) {
        throw new ConflictError(
          `metric ${options.name} is already declared as a ${existing.kind} with labels [${existing.labels}]`,
        );
      }
      return existing.handle;
    }
    const handle = make();
    this.#declared.set(options.name, { kind, labels, handle });
    return handle;
  }
}

function splitArgs<L extends string>(
  args: unknown[],
  options: MetricOptions<L>,
): [Record<string, string | number> | undefined, number | undefined] {
  if ((options.labelNames ?? []).length === 0) return [undefined, args[0] as number | undefined];
  return [args[0] as Record<string, string | number>, args[1] as number | undefined];
}

/**
 * Random ids drawn from a pooled buffer refilled 4 KiB at a time: `randomBytes` for 8 or 16 bytes costs a few
 * microseconds a call, which every HTTP request's span paid twice (Node pools `randomUUID` the same way).
 */
const idPool = Buffer.alloc(4096);
let idOffset = idPool.length;
function randomHex(bytes: number): string {
  if (idOffset + bytes > idPool.length) {
    randomFillSync(idPool);
    idOffset = 0;
  }
  const hex = idPool.toString('hex', idOffset, idOffset + bytes);
  idOffset += bytes;
  return hex;
}

/** Spans carry W3C ids and propagate through async context; they are logged at debug level when they end. */
export class LoggingTracer implements Tracer {
  readonly #active = new AsyncLocalStorage<SpanContext>();
  constructor(private readonly logger: Logger) {}

  startSpan(name: string, attributes: Attributes = {}, options: SpanOptions = {}): Span {
    const parent = options.parent ?? this.#active.getStore();
    const context: SpanContext = {
      traceId: parent?.traceId ?? randomHex(16),
      spanId: randomHex(8),
    };
    const attrs: Record<string, AttributeValue> = { ...attributes };
    const started = process.hrtime.bigint();
    let error: string | undefined;
    let ended = false;
    const logger = this.logger;
    return {
      context,
      setAttribute(key, value) {
        if (!ended) attrs[key] = value;
      },
      recordError(err) {
        if (!ended) error = err instanceof Error ? err.message : String(err);
      },
      end() {
        if (ended) return;
        ended = true;
        const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
        logger.debug(
          {
            span: name,
            ...context,
            parentSpanId: parent?.spanId,
            kind: options.kind ?? 'internal',
            durationMs,
            attributes: attrs,
            error,
          },
          'span ended',
        );
      },
    };
  }

  async withSpan<T>(
    name: string,
    fn: (span: Span) => Promise<T>,
    attributes?: Attributes,
    options?: SpanOptions,
  ): Promise<T> {
    const span = this.startSpan(name, attributes, options);
    try {
      return await this.#active.run(span.context, () => fn(span));
    } catch (err) {
      span.recordError(err);
      throw err;
    } finally {
      span.end();
    }
  }
}

/** The embedded Telemetry: the platform's (secret-scrubbing) logger, a private Prometheus registry, a logging tracer. */
export function createEmbeddedTelemetry(options: { logger: Logger }): Telemetry & { metrics: PrometheusMetrics } {
  return { logger: options.logger, metrics: new PrometheusMetrics(), tracer: new LoggingTracer(options.logger) };
}
