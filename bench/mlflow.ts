// plugin-mlflow's metric ingest vs MLflow's own Python client (`MlflowClient.log_batch`), against the same MLflow
// server, with 1 caller and 8 concurrent callers. Contenders alternate within each round so that drift of the
// shared machine (and of the server's backend store) falls on both; the median round is reported.
import { execFile } from 'node:child_process';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { MlflowClient, MlflowExperimentTracker } from '../packages/plugin-mlflow/src/index.js';
import { figure, type Measured } from './lib.js';

const run = promisify(execFile);

export interface MlflowSizes {
  /** logBatch calls in one round of one contender, shared evenly among its callers. */
  readonly batches: number;
  /** Metrics per logBatch call (the Python client sends up to 1000 a request, as we do). */
  readonly metricsPerBatch: number;
  readonly rounds: number;
}

/** The peer's virtualenv, which has the mlflow package the server runs from. */
export function mlflowPython(): string {
  const cache = process.env.MLPLANE_PEERS_CACHE ?? join(homedir(), '.cache', 'mlplane-peers');
  return process.env.MLPLANE_MLFLOW_PYTHON ?? join(cache, 'mlflow', 'venv', 'bin', 'python');
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function mlflowBench(sizes: MlflowSizes, url: string): Promise<Measured[]> {
  const client = new MlflowClient({
    trackingUri: url,
    connections: 16,
    connectTimeoutMs: 10_000,
    requestTimeoutMs: 120_000,
    // The plugin's default, as a user runs it: a 503 from the server (a locked SQLite file, a busy pool) is retried,
    // as the Python client retries it (MLflow's REST client repeats 429 and 5xx answers with backoff).
    retries: 3,
  });
  const tracker = new MlflowExperimentTracker(client);
  const experiment = await tracker.createExperiment({ name: `bench-ingest-${Date.now().toString(36)}` });
  const runs = async (n: number) =>
    Promise.all(
      Array.from({ length: n }, async () => (await tracker.createRun({ experimentId: experiment.id })).info.id),
    );
  const now = Date.now();
  const payloadsFor = (callers: number) => payloads.slice(0, Math.ceil(sizes.batches / callers));
  const payloads = Array.from({ length: sizes.batches }, (_, b) =>
    Array.from({ length: sizes.metricsPerBatch }, (_, i) => ({
      key: `m${i % 10}`,
      value: i / 7,
      step: b * sizes.metricsPerBatch + i,
      timestamp: now + i,
    })),
  );

  /** Metrics per second, and the client's CPU microseconds per metric (where the client itself spends). */
  interface Round {
    readonly rate: number;
    readonly cpuPerMetric: number;
  }
  const ours = async (callers: number): Promise<Round> => {
    const ids = await runs(callers);
    const mine = payloadsFor(callers);
    const cpu = process.cpuUsage();
    const started = performance.now();
    await Promise.all(
      ids.map(async (id) => {
        for (const metrics of mine) await tracker.logBatch(id, { metrics });
      }),
    );
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    const metrics = callers * mine.length * sizes.metricsPerBatch;
    return { rate: metrics / seconds, cpuPerMetric: (used.user + used.system) / metrics };
  };
  const python = async (callers: number): Promise<Round> => {
    const ids = await runs(callers);
    const script = join(import.meta.dirname, 'mlflow_log_batch.py');
    const { stdout } = await run(
      mlflowPython(),
      [script, url, String(payloadsFor(callers).length), String(sizes.metricsPerBatch), ...ids],
      { env: { ...process.env, MLFLOW_DISABLE_TELEMETRY: 'true', DO_NOT_TRACK: 'true' }, maxBuffer: 1 << 20 },
    );
    const { metrics, seconds, cpu } = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
      metrics: number;
      seconds: number;
      cpu: number;
    };
    return { rate: metrics / seconds, cpuPerMetric: (cpu * 1e6) / metrics };
  };

  const out: Measured[] = [];
  try {
    for (const callers of [1, 8]) {
      const a: Round[] = [];
      const b: Round[] = [];
      for (let r = 0; r < sizes.rounds; r++) {
        // Alternate who goes first, so neither always meets the server right after the other's writes.
        if (r % 2 === 0) {
          a.push(await ours(callers));
          b.push(await python(callers));
        } else {
          b.push(await python(callers));
          a.push(await ours(callers));
        }
        console.log(
          `  mlflow ingest ${callers} caller(s) round ${r + 1}: plugin-mlflow ${Math.round(a.at(-1)!.rate)} metrics/s (client CPU ${a.at(-1)!.cpuPerMetric.toFixed(1)} us/metric), python log_batch ${Math.round(b.at(-1)!.rate)} metrics/s (${b.at(-1)!.cpuPerMetric.toFixed(1)} us/metric)`,
        );
      }
      const goal = callers === 1 ? 1 : 3;
      const ratio = median(a.map((x) => x.rate)) / median(b.map((x) => x.rate));
      const who = `${callers} caller${callers > 1 ? 's' : ''}`;
      const peerIs = `mlflow Python client log_batch, ${callers} thread${callers > 1 ? 's' : ''}`;
      out.push(
        figure(
          `mlflow ingest ${sizes.metricsPerBatch}-metric logBatch x${who}, plugin-mlflow vs the MLflow Python client (log_batch), same server`,
          'metrics/s',
          median(a.map((x) => x.rate)),
          median(b.map((x) => x.rate)),
          'higher-is-better',
          { goal: { text: `>= ${goal}x the Python client`, met: ratio >= goal }, peerIs },
        ),
        figure(
          `mlflow ingest client CPU per metric x${who}, plugin-mlflow vs the MLflow Python client`,
          'us',
          median(a.map((x) => x.cpuPerMetric)),
          median(b.map((x) => x.cpuPerMetric)),
          'lower-is-better',
          { peerIs },
        ),
      );
    }
  } finally {
    await client.close();
  }
  return out;
}

/**
 * How busy each client process was while it logged (CPU per metric times metrics per second): near 100% means the
 * client is the limit, far below means the server is.
 */
function busy(figures: readonly Measured[]): string[] {
  const lines: string[] = [];
  for (const callers of [1, 8]) {
    const who = `x${callers} caller${callers > 1 ? 's' : ''}`;
    const rate = figures.find((f) => f.unit === 'metrics/s' && f.name.includes(`${who},`));
    const cpu = figures.find((f) => f.unit === 'us' && f.name.includes(`${who},`));
    if (!rate || !cpu || rate.peer === null || cpu.peer === null) continue;
    const pct = (us: number, perSecond: number) => `${Math.round((us * perSecond) / 1e4)}%`;
    lines.push(
      `- ${who}: the plugin-mlflow process was busy ${pct(cpu.ours, rate.ours)} of the wall time, the Python client's ${pct(cpu.peer, rate.peer)} (CPU per metric times metrics/s).`,
    );
  }
  return lines;
}

/** How the MLflow peer stores its runs, from the backend store URI that `scripts/peers env` exports. */
function peerBackend(): string {
  const uri = process.env.MLPLANE_MLFLOW_BACKEND_URI ?? '';
  if (uri.startsWith('postgresql')) return 'PostgreSQL backend store, as many workers as cores';
  if (uri.startsWith('sqlite')) return 'SQLite backend store, one worker';
  return 'backend store as scripts/peers started it';
}

const BEGIN = '<!-- mlflow-ingest: written by pnpm bench (BENCH_ONLY=mlflow); do not edit by hand -->';
const END = '<!-- /mlflow-ingest -->';

/** The docs section of these figures, put in place of the previous one (or appended) in docs/benchmarks.md. */
export function withMlflowSection(
  docs: string,
  figures: readonly Measured[],
  context: { readonly sizes: MlflowSizes; readonly machine: string; readonly source: string; readonly at: Date },
): string {
  const rows = figures.map(
    (f) =>
      `| ${f.name} | ${f.ours.toLocaleString('en-US')} ${f.unit} | ${f.peer === null ? '-' : `${f.peer.toLocaleString('en-US')} ${f.unit}`} | ${f.ratio ?? '-'} | ${f.goal ? `${f.goal.text}: ${f.goal.met ? 'met' : 'missed'}` : ''} |`,
  );
  const section = [
    BEGIN,
    '## 4. MLflow ingest: plugin-mlflow vs the MLflow Python client',
    '',
    `Measured ${context.at.toISOString()} on ${context.machine}; ${context.source}. Both contenders log to the same`,
    `MLflow peer (\`scripts/peers up mlflow\`: mlflow 3.17.2, ${peerBackend()}) from the same machine.`,
    `Each round, a contender logs ${context.sizes.batches} batches of ${context.sizes.metricsPerBatch} metrics, shared evenly among its callers, each to its own run;`,
    'plugin-mlflow callers are concurrent `logBatch` calls in one Node process sharing one keep-alive pool (default',
    '`retries: 3`, so a 503 from the server is repeated, as the Python client repeats it), the Python',
    'callers are threads sharing one `MlflowClient` (`log_batch(..., synchronous=True)`, run by',
    "`bench/mlflow_log_batch.py` in the peer's virtualenv; imports and payload building are outside the clock).",
    `Contenders alternate within each of ${context.sizes.rounds} rounds; the median round is shown.`,
    'Reproduce: `eval "$(scripts/peers env)" && BENCH_ONLY=mlflow pnpm bench`.',
    '',
    '| figure | plugin-mlflow | Python client | ratio (>1: plugin-mlflow better) | goal |',
    '|---|---:|---:|---:|---|',
    ...rows,
    '',
    ...busy(figures),
    '',
    END,
  ].join('\n');
  const start = docs.indexOf(BEGIN);
  const end = docs.indexOf(END);
  if (start >= 0 && end > start) return `${docs.slice(0, start)}${section}${docs.slice(end + END.length)}`;
  return `${docs.trimEnd()}\n\n${section}\n`;
}
