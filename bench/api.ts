// Figure 6 (issue 10): the HTTP API side by side with the MLflow tracking server, both on the same PostgreSQL, from
// 16 concurrent HTTP clients (undici, one keep-alive connection each). mlplane's API server (bench/api-server.ts: the
// management plugin on @mlplane/plugin-postgres) runs in a child process, so that its RSS and CPU are its own; the
// MLflow server is the peer as scripts/peers starts it (PostgreSQL backend store, as many workers as cores, artifacts
// in S3). Per round, each operation runs on each contender for the same wall time (ROUND_MS), the contenders' order
// rotated each round:
//   - log-batch of 500 metrics (metrics/s), beside the ceiling: the same batches written by 16 pg connections, one
//     INSERT ... SELECT FROM unnest(...) statement each, into mlplane's metrics table
//   - create run and get model version by alias (req/s, p50, p99)
//   - search runs over 25,000 runs with a param and a metric filter (p50), from 16 clients and from one
//   - the API server's RSS at the end of each log-batch round
// Where the time goes: the CPU each process group spent per request (API server, MLflow workers, PostgreSQL
// backends, the bench's own client), read from /proc around each contender's turn, and two floors of the API
// server: GET /health (HTTP and routing only) and GET /api/v1/me (plus token verification).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, open, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { sql } from 'kysely';
import pg from 'pg';
import { Pool } from 'undici';
import { figure, fmtNumber, type Measured, percentile, rotated, round } from './lib.js';
import { mlflowPython } from './mlflow.js';
import { expectedAccLr, METRIC_KEYS, runData, seedInBulk } from './search.js';

const execFileAsync = promisify(execFile);

export interface ApiSizes {
  readonly clients: number;
  readonly metricsPerBatch: number;
  /** Runs in the searched experiment, on each server. */
  readonly searchRuns: number;
  readonly rounds: number;
  /** How long each contender runs each operation per round. */
  readonly roundMs: number;
  /** The same operations sent by the stock mlflow Python client from `processes` processes, count-based. */
  readonly python?: {
    readonly processes: number;
    readonly rounds: number;
    /** Calls per process and round of each operation. */
    readonly calls: { readonly 'log-batch': number; 'create-run': number; alias: number; search: number };
  };
}

export const API_GOALS = {
  /** log-batch metrics/s, create-run and alias req/s: at least this many times MLflow's. */
  timesMlflow: 10,
  aliasP99Ms: 2,
  searchP50Ms: 50,
  searchTimesMlflow: 20,
  rssMB: 300,
  /** log-batch metrics/s as a share of the raw driver's. */
  ceilingShare: 0.5,
} as const;

// The project the stock mlflow client lands in with an admin token (valid in every project): both APIs then see the
// same experiments and models.
const PROJECT = 'default';
const MODEL = 'bench-model';
const ALIAS = 'champion';
const FILTER = "metrics.acc > 0.9 and params.lr = '0.01'";
const PAGE = 100;
const CLK_TCK = 100;

/** One request; resolves when its whole answer is read, rejects on a status other than 2xx. */
type Call = () => Promise<void>;

interface Contender {
  readonly label: string;
  readonly pool: Pool;
  readonly headers: Record<string, string>;
  /** Process groups whose CPU this contender's server side spends (the API server or the MLflow workers). */
  readonly serverPids: () => Promise<number[]>;
  createRun(): Promise<string>;
  logBatch(runId: string, body: Metric[]): Call;
  createRunCall(): Call;
  alias(): Call;
  search(): Call;
}

interface Metric {
  readonly key: string;
  readonly value: number;
  readonly step: number;
  readonly timestamp: number;
}

/** What one contender did in one operation's round. */
interface Turn {
  readonly requests: number;
  readonly units: number;
  readonly seconds: number;
  readonly latencies: number[];
  /** Requests answered with an error (not counted in requests, units or latencies), and the first one's message. */
  readonly failed: number;
  readonly firstError: string | undefined;
  /** CPU ms per request of the server process group, of PostgreSQL, of this (client) process. */
  readonly cpu: { server: number; postgres: number; client: number };
}

async function send(
  pool: Pool,
  method: 'GET' | 'POST' | 'PUT',
  path: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<any> {
  const res = await pool.request({
    method,
    path,
    headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.body.text();
  if (res.statusCode >= 300) throw new Error(`${method} ${path}: HTTP ${res.statusCode} ${text.slice(0, 500)}`);
  return text === '' ? undefined : JSON.parse(text);
}

/** A request whose answer is read and dropped (the status checked): what a client does, without JSON parsing. */
function call(pool: Pool, method: 'GET' | 'POST', path: string, headers: Record<string, string>, body?: string): Call {
  const h = body === undefined ? headers : { ...headers, 'content-type': 'application/json' };
  return async () => {
    const res = await pool.request({ method, path, headers: h, ...(body === undefined ? {} : { body }) });
    if (res.statusCode >= 300) {
      throw new Error(`${method} ${path}: HTTP ${res.statusCode} ${(await res.body.text()).slice(0, 500)}`);
    }
    await res.body.dump({ limit: Number.POSITIVE_INFINITY });
  };
}

// ---- /proc: CPU and RSS of process groups ----

async function procStat(pid: number): Promise<{ ppid: number; ticks: number } | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // After the command: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17), counted from field 3. The
    // children's times hold what exited children spent once reaped: PostgreSQL backends and MLflow's overflow
    // connections come and go during a turn, and their CPU moves into their parent's.
    const [u, s, cu, cs] = [11, 12, 13, 14].map((i) => Number(rest[i]));
    return { ppid: Number(rest[1]), ticks: u! + s! + cu! + cs! };
  } catch {
    return undefined;
  }
}

/** `root` and every process below it. */
async function tree(root: number): Promise<number[]> {
  const pids = (await readdir('/proc')).filter((d) => /^\d+$/.test(d)).map(Number);
  const parent = new Map<number, number>();
  await Promise.all(
    pids.map(async (pid) => {
      const s = await procStat(pid);
      if (s) parent.set(pid, s.ppid);
    }),
  );
  const out = new Set([root]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [pid, ppid] of parent) {
      if (!out.has(pid) && out.has(ppid)) {
        out.add(pid);
        grew = true;
      }
    }
  }
  return [...out].filter((pid) => parent.has(pid));
}

async function cpuMs(pids: readonly number[]): Promise<number> {
  const stats = await Promise.all(pids.map(procStat));
  return (stats.reduce((sum, s) => sum + (s?.ticks ?? 0), 0) * 1000) / CLK_TCK;
}

async function rssMB(pids: readonly number[]): Promise<number> {
  let kb = 0;
  for (const pid of pids) {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    kb += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  }
  return kb / 1024;
}

/** The processes of a peer started by scripts/peers (its tracked pids and their children), when it is on this machine. */
async function peerPids(name: string): Promise<number[]> {
  const state = process.env.MLPLANE_PEERS_STATE ?? join(tmpdir(), 'mlplane-peers-state');
  const roots = (await readFile(join(state, `${name}.pids`), 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .map(Number);
  return (await Promise.all(roots.map(tree))).flat();
}

// ---- the contenders ----

interface MlplaneServer {
  readonly child: ChildProcess;
  readonly port: number;
  readonly token: string;
  /** The server's process.memoryUsage(), asked by a signal. */
  memory(): Promise<NodeJS.MemoryUsage>;
  stop(): Promise<void>;
}

async function startMlplane(pgUrl: string, schema: string, dataDir: string): Promise<MlplaneServer> {
  const log = await open(join(dataDir, 'server.log'), 'a');
  const child = spawn(
    process.execPath,
    [
      '--conditions=@mlplane/source',
      '--import',
      'tsx',
      join(import.meta.dirname, 'api-server.ts'),
      pgUrl,
      schema,
      dataDir,
    ],
    { stdio: ['pipe', log.fd, 'pipe'] },
  );
  let stderr = '';
  let seen = 0;
  const waiting: ((memory: NodeJS.MemoryUsage) => void)[] = [];
  const ready = await new Promise<{ port: number; token: string }>((resolve, reject) => {
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      stderr += chunk;
      const lines = stderr.split('\n');
      const line = lines.find((l) => l.startsWith('{"port"'));
      if (line) resolve(JSON.parse(line));
      const memory = lines.filter((l) => l.startsWith('{"memory"'));
      for (const m of memory.slice(seen)) waiting.shift()?.(JSON.parse(m).memory);
      seen = memory.length;
    });
    child.once('exit', (code) => reject(new Error(`the API server exited (${code}) before listening:\n${stderr}`)));
  });
  return {
    child,
    ...ready,
    memory: () =>
      new Promise((resolve) => {
        waiting.push(resolve);
        child.kill('SIGUSR2');
      }),
    async stop() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      await log.close();
    },
  };
}

function mlplaneContender(
  server: MlplaneServer,
  pool: Pool,
  experimentId: string,
  searchExperimentId: string,
  v1Alias: boolean,
) {
  const headers = { authorization: `Bearer ${server.token}` };
  const base = `/api/v1/projects/${PROJECT}`;
  const createBody = JSON.stringify({ experimentId });
  const searchBody = JSON.stringify({ experimentIds: [searchExperimentId], filter: FILTER, maxResults: PAGE });
  return {
    label: 'mlplane',
    pool,
    headers,
    serverPids: async () => [server.child.pid!],
    createRun: async () => (await send(pool, 'POST', `${base}/runs`, headers, { experimentId })).info.id as string,
    logBatch: (runId: string, metrics: Metric[]) =>
      call(pool, 'POST', `${base}/runs/${runId}/log-batch`, headers, JSON.stringify({ metrics })),
    createRunCall: () => call(pool, 'POST', `${base}/runs`, headers, createBody),
    alias: () =>
      v1Alias
        ? call(pool, 'GET', `${base}/models/${MODEL}/aliases/${ALIAS}`, headers)
        : call(pool, 'GET', `/api/2.0/mlflow/registered-models/alias?name=${MODEL}&alias=${ALIAS}`, headers),
    search: () => call(pool, 'POST', `${base}/runs/search`, headers, searchBody),
  } satisfies Contender;
}

function mlflowContender(pool: Pool, experimentId: string, searchExperimentId: string) {
  const headers = {};
  const api = '/api/2.0/mlflow';
  const searchBody = JSON.stringify({ experiment_ids: [searchExperimentId], filter: FILTER, max_results: PAGE });
  return {
    label: 'MLflow',
    pool,
    headers,
    serverPids: () => peerPids('mlflow'),
    createRun: async () =>
      (await send(pool, 'POST', `${api}/runs/create`, headers, { experiment_id: experimentId, start_time: Date.now() }))
        .run.info.run_id as string,
    logBatch: (runId: string, metrics: Metric[]) =>
      call(pool, 'POST', `${api}/runs/log-batch`, headers, JSON.stringify({ run_id: runId, metrics })),
    // With a start time, as the Python client sends it.
    createRunCall: () =>
      call(
        pool,
        'POST',
        `${api}/runs/create`,
        headers,
        JSON.stringify({ experiment_id: experimentId, start_time: Date.now() }),
      ),
    alias: () => call(pool, 'GET', `${api}/registered-models/alias?name=${MODEL}&alias=${ALIAS}`, headers),
    search: () => call(pool, 'POST', `${api}/runs/search`, headers, searchBody),
  } satisfies Contender;
}

/** Each of `clients` callers makes requests one after the other until `ms` have passed. */
async function turn(
  clients: number,
  ms: number,
  make: (client: number) => { call: Call; units: number },
  pids: { server: number[]; postgres: () => Promise<number[]> },
): Promise<Turn> {
  const latencies: number[] = [];
  let requests = 0;
  let units = 0;
  let failed = 0;
  let firstError: string | undefined;
  // PostgreSQL forks a backend per connection: the ones a pool opens during the turn count from zero.
  const pgBefore = await pids.postgres();
  const [server0, pg0, client0] = [await cpuMs(pids.server), await cpuMs(pgBefore), process.cpuUsage()];
  const started = performance.now();
  const deadline = started + ms;
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      while (performance.now() < deadline) {
        const next = make(client);
        const t = performance.now();
        try {
          await next.call();
        } catch (err) {
          // A server that gives up under the load (MLflow's connection pool timing out) answers with an error:
          // counted and reported, not done work.
          failed++;
          firstError ??= (err as Error).message;
          continue;
        }
        latencies.push(performance.now() - t);
        requests++;
        units += next.units;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const client = process.cpuUsage(client0);
  return {
    requests,
    units,
    seconds,
    latencies,
    failed,
    firstError,
    cpu: {
      server: ((await cpuMs(pids.server)) - server0) / requests,
      postgres: ((await cpuMs(await pids.postgres())) - pg0) / requests,
      client: (client.user + client.system) / 1000 / requests,
    },
  };
}

/** 500 metrics of batch `b` (steps unique per run, so MLflow's metric key never repeats). */
function batch(b: number, size: number, now: number): Metric[] {
  return Array.from({ length: size }, (_, i) => ({
    key: METRIC_KEYS[i % METRIC_KEYS.length]!,
    value: i / 7,
    step: b * size + i,
    timestamp: now + i,
  }));
}

const toPgUrl = (sqlalchemy: string) => sqlalchemy.replace(/^postgresql(\+\w+)?:\/\//, 'postgres://');
const hostPort = (url: string) => {
  const u = new URL(url);
  return `${u.hostname}:${u.port || '5432'}`;
};

/** Why the section cannot run with these peers, or undefined when it can. */
export function apiSkipReason(pgUrl: string | undefined, mlflowUrl: string | undefined): string | undefined {
  const backend = process.env.MLPLANE_MLFLOW_BACKEND_URI;
  if (!pgUrl) return 'MLPLANE_PG_URL unset or unreachable';
  if (!mlflowUrl) return 'MLPLANE_MLFLOW_URL unset or unreachable';
  if (!backend?.startsWith('postgresql')) {
    return `the MLflow peer is not on PostgreSQL (MLPLANE_MLFLOW_BACKEND_URI=${backend ?? 'unset'}): scripts/peers up mlflow starts it so`;
  }
  if (hostPort(toPgUrl(backend)) !== hostPort(pgUrl)) {
    return `MLflow's PostgreSQL (${hostPort(toPgUrl(backend))}) is not mlplane's (${hostPort(pgUrl)})`;
  }
  return undefined;
}

/** The MLflow side of the search seed: the same 25,000 runs, written into MLflow's own tables in bulk. */
async function seedMlflow(db: pg.Pool, experimentId: number, runs: number) {
  const BULK = 1_000;
  for (let start = 0; start < runs; start += BULK) {
    const ids: string[] = [];
    const cols = {
      runs: [[], [], [], []] as unknown[][],
      metrics: [[], [], [], [], []] as unknown[][],
      params: [[], [], []] as unknown[][],
      tags: [[], [], []] as unknown[][],
    };
    for (let i = start; i < Math.min(runs, start + BULK); i++) {
      const d = runData(i);
      const id = crypto.randomUUID().replaceAll('-', '');
      ids.push(id);
      cols.runs[0]!.push(id);
      cols.runs[1]!.push(`bench-run-${i}`);
      cols.runs[2]!.push(d.status);
      cols.runs[3]!.push(d.startTime);
      for (const m of d.metrics) {
        cols.metrics[0]!.push(id);
        cols.metrics[1]!.push(m.key);
        cols.metrics[2]!.push(m.value);
        cols.metrics[3]!.push(m.step);
        cols.metrics[4]!.push(m.timestamp);
      }
      for (const p of d.params) {
        cols.params[0]!.push(id);
        cols.params[1]!.push(p.key);
        cols.params[2]!.push(p.value);
      }
      for (const [key, value] of Object.entries(d.tags)) {
        cols.tags[0]!.push(id);
        cols.tags[1]!.push(key);
        cols.tags[2]!.push(value);
      }
    }
    const client = await db.connect();
    try {
      await client.query('BEGIN');
      await client.query(
        `INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, start_time,
           source_version, lifecycle_stage, artifact_uri, experiment_id)
         SELECT id, name, 'LOCAL', '', '', 'bench', status, start_time, '', 'active',
           'mlflow-artifacts:/' || $5::int || '/' || id || '/artifacts', $5::int
         FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[]) AS r(id, name, status, start_time)`,
        [...cols.runs, experimentId],
      );
      for (const table of ['metrics', 'latest_metrics']) {
        await client.query(
          `INSERT INTO ${table} (run_uuid, key, value, step, timestamp, is_nan)
           SELECT run_uuid, key, value, step, ts, false
           FROM unnest($1::text[], $2::text[], $3::float8[], $4::int8[], $5::int8[]) AS m(run_uuid, key, value, step, ts)`,
          cols.metrics,
        );
      }
      await client.query(
        'INSERT INTO params (run_uuid, key, value) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])',
        cols.params,
      );
      await client.query(
        'INSERT INTO tags (run_uuid, key, value) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])',
        cols.tags,
      );
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK');
      throw err;
    } finally {
      client.release();
    }
  }
}

/** Statistics and the visibility map as autovacuum leaves them after a load (as section 2 does for the library). */
async function vacuum(db: pg.Pool, tables: readonly string[]) {
  await db.query(`VACUUM ANALYZE ${tables.join(', ')}`);
  await db.query(`VACUUM ${tables.join(', ')}`);
}

/** Every run of the bench's MLflow experiments and their rows, removed (MLflow's runs table has no experiment index). */
async function dropMlflowRuns(db: pg.Pool, experimentIds: readonly number[]) {
  const runs = `SELECT run_uuid FROM runs WHERE experiment_id = ANY($1::int[])`;
  for (const table of ['metrics', 'latest_metrics', 'params', 'tags']) {
    await db.query(`DELETE FROM ${table} WHERE run_uuid IN (${runs})`, [experimentIds]);
  }
  await db.query('DELETE FROM runs WHERE experiment_id = ANY($1::int[])', [experimentIds]);
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export interface ApiResult {
  readonly figures: Measured[];
  /** Per-round lines and the CPU breakdown, for the docs. */
  readonly notes: string[];
}

export async function apiBench(sizes: ApiSizes, pgUrl: string, mlflowUrl: string): Promise<ApiResult> {
  const stamp = Date.now().toString(36);
  const schema = `mlplane_bench_api_${stamp}`;
  const dataDir = await mkdtemp(join(tmpdir(), 'mlplane-bench-api-'));
  const mlflowDb = new pg.Pool({ connectionString: toPgUrl(process.env.MLPLANE_MLFLOW_BACKEND_URI!), max: 2 });
  const ceilingDb = new pg.Pool({ connectionString: pgUrl, max: sizes.clients });
  const pools: Pool[] = [];
  const mlflowExperiments: number[] = [];
  let server: MlplaneServer | undefined;
  const notes: string[] = [];
  console.log(
    `\n## api: ${sizes.clients} HTTP clients, mlplane's API server vs the MLflow server, both on PostgreSQL ${hostPort(pgUrl)}; ${sizes.rounds} rounds of ${sizes.roundMs} ms per operation and contender`,
  );
  try {
    server = await startMlplane(pgUrl, schema, dataDir);
    const poolFor = (url: string) => {
      const pool = new Pool(url, { connections: sizes.clients, pipelining: 1, keepAliveTimeout: 60_000 });
      pools.push(pool);
      return pool;
    };
    const ours = poolFor(`http://127.0.0.1:${server.port}`);
    const theirs = poolFor(mlflowUrl);
    const h = { authorization: `Bearer ${server.token}` };
    const base = `/api/v1/projects/${PROJECT}`;

    // Experiments: one for the load (create run, log-batch), one for the search seed; the same on both servers.
    const load = (await send(ours, 'POST', `${base}/experiments`, h, { name: `api-load-${stamp}` })).id as string;
    const searched = (await send(ours, 'POST', `${base}/experiments`, h, { name: `api-search-${stamp}` })).id as string;
    const mlflowLoad = (
      await send(theirs, 'POST', '/api/2.0/mlflow/experiments/create', {}, { name: `api-load-${stamp}` })
    ).experiment_id as string;
    const mlflowSearched = (
      await send(theirs, 'POST', '/api/2.0/mlflow/experiments/create', {}, { name: `api-search-${stamp}` })
    ).experiment_id as string;
    mlflowExperiments.push(Number(mlflowLoad), Number(mlflowSearched));

    // The model and its alias, through each API.
    const paths = Object.keys(((await send(ours, 'GET', '/api/v1/openapi.json', {})) as { paths: object }).paths);
    const hasAlias = paths.includes('/api/v1/projects/{project}/models/{name}/aliases/{alias}');
    // The model, its version and the alias, through each server's MLflow API (mlplane's MLflow-compatible one).
    for (const [pool, headers] of [
      [ours, h],
      [theirs, {}],
    ] as const) {
      await send(pool, 'POST', '/api/2.0/mlflow/registered-models/create', headers, { name: MODEL }).catch(
        (err: Error) => {
          if (!err.message.includes('RESOURCE_ALREADY_EXISTS')) throw err;
        },
      );
      const mv = await send(pool, 'POST', '/api/2.0/mlflow/model-versions/create', headers, {
        name: MODEL,
        source: 's3://bench/model',
      });
      await send(pool, 'POST', '/api/2.0/mlflow/registered-models/alias', headers, {
        name: MODEL,
        alias: ALIAS,
        version: mv.model_version.version,
      });
    }
    const aliasRoute = hasAlias
      ? `GET /api/v1/projects/{p}/models/{name}/aliases/{alias}`
      : 'GET /api/2.0/mlflow/registered-models/alias (its MLflow-compatible route: this build has no /api/v1 alias route yet)';
    notes.push(`mlplane's alias reads go to ${aliasRoute}.`);

    // The search seed: the same runs on both, in bulk (section 2's rows: 20 metrics, 3 params, 2 tags per run).
    let t = performance.now();
    const store = await PostgresMetadataStore.connect({ connectionString: pgUrl, schema });
    try {
      await seedInBulk(store, searched, 0, sizes.searchRuns);
      await sql`VACUUM ANALYZE runs, run_tags, params, metrics, latest_metrics, experiments`.execute(store.db());
      await sql`VACUUM runs, run_tags, params, metrics, latest_metrics, experiments`.execute(store.db());
    } finally {
      await store.close();
    }
    const seededOurs = (performance.now() - t) / 1000;
    t = performance.now();
    await seedMlflow(mlflowDb, Number(mlflowSearched), sizes.searchRuns);
    await vacuum(mlflowDb, ['runs', 'metrics', 'latest_metrics', 'params', 'tags', 'experiments']);
    console.log(
      `  seeded ${fmtNumber(sizes.searchRuns)} runs in bulk into each: mlplane's schema in ${seededOurs.toFixed(1)} s, MLflow's database in ${((performance.now() - t) / 1000).toFixed(1)} s; vacuumed and analyzed both`,
    );

    const contenders: Contender[] = [
      mlplaneContender(server, ours, load, searched, hasAlias),
      mlflowContender(theirs, mlflowLoad, mlflowSearched),
    ];
    // Both searches must find the seeded runs: every page walked once, on each server.
    const expected = expectedAccLr(sizes.searchRuns);
    let found = 0;
    let token: string | undefined;
    do {
      const page = await send(ours, 'POST', `${base}/runs/search`, h, {
        experimentIds: [searched],
        filter: FILTER,
        maxResults: PAGE,
        ...(token ? { pageToken: token } : {}),
      });
      found += page.items.length;
      token = page.nextPageToken;
    } while (token);
    let mlflowFound = 0;
    token = undefined;
    do {
      const page = await send(
        theirs,
        'POST',
        '/api/2.0/mlflow/runs/search',
        {},
        {
          experiment_ids: [mlflowSearched],
          filter: FILTER,
          max_results: PAGE,
          ...(token ? { page_token: token } : {}),
        },
      );
      mlflowFound += page.runs?.length ?? 0;
      token = page.next_page_token;
    } while (token);
    if (found !== expected || mlflowFound !== expected) {
      throw new Error(`search found ${found} runs on mlplane and ${mlflowFound} on MLflow, expected ${expected}`);
    }

    const pgPids = () => peerPids('postgres');
    const pids = async (c: Contender) => ({ server: await c.serverPids(), postgres: pgPids });
    const now = Date.now();
    const payloads = Array.from({ length: 64 }, (_, b) => batch(b, sizes.metricsPerBatch, now));

    type Op = 'log-batch' | 'create run' | 'alias' | 'search x16' | 'search x1' | 'health' | 'me';
    const ops: Op[] = ['log-batch', 'create run', 'alias', 'search x16', 'search x1'];
    const results = new Map<string, Turn[]>();
    const record = (op: string, who: string, turnResult: Turn) => {
      const key = `${op}|${who}`;
      results.set(key, [...(results.get(key) ?? []), turnResult]);
    };
    const rss: number[] = [];
    const memory: NodeJS.MemoryUsage[] = [];
    const mlflowRss: number[] = [];
    const CEILING = 'raw pg';

    // One warm-up turn of every operation on each contender (connections, prepared statements, JIT), not recorded.
    const runTurn = async (op: Op, c: Contender | typeof CEILING, ms: number): Promise<Turn> => {
      if (c === CEILING) {
        // The same batches into mlplane's metrics table, one statement per batch, each connection to a run of its own.
        const runIds = await Promise.all(Array.from({ length: sizes.clients }, () => contenders[0]!.createRun()));
        const steps = new Array(sizes.clients).fill(0) as number[];
        const text = `INSERT INTO ${schema}.metrics (run_id, key, value, is_nan, step, timestamp)
          SELECT $1, key, value, 0, step, ts FROM unnest($2::text[], $3::float8[], $4::int8[], $5::int8[]) AS m(key, value, step, ts)`;
        return turn(
          sizes.clients,
          ms,
          (client) => {
            const n = steps[client]!;
            steps[client] = n + 1;
            const metrics = payloads[n % payloads.length]!;
            return {
              units: metrics.length,
              call: async () => {
                await ceilingDb.query({
                  name: 'bench-ceiling-insert',
                  text,
                  values: [
                    runIds[client],
                    metrics.map((m) => m.key),
                    metrics.map((m) => m.value),
                    metrics.map((m) => m.step + n * 1_000_000),
                    metrics.map((m) => m.timestamp),
                  ],
                });
              },
            };
          },
          { server: [], postgres: pgPids },
        );
      }
      const p = await pids(c);
      switch (op) {
        case 'log-batch': {
          const runIds = await Promise.all(Array.from({ length: sizes.clients }, () => c.createRun()));
          const sent = new Array(sizes.clients).fill(0) as number[];
          return turn(
            sizes.clients,
            ms,
            (client) => {
              const n = sent[client]!;
              sent[client] = n + 1;
              // Steps move on per batch, so a run never gets the same (key, step, timestamp) twice.
              const metrics = payloads[n % payloads.length]!.map((m) => ({ ...m, step: m.step + n * 1_000_000 }));
              return { units: metrics.length, call: c.logBatch(runIds[client]!, metrics) };
            },
            p,
          );
        }
        case 'create run':
          return turn(sizes.clients, ms, () => ({ units: 1, call: c.createRunCall() }), p);
        case 'alias':
          return turn(sizes.clients, ms, () => ({ units: 1, call: c.alias() }), p);
        case 'search x16':
          return turn(sizes.clients, ms, () => ({ units: 1, call: c.search() }), p);
        case 'search x1':
          return turn(1, ms, () => ({ units: 1, call: c.search() }), p);
        case 'health':
          return turn(sizes.clients, ms, () => ({ units: 1, call: call(c.pool, 'GET', '/health', {}) }), p);
        case 'me':
          return turn(sizes.clients, ms, () => ({ units: 1, call: call(c.pool, 'GET', '/api/v1/me', c.headers) }), p);
      }
    };

    for (const op of ops) for (const c of contenders) await runTurn(op, c, Math.min(1_000, sizes.roundMs));
    await runTurn('log-batch', CEILING, Math.min(1_000, sizes.roundMs));

    for (let r = 0; r < sizes.rounds; r++) {
      for (const op of ops) {
        const order: (Contender | typeof CEILING)[] = op === 'log-batch' ? [...contenders, CEILING] : contenders;
        const line: string[] = [];
        for (const c of rotated(order, r)) {
          const result = await runTurn(op, c, sizes.roundMs);
          const who = c === CEILING ? CEILING : c.label;
          record(op, who, result);
          const rate = result.units / result.seconds;
          line.push(
            `${who} ${fmtNumber(rate)} ${op === 'log-batch' ? 'metrics/s' : 'req/s'} (p50 ${percentile([...result.latencies], 0.5).toFixed(1)} ms, p99 ${percentile([...result.latencies], 0.99).toFixed(1)} ms${result.failed ? `; ${result.failed} failed: ${result.firstError!.slice(0, 300)}` : ''})`,
          );
          if (op === 'log-batch' && c !== CEILING) {
            // At the end of the ingest load: the server's resident set as the load leaves it.
            if (c.label === 'mlplane') {
              rss.push(await rssMB([server.child.pid!]));
              memory.push(await server.memory());
            } else mlflowRss.push(await rssMB(await c.serverPids()));
          }
        }
        const msg = `round ${r + 1} ${op}: ${line.join('; ')}`;
        console.log(`  ${msg}`);
        notes.push(msg);
      }
      // The floors of the API server, and MLflow's /health for scale.
      for (const op of ['health', 'me'] as const) {
        for (const c of rotated(contenders, r)) {
          if (op === 'me' && c.label !== 'mlplane') continue;
          record(op, c.label, await runTurn(op, c, Math.min(2_000, sizes.roundMs)));
        }
      }
    }

    // ---- the stock mlflow Python client, both servers through their MLflow API ----
    const pyOps = ['log-batch', 'create-run', 'alias', 'search'] as const;
    type PyOp = (typeof pyOps)[number];
    const py = new Map<string, { rate: number; latencies: number[]; cpuMs: number }[]>();
    if (sizes.python) {
      const P = sizes.python;
      const targets = [
        { label: 'mlplane', pool: ours, headers: h, uri: `http://127.0.0.1:${server.port}`, load, searched },
        { label: 'MLflow', pool: theirs, headers: {}, uri: mlflowUrl, load: mlflowLoad, searched: mlflowSearched },
      ];
      for (let r = 0; r < P.rounds; r++) {
        const line: string[] = [];
        for (const target of rotated(targets, r)) {
          const runIds = await Promise.all(
            Array.from(
              { length: P.processes },
              async () =>
                (
                  await send(target.pool, 'POST', '/api/2.0/mlflow/runs/create', target.headers, {
                    experiment_id: target.load,
                    start_time: Date.now(),
                  })
                ).run.info.run_id as string,
            ),
          );
          const spec = {
            uri: target.uri,
            processes: P.processes,
            ops: pyOps,
            runs: runIds,
            experiment: target.load,
            search_experiment: target.searched,
            model: MODEL,
            alias: ALIAS,
            filter: FILTER,
            metrics_per_batch: sizes.metricsPerBatch,
            calls: P.calls,
          };
          try {
            const { stdout } = await execFileAsync(
              mlflowPython(),
              [join(import.meta.dirname, 'mlflow_client_load.py'), JSON.stringify(spec)],
              {
                env: {
                  ...process.env,
                  MLFLOW_DISABLE_TELEMETRY: 'true',
                  DO_NOT_TRACK: 'true',
                  ...(target.label === 'mlplane' ? { MLFLOW_TRACKING_TOKEN: server.token } : {}),
                },
                maxBuffer: 64 << 20,
              },
            );
            const parts: string[] = [];
            for (const text of stdout.trim().split('\n')) {
              const o = JSON.parse(text) as {
                op: PyOp;
                units: number;
                seconds: number;
                latencies: number[];
                cpu: number;
              };
              const key = `${o.op}|${target.label}`;
              const rate = o.units / o.seconds;
              py.set(key, [
                ...(py.get(key) ?? []),
                { rate, latencies: o.latencies, cpuMs: (o.cpu * 1000) / o.latencies.length },
              ]);
              parts.push(`${o.op} ${fmtNumber(rate)} ${o.op === 'log-batch' ? 'metrics/s' : 'req/s'}`);
            }
            line.push(`${target.label}: ${parts.join(', ')}`);
          } catch (err) {
            line.push(`${target.label}: the client run failed: ${(err as Error).message.slice(0, 400)}`);
          }
        }
        const msg = `python client round ${r + 1} (${P.processes} processes): ${line.join('; ')}`;
        console.log(`  ${msg}`);
        notes.push(msg);
      }
    }

    // ---- figures ----
    const figures: Measured[] = [];
    for (const [key, list] of results) {
      const failed = list.reduce((n, x) => n + x.failed, 0);
      if (failed === 0) continue;
      const [op, who] = key.split('|');
      figures.push(figure(`api failed requests, ${op}, ${who}`, 'requests', failed, null, 'lower-is-better'));
    }
    const turns = (op: string, who: string) => results.get(`${op}|${who}`) ?? [];
    const rate = (op: string, who: string) => median(turns(op, who).map((x) => x.units / x.seconds));
    const pct = (op: string, who: string, q: number) =>
      percentile(
        turns(op, who).flatMap((x) => x.latencies),
        q,
      );
    const cpu = (op: string, who: string, part: keyof Turn['cpu']) => median(turns(op, who).map((x) => x.cpu[part]));
    const G = API_GOALS;
    const vsMlflow = 'the MLflow server (PostgreSQL backend, workers = cores), same load';

    const lbOurs = rate('log-batch', 'mlplane');
    const lbTheirs = rate('log-batch', 'MLflow');
    const lbRaw = rate('log-batch', CEILING);
    figures.push(
      figure(
        `api log-batch ${sizes.metricsPerBatch} metrics x${sizes.clients} clients, mlplane vs MLflow`,
        'metrics/s',
        lbOurs,
        lbTheirs,
        'higher-is-better',
        { goal: { text: `≥ ${G.timesMlflow}x MLflow`, met: lbOurs >= G.timesMlflow * lbTheirs }, peerIs: vsMlflow },
      ),
      figure(
        `api log-batch ${sizes.metricsPerBatch} metrics x${sizes.clients} clients, mlplane vs raw pg INSERT on ${sizes.clients} connections`,
        'metrics/s',
        lbOurs,
        lbRaw,
        'higher-is-better',
        {
          goal: { text: `≥ ${G.ceilingShare} of the raw driver`, met: lbOurs >= G.ceilingShare * lbRaw },
          peerIs: `pg, one INSERT … SELECT FROM unnest per batch, ${sizes.clients} connections, mlplane's metrics table`,
        },
      ),
      figure(
        `api log-batch ${sizes.metricsPerBatch} metrics p99 x${sizes.clients} clients`,
        'ms',
        pct('log-batch', 'mlplane', 0.99),
        pct('log-batch', 'MLflow', 0.99),
        'lower-is-better',
        { peerIs: vsMlflow },
      ),
    );
    const maxRss = Math.max(...rss);
    const at = memory[rss.indexOf(maxRss)]!;
    const mb = (bytes: number) => bytes / 2 ** 20;
    const memoryNote = `API server memory when its RSS was largest (${fmtNumber(maxRss)} MB, process.memoryUsage() right after): V8 heap ${fmtNumber(mb(at.heapUsed))} MB used of ${fmtNumber(mb(at.heapTotal))} MB allocated, external ${fmtNumber(mb(at.external))} MB (array buffers ${fmtNumber(mb(at.arrayBuffers))} MB); the rest of the RSS is code, V8's other spaces and the allocator's free pages.`;
    console.log(`  ${memoryNote}`);
    notes.push(memoryNote);
    figures.push(
      figure(
        'api server RSS at the end of the log-batch load (largest over the rounds)',
        'MB',
        maxRss,
        Math.max(...mlflowRss),
        'lower-is-better',
        {
          goal: { text: `≤ ${G.rssMB} MB`, met: maxRss <= G.rssMB },
          peerIs: 'the MLflow server, all its processes (parent and workers)',
        },
      ),
    );
    const reqOps: [Op, string][] = [
      ['create run', 'create run'],
      ['alias', 'get model version by alias'],
    ];
    for (const [op, what] of reqOps) {
      const a = rate(op, 'mlplane');
      const b = rate(op, 'MLflow');
      const p99 = pct(op, 'mlplane', 0.99);
      figures.push(
        figure(`api ${what} x${sizes.clients} clients, mlplane vs MLflow`, 'req/s', a, b, 'higher-is-better', {
          goal: { text: `≥ ${G.timesMlflow}x MLflow`, met: a >= G.timesMlflow * b },
          peerIs: vsMlflow,
        }),
        figure(
          `api ${what} p50 x${sizes.clients} clients`,
          'ms',
          pct(op, 'mlplane', 0.5),
          pct(op, 'MLflow', 0.5),
          'lower-is-better',
          {
            peerIs: vsMlflow,
          },
        ),
        figure(
          `api ${what} p99 x${sizes.clients} clients`,
          'ms',
          p99,
          pct(op, 'MLflow', 0.99),
          'lower-is-better',
          op === 'alias'
            ? { goal: { text: `≤ ${G.aliasP99Ms} ms`, met: p99 <= G.aliasP99Ms }, peerIs: vsMlflow }
            : { peerIs: vsMlflow },
        ),
      );
    }
    for (const [op, clients] of [
      ['search x16', sizes.clients],
      ['search x1', 1],
    ] as const) {
      const a = pct(op, 'mlplane', 0.5);
      const b = pct(op, 'MLflow', 0.5);
      const met = a <= G.searchP50Ms && b >= G.searchTimesMlflow * a;
      figures.push(
        figure(
          `api search runs p50 over ${fmtNumber(sizes.searchRuns)} runs (${FILTER}) x${clients} client${clients > 1 ? 's' : ''}, mlplane vs MLflow`,
          'ms',
          a,
          b,
          'lower-is-better',
          // Judged from 16 clients (the issue's load) and from one (a search's own latency, no queue of others).
          {
            goal: { text: `≤ ${G.searchP50Ms} ms and ≥ ${G.searchTimesMlflow}x faster than MLflow`, met },
            peerIs: vsMlflow,
          },
        ),
      );
    }
    figures.push(
      figure(
        `api floor GET /health x${sizes.clients} clients (no auth, no database), mlplane vs MLflow`,
        'req/s',
        rate('health', 'mlplane'),
        rate('health', 'MLflow'),
        'higher-is-better',
        { peerIs: "MLflow's GET /health" },
      ),
      figure(
        `api floor GET /api/v1/me x${sizes.clients} clients (token verified, no other read), mlplane`,
        'req/s',
        rate('me', 'mlplane'),
        null,
        'higher-is-better',
      ),
    );
    for (const op of [...ops, 'health', 'me'] as const) {
      for (const part of ['server', 'postgres', 'client'] as const) {
        if (op === 'me' && part === 'client') continue;
        const ourCpu = cpu(op, 'mlplane', part);
        const theirCpu = op === 'me' ? null : cpu(op, 'MLflow', part);
        figures.push(
          figure(
            `api CPU per request, ${op}, ${part === 'server' ? 'server process(es)' : part === 'postgres' ? 'PostgreSQL backends' : 'bench client'}`,
            'ms',
            ourCpu,
            theirCpu,
            'lower-is-better',
            { peerIs: 'the same for MLflow' },
          ),
        );
      }
    }
    figures.push(
      figure(
        `api CPU per request, log-batch, PostgreSQL backends, raw pg INSERT ceiling`,
        'ms',
        cpu('log-batch', CEILING, 'postgres'),
        null,
        'lower-is-better',
      ),
    );
    if (sizes.python) {
      const P = sizes.python;
      const pyTurns = (op: PyOp, who: string) => py.get(`${op}|${who}`) ?? [];
      const pyRate = (op: PyOp, who: string) => median(pyTurns(op, who).map((x) => x.rate));
      const pyPct = (op: PyOp, who: string, q: number) =>
        percentile(
          pyTurns(op, who).flatMap((x) => x.latencies),
          q,
        );
      const who = `x${P.processes} processes`;
      const peerIs = 'the MLflow server, the same Python client load';
      if (pyTurns('log-batch', 'mlplane').length && pyTurns('log-batch', 'MLflow').length) {
        figures.push(
          figure(
            `api python client log-batch ${sizes.metricsPerBatch} metrics ${who}, mlplane vs MLflow`,
            'metrics/s',
            pyRate('log-batch', 'mlplane'),
            pyRate('log-batch', 'MLflow'),
            'higher-is-better',
            { peerIs },
          ),
          figure(
            `api python client CPU per log-batch request ${who}`,
            'ms',
            median(pyTurns('log-batch', 'mlplane').map((x) => x.cpuMs)),
            median(pyTurns('log-batch', 'MLflow').map((x) => x.cpuMs)),
            'lower-is-better',
            { peerIs: 'the same client against MLflow' },
          ),
        );
      }
      for (const [op, what] of [
        ['create-run', 'create run'],
        ['alias', 'get model version by alias'],
      ] as const) {
        if (!pyTurns(op, 'mlplane').length || !pyTurns(op, 'MLflow').length) continue;
        figures.push(
          figure(
            `api python client ${what} ${who}, mlplane vs MLflow`,
            'req/s',
            pyRate(op, 'mlplane'),
            pyRate(op, 'MLflow'),
            'higher-is-better',
            { peerIs },
          ),
          figure(
            `api python client ${what} p99 ${who}`,
            'ms',
            pyPct(op, 'mlplane', 0.99),
            pyPct(op, 'MLflow', 0.99),
            'lower-is-better',
            { peerIs },
          ),
        );
      }
      if (pyTurns('search', 'mlplane').length && pyTurns('search', 'MLflow').length) {
        figures.push(
          figure(
            `api python client search runs p50 (${FILTER}) ${who}, mlplane vs MLflow`,
            'ms',
            pyPct('search', 'mlplane', 0.5),
            pyPct('search', 'MLflow', 0.5),
            'lower-is-better',
            { peerIs },
          ),
        );
      }
    }
    return { figures, notes };
  } finally {
    for (const pool of pools) await pool.close();
    await server?.stop();
    await dropMlflowRuns(mlflowDb, mlflowExperiments).catch((err: Error) =>
      console.log(`  could not remove the bench's MLflow runs: ${err.message}`),
    );
    await mlflowDb.end();
    await ceilingDb.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
    await ceilingDb.end();
    await rm(dataDir, { recursive: true, force: true });
  }
}

const BEGIN = '<!-- api section: written by `BENCH_ONLY=api pnpm bench` or a full run; the rest of the file stays -->';
const END = '<!-- end of api section -->';

export interface ApiDocsInput {
  readonly result: ApiResult;
  readonly sizes: ApiSizes;
  /** When, where and what was measured, one paragraph. */
  readonly recorded: string;
}

const num = (x: number | null) => (x === null ? '–' : x.toLocaleString('en-US', { maximumFractionDigits: 3 }));

/** The section of docs/benchmarks.md for these figures, markers included. */
export function renderApiSection({ result, sizes, recorded }: ApiDocsInput): string {
  const rows = (pick: (f: Measured) => boolean) =>
    [
      '| figure | mlplane | unit | peer | peer is | ratio (>1: mlplane better) | goal |',
      '|---|---:|---|---:|---|---:|---|',
      ...result.figures
        .filter(pick)
        .map(
          (f) =>
            `| ${f.name} | ${num(f.ours)} | ${f.unit} | ${num(f.peer)} | ${f.peerIs ?? ''} | ${num(f.ratio)} | ${f.goal ? `${f.goal.text}: ${f.goal.met ? '**met**' : '**missed**'}` : ''} |`,
        ),
    ].join('\n');
  const isCpu = (f: Measured) => f.name.startsWith('api CPU per request');
  return `${BEGIN}
## 7. HTTP API: mlplane's API server vs the MLflow server (issue 10)

${recorded}
Reproduce with \`BENCH_ONLY=api pnpm bench\` (PostgreSQL, S3 and MLflow from \`scripts/peers up postgres s3 mlflow\`),
which merges these figures into bench/results/latest.json, the goals table and the goal history.

Both servers run on this machine on the same PostgreSQL server (the PostgreSQL peer: \`fsync\` and
\`synchronous_commit\` off, as \`scripts/peers\` starts it, which lowers every commit's cost alike), each in a database
of its own. **MLflow** is the peer as \`scripts/peers up mlflow\` starts it, configured as MLflow's docs recommend for
production: mlflow 3.17.2, PostgreSQL backend store (psycopg2), artifacts in S3, \`--workers\` as many as cores
(uvicorn), its access log on. **mlplane** is \`bench/api-server.ts\` in a process of its own, started as
\`mlplane up --config FILE\` starts it (\`startDistribution\` of \`@mlplane/cli\`, with a config file it writes): the
reference distribution's platform (embedded defaults and the management plugin) on \`@mlplane/plugin-postgres\` (its
defaults: 10 connections, prepared statements; outbox relay, webhooks and audit on; artifacts on the local disk, the
in-process event bus and file secrets chosen in \`platform.providers\`), with \`@mlplane/server\`'s API and the
request telemetry \`up\` serves (Prometheus metrics per route, trace context), a request log line per request (pino,
info), per-token rate limiting on (with a ceiling the load never reaches: all clients share the admin token \`up\`
issues), the verified-token cache at its default (5 s). The load is ${sizes.clients} concurrent clients in the bench's Node process
(undici, one keep-alive connection per client), each making one request after the other for ${sizes.roundMs / 1000} s per operation,
contender and round; ${sizes.rounds} rounds, the contenders' order rotated each round. Rates are the median round, latencies
percentiles of every request of every round. log-batch requests carry ${sizes.metricsPerBatch} metrics, each client to a run of its own.
The ceiling is the same batches written by ${sizes.clients} pg connections from the bench process, one
\`INSERT … SELECT FROM unnest(…)\` statement per batch into mlplane's \`metrics\` table (no run check, no latest
values, no outbox event: the bare write). Search: ${fmtNumber(sizes.searchRuns)} runs (section 2's rows: ${METRIC_KEYS.length} metrics, 3 params, 2 tags
each) written in bulk into each server's tables, then \`VACUUM ANALYZE\`; each search returns the first page of
${PAGE} whole runs matching \`${FILTER}\`, and before timing every page is walked once on each server and must
find the same ${fmtNumber(expectedAccLr(sizes.searchRuns))} runs.

${
  sizes.python
    ? `**The stock mlflow Python client** (mlflow 3.17.2, the MLflow peer's virtualenv, \`bench/mlflow_client_load.py\`)
sends the same operations to both servers' MLflow API (mlplane's MLflow-compatible \`/api/2.0/mlflow\`, with an
mlplane token in \`MLFLOW_TRACKING_TOKEN\`): ${sizes.python.processes} client processes (forked after the import, each with its own
\`MlflowClient\`, as ${sizes.python.processes} training jobs would be; threads of one process would share the GIL), each making per
round ${sizes.python.calls['log-batch']} \`log_batch\` calls of ${sizes.metricsPerBatch} metrics to a run of its own, ${sizes.python.calls['create-run']} \`create_run\`, ${sizes.python.calls.alias} \`get_model_version_by_alias\`
and ${sizes.python.calls.search} \`search_runs\` (the same filter, 100 runs); all processes start each operation together and its clock
stops when the last is done; ${sizes.python.rounds} rounds, the servers' order rotated. These rows (\`api python client …\`) carry no goal.

`
    : ''
}${rows((f) => !isCpu(f))}

**Where the time goes.** CPU milliseconds per request, read from \`/proc\` around each contender's turn (median
round): the server's processes (mlplane's one Node process; MLflow's parent and workers), the PostgreSQL server's
processes, and the bench's client process (which shares the machine's cores with both servers).

${rows(isCpu)}

${whereTimeGoes(result.figures, sizes).join('\n')}

Per round:

${result.notes.map((n) => `- ${n}`).join('\n')}
${END}
`;
}

/** The figures read as sentences: where each operation's time goes, computed from this run's CPU rows. */
function whereTimeGoes(figures: readonly Measured[], sizes: ApiSizes): string[] {
  const get = (name: string) => figures.find((f) => f.name === name);
  const cpu = (op: string, part: 'server process(es)' | 'PostgreSQL backends') =>
    get(`api CPU per request, ${op}, ${part}`);
  const ms = (x: number | null | undefined) => (x === null || x === undefined ? '–' : `${num(x)} ms`);
  const lines: string[] = [];
  const lb = cpu('log-batch', 'server process(es)');
  const lbPg = cpu('log-batch', 'PostgreSQL backends');
  const rawPg = get('api CPU per request, log-batch, PostgreSQL backends, raw pg INSERT ceiling');
  if (lb && lbPg) {
    lines.push(
      `- **log-batch**: mlplane's server spends ${ms(lb.ours)} of CPU per ${sizes.metricsPerBatch}-metric request (${num(round((lb.ours * 1000) / sizes.metricsPerBatch))} µs per metric: reading and parsing the JSON body, the route's check of every metric and then the port's (plain code, no zod object per metric), the token from the verified-token cache, the run's project from the owner cache, the request telemetry) and PostgreSQL ${ms(lbPg.ours)} (the metrics insert, the latest-value upsert, the outbox event and the run check, in one statement), where the bare INSERT of the ceiling costs PostgreSQL ${ms(rawPg?.ours)}. MLflow's workers spend ${ms(lb.peer)} per request (${num(lb.ratio)}x mlplane's server CPU) and PostgreSQL ${ms(lbPg.peer)} for it.`,
    );
  }
  const me = cpu('me', 'server process(es)');
  const mePg = cpu('me', 'PostgreSQL backends');
  const health = cpu('health', 'server process(es)');
  const create = cpu('create run', 'server process(es)');
  const createPg = cpu('create run', 'PostgreSQL backends');
  if (me && health && mePg) {
    const auth = me.ours - health.ours;
    lines.push(
      `- **Authentication per request**: GET /api/v1/me (authentication only) costs the server ${ms(me.ours)} and PostgreSQL ${ms(mePg.ours)} per request, against ${ms(health.ours)} for GET /health: about ${ms(round(auth))} of server CPU for the SHA-256 of the secret and a lookup in the verified-token cache (its row is read again after the cache's 5 s TTL, or when a revocation, grant or role change empties it), the rate limiter and the request telemetry${create ? `; that is ${Math.round((100 * auth) / create.ours)}% of a create run's server CPU (${ms(create.ours)})` : ''}.`,
    );
  }
  if (create && createPg) {
    lines.push(
      `- **create run**: ${ms(create.ours)} of server CPU and ${ms(createPg.ours)} of PostgreSQL per request on mlplane (the run row with its tags, its outbox event, the experiment's project from the owner cache), ${ms(create.peer)} and ${ms(createPg.peer)} on MLflow.`,
    );
  }
  const search = cpu('search x1', 'server process(es)');
  const searchPg = cpu('search x1', 'PostgreSQL backends');
  if (search && searchPg) {
    lines.push(
      `- **search**: one search of a ${PAGE}-run page costs mlplane's server ${ms(search.ours)} (turning ${PAGE} whole runs with ${METRIC_KEYS.length} metrics, 3 params and 2 tags each into JSON) and PostgreSQL ${ms(searchPg.ours)}; MLflow ${ms(search.peer)} and ${ms(searchPg.peer)}. From ${sizes.clients} clients the p50 is mostly waiting for a core: ${sizes.clients} searches in flight share 2 cores with the other processes on the machine.`,
    );
  }
  lines.push(
    "- **A CPU profile of the API server** (`node --cpu-prof`, 16 clients for 10 s per operation, taken apart from the recorded rounds on 2026-12-02 at commit 65516bc, before the verified-token cache, the batched audit appends, the prepared metric append and the route's plain-code metric check; shares of the server's busy CPU): log-batch: appending each batch's domain event to the hash-chained audit log, which the audit consumer does in the same process, 18%; the pg driver 14%; socket writes 12%; GC 8%; kysely compiling SQL 8%; zod (the route's schema, then the port's) 8 to 9%; reading the JSON body 6%; token verification 3%. create run: the audit log 24%, socket writes 27%, kysely 11%. alias: socket writes 32% (the HTTP answer and the pg queries, a syscall each), token verification 8% and the Authorizer's check 3%, pino 3%.",
  );
  lines.push(
    "- **The machine**: 2 cores shared by both servers, PostgreSQL, the bench's clients and other engineers' work (see the load average above): every process waits for a core, and how the scheduler shares them among MLflow's processes (a parent and one per worker) and mlplane's one Node process moves the throughput ratios from round to round. The CPU per request is the steadier comparison.",
  );
  return lines;
}

/** `doc` with the api section put in place of its previous one, or appended. */
export function spliceApiSection(doc: string, section: string): string {
  const begin = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (begin !== -1 && end !== -1) return `${doc.slice(0, begin)}${section}${doc.slice(end + END.length + 1)}`;
  return section ? `${doc.trimEnd()}\n\n${section}` : doc;
}

/** The api section of a docs file, markers included, or '' when it has none. */
export function extractApiSection(doc: string): string {
  const begin = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  return begin === -1 || end === -1 ? '' : `${doc.slice(begin, end + END.length)}\n`;
}
