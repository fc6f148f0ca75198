import type { Experiment, Metric, ModelVersion, RegisteredModel, Run, RunInfo } from '@mlplane/core';
import { z } from 'zod';

/**
 * MLflow's JSON forms (mlflow/protos/service.proto, model_registry.proto as its server writes them): snake_case
 * field names, int64 instants as epoch-millisecond numbers, ids and model versions as strings, key/value lists for
 * tags, unset and empty fields left out, non-finite doubles as the strings "NaN", "Infinity", "-Infinity".
 * Inputs take what proto3 JSON allows: int64 as a number or a decimal string, doubles as numbers or those strings,
 * repeated fields of a GET as repeated query keys (one key arrives as a single string).
 */

/** An int64 field: a JSON number or a decimal string (proto3 JSON writes int64 as strings). */
export const int64 = z.union([
  z.number().int(),
  z
    .string()
    .regex(/^-?\d{1,16}$/, { error: 'must be an integer' })
    .transform(Number),
]);
/** An int32 page size as it arrives in a query string or a body. */
export const maxResults = int64.pipe(z.number().int().min(1, { error: 'must be at least 1' }));
/** A double: a number, a numeric string, or NaN / Infinity / -Infinity spelled out. */
export const double = z.union([
  z.number(),
  z
    .string()
    .regex(/^(NaN|-?Infinity|[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)$/, { error: 'must be a number' })
    .transform(Number),
]);
/** A bool, from JSON or a query string. */
export const bool = z.union([z.boolean(), z.enum(['true', 'false', 'True', 'False']).transform((v) => /^t/i.test(v))]);
/** A repeated field: a single query value arrives as a string. */
export const repeated = <T extends z.ZodType>(item: T) =>
  z.preprocess((v) => (v === undefined || Array.isArray(v) ? v : [v]), z.array(item));
/** A model version number, which MLflow sends as a string. */
export const versionNumber = z.union([
  z.number().int().min(1),
  z
    .string()
    .regex(/^[1-9]\d{0,15}$/, { error: 'must be a version number' })
    .transform(Number),
]);
export const keyValue = z.object({ key: z.string(), value: z.string() });
export const viewType = z
  .union([z.enum(['ACTIVE_ONLY', 'DELETED_ONLY', 'ALL']), z.literal(1), z.literal(2), z.literal(3)])
  .transform((v) => (typeof v === 'number' ? (['ACTIVE_ONLY', 'DELETED_ONLY', 'ALL'] as const)[v - 1]! : v));

/** `[{key, value}]` as a record; MLflow keeps the last of repeated keys. */
export function tagRecord(tags: readonly { key: string; value: string }[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of tags ?? []) out[t.key] = t.value;
  return out;
}

function tagList(tags: Readonly<Record<string, string>>): { key: string; value: string }[] | undefined {
  const list = Object.entries(tags).map(([key, value]) => ({ key, value }));
  return list.length > 0 ? list : undefined;
}

/** Leaves out undefined fields, as MLflow leaves out unset ones. */
function compact<T extends Record<string, unknown>>(o: T): T {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}

export const doubleWire = (value: number): number | 'NaN' | 'Infinity' | '-Infinity' =>
  Number.isFinite(value) ? value : Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity';

export function experimentWire(e: Experiment, artifactLocation: string) {
  return compact({
    experiment_id: e.id,
    name: e.name,
    artifact_location: artifactLocation,
    lifecycle_stage: e.lifecycleStage,
    last_update_time: e.updatedAt.getTime(),
    creation_time: e.createdAt.getTime(),
    tags: tagList(e.tags),
  });
}

export const metricWire = (m: Metric) => ({
  key: m.key,
  value: doubleWire(m.value),
  timestamp: m.timestamp,
  step: m.step,
});

/** MLflow keeps the run name in the `mlflow.runName` tag too, and clients read it from either place. */
export const RUN_NAME_TAG = 'mlflow.runName';

export function runInfoWire(info: RunInfo, artifactUri: string) {
  return compact({
    run_uuid: info.id,
    experiment_id: info.experimentId,
    run_name: info.name,
    user_id: info.userId ?? '',
    status: info.status,
    start_time: info.startTime.getTime(),
    end_time: info.endTime?.getTime(),
    artifact_uri: artifactUri,
    lifecycle_stage: info.lifecycleStage,
    run_id: info.id,
  });
}

export function runWire(run: Run, artifactUri: string) {
  const tags = { ...run.data.tags };
  if (tags[RUN_NAME_TAG] === undefined) tags[RUN_NAME_TAG] = run.info.name;
  const metrics = Object.values(run.data.metrics).map(metricWire);
  const params = tagList(run.data.params);
  const datasets = run.inputs.datasetInputs.map((d) => ({
    ...(d.tags.length > 0 ? { tags: d.tags.map((t) => ({ key: t.key, value: t.value })) } : {}),
    dataset: compact({
      name: d.dataset.name,
      digest: d.dataset.digest,
      source_type: d.dataset.sourceType,
      source: d.dataset.source,
      schema: d.dataset.schema,
      profile: d.dataset.profile,
    }),
  }));
  return {
    info: runInfoWire(run.info, artifactUri),
    data: compact({ metrics: metrics.length > 0 ? metrics : undefined, params, tags: tagList(tags) }),
    inputs: datasets.length > 0 ? { dataset_inputs: datasets } : {},
    outputs: {},
  };
}

export function modelVersionWire(v: ModelVersion, source: string) {
  return compact({
    name: v.name,
    version: String(v.version),
    creation_timestamp: v.createdAt.getTime(),
    last_updated_timestamp: v.updatedAt.getTime(),
    user_id: v.userId,
    current_stage: v.stage,
    description: v.description,
    source,
    run_id: v.runId,
    status: v.status,
    status_message: v.statusMessage,
    tags: tagList(v.tags),
    run_link: v.runLink ?? '',
    aliases: v.aliases.length > 0 ? [...v.aliases] : undefined,
  });
}

export type ModelVersionWire = ReturnType<typeof modelVersionWire>;

export function registeredModelWire(m: RegisteredModel, latest: readonly ModelVersionWire[]) {
  const aliases = Object.entries(m.aliases).map(([alias, version]) => ({ alias, version: String(version) }));
  return compact({
    name: m.name,
    creation_timestamp: m.createdAt.getTime(),
    last_updated_timestamp: m.updatedAt.getTime(),
    user_id: m.userId,
    description: m.description === '' ? undefined : m.description,
    latest_versions: latest.length > 0 ? [...latest] : undefined,
    tags: tagList(m.tags),
    aliases: aliases.length > 0 ? aliases : undefined,
  });
}
