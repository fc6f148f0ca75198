import { describe, expect, it } from 'vitest';
import { ConflictError, ValidationError } from '../../ports/errors.js';
import type { Telemetry } from '../../ports/telemetry.js';
import { uniqueTag } from './support.js';

export interface TelemetryFixture {
  readonly telemetry: Telemetry;
  readonly cleanup?: () => Promise<void>;
}

/** The contract every Telemetry meets: metric declaration rules, Prometheus exposition, span propagation. */
export function telemetryConformance(name: string, factory: () => Promise<TelemetryFixture>): void {
  describe(`Telemetry conformance: ${name}`, () => {
    const withTelemetry = async (fn: (t: Telemetry, prefix: string) => Promise<void>) => {
      const fixture = await factory();
      try {
        await fn(fixture.telemetry, `conf_${uniqueTag()}`);
      } finally {
        await fixture.cleanup?.();
      }
    };

    it('exposes counters, gauges and histograms in Prometheus text format', async () => {
      await withTelemetry(async ({ metrics }, p) => {
        metrics
          .counter({ name: `${p}_requests_total`, help: 'requests', labelNames: ['route'] })
          .inc({ route: '/a' }, 3);
        const gauge = metrics.gauge({ name: `${p}_inflight`, help: 'in flight' });
        gauge.set(5);
        gauge.dec();
        const h = metrics.histogram({ name: `${p}_latency_seconds`, help: 'latency', buckets: [0.1, 1] });
        h.observe(0.05);
        h.observe(0.5);
        const text = await metrics.metricsText();
        expect(text).toContain(`# HELP ${p}_requests_total requests`);
        expect(text).toContain(`# TYPE ${p}_requests_total counter`);
        expect(text).toContain(`${p}_requests_total{route="/a"} 3`);
        expect(text).toContain(`${p}_inflight 4`);
        expect(text).toContain(`${p}_latency_seconds_bucket{le="0.1"} 1`);
        expect(text).toContain(`${p}_latency_seconds_bucket{le="1"} 2`);
        expect(text).toContain(`${p}_latency_seconds_count 2`);
      });
    });

    it('returns the same handle for an identical declaration and refuses a conflicting one', async () => {
      await withTelemetry(async ({ metrics }, p) => {
        const a = metrics.counter({ name: `${p}_c_total`, help: 'c', labelNames: ['x'] });
        a.inc({ x: '1' });
        metrics.counter({ name: `${p}_c_total`, help: 'c', labelNames: ['x'] }).inc({ x: '1' });
        expect(await metrics.metricsText()).toContain(`${p}_c_total{x="1"} 2`);
        expect(() => metrics.gauge({ name: `${p}_c_total`, help: 'c', labelNames: ['x'] })).toThrow(ConflictError);
        expect(() => metrics.counter({ name: `${p}_c_total`, help: 'c', labelNames: ['y'] })).toThrow(ConflictError);
      });
    });

    it('rejects invalid metric and label names and negative counter increments', async () => {
      await withTelemetry(async ({ metrics }, p) => {
        expect(() => metrics.counter({ name: `${p} bad`, help: 'x' })).toThrow(ValidationError);
        expect(() => metrics.counter({ name: `${p}_ok_total`, help: 'x', labelNames: ['__reserved'] })).toThrow(
          ValidationError,
        );
        expect(() => metrics.counter({ name: `${p}_neg_total`, help: 'x' }).inc(-1)).toThrow(ValidationError);
      });
    });

    it('propagates trace ids to spans started inside withSpan, and ends spans once', async () => {
      await withTelemetry(async ({ tracer }) => {
        const ids = await tracer.withSpan('outer', async (outer) => {
          const inner = tracer.startSpan('inner', { step: 1 });
          inner.end();
          inner.end();
          return { outer: outer.context, inner: inner.context };
        });
        expect(ids.inner.traceId).toBe(ids.outer.traceId);
        expect(ids.inner.spanId).not.toBe(ids.outer.spanId);
        expect(ids.outer.traceId).toMatch(/^[0-9a-f]{32}$/);
        expect(ids.outer.spanId).toMatch(/^[0-9a-f]{16}$/);
        const unrelated = tracer.startSpan('unrelated');
        expect(unrelated.context.traceId).not.toBe(ids.outer.traceId);
        unrelated.end();
        await expect(
          tracer.withSpan('fails', async () => {
            throw new Error('boom');
          }),
        ).rejects.toThrow('boom');
      });
    });

    it('logs through a child logger without throwing', async () => {
      await withTelemetry(async ({ logger }) => {
        const child = logger.child({ component: 'conformance' });
        child.info('message only');
        child.info({ n: 1 }, 'object and message');
        child.error({ err: new Error('x') }, 'an error');
      });
    });
  });
}
