// The mlplane API server of bench/api.ts, in a process of its own so that its RSS is its own, started as
// `mlplane up --config FILE` starts it: startDistribution of @mlplane/cli (what the command runs) with a config file
// written here, whose `postgres` section installs @mlplane/plugin-postgres (its defaults: 10 connections, prepared
// statements) beside the embedded defaults and the management plugin; the HTTP API (/api/v1, the MLflow-compatible
// /api/2.0/mlflow, /metrics) with the request telemetry `up` serves. One departure: the per-token rate limit is raised
// to a ceiling no bench client reaches (all 16 clients share one token; `up` allows 2,000 requests a second per
// token), so that its bookkeeping stays part of every request without refusing any.
// Usage: node --conditions=@mlplane/source --import tsx bench/api-server.ts PG_URL SCHEMA DATA_DIR
// Writes one JSON line {port, token, pid} to stderr once it listens (the token: the admin token `up` issues), then
// serves until SIGTERM, when it stops as `up` does. Request logs (pino, one line per request at info, as the MLflow
// peer's uvicorn writes an access line per request) go to stdout, which the bench sends to a file.
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startDistribution } from '@mlplane/cli';

const [connectionString, schema, dataDir] = process.argv.slice(2);
if (!connectionString || !schema || !dataDir) {
  console.error('usage: api-server.ts PG_URL SCHEMA DATA_DIR');
  process.exit(2);
}

const configFile = join(dataDir, 'mlplane.yaml');
// JSON is YAML: the file reads as any mlplane.yaml does.
await writeFile(
  configFile,
  JSON.stringify({
    platform: {
      logLevel: 'info',
      // As the recorded runs had them (strict mode asks for the choice to be written down): artifacts on the local
      // disk, the in-process event bus, file secrets, local compute.
      providers: {
        'core.artifactStore': 'embedded',
        'core.computeBackend': 'embedded',
        'core.eventBus': 'embedded',
        'core.secretStore': 'embedded',
      },
    },
    embedded: { dataDir },
    // The plugin's defaults otherwise, as mlplane.yaml.example lists them.
    postgres: { connectionString, schema },
  }),
);
const running = await startDistribution({
  config: configFile,
  dataDir,
  port: 0,
  host: '127.0.0.1',
  rateLimit: { points: 1_000_000, durationSeconds: 1 },
});
const token = running.newAdminToken ?? (await readFile(running.adminTokenFile, 'utf8')).trim();
const { port } = new URL(running.served.url);
console.error(JSON.stringify({ port: Number(port), token, pid: process.pid }));

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  void running.stop().then(({ clean }) => process.exit(clean ? 0 : 1));
};
for (const signal of running.signals) process.on(signal, stop);
// The bench holds our stdin open: when it ends (the bench exited, however), stop rather than outlive it.
process.stdin.on('end', stop);
process.stdin.resume();
// Where the resident set goes (V8 heap, buffers), asked by the bench beside the RSS it reads from /proc.
process.on('SIGUSR2', () => console.error(JSON.stringify({ memory: process.memoryUsage() })));
