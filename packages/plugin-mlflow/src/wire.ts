import type {
  DatasetInput,
  Experiment,
  LifecycleStage,
  Metric,
  ModelStage,
  ModelVersion,
  ModelVersionStatus,
  RegisteredModel,
  Run,
  RunInfo,
  RunStatus,
} from '@mlplane/core';

/** MLflow's JSON shapes (protos service.proto, model_registry.proto): int64 as numbers, unset fields omitted. */

export interface WireTag {
  readonly key: string;
  readonly value: string;
}

export interface WireExperiment {
  readonly experiment_id: string;
  readonly name: string;
  readonly artifact_location?: string;
  readonly lifecycle_stage?: string;
  readonly creation_time?: number;
  readonly last_update_time?: number;
  readonly tags?: readonly WireTag[];
}

export interface WireMetric {
  readonly key: string;
  readonly value: number | string;
  readonly timestamp?: number;
  readonly step?: number;
}

export interface WireRunInfo {
  readonly run_id: string;
  readonly experiment_id: string;
  readonly run_name?: string;
  readonly user_id?: string;
  readonly status?: string;
  readonly start_time?: number;
  readonly end_time?: number;
  readonly artifact_uri?: string;
  readonly lifecycle_stage?: string;
}

export interface WireDatasetInput {
  readonly tags?: readonly WireTag[];
  readonly dataset: {
    readonly name: string;
    readonly digest: string;
    readonly source_type: string;
    readonly source: string;
    readonly schema?: string;
    readonly profile?: string;
  };
}

export interface WireRun {
  readonly info: WireRunInfo;
  readonly data?: {
    readonly metrics?: readonly WireMetric[];
    readonly params?: readonly WireTag[];
    readonly tags?: readonly WireTag[];
  };
  readonly inputs?: { readonly dataset_inputs?: readonly WireDatasetInput[] };
}

export interface WireModelVersion {
  readonly name: string;
  readonly version: string;
  readonly creation_timestamp?: number;
  readonly last_updated_timestamp?: number;
  readonly user_id?: string;
  readonly current_stage?: string;
  readonly description?: string;
  readonly source?: string;
  readonly run_id?: string;
  readonly status?: string;
  readonly status_message?: string;
  readonly tags?: readonly WireTag[];
  readonly run_link?: string;
  readonly aliases?: readonly string[];
}

export interface WireRegisteredModel {
  readonly name: string;
  readonly creation_timestamp?: number;
  readonly last_updated_timestamp?: number;
  readonly user_id?: string;
  readonly description?: string;
  readonly latest_versions?: readonly WireModelVersion[];
  readonly tags?: readonly WireTag[];
  readonly aliases?: readonly { readonly alias: string; readonly version: string }[];
}

/** MLflow keeps the run name in this tag too; mlplane shows it as `RunInfo.name` only. */
export const RUN_NAME_TAG = 'mlflow.runName';
export const PARENT_RUN_TAG = 'mlflow.parentRunId';
/**
 * MLflow's REST API cannot set a model version's user, so the plugin keeps who registered it in this version tag
 * (shown as `ModelVersion.userId`, never among `tags`).
 */
export const VERSION_USER_TAG = 'mlplane.userId';

/**
 * MLflow's SQL store clamps ±Infinity to ±DBL_MAX; reading those back as ±Infinity keeps what the caller logged.
 * NaN travels as the string "NaN".
 */
export function decodeDouble(value: number | string): number {
  if (typeof value === 'string') return Number(value);
  if (value === Number.MAX_VALUE) return Number.POSITIVE_INFINITY;
  if (value === -Number.MAX_VALUE) return Number.NEGATIVE_INFINITY;
  return value;
}

/** Tags as a record without inheriting Object.prototype, so keys like `__proto__` stay ordinary tags. */
export function tagRecord(tags: readonly WireTag[] | undefined, hidden?: ReadonlySet<string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of tags ?? []) {
    if (hidden?.has(t.key)) continue;
    Object.defineProperty(out, t.key, { value: t.value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

export function toExperiment(e: WireExperiment): Experiment {
  return {
    id: e.experiment_id,
    name: e.name,
    artifactLocation: e.artifact_location ?? '',
    lifecycleStage: (e.lifecycle_stage ?? 'active') as LifecycleStage,
    tags: tagRecord(e.tags),
    createdAt: new Date(e.creation_time ?? 0),
    updatedAt: new Date(e.last_update_time ?? e.creation_time ?? 0),
  };
}

export function toMetric(m: WireMetric): Metric {
  return { key: m.key, value: decodeDouble(m.value), step: m.step ?? 0, timestamp: m.timestamp ?? 0 };
}

const HIDDEN_RUN_TAGS: ReadonlySet<string> = new Set([RUN_NAME_TAG]);

export function toRunInfo(info: WireRunInfo, tags: readonly WireTag[] | undefined): RunInfo {
  const parent = tags?.find((t) => t.key === PARENT_RUN_TAG)?.value;
  return {
    id: info.run_id,
    experimentId: info.experiment_id,
    name: info.run_name ?? '',
    status: (info.status ?? 'RUNNING') as RunStatus,
    startTime: new Date(info.start_time ?? 0),
    ...(info.end_time !== undefined && info.end_time !== null ? { endTime: new Date(info.end_time) } : {}),
    artifactUri: info.artifact_uri ?? '',
    lifecycleStage: (info.lifecycle_stage ?? 'active') as LifecycleStage,
    ...(parent ? { parentRunId: parent } : {}),
    ...(info.user_id ? { userId: info.user_id } : {}),
  };
}

export function toRun(run: WireRun): Run {
  const metrics: Record<string, Metric> = {};
  for (const m of run.data?.metrics ?? []) {
    Object.defineProperty(metrics, m.key, { value: toMetric(m), enumerable: true, writable: true, configurable: true });
  }
  const params = tagRecord(run.data?.params);
  const datasetInputs: DatasetInput[] = (run.inputs?.dataset_inputs ?? []).map((i) => ({
    dataset: {
      name: i.dataset.name,
      digest: i.dataset.digest,
      sourceType: i.dataset.source_type,
      source: i.dataset.source,
      ...(i.dataset.schema ? { schema: i.dataset.schema } : {}),
      ...(i.dataset.profile ? { profile: i.dataset.profile } : {}),
    },
    tags: (i.tags ?? []).map((t) => ({ key: t.key, value: t.value })),
  }));
  return {
    info: toRunInfo(run.info, run.data?.tags),
    data: { metrics, params, tags: tagRecord(run.data?.tags, HIDDEN_RUN_TAGS) },
    inputs: { datasetInputs },
  };
}

const HIDDEN_VERSION_TAGS: ReadonlySet<string> = new Set([VERSION_USER_TAG]);

export function toModelVersion(v: WireModelVersion): ModelVersion {
  const user = v.tags?.find((t) => t.key === VERSION_USER_TAG)?.value ?? (v.user_id || undefined);
  return {
    name: v.name,
    version: Number(v.version),
    source: v.source ?? '',
    ...(v.run_id ? { runId: v.run_id } : {}),
    ...(v.run_link ? { runLink: v.run_link } : {}),
    status: (v.status ?? 'READY') as ModelVersionStatus,
    ...(v.status_message ? { statusMessage: v.status_message } : {}),
    stage: (v.current_stage ?? 'None') as ModelStage,
    tags: tagRecord(v.tags, HIDDEN_VERSION_TAGS),
    description: v.description ?? '',
    aliases: [...(v.aliases ?? [])].sort(),
    ...(user ? { userId: user } : {}),
    createdAt: new Date(v.creation_timestamp ?? 0),
    updatedAt: new Date(v.last_updated_timestamp ?? v.creation_timestamp ?? 0),
  };
}

const STAGE_ORDER = ['None', 'Staging', 'Production', 'Archived'];

export function byStage(a: ModelVersion, b: ModelVersion): number {
  return STAGE_ORDER.indexOf(a.stage) - STAGE_ORDER.indexOf(b.stage);
}

export function toRegisteredModel(m: WireRegisteredModel): RegisteredModel {
  const aliases: Record<string, number> = {};
  for (const a of [...(m.aliases ?? [])].sort((x, y) => (x.alias < y.alias ? -1 : 1))) {
    aliases[a.alias] = Number(a.version);
  }
  return {
    name: m.name,
    description: m.description ?? '',
    tags: tagRecord(m.tags),
    aliases,
    latestVersions: (m.latest_versions ?? []).map(toModelVersion).sort(byStage),
    ...(m.user_id ? { userId: m.user_id } : {}),
    createdAt: new Date(m.creation_timestamp ?? 0),
    updatedAt: new Date(m.last_updated_timestamp ?? m.creation_timestamp ?? 0),
  };
}
