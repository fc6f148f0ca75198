import { ALL_PROJECTS, authorizerRef } from '@mlplane/core';
import { startTestPlatform, type TestPlatform } from '@mlplane/defaults/testing';
import {
  type CreateApiOptions,
  createApi,
  createTelemetry,
  type MlplaneApi,
  type ServerTelemetry,
  type TelemetryOptions,
  v1Routes,
} from '../src/index.js';
import { inProcessCaller, tokenIssuer } from './support.js';

export interface LoggedLine {
  readonly msg?: string;
  readonly level: number;
  readonly [field: string]: unknown;
}

export interface TelemetryTestApi {
  readonly platform: TestPlatform;
  readonly api: MlplaneApi;
  readonly telemetry: ServerTelemetry;
  /** Every line the platform logged, parsed. */
  readonly lines: LoggedLine[];
  readonly adminToken: string;
  /** A token for `principalId` holding `roles` in `projects` (granted first). */
  token(principalId: string, projects: readonly string[], roles: readonly string[]): Promise<string>;
  call(
    method: string,
    path: string,
    options?: { token?: string | null; body?: unknown; rawBody?: string; headers?: Record<string, string> },
  ): Promise<{ status: number; body: any; text: string; headers: Headers }>;
  /** Scrapes /metrics with the admin token and parses the exposition. */
  scrape(): Promise<Exposition>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** One metric family of the exposition: its `# TYPE` and its samples (histograms: `_bucket`, `_sum`, `_count`). */
export interface Family {
  readonly name: string;
  readonly type: string;
  readonly samples: readonly Sample[];
}

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface Exposition {
  readonly families: ReadonlyMap<string, Family>;
  /** The value of the sample `name` with exactly these labels (0 when absent): counters, gauges, `_count`s. */
  value(name: string, labels?: Record<string, string>): number;
  /** Every sample name a query may use: the family names, and `_bucket`, `_sum`, `_count` of histograms. */
  sampleNames(): Set<string>;
}

/** A platform on embedded defaults logging at info into `lines`, with the API and its telemetry over it. */
export async function startTelemetryApi(
  options: { telemetry?: TelemetryOptions; api?: Partial<CreateApiOptions> } = {},
): Promise<TelemetryTestApi> {
  const lines: LoggedLine[] = [];
  const platform = await startTestPlatform({
    log: { level: 'debug', destination: { write: (line: string) => void lines.push(JSON.parse(line)) } },
  });
  const telemetry = await createTelemetry(platform, options.telemetry);
  const api = await createApi(v1Routes, {
    rateLimit: false,
    ...telemetry,
    ...options.api,
    mount: [...telemetry.mount, ...(options.api?.mount ?? [])],
    platform,
  });
  const authorizer = await platform.get(authorizerRef);
  const token = tokenIssuer(authorizer);
  const adminToken = await token('admin', [ALL_PROJECTS], ['admin']);
  const call = inProcessCaller(api, adminToken);
  const scrape = async () => {
    const res = await call('GET', '/metrics');
    if (res.status !== 200) throw new Error(`/metrics answered ${res.status}: ${res.text}`);
    return parseExposition(res.text);
  };
  return {
    platform,
    api,
    telemetry,
    lines,
    adminToken,
    token,
    call,
    scrape,
    [Symbol.asyncDispose]: () => platform.stop(),
  };
}

const TYPE_LINE = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)$/;
const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/**
 * Parses the text exposition format (version 0.0.4). Written here because the one parser the registry offers
 * merges every series of a labelled histogram into one, losing the labels this test checks.
 */
export function parseExposition(text: string): Exposition {
  const families = new Map<string, { name: string; type: string; samples: Sample[] }>();
  let family: { name: string; type: string; samples: Sample[] } | undefined;
  for (const line of text.split('\n')) {
    const type = TYPE_LINE.exec(line);
    if (type) {
      family = { name: type[1]!, type: type[2]!, samples: [] };
      families.set(family.name, family);
      continue;
    }
    if (line === '' || line.startsWith('#')) continue;
    const sample = SAMPLE_LINE.exec(line);
    if (!sample || !family || !sample[1]!.startsWith(family.name)) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, name, value] of (sample[2] ?? '').matchAll(LABEL)) {
      labels[name!] = value!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    family.samples.push({ name: sample[1]!, labels, value: Number(sample[3]) });
  }
  return {
    families,
    value: (name, labels = {}) => {
      for (const f of families.values()) {
        const found = f.samples.find((s) => s.name === name && sameLabels(s.labels, labels));
        if (found) return found.value;
      }
      return 0;
    },
    sampleNames: () => {
      const names = new Set<string>();
      for (const f of families.values()) {
        names.add(f.name);
        for (const s of f.samples) names.add(s.name);
        if (f.type === 'histogram' || f.type === 'summary') {
          for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${f.name}${suffix}`);
        }
      }
      return names;
    },
  };
}

function sameLabels(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}
