// What the server's telemetry costs a request: the same API over the same embedded defaults, once with
// createTelemetry (request metrics, a server span, trace and log context, the ingest and consumer-lag taps) and once
// without, side by side in one run, rounds alternating and their order rotated. Each platform has its own SQLite
// data dir and logs at info to a sink that drops the lines, so both pay for the one request line pino writes.
// Routes: log-batch with 500 metrics (the hot path) and GET experiment (a light route, where overhead shows most).
// Run: node --conditions=@mlplane/source --import tsx bench/telemetry-overhead.ts

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ALL_PROJECTS, authorizerRef } from '@mlplane/core';
import { startTestPlatform, type TestPlatform } from '@mlplane/defaults/testing';
import { createApi, createTelemetry, v1Routes } from '@mlplane/server';
import { Agent, request } from 'undici';
import { fmtNumber, rotated } from './lib.js';

const CLIENTS = 16;
const SECONDS = Number(process.env.TELEMETRY_BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.TELEMETRY_BENCH_ROUNDS ?? 3);
const METRICS = 500;
const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

interface Contender {
  readonly platform: TestPlatform;
  readonly server: Server;
  readonly url: string;
  readonly token: string;
  readonly logBatchPath: string;
  readonly experimentPath: string;
}

async function contender(withTelemetry: boolean): Promise<Contender> {
  const platform = await startTestPlatform({ log: { level: 'info', destination: { write: () => undefined } } });
  const telemetry = withTelemetry ? await createTelemetry(platform) : { logger: platform.logger };
  const api = await createApi(v1Routes, { platform, rateLimit: false, ...telemetry });
  const authorizer = await platform.get(authorizerRef);
  await authorizer.grant('bench', ALL_PROJECTS, 'admin');
  const { secret } = await authorizer.createToken({
    principal: await authorizer.getPrincipal('bench', 'user'),
    name: 'bench',
    projects: [ALL_PROJECTS],
    roles: ['admin'],
    expiresAt: new Date(Date.now() + 3_600_000),
  });
  const server = createServer({ keepAliveTimeout: 60_000 }, api.listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await request(`${url}${path}`, {
      method: method as 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return (await res.body.json()) as any;
  };
  const experiment = await call('POST', '/api/v1/projects/bench/experiments', { name: 'telemetry-overhead' });
  const run = await call('POST', '/api/v1/projects/bench/runs', { experimentId: experiment.id });
  return {
    platform,
    server,
    url,
    token: secret,
    logBatchPath: `/api/v1/projects/bench/runs/${run.info.id}/log-batch`,
    experimentPath: `/api/v1/projects/bench/experiments/${experiment.id}`,
  };
}

/** Requests per second and p99 latency (ms) of `CLIENTS` concurrent clients for `SECONDS`. */
async function load(c: Contender, route: 'logBatch' | 'getExperiment', body: string) {
  const dispatcher = new Agent({ connections: CLIENTS, pipelining: 1 });
  const until = Date.now() + SECONDS * 1000;
  const latencies: number[] = [];
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (Date.now() < until) {
        const started = performance.now();
        const res = await request(`${c.url}${route === 'logBatch' ? c.logBatchPath : c.experimentPath}`, {
          method: route === 'logBatch' ? 'POST' : 'GET',
          headers: {
            authorization: `Bearer ${c.token}`,
            traceparent: TRACEPARENT,
            ...(route === 'logBatch' ? { 'content-type': 'application/json' } : {}),
          },
          ...(route === 'logBatch' ? { body } : {}),
          dispatcher,
        });
        const text = await res.body.text();
        if (res.statusCode >= 300) throw new Error(`status ${res.statusCode}: ${text.slice(0, 300)}`);
        latencies.push(performance.now() - started);
      }
    }),
  );
  await dispatcher.close();
  latencies.sort((a, b) => a - b);
  return { rps: latencies.length / SECONDS, p99: latencies[Math.floor(latencies.length * 0.99)]! };
}

const contenders = { 'with telemetry': await contender(true), 'without telemetry': await contender(false) };
let step = 0;
const body = JSON.stringify({
  metrics: Array.from({ length: METRICS }, (_, i) => ({ key: `m${i % 20}`, value: i / 7, step: step++ })),
});
const results: Record<string, Record<string, { rps: number; p99: number }[]>> = {};
for (const route of ['logBatch', 'getExperiment'] as const) {
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of rotated(Object.keys(contenders), round)) {
      const measured = await load(contenders[name as keyof typeof contenders], route, body);
      const byName = results[route] ?? {};
      results[route] = byName;
      byName[name] = [...(byName[name] ?? []), measured];
    }
  }
}
const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`${CLIENTS} clients, ${ROUNDS} rounds of ${SECONDS}s per contender and route (medians):`);
for (const [route, byName] of Object.entries(results)) {
  const line = Object.entries(byName).map(
    ([name, runs]) =>
      `${name} ${fmtNumber(median(runs.map((r) => r.rps)))} req/s, p99 ${median(runs.map((r) => r.p99)).toFixed(1)} ms`,
  );
  const ratio =
    median(byName['with telemetry']!.map((r) => r.rps)) / median(byName['without telemetry']!.map((r) => r.rps));
  console.log(`  ${route}: ${line.join(' | ')} (with/without ${ratio.toFixed(2)}x)`);
}
for (const c of Object.values(contenders)) {
  c.server.close();
  await c.platform.stop();
}
