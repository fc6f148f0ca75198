// Which HTTP layer carries the API: fastify and hono (on @hono/node-server) measured on the log-batch hot path, side
// by side in one run, rounds alternating and their order rotated. Both servers parse the same 500-metric JSON
// body, validate it with the same zod schema and hand it to the same handler: once a handler that does nothing
// (the layer's own cost) and once the embedded tracker's logBatch on SQLite (the cost a user sees).
// Run: node --conditions=@mlplane/source --import tsx bench/http-layer.ts

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { experimentTrackerRef } from '@mlplane/core';
import { startTestPlatform } from '@mlplane/defaults/testing';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { Agent, request } from 'undici';
import { z } from 'zod';
import { fmtNumber, rotated } from './lib.js';

const CLIENTS = 16;
const SECONDS = Number(process.env.HTTP_LAYER_SECONDS ?? 5);
const ROUNDS = Number(process.env.HTTP_LAYER_ROUNDS ?? 3);
const METRICS = 500;

const batchSchema = z.object({
  run_id: z.string().min(1),
  metrics: z
    .array(z.object({ key: z.string().min(1), value: z.number(), step: z.number().int(), timestamp: z.number().int() }))
    .max(1000),
});
type Batch = z.infer<typeof batchSchema>;
type Handler = (batch: Batch) => Promise<void>;

async function listen(listener: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer({ keepAliveTimeout: 60_000 }, listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function fastifyServer(handle: Handler) {
  let listener: Parameters<typeof createServer>[1] | undefined;
  const app = Fastify({
    bodyLimit: 16 << 20,
    serverFactory: (handler) => {
      listener = handler;
      return createServer(handler);
    },
  });
  app.post('/log-batch', async (req, reply) => {
    const parsed = batchSchema.safeParse(req.body);
    if (!parsed.success) return reply.code(400).send({ code: 'VALIDATION', message: parsed.error.message });
    await handle(parsed.data);
    return {};
  });
  await app.ready();
  return listen(listener!);
}

async function honoServer(handle: Handler) {
  const app = new Hono();
  app.post('/log-batch', async (c) => {
    const parsed = batchSchema.safeParse(await c.req.json());
    if (!parsed.success) return c.json({ code: 'VALIDATION', message: parsed.error.message }, 400);
    await handle(parsed.data);
    return c.json({});
  });
  return listen(getRequestListener(app.fetch));
}

async function load(url: string, body: string): Promise<number> {
  const dispatcher = new Agent({ connections: CLIENTS, pipelining: 1 });
  const until = Date.now() + SECONDS * 1000;
  let done = 0;
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (Date.now() < until) {
        const res = await request(`${url}/log-batch`, {
          method: 'POST',
          body,
          headers: { 'content-type': 'application/json' },
          dispatcher,
        });
        const text = await res.body.text();
        if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}: ${text.slice(0, 300)}`);
        done++;
      }
    }),
  );
  await dispatcher.close();
  return (done * METRICS) / SECONDS;
}

const platform = await startTestPlatform();
const tracker = await platform.get(experimentTrackerRef);
const experiment = await tracker.createExperiment({ name: 'http-layer' });
const run = await tracker.createRun({ experimentId: experiment.id });
const body = JSON.stringify({
  run_id: run.info.id,
  metrics: Array.from({ length: METRICS }, (_, i) => ({ key: `m${i % 20}`, value: i / 7, step: i, timestamp: 1 })),
});
const handlers: Record<string, Handler> = {
  'no-op handler': async () => undefined,
  'SQLite logBatch': async (batch) => tracker.logBatch(batch.run_id, { metrics: batch.metrics }),
};
const layers = { fastify: fastifyServer, hono: honoServer };
const results: Record<string, Record<string, number[]>> = {};
for (const [handlerName, handle] of Object.entries(handlers)) {
  const servers = Object.fromEntries(
    await Promise.all(Object.entries(layers).map(async ([name, make]) => [name, await make(handle)] as const)),
  );
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of rotated(Object.keys(layers), round)) {
      const rate = await load(servers[name]!.url, body);
      const byLayer = results[handlerName] ?? {};
      results[handlerName] = byLayer;
      byLayer[name] = [...(byLayer[name] ?? []), rate];
    }
  }
  for (const { server } of Object.values(servers)) server.close();
}
console.log(`log-batch of ${METRICS} metrics, ${CLIENTS} clients, ${ROUNDS} rounds of ${SECONDS}s (median metrics/s):`);
for (const [handlerName, byLayer] of Object.entries(results)) {
  const medians = Object.fromEntries(
    Object.entries(byLayer).map(([name, rates]) => [name, rates.sort((a, b) => a - b)[Math.floor(rates.length / 2)]!]),
  );
  console.log(
    `  ${handlerName}: ${Object.entries(medians)
      .map(([name, m]) => `${name} ${fmtNumber(m)}`)
      .join(', ')} (fastify/hono ${(medians.fastify! / medians.hono!).toFixed(2)}x)`,
  );
}
await platform.stop();
