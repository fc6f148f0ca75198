// How logBatch bodies are cut to MLflow's limits (no server needed).
import { TRACKER_LIMITS } from '@mlplane/core';
import { describe, expect, it } from 'vitest';
import { splitBatch } from '../src/batching.js';
import { MLFLOW_BATCH_LIMITS } from '../src/index.js';

const RUN = 'a'.repeat(32);
const metric = (i: number) => ({ key: `m${i % 7}`, value: i / 3, step: i, timestamp: 1_700_000_000_000 + i });

describe('splitBatch', () => {
  it('cuts 2,500 metrics into requests of at most 1000, in order, losing none', () => {
    const metrics = Array.from({ length: 2500 }, (_, i) => metric(i));
    const requests = splitBatch(RUN, { metrics, params: [], tags: [] });
    expect(requests.map((r) => r.metrics)).toEqual([1000, 1000, 500]);
    const sent = requests.flatMap((r) => JSON.parse(r.body).metrics);
    expect(sent).toEqual(metrics);
    for (const r of requests) expect(JSON.parse(r.body).run_id).toBe(RUN);
  });

  it('keeps params before metrics before tags and respects every per-call count', () => {
    const params = Array.from({ length: 250 }, (_, i) => ({ key: `p${i}`, value: String(i) }));
    const tags = Array.from({ length: 150 }, (_, i) => ({ key: `t${i}`, value: String(i) }));
    const metrics = Array.from({ length: 1200 }, (_, i) => metric(i));
    const requests = splitBatch(RUN, { metrics, params, tags });
    for (const r of requests) {
      expect(r.params).toBeLessThanOrEqual(MLFLOW_BATCH_LIMITS.params);
      expect(r.tags).toBeLessThanOrEqual(MLFLOW_BATCH_LIMITS.tags);
      expect(r.metrics).toBeLessThanOrEqual(MLFLOW_BATCH_LIMITS.metrics);
      expect(r.params + r.metrics + r.tags).toBeLessThanOrEqual(MLFLOW_BATCH_LIMITS.entities);
    }
    const order = requests.flatMap((r) => {
      const body = JSON.parse(r.body);
      return [
        ...(body.params ?? []).map(() => 'p'),
        ...(body.metrics ?? []).map(() => 'm'),
        ...(body.tags ?? []).map(() => 't'),
      ];
    });
    expect(order.join('')).toBe(`${'p'.repeat(250)}${'m'.repeat(1200)}${'t'.repeat(150)}`);
  });

  it('cuts by bytes when long values would pass the 1 MB body limit', () => {
    // 100 params of 6000 chars and 100 tags of 8000 chars: within the per-call counts, about 1.4 MB in all.
    const params = Array.from({ length: 100 }, (_, i) => ({
      key: `p${i}`,
      value: 'v'.repeat(TRACKER_LIMITS.paramValueLength),
    }));
    const tags = Array.from({ length: 100 }, (_, i) => ({
      key: `t${i}`,
      value: 'w'.repeat(TRACKER_LIMITS.runTagValueLength),
    }));
    const requests = splitBatch(RUN, { metrics: [], params, tags });
    expect(requests.length).toBeGreaterThan(1);
    for (const r of requests) expect(Buffer.byteLength(r.body)).toBeLessThanOrEqual(MLFLOW_BATCH_LIMITS.bytes);
    expect(requests.reduce((n, r) => n + r.params + r.tags, 0)).toBe(200);
  });

  it('spells NaN and the infinities as MLflow reads them', () => {
    const [request] = splitBatch(RUN, {
      metrics: [
        { key: 'a', value: Number.NaN, step: 0, timestamp: 1 },
        { key: 'b', value: Number.NEGATIVE_INFINITY, step: 0, timestamp: 1 },
      ],
      params: [],
      tags: [],
    });
    expect(JSON.parse(request!.body).metrics.map((m: { value: unknown }) => m.value)).toEqual(['NaN', '-Infinity']);
  });
});
