// The mlplane API server of bench/api.ts, in a process of its own so that its RSS is its own: the reference
// distribution's platform (embedded defaults, the management plugin) on @mlplane/plugin-postgres, with
// @mlplane/server's API (/api/v1 and the MLflow-compatible /api/2.0/mlflow) served on a port, as a production
// deployment runs it until `mlplane up --config` lands.
// Usage: node --conditions=@mlplane/source --import tsx bench/api-server.ts PG_URL SCHEMA DATA_DIR
// Writes one JSON line {port, token, pid} to stderr once it listens (the token: an admin token in every project),
// then serves until SIGTERM, when the platform stops gracefully. Request logs (pino, one line per request at info,
// as the MLflow peer's uvicorn writes an access line per request) go to stdout, which the bench sends to a file.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ALL_PROJECTS, authorizerRef, telemetryRef } from '@mlplane/core';
import { createPlatform } from '@mlplane/defaults';
import { postgresPlugin } from '@mlplane/plugin-postgres';
import { createApi, mountMlflow, v1Routes } from '@mlplane/server';

const [connectionString, schema, dataDir] = process.argv.slice(2);
if (!connectionString || !schema || !dataDir) {
  console.error('usage: api-server.ts PG_URL SCHEMA DATA_DIR');
  process.exit(2);
}

const platform = createPlatform({
  config: {
    platform: { logLevel: 'info', signals: ['SIGTERM', 'SIGINT'] },
    embedded: { dataDir },
    // The plugin's defaults otherwise (10 connections, prepared statements), as mlplane.yaml.example lists them.
    postgres: { connectionString, schema },
  },
  plugins: [postgresPlugin()],
});
await platform.start();

const authorizer = await platform.get(authorizerRef);
await authorizer.grant('bench-admin', ALL_PROJECTS, 'admin');
const principal = await authorizer.getPrincipal('bench-admin', 'user');
const { secret } = await authorizer.createToken({
  principal,
  name: 'bench',
  projects: [ALL_PROJECTS],
  roles: ['admin'],
  expiresAt: new Date(Date.now() + 24 * 3_600_000),
});

// The per-token rate limit stays on (its bookkeeping is part of every request), with a ceiling no bench client
// reaches: all 16 clients share one token.
const { logger } = await platform.get(telemetryRef);
const api = await createApi(v1Routes, {
  platform,
  logger,
  rateLimit: { points: 1_000_000, durationSeconds: 1 },
  mount: [mountMlflow()],
});
const server = createServer({ keepAliveTimeout: 60_000 }, api.listener);
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  console.error(JSON.stringify({ port, token: secret, pid: process.pid }));
});
// The bench holds our stdin open: when it ends (the bench exited, however), stop rather than outlive it.
process.stdin.on('end', () => process.kill(process.pid, 'SIGTERM'));
process.stdin.resume();
// Where the resident set goes (V8 heap, buffers), asked by the bench beside the RSS it reads from /proc.
process.on('SIGUSR2', () => console.error(JSON.stringify({ memory: process.memoryUsage() })));
platform.hooks.platform.shutdown.tapPromise('bench-api-server', async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});
