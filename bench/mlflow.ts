// plugin-mlflow's metric ingest vs MLflow's own Python client (`MlflowClient.log_batch`), against the same MLflow
// server, with 1 caller and 8 concurrent callers. Contenders alternate within each round so that drift of the
// shared machine (and of the server's SQLite file) falls on both; the median round is reported.
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
    // The plugin's default, as a user runs it: a 503 from the server's locked SQLite file is retried, as the
    // Python client retries it (MLflow's REST client repeats 429 and 5xx answers with backoff).
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

  const ours = async (callers: number): Promise<number> => {
    const ids = await runs(callers);
    const mine = payloadsFor(callers);
    const started = performance.now();
    await Promise.all(
      ids.map(async (id) => {
        for (const metrics of mine) await tracker.logBatch(id, { metrics });
      }),
    );
    return (callers * mine.length * sizes.metricsPerBatch) / ((performance.now() - started) / 1000);
  };
  const python = async (callers: number): Promise<number> => {
    const ids = await runs(callers);
    const script = join(import.meta.dirname, 'mlflow_log_batch.py');
    const { stdout } = await run(
      mlflowPython(),
      [script, url, String(payloadsFor(callers).length), String(sizes.metricsPerBatch), ...ids],
      { env: { ...process.env, MLFLOW_DISABLE_TELEMETRY: 'true', DO_NOT_TRACK: 'true' }, maxBuffer: 1 << 20 },
    );
    const { metrics, seconds } = JSON.parse(stdout.trim().split('\n').at(-1)!) as { metrics: number; seconds: number };
    return metrics / seconds;
  };

  const out: Measured[] = [];
  try {
    for (const callers of [1, 8]) {
      const a: number[] = [];
      const b: number[] = [];
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
          `  mlflow ingest ${callers} caller(s) round ${r + 1}: plugin-mlflow ${Math.round(a.at(-1)!)} metrics/s, python log_batch ${Math.round(b.at(-1)!)} metrics/s`,
        );
      }
      const goal = callers === 1 ? 1 : 3;
      const ratio = median(a) / median(b);
      out.push(
        figure(
          `mlflow ingest ${sizes.metricsPerBatch}-metric logBatch x${callers} caller${callers > 1 ? 's' : ''}, plugin-mlflow vs the MLflow Python client (log_batch), same server`,
          'metrics/s',
          median(a),
          median(b),
          'higher-is-better',
          {
            goal: { text: `>= ${goal}x the Python client`, met: ratio >= goal },
            peerIs: `mlflow Python client log_batch, ${callers} thread${callers > 1 ? 's' : ''}`,
          },
        ),
      );
    }
  } finally {
    await client.close();
  }
  return out;
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
      `| ${f.name} | ${f.ours.toLocaleString('en-US')} | ${f.peer?.toLocaleString('en-US') ?? '-'} | ${f.ratio ?? '-'} | ${f.goal ? `${f.goal.text}: ${f.goal.met ? 'met' : 'missed'}` : ''} |`,
  );
  const section = [
    BEGIN,
    '## 4. MLflow ingest: plugin-mlflow vs the MLflow Python client',
    '',
    `Measured ${context.at.toISOString()} on ${context.machine}; ${context.source}. Both contenders log to the same`,
    'MLflow peer (`scripts/peers up mlflow`: mlflow 3.17.2, SQLite backend store, one worker) from the same machine.',
    `Each round, a contender logs ${context.sizes.batches} batches of ${context.sizes.metricsPerBatch} metrics, shared evenly among its callers, each to its own run;`,
    'plugin-mlflow callers are concurrent `logBatch` calls in one Node process sharing one keep-alive pool (default',
    '`retries: 3`, so a 503 from the locked SQLite file is repeated, as the Python client repeats it), the Python',
    'callers are threads sharing one `MlflowClient` (`log_batch(..., synchronous=True)`, run by',
    "`bench/mlflow_log_batch.py` in the peer's virtualenv; imports and payload building are outside the clock).",
    `Contenders alternate within each of ${context.sizes.rounds} rounds; the median round is shown.`,
    'Reproduce: `eval "$(scripts/peers env)" && BENCH_ONLY=mlflow pnpm bench`.',
    '',
    '| figure | plugin-mlflow | Python client | ratio | goal |',
    '|---|---:|---:|---:|---|',
    ...rows,
    '',
    END,
  ].join('\n');
  const start = docs.indexOf(BEGIN);
  const end = docs.indexOf(END);
  if (start >= 0 && end > start) return `${docs.slice(0, start)}${section}${docs.slice(end + END.length)}`;
  return `${docs.trimEnd()}\n\n${section}\n`;
}
