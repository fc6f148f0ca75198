import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  currentTraceContext,
  type DomainEvent,
  eventBusRef,
  experimentTrackerRef,
  type TraceContext,
} from '@mlplane/core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTelemetryApi, type TelemetryTestApi } from './telemetry-support.js';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_SPAN = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_SPAN}-01`;

const EXPERIMENTS = '/api/v1/projects/{project}/experiments';
const EXPERIMENT = '/api/v1/projects/{project}/experiments/{experimentId}';
const LOG_BATCH = '/api/v1/projects/{project}/runs/{runId}/log-batch';

let t: TelemetryTestApi;
beforeAll(async () => {
  t = await startTelemetryApi();
});
afterAll(() => t?.[Symbol.asyncDispose]());

async function experimentWithRun(project: string, name: string) {
  const experiment = await t.call('POST', `/api/v1/projects/${project}/experiments`, { body: { name } });
  expect(experiment.status).toBe(201);
  const run = await t.call('POST', `/api/v1/projects/${project}/runs`, { body: { experimentId: experiment.body.id } });
  expect(run.status).toBe(201);
  return { experimentId: experiment.body.id as string, runId: run.body.info.id as string };
}

describe('/metrics after real traffic', () => {
  it('counts requests per route template and method, their latency, errors by code, and ingest', async () => {
    const before = await t.scrape();
    const { experimentId, runId } = await experimentWithRun('vision', 'metrics-traffic');
    const logged = await t.call('POST', `/api/v1/projects/vision/runs/${runId}/log-batch`, {
      body: {
        metrics: [
          { key: 'loss', value: 0.5, step: 1 },
          { key: 'loss', value: 0.4, step: 2 },
          { key: 'acc', value: 0.9, step: 2 },
        ],
        params: [{ key: 'lr', value: '0.01' }],
        tags: [{ key: 'team', value: 'cv' }],
      },
    });
    expect(logged.status).toBe(204);
    expect((await t.call('GET', `/api/v1/projects/vision/experiments/${experimentId}`)).status).toBe(200);
    const missing = await t.call('GET', '/api/v1/projects/vision/experiments/999999');
    expect(missing.status).toBe(404);
    const invalid = await t.call('POST', '/api/v1/projects/vision/experiments', { body: { name: 42 } });
    expect(invalid.status).toBe(400);
    expect((await t.call('GET', '/api/v1/no/such/route')).status).toBe(404);

    const after = await t.scrape();
    const delta = (name: string, labels: Record<string, string>) =>
      after.value(name, labels) - before.value(name, labels);
    expect(delta('mlplane_http_requests_total', { method: 'POST', route: EXPERIMENTS, status: '201' })).toBe(1);
    expect(delta('mlplane_http_requests_total', { method: 'POST', route: LOG_BATCH, status: '204' })).toBe(1);
    expect(delta('mlplane_http_requests_total', { method: 'GET', route: EXPERIMENT, status: '200' })).toBe(1);
    // Latency per route template and method: one more observation, with buckets.
    expect(after.families.get('mlplane_http_request_duration_seconds')!.type).toBe('histogram');
    const logBatchLatency = { method: 'POST', route: LOG_BATCH };
    expect(delta('mlplane_http_request_duration_seconds_count', logBatchLatency)).toBe(1);
    expect(delta('mlplane_http_request_duration_seconds_bucket', { ...logBatchLatency, le: '+Inf' })).toBe(1);
    expect(after.value('mlplane_http_request_duration_seconds_sum', logBatchLatency)).toBeGreaterThan(0);
    // Errors by route, status and the error body's code; unmatched paths share one label value.
    expect(
      delta('mlplane_http_errors_total', { method: 'GET', route: EXPERIMENT, status: '404', code: 'NOT_FOUND' }),
    ).toBe(1);
    expect(
      delta('mlplane_http_errors_total', { method: 'POST', route: EXPERIMENTS, status: '400', code: 'VALIDATION' }),
    ).toBe(1);
    expect(
      delta('mlplane_http_errors_total', { method: 'GET', route: 'unmatched', status: '404', code: 'NOT_FOUND' }),
    ).toBe(1);
    expect(
      after.families.get('mlplane_http_requests_total')!.samples.some((m) => m.labels.route?.includes('no/such')),
    ).toBe(false);
    // Ingest: what log-batch wrote, by kind.
    expect(delta('mlplane_tracking_ingested_total', { kind: 'metric' })).toBe(3);
    expect(delta('mlplane_tracking_ingested_total', { kind: 'param' })).toBe(1);
    expect(delta('mlplane_tracking_ingested_total', { kind: 'tag' })).toBe(1);
    // Process metrics beside the platform's.
    expect(after.families.has('process_cpu_user_seconds_total')).toBe(true);
    expect(after.families.has('nodejs_eventloop_lag_seconds')).toBe(true);
  });

  it('counts ingest at the tracker port, whichever caller logs (not only the HTTP API)', async () => {
    const { runId } = await experimentWithRun('vision', 'in-process');
    const tracker = await t.platform.get(experimentTrackerRef);
    const before = await t.scrape();
    await tracker.logMetric(runId, { key: 'loss', value: 1, step: 0 });
    await tracker.logParam(runId, { key: 'seed', value: '7' });
    await tracker.setTag(runId, { key: 'note', value: 'x' });
    await tracker.logBatch(runId, { metrics: [{ key: 'loss', value: 0.5, step: 1 }] });
    // A batch the tracker refuses writes nothing and counts nothing.
    await expect(tracker.logMetric('no-such-run', { key: 'loss', value: 1, step: 0 })).rejects.toThrow();
    const after = await t.scrape();
    const delta = (kind: string) =>
      after.value('mlplane_tracking_ingested_total', { kind }) -
      before.value('mlplane_tracking_ingested_total', { kind });
    expect([delta('metric'), delta('param'), delta('tag')]).toEqual([2, 1, 1]);
  });

  it('shows the outbox relay, webhook and event consumer series, and the consumer lag of the audit group', async () => {
    await experimentWithRun('vision', 'events');
    await vi.waitFor(
      async () => {
        const scraped = await t.scrape();
        expect(scraped.value('mlplane_event_consumer_lag_seconds_count', { group: 'audit' })).toBeGreaterThan(0);
        expect(scraped.value('mlplane_outbox_relayed_events_total')).toBeGreaterThan(0);
      },
      { timeout: 10_000, interval: 100 },
    );
    const scraped = await t.scrape();
    for (const name of [
      'mlplane_outbox_lag_seconds',
      'mlplane_outbox_pending_events',
      'mlplane_outbox_relay_errors_total',
      'mlplane_webhook_attempts_total',
      'mlplane_event_handler_failures_total',
    ]) {
      expect(scraped.families.has(name), name).toBe(true);
    }
  });

  it('counts event handler failures per consumer group', async () => {
    const bus = await t.platform.get(eventBusRef);
    let calls = 0;
    const subscription = await bus.subscribe({
      group: 'telemetry-test-failing',
      types: ['experiment.created'],
      maxAttempts: 2,
      backoff: { initialMs: 1, maxMs: 2 },
      handler: async () => {
        calls++;
        throw new Error('consumer broke');
      },
    });
    try {
      await experimentWithRun('vision', 'failing-consumer');
      await vi.waitFor(() => expect(calls).toBe(2), { timeout: 10_000, interval: 50 });
      const scraped = await t.scrape();
      expect(scraped.value('mlplane_event_handler_failures_total', { group: 'telemetry-test-failing' })).toBe(2);
    } finally {
      await subscription.close();
    }
  });

  it('labels routes mounted beside /api/v1 and the built-in ones with the template hono matched', async () => {
    await using mounted = await startTelemetryApi({
      telemetry: { processMetrics: false },
      api: {
        mount: [
          (app) => {
            app.get('/api/2.0/mlflow/runs/get', (c) => c.json({ run: {} }));
            app.get('/api/2.0/mlflow-artifacts/artifacts/:path{.+}', (c) => c.json({ path: c.req.param('path') }));
          },
        ],
      },
    });
    expect((await mounted.call('GET', '/api/2.0/mlflow/runs/get')).status).toBe(200);
    expect((await mounted.call('GET', '/api/2.0/mlflow-artifacts/artifacts/a/b/c.txt')).status).toBe(200);
    expect((await mounted.call('GET', '/health', { token: null })).status).toBe(200);
    expect((await mounted.call('GET', '/api/v1/docs/swagger-ui.css')).status).toBe(200);
    const scraped = await mounted.scrape();
    const count = (method: string, route: string, status: string) =>
      scraped.value('mlplane_http_requests_total', { method, route, status });
    expect(count('GET', '/api/2.0/mlflow/runs/get', '200')).toBe(1);
    expect(count('GET', '/api/2.0/mlflow-artifacts/artifacts/{path}', '200')).toBe(1);
    expect(count('GET', '/health', '200')).toBe(1);
    expect(count('GET', '/api/v1/docs/{asset}', '200')).toBe(1);
  });
});

describe('over a real socket', () => {
  it('serves /metrics and carries the trace of a request made through the Node listener', async () => {
    const server = createServer(t.api.listener);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const res = await request(`${url}/api/v1/projects/socket/experiments`, {
        method: 'POST',
        body: JSON.stringify({ name: 'over-http' }),
        headers: {
          authorization: `Bearer ${t.adminToken}`,
          'content-type': 'application/json',
          traceparent: TRACEPARENT,
          'x-request-id': 'req-socket',
        },
      });
      expect(res.statusCode).toBe(201);
      await res.body.text();
      expect(t.lines.find((l) => l.requestId === 'req-socket' && l.msg === 'request')).toMatchObject({
        actor: 'admin',
        trace_id: TRACE_ID,
        route: EXPERIMENTS,
      });
      const scraped = await request(`${url}/metrics`, { headers: { authorization: `Bearer ${t.adminToken}` } });
      expect(scraped.statusCode).toBe(200);
      expect(await scraped.body.text()).toMatch(
        /^mlplane_http_requests_total\{method="POST",route="\/api\/v1\/projects\/\{project\}\/experiments",status="201"\} \d+$/m,
      );
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('/metrics access', () => {
  it('needs a token holding telemetry.read in every project', async () => {
    const none = await t.call('GET', '/metrics', { token: null });
    expect(none.status).toBe(401);
    const viewer = await t.token('viewer-everywhere', ['*'], ['viewer']);
    const denied = await t.call('GET', '/metrics', { token: viewer });
    expect(denied.status).toBe(403);
    expect(denied.body.code).toBe('PERMISSION_DENIED');
    const authorizer = t.api.services.authorizer;
    await authorizer.defineRole({ name: 'metrics-scraper', permissions: ['telemetry.read'] });
    const scraper = await t.token('prometheus', ['*'], ['metrics-scraper']);
    const scraped = await t.call('GET', '/metrics', { token: scraper });
    expect(scraped.status).toBe(200);
    expect(scraped.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(scraped.text).toContain('# TYPE mlplane_http_requests_total counter');
    // The scraper's token reads telemetry only.
    expect((await t.call('GET', '/api/v1/projects/vision/experiments', { token: scraper })).status).toBe(403);
  });

  it('is open without a token when publicMetrics is set', async () => {
    await using open = await startTelemetryApi({ telemetry: { publicMetrics: true, processMetrics: false } });
    const res = await open.call('GET', '/metrics', { token: null });
    expect(res.status).toBe(200);
    expect(res.text).toContain('mlplane_http_requests_total');
    expect(res.text).not.toContain('process_cpu_user_seconds_total');
  });
});

describe('logs and trace context', () => {
  it('writes requestId, actor and the trace of a sent traceparent on every line logged during the request', async () => {
    // A line logged by a plugin's tap deep inside the request, not by the HTTP layer.
    t.platform.hooks.run.created.tap('telemetry-test', (run) => {
      t.platform.logger.info({ runId: run.info.id }, 'test tap saw a run');
    });
    const { experimentId } = await experimentWithRun('vision', 'traced-logs');
    const res = await t.call('POST', '/api/v1/projects/vision/runs', {
      body: { experimentId },
      headers: { traceparent: TRACEPARENT, tracestate: 'vendor=opaque', 'x-request-id': 'req-traced-1' },
    });
    expect(res.status).toBe(201);
    const lines = t.lines.filter((l) => l.requestId === 'req-traced-1');
    const tap = lines.find((l) => l.msg === 'test tap saw a run');
    const request = lines.find((l) => l.msg === 'request');
    expect(tap).toBeDefined();
    expect(request).toBeDefined();
    for (const line of [tap!, request!]) {
      expect(line).toMatchObject({ requestId: 'req-traced-1', actor: 'admin', trace_id: TRACE_ID });
      // The request's own span, a child of the caller's.
      expect(line.span_id).toMatch(/^[0-9a-f]{16}$/);
      expect(line.span_id).not.toBe(PARENT_SPAN);
    }
    expect(tap!.span_id).toBe(request!.span_id);
    // The span itself, logged by the platform's tracer at debug, names its parent and route.
    const span = t.lines.find((l) => l.msg === 'span ended' && l.spanId === request!.span_id);
    expect(span).toMatchObject({
      traceId: TRACE_ID,
      parentSpanId: PARENT_SPAN,
      kind: 'server',
      attributes: { 'http.route': '/api/v1/projects/{project}/runs', 'http.response.status_code': 201 },
    });
    // Lines logged outside any request carry none of it.
    t.platform.logger.info('outside a request');
    const outside = t.lines.find((l) => l.msg === 'outside a request')!;
    expect(outside.requestId).toBeUndefined();
    expect(outside.trace_id).toBeUndefined();
  });

  it('starts a trace of its own for a request without a valid traceparent', async () => {
    for (const [id, headers] of [
      ['req-untraced', {}],
      ['req-bad-trace', { traceparent: `00-${'0'.repeat(32)}-${PARENT_SPAN}-01` }],
      ['req-garbage-trace', { traceparent: 'not a traceparent' }],
    ] as const) {
      const res = await t.call('GET', '/api/v1/projects/vision/experiments', {
        headers: { ...headers, 'x-request-id': id },
      });
      expect(res.status).toBe(200);
      const line = t.lines.find((l) => l.requestId === id && l.msg === 'request')!;
      expect(line.trace_id).toMatch(/^[0-9a-f]{32}$/);
      expect(line.trace_id).not.toBe('0'.repeat(32));
    }
  });

  it('keeps the trace but drops a tracestate longer than events may carry', async () => {
    const long = Array.from({ length: 30 }, (_, i) => `vendor${i}=${'v'.repeat(30)}`).join(',');
    const res = await t.call('GET', '/api/v1/projects/vision/experiments', {
      headers: { traceparent: TRACEPARENT, tracestate: long, 'x-request-id': 'req-long-state' },
    });
    expect(res.status).toBe(200);
    const line = t.lines.find((l) => l.requestId === 'req-long-state' && l.msg === 'request')!;
    expect(line.trace_id).toBe(TRACE_ID);
  });

  it('records the trace context on the events of the request, and consumers run inside it', async () => {
    const bus = await t.platform.get(eventBusRef);
    const seen: { event: DomainEvent; during: TraceContext | undefined }[] = [];
    const subscription = await bus.subscribe({
      group: 'telemetry-test-traced',
      types: ['experiment.created'],
      handler: async (event) => {
        seen.push({ event, during: currentTraceContext() });
      },
    });
    try {
      const res = await t.call('POST', '/api/v1/projects/traced/experiments', {
        body: { name: 'traced-events' },
        headers: { traceparent: TRACEPARENT, tracestate: 'vendor=opaque', 'x-request-id': 'req-traced-event' },
      });
      expect(res.status).toBe(201);
      const requestSpan = t.lines.find((l) => l.requestId === 'req-traced-event' && l.msg === 'request')!.span_id;
      await vi.waitFor(() => expect(seen.map((s) => s.event.subject)).toContain(`experiment:${res.body.id}`), {
        timeout: 10_000,
        interval: 50,
      });
      const { event, during } = seen.find((s) => s.event.subject === `experiment:${res.body.id}`)!;
      // The event names the request's span as its parent, so a consumer's work joins the caller's trace.
      expect(event.traceContext).toEqual({
        traceparent: `00-${TRACE_ID}-${requestSpan}-01`,
        tracestate: 'vendor=opaque',
      });
      expect(event.actor).toBe('admin');
      expect(during).toMatchObject({ traceId: TRACE_ID, spanId: requestSpan });
    } finally {
      await subscription.close();
    }
  });
});
