import type { MetricInput, Param, RunTag } from '@mlplane/core';

/** MLflow's log-batch limits (mlflow/utils/validation.py): per call, and the request body in bytes. */
export const MLFLOW_BATCH_LIMITS = Object.freeze({
  metrics: 1000,
  params: 100,
  tags: 100,
  entities: 1000,
  bytes: 1_000_000,
});

/** One log-batch request body, already serialized. */
export interface BatchRequest {
  readonly body: string;
  readonly metrics: number;
  readonly params: number;
  readonly tags: number;
}

type Limits = typeof MLFLOW_BATCH_LIMITS;

/**
 * Splits params, metrics and tags (in that order, as MLflow writes them) into log-batch bodies within `limits`.
 * Each entry is serialized once and the bodies are joined from those pieces, so a large batch costs one
 * JSON.stringify per entry. Metric timestamps must already be set, so a repeated request is the same request.
 */
export function splitBatch(
  runId: string,
  batch: { metrics: readonly Required<MetricInput>[]; params: readonly Param[]; tags: readonly RunTag[] },
  limits: Limits = MLFLOW_BATCH_LIMITS,
): BatchRequest[] {
  const head = `{"run_id":${JSON.stringify(runId)}`;
  // `,"metrics":[]` and friends: the fixed bytes around the three lists.
  const frame = head.length + 40;
  const out: BatchRequest[] = [];
  let parts = { params: [] as string[], metrics: [] as string[], tags: [] as string[] };
  let bytes = frame;

  const flush = () => {
    const n = parts.params.length + parts.metrics.length + parts.tags.length;
    if (n === 0) return;
    let body = head;
    if (parts.metrics.length > 0) body += `,"metrics":[${parts.metrics.join(',')}]`;
    if (parts.params.length > 0) body += `,"params":[${parts.params.join(',')}]`;
    if (parts.tags.length > 0) body += `,"tags":[${parts.tags.join(',')}]`;
    out.push({ body: `${body}}`, metrics: parts.metrics.length, params: parts.params.length, tags: parts.tags.length });
    parts = { params: [], metrics: [], tags: [] };
    bytes = frame;
  };

  const add = (kind: 'params' | 'metrics' | 'tags', json: string) => {
    const size = Buffer.byteLength(json) + 1;
    if (size + frame > limits.bytes) {
      // Cannot happen within TRACKER_LIMITS' key and value lengths; kept so a bad limit fails loudly.
      throw new RangeError(`one ${kind} entry of ${size} bytes exceeds MLflow's request limit of ${limits.bytes}`);
    }
    const total = parts.params.length + parts.metrics.length + parts.tags.length;
    if (parts[kind].length >= limits[kind] || total >= limits.entities || bytes + size > limits.bytes) flush();
    parts[kind].push(json);
    bytes += size;
  };

  for (const p of batch.params) add('params', JSON.stringify({ key: p.key, value: p.value }));
  for (const m of batch.metrics) {
    // The hot path: written by hand, numbers as JSON numbers and non-finite values as MLflow's strings.
    const value = Number.isFinite(m.value) ? String(m.value) : `"${m.value}"`;
    add('metrics', `{"key":${JSON.stringify(m.key)},"value":${value},"timestamp":${m.timestamp},"step":${m.step}}`);
  }
  for (const t of batch.tags) add('tags', JSON.stringify({ key: t.key, value: t.value }));
  flush();
  return out;
}
