import { readFile } from 'node:fs/promises';
import { parser } from '@prometheus-io/lezer-promql';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type Exposition, startTelemetryApi, type TelemetryTestApi } from './telemetry-support.js';

const DASHBOARD = new URL('../../../docs/operations/grafana-dashboard.json', import.meta.url);
const OBSERVABILITY_DOC = new URL('../../../docs/operations/observability.md', import.meta.url);

interface Panel {
  readonly title?: string;
  readonly type: string;
  readonly targets?: readonly { readonly expr: string }[];
  readonly panels?: readonly Panel[];
}

/** Grafana fills these in before the query reaches Prometheus; any duration parses the same. */
const GRAFANA_INTERVALS = /\$__(rate_interval|interval|range)\b/g;

/** The metric names a PromQL expression selects, by Prometheus's own grammar; throws on a syntax error. */
function metricNames(expr: string): string[] {
  const query = expr.replace(GRAFANA_INTERVALS, '5m');
  const names: string[] = [];
  const errors: number[] = [];
  parser.parse(query).iterate({
    enter(node) {
      if (node.type.isError) errors.push(node.from);
      if (node.name !== 'VectorSelector') return;
      const identifier = node.node.getChild('Identifier');
      // A selector by labels only ({__name__=~"..."}) would dodge this check, so the dashboard must not use one.
      if (!identifier) throw new Error(`'${expr}' selects a series without naming its metric`);
      names.push(query.slice(identifier.from, identifier.to));
    },
  });
  if (errors.length > 0) throw new Error(`'${expr}' is not valid PromQL (error at offset ${errors[0]})`);
  return names;
}

function queries(panels: readonly Panel[]): { panel: string; expr: string }[] {
  return panels.flatMap((p) => [
    ...(p.targets ?? []).map((t) => ({ panel: p.title ?? p.type, expr: t.expr })),
    ...queries(p.panels ?? []),
  ]);
}

let t: TelemetryTestApi;
let scraped: Exposition;
beforeAll(async () => {
  t = await startTelemetryApi();
  // Traffic, so labelled series exist beside the declarations: a run with a batch, an error, events relayed.
  const experiment = await t.call('POST', '/api/v1/projects/dash/experiments', { body: { name: 'dashboard' } });
  const run = await t.call('POST', '/api/v1/projects/dash/runs', { body: { experimentId: experiment.body.id } });
  await t.call('POST', `/api/v1/projects/dash/runs/${run.body.info.id}/log-batch`, {
    body: { metrics: [{ key: 'loss', value: 1, step: 0 }], params: [{ key: 'lr', value: '0.1' }] },
  });
  await t.call('GET', '/api/v1/projects/dash/experiments/999999');
  await vi.waitFor(
    async () => {
      scraped = await t.scrape();
      expect(scraped.value('mlplane_event_consumer_lag_seconds_count', { group: 'audit' })).toBeGreaterThan(0);
    },
    { timeout: 10_000, interval: 100 },
  );
});
afterAll(() => t?.[Symbol.asyncDispose]());

describe('docs/operations/grafana-dashboard.json', () => {
  it('queries only metrics the server exports', async () => {
    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as { panels: Panel[] };
    const all = queries(dashboard.panels);
    expect(all.length).toBeGreaterThan(10);
    const exported = scraped.sampleNames();
    const unknown = all.flatMap(({ panel, expr }) =>
      metricNames(expr)
        .filter((name) => !exported.has(name))
        .map((name) => `${panel}: ${name}`),
    );
    expect(unknown).toEqual([]);
  });

  it('has a panel for every mlplane metric the server exports', async () => {
    const dashboard = JSON.parse(await readFile(DASHBOARD, 'utf8')) as { panels: Panel[] };
    const used = new Set(queries(dashboard.panels).flatMap(({ expr }) => metricNames(expr)));
    const missing = [...scraped.families.values()]
      .filter((f) => f.name.startsWith('mlplane_'))
      .filter((f) => ![f.name, `${f.name}_bucket`, `${f.name}_sum`, `${f.name}_count`].some((n) => used.has(n)))
      .map((f) => f.name);
    expect(missing).toEqual([]);
  });

  it('catches a query naming a metric that does not exist, and PromQL that does not parse', () => {
    expect(metricNames('sum by (route) (rate(mlplane_http_requests_total[$__rate_interval]))')).toEqual([
      'mlplane_http_requests_total',
    ]);
    expect(scraped.sampleNames().has('mlplane_http_request_total')).toBe(false);
    expect(() => metricNames('sum(rate(mlplane_http_requests_total[5m])')).toThrow(/not valid PromQL/);
    expect(() => metricNames('{__name__="mlplane_http_requests_total"}')).toThrow(/without naming/);
  });
});

describe('docs/operations/observability.md', () => {
  it('documents every mlplane metric the server exports', async () => {
    const doc = await readFile(OBSERVABILITY_DOC, 'utf8');
    const undocumented = [...scraped.families.keys()]
      .filter((name) => name.startsWith('mlplane_'))
      .filter((name) => !doc.includes(`\`${name}\``));
    expect(undocumented).toEqual([]);
  });
});
