import type { Readable } from 'node:stream';
import { validateNoControlCharacters, validateText } from '../infra/validation/text.js';
import { definePort } from '../kernel/port.js';
import { createServiceRef } from '../kernel/service-ref.js';
import type { ArtifactBody, ArtifactInfo, PutArtifactOptions } from './artifact-store.js';
import { ValidationError } from './errors.js';
import { createExperimentTrackerHooks, guardExperimentTracker } from './guards/experiment-tracker.js';
import type { Page, PageLimits, PageOptions } from './paging.js';

export { ConflictError, NotFoundError, UnavailableError, ValidationError } from './errors.js';
export type { Page, PageOptions } from './paging.js';

/**
 * Limits every implementation enforces, equal to MLflow's (mlflow/utils/validation.py,
 * mlflow/store/tracking/__init__.py) so data moves between the SQL default and an MLflow server unchanged.
 * A breach raises ValidationError whose `field` names the offending input and whose message names the limit;
 * values are never silently truncated (MLflow's client truncates by default; ours refuses).
 */
export const TRACKER_LIMITS = Object.freeze({
  /** logBatch: metrics per call. */
  metricsPerBatch: 1000,
  /** logBatch: params per call. */
  paramsPerBatch: 100,
  /** logBatch: tags per call. */
  tagsPerBatch: 100,
  /** logBatch: metrics + params + tags per call. */
  entitiesPerBatch: 1000,
  /** logBatch: serialized request size (MLflow's REST body limit); checked by HTTP-backed implementations. */
  batchRequestBytes: 1_000_000,
  /** logInputs: datasets per call. */
  datasetsPerBatch: 1000,
  /** Metric, param and run-tag keys. */
  keyLength: 250,
  paramValueLength: 6000,
  runTagValueLength: 8000,
  experimentNameLength: 500,
  experimentTagKeyLength: 250,
  experimentTagValueLength: 5000,
  datasetNameLength: 500,
  datasetDigestLength: 36,
  datasetSourceLength: 65_535,
  datasetSchemaLength: 1_048_575,
  datasetProfileLength: 16_777_215,
  inputTagKeyLength: 255,
  inputTagValueLength: 500,
});

/** searchRuns and searchExperiments page sizes (MLflow's SEARCH_MAX_RESULTS_DEFAULT / _THRESHOLD). */
export const SEARCH_RUNS_PAGE: PageLimits = Object.freeze({ default: 1000, max: 50_000 });
export const SEARCH_EXPERIMENTS_PAGE: PageLimits = Object.freeze({ default: 1000, max: 50_000 });
/** getMetricHistory page size (MLflow's GET_METRIC_HISTORY_MAX_RESULTS). */
export const METRIC_HISTORY_PAGE: PageLimits = Object.freeze({ default: 25_000, max: 25_000 });
export const RUN_ARTIFACTS_PAGE: PageLimits = Object.freeze({ default: 1000, max: 1000 });

/**
 * Metric, param and tag keys: letters, digits, `_ - . / space`, and they must not normalize to another
 * path (`a//b`, `./a`, `..`), because backends may store them as file names. Same rule as MLflow, plus: keys are in
 * Unicode NFC, so two keys that look the same are the same key.
 */
export const TRACKING_KEY_PATTERN = /^[\p{L}\p{N}_/.\- ]+$/u;

/** Run ids every backend assigns (MLflow: 32 hex chars) fit this; other specs refer to runs by it. */
export const RUN_ID_PATTERN = /^[a-zA-Z0-9][\w-]{0,255}$/;

/**
 * An absolute URI: a scheme of two or more characters (so a Windows drive letter is not mistaken for one), a
 * colon, then something. Every `artifactLocation` and `artifactUri` matches it, whichever backend wrote it.
 */
export const ARTIFACT_URI_PATTERN = /^[a-zA-Z][a-zA-Z0-9+.-]+:[^\s]/;

/** Tag keys under this prefix are reserved for the platform and MLflow (`mlflow.parentRunId`, `mlflow.user`). */
export const SYSTEM_TAG_PREFIX = 'mlflow.';
/** Context tag of a dataset input (`training`, `validation`, `evaluation`), as MLflow's `mlflow.data.context`. */
export const DATASET_CONTEXT_TAG = 'mlflow.data.context';

export type LifecycleStage = 'active' | 'deleted';

/** Which lifecycle stages a search returns (MLflow's ViewType). */
export type ViewType = 'ACTIVE_ONLY' | 'DELETED_ONLY' | 'ALL';

export type RunStatus = 'RUNNING' | 'SCHEDULED' | 'FINISHED' | 'FAILED' | 'KILLED';

export const TERMINAL_RUN_STATUSES: readonly RunStatus[] = Object.freeze(['FINISHED', 'FAILED', 'KILLED']);

export function isTerminalRunStatus(status: RunStatus): boolean {
  return TERMINAL_RUN_STATUSES.includes(status);
}

export interface Experiment {
  /** Backend-assigned, opaque (MLflow uses decimal strings); never reused. */
  readonly id: string;
  /** Unique among all experiments, deleted ones included. */
  readonly name: string;
  /**
   * Root under which each run's artifacts live (`<artifactLocation>/<runId>/artifacts`): an absolute URI with a
   * scheme on every backend (`file:///data/artifacts/experiments/1`, `s3://bucket/mlflow/1`,
   * `mlflow-artifacts:/1`), never a bare path or key. See ARTIFACT_URI_PATTERN.
   */
  readonly artifactLocation: string;
  readonly lifecycleStage: LifecycleStage;
  readonly tags: Readonly<Record<string, string>>;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** A measurement at one step; logging the same key again appends, never replaces. */
export interface Metric {
  readonly key: string;
  /** Any double, NaN and ±Infinity included (MLflow stores them). */
  readonly value: number;
  /** Integer, default 0. */
  readonly step: number;
  /** Epoch milliseconds (as clients log it, for volume); defaults to the time of logging. */
  readonly timestamp: number;
}

/** A hyperparameter; immutable once logged on a run. */
export interface Param {
  readonly key: string;
  readonly value: string;
}

/** A mutable label on a run; the last write wins. */
export interface RunTag {
  readonly key: string;
  readonly value: string;
}

export interface RunInfo {
  /** Backend-assigned (MLflow: 32 hex chars); matches RUN_ID_PATTERN. */
  readonly id: string;
  readonly experimentId: string;
  readonly name: string;
  readonly status: RunStatus;
  readonly startTime: Date;
  /** Set when the run reaches a terminal status. */
  readonly endTime?: Date;
  /** `<experiment artifactLocation>/<runId>/artifacts`: an absolute URI with a scheme; fixed at creation. */
  readonly artifactUri: string;
  readonly lifecycleStage: LifecycleStage;
  /** The enclosing run of a nested run (MLflow keeps it as tag `mlflow.parentRunId`). */
  readonly parentRunId?: string;
  /** Who created the run (principal id). */
  readonly userId?: string;
}

export interface RunData {
  /** Latest value per key: highest step, then latest timestamp, then largest value (MLflow's rule). */
  readonly metrics: Readonly<Record<string, Metric>>;
  readonly params: Readonly<Record<string, string>>;
  readonly tags: Readonly<Record<string, string>>;
}

/** A dataset a run consumed, identified by name and content digest (MLflow's Dataset). */
export interface Dataset {
  readonly name: string;
  /** Short content hash (≤36 chars) that changes when the data changes. */
  readonly digest: string;
  /** Kind of source: `local`, `s3`, `http`, `delta_table`, `feature_view`... */
  readonly sourceType: string;
  /** JSON describing where the data came from (≤64 KiB), interpreted by `sourceType`. */
  readonly source: string;
  /** JSON schema of the data (≤1 MiB), e.g. MLflow's `{"mlflow_colspec": [...]}`. */
  readonly schema?: string;
  /** JSON summary statistics (row count, ...). */
  readonly profile?: string;
}

export interface DatasetInput {
  readonly dataset: Dataset;
  /** E.g. `{ key: DATASET_CONTEXT_TAG, value: 'training' }`. */
  readonly tags: readonly RunTag[];
}

export interface RunInputs {
  /** One entry per distinct (name, digest) logged, in logging order; re-logging the same dataset is a no-op. */
  readonly datasetInputs: readonly DatasetInput[];
}

export interface Run {
  readonly info: RunInfo;
  readonly data: RunData;
  readonly inputs: RunInputs;
}

/** An entry below a run's artifact root; directories exist only as prefixes. */
export interface RunArtifact {
  /** Relative to the run's artifact root, no leading slash. */
  readonly path: string;
  readonly isDir: boolean;
  /** Bytes; absent for directories. */
  readonly size?: number;
}

export interface CreateExperimentInput {
  readonly name: string;
  /**
   * Defaults to the backend's artifact root joined with the experiment id. When given, an absolute URI with a
   * scheme (`validateArtifactLocation`): ValidationError for a bare path, a `runs:/` or `models:/` URI, or a
   * location the backend cannot write to (the SQL tracker writes only inside its ArtifactStore).
   */
  readonly artifactLocation?: string;
  readonly tags?: Readonly<Record<string, string>>;
}

export interface CreateRunInput {
  readonly experimentId: string;
  /** Defaults to a generated, human-readable name. */
  readonly name?: string;
  /** Defaults to now. */
  readonly startTime?: Date;
  /** Default RUNNING; SCHEDULED for runs queued by an orchestrator. */
  readonly status?: 'RUNNING' | 'SCHEDULED';
  readonly tags?: Readonly<Record<string, string>>;
  /** Makes this a nested run; NotFoundError when the parent does not exist. */
  readonly parentRunId?: string;
  readonly userId?: string;
}

export interface UpdateRunInput {
  readonly runId: string;
  /** Any status may follow any other (as MLflow); a terminal status without `endTime` sets it to now. */
  readonly status?: RunStatus;
  readonly endTime?: Date;
  readonly name?: string;
}

/** Input of `logMetric` and the metrics of `logBatch`: step defaults to 0 and timestamp to now. */
export interface MetricInput {
  readonly key: string;
  readonly value: number;
  readonly step?: number;
  readonly timestamp?: number;
}

export interface LogBatchInput {
  readonly metrics?: readonly MetricInput[];
  readonly params?: readonly Param[];
  readonly tags?: readonly RunTag[];
}

/**
 * The search filter language (MLflow's): clauses joined with `and` (no `or`), each
 * `<entity>.<key> <comparator> <value>`, e.g. `metrics.acc > 0.9 and params.lr = '0.01'`.
 * - `metrics.<key>`: numbers with `= != > >= < <=`; matches the latest value of the key.
 * - `params.<key>`, `tags.<key>`: quoted strings with `= != LIKE ILIKE` (`%` and `_` wildcards).
 * - `attributes.<name>`: `run_id` (also `IN ('a','b')`, `NOT IN`), `run_name`, `status`, `user_id`,
 *   `artifact_uri` (strings), `start_time`, `end_time` (epoch ms numbers); see `capabilities.filterAttributes`.
 * - `datasets.name`, `datasets.digest`, `datasets.context`: strings; needs `capabilities.datasetFilters`.
 * - Keys with spaces or dots are quoted with backticks or double quotes: `metrics."val loss" < 0.2`.
 * A malformed filter raises ValidationError with `field: 'filter'`.
 */
export type SearchFilter = string;

export interface SearchExperimentsOptions extends PageOptions {
  /** Attributes `name`, `creation_time`, `last_update_time` and `tags.<key>`, in the filter language above. */
  readonly filter?: SearchFilter;
  /** `name`, `creation_time`, `last_update_time`, `experiment_id`, each optionally `ASC`/`DESC`; default `last_update_time DESC`. */
  readonly orderBy?: readonly string[];
  /** Default ACTIVE_ONLY. */
  readonly viewType?: ViewType;
}

export interface SearchRunsOptions extends PageOptions {
  /** At least one; NotFoundError names an unknown id. */
  readonly experimentIds: readonly string[];
  readonly filter?: SearchFilter;
  /**
   * Terms like `metrics.acc DESC`, `params.lr`, `attributes.start_time ASC` (default ASC);
   * ties and the default order are `start_time DESC, run_id ASC`. Runs lacking an ordering key sort last.
   */
  readonly orderBy?: readonly string[];
  /** Default ACTIVE_ONLY. */
  readonly runViewType?: ViewType;
}

/** Which features differ between backends; the rest of the contract holds everywhere. */
export interface ExperimentTrackerCapabilities {
  /** `logInputs` and `Run.inputs` (MLflow ≥ 2.4). */
  readonly datasetInputs: boolean;
  /** `datasets.*` terms in search filters. */
  readonly datasetFilters: boolean;
  /** The `attributes.<name>` filter and order terms the backend understands. */
  readonly filterAttributes: readonly string[];
  /** `logBatch` writes all or nothing (SQL stores); otherwise a failure may leave a prefix written. */
  readonly atomicBatch: boolean;
  /**
   * `logBatch` takes any number of metrics, params and tags and sends them in as many backend calls as the
   * backend's own limits need (MLflow: 1000 metrics, 100 params, 100 tags, 1 MB a call); every entry is still
   * checked first. False: the per-call counts of TRACKER_LIMITS apply and a breach raises ValidationError.
   */
  readonly unboundedBatches: boolean;
  /** Logging a point identical to one already stored (key, value, step, timestamp) stores it again; MLflow keeps one. */
  readonly duplicateMetricPoints: boolean;
  /**
   * NaN ranks above every number: it wins a key's latest value among points of equal step and timestamp, and sorts
   * first in `metrics.<key> DESC` and last in ASC. False (MLflow): a NaN point ranks as 0 for the latest value and
   * sorts after every number in both directions (before runs lacking the metric).
   */
  readonly nanRanksHighest: boolean;
  /**
   * `searchRuns` pages resume after the last run returned (keyset), so runs created while paging shift nothing
   * already seen. False (MLflow): pages are offsets, and a run inserted ahead of the cursor repeats one.
   */
  readonly stablePaging: boolean;
  /**
   * `restoreExperiment` restores only the runs deleted with the experiment. False (MLflow): it restores every
   * run of the experiment, those deleted on their own before included.
   */
  readonly selectiveRestore: boolean;
  /**
   * Every change records its domain event in the same transaction (the outbox), which feeds the audit log and
   * webhooks. False (MLflow): the server keeps no outbox, and clients writing to it directly bypass mlplane,
   * so changes are not audited.
   */
  readonly changeEvents: boolean;
}

/**
 * Experiments, runs and their params, metrics, tags, dataset inputs and artifacts.
 * Writes to a run whose lifecycle stage is `deleted` raise ConflictError; writes to a finished run are allowed.
 * Unknown experiment or run ids raise NotFoundError; a breached limit raises ValidationError.
 */
export interface ExperimentTracker {
  readonly capabilities: ExperimentTrackerCapabilities;

  /** ConflictError when the name is taken, even by a deleted experiment (restore or rename that one). */
  createExperiment(input: CreateExperimentInput): Promise<Experiment>;
  getExperiment(experimentId: string): Promise<Experiment>;
  /** Finds deleted experiments too; NotFoundError when no experiment has this name. */
  getExperimentByName(name: string): Promise<Experiment>;
  searchExperiments(options?: SearchExperimentsOptions): Promise<Page<Experiment>>;
  /** Rename; ConflictError when the new name is taken. */
  updateExperiment(experimentId: string, changes: { readonly name: string }): Promise<Experiment>;
  /** Last write wins; limits `experimentTagKeyLength` and `experimentTagValueLength`. */
  setExperimentTag(experimentId: string, key: string, value: string): Promise<void>;
  /** Soft delete of the experiment and its runs; idempotent. */
  deleteExperiment(experimentId: string): Promise<void>;
  /** Restores the experiment and the runs deleted with it; idempotent. */
  restoreExperiment(experimentId: string): Promise<void>;

  /** ConflictError when the experiment is deleted. */
  createRun(input: CreateRunInput): Promise<Run>;
  getRun(runId: string): Promise<Run>;
  updateRun(input: UpdateRunInput): Promise<RunInfo>;
  /** Soft delete; idempotent; the run keeps its data and can be restored. */
  deleteRun(runId: string): Promise<void>;
  /** Idempotent. */
  restoreRun(runId: string): Promise<void>;

  /** Appends a point; never deduplicates (identical points are stored twice). */
  logMetric(runId: string, metric: MetricInput): Promise<void>;
  /** Idempotent for an equal value; ConflictError when the key already holds a different value. */
  logParam(runId: string, param: Param): Promise<void>;
  /** Last write wins. */
  setTag(runId: string, tag: RunTag): Promise<void>;
  /** NotFoundError when the run has no such tag. */
  deleteTag(runId: string, key: string): Promise<void>;
  /**
   * Params, then metrics, then tags, with the single-item rules above; every limit in TRACKER_LIMITS and
   * every key is checked before anything is written (ValidationError). Duplicate param keys with different
   * values in one batch raise ValidationError; atomic where `capabilities.atomicBatch`.
   */
  logBatch(runId: string, batch: LogBatchInput): Promise<void>;
  /** Points of one key ordered by step, then timestamp; page limits METRIC_HISTORY_PAGE. */
  getMetricHistory(runId: string, key: string, options?: PageOptions): Promise<Page<Metric>>;
  /** Needs `capabilities.datasetInputs`; a dataset already logged with the same name and digest is not duplicated. */
  logInputs(runId: string, inputs: readonly DatasetInput[]): Promise<void>;

  /** Page limits SEARCH_RUNS_PAGE; the filter language is described at SearchFilter. */
  searchRuns(options: SearchRunsOptions): Promise<Page<Run>>;

  /**
   * Stores an artifact at `path` below the run's artifact URI (joined with `joinArtifactPath`) through the
   * ArtifactStore, or the backend's own artifact service (MLflow's proxy); replaces an existing file at that path.
   */
  logArtifact(runId: string, path: string, body: ArtifactBody, options?: PutArtifactOptions): Promise<ArtifactInfo>;
  /** One directory level below `path` (the root when absent), sorted by path; page limits RUN_ARTIFACTS_PAGE. */
  listRunArtifacts(runId: string, options?: PageOptions & { readonly path?: string }): Promise<Page<RunArtifact>>;
  /**
   * Streams the file at `path` below the run's artifact root, with its listing entry (`isDir` false, `size` set).
   * ValidationError (`field: 'path'`) for a path `joinArtifactPath` refuses (absolute, empty, `.` or `..`
   * segments); NotFoundError when the run does not exist or has no file at `path`: a directory is not a file.
   * Deleted runs stay readable, as with `getRun` and `listRunArtifacts`. The caller consumes or destroys `body`.
   */
  openArtifact(runId: string, path: string): Promise<{ info: RunArtifact; body: Readable }>;
}

export const experimentTrackerRef = createServiceRef<ExperimentTracker>({ id: 'core.experimentTracker' });

/**
 * The port as the kernel knows it: its hooks (`run.created`, `run.finished`, under `platform.hooks.run`) and the guard that makes
 * them fire for whichever provider is chosen. Providers never fire these hooks themselves.
 */
export const experimentTrackerPort = definePort({
  ref: experimentTrackerRef,
  hooksKey: 'run',
  createHooks: createExperimentTrackerHooks,
  guard: guardExperimentTracker,
});

/** ValidationError unless `key` is a valid metric, param or tag key within `keyLength`, in NFC. */
export function validateTrackingKey(key: string, field = 'key'): void {
  if (!TRACKING_KEY_PATTERN.test(key)) {
    throw new ValidationError(`'${key}' is not a valid key: use letters, digits, '_', '-', '.', '/' and spaces`, {
      field,
    });
  }
  const segments = key.split('/');
  if (key.startsWith('/') || segments.some((s) => s === '' || s === '.' || s === '..')) {
    throw new ValidationError(`'${key}' is not a valid key: it must not resolve to another path`, { field });
  }
  if (key.length > TRACKER_LIMITS.keyLength) {
    throw new ValidationError(
      `key '${key.slice(0, 50)}...' exceeds the keyLength limit of ${TRACKER_LIMITS.keyLength}`,
      {
        field,
      },
    );
  }
  // Refused rather than normalised: keys are stored as given, and 'Å' (U+212B) beside 'Å' (U+00C5) would be two.
  if (key.normalize('NFC') !== key) {
    throw new ValidationError(`'${key}' is not a valid key: write it in Unicode NFC form (key.normalize('NFC'))`, {
      field,
    });
  }
}

/**
 * Checks a logBatch's counts, keys and value lengths against TRACKER_LIMITS; throws ValidationError
 * naming the first breached limit. Backends call it before writing anything; one that splits batches itself
 * (`capabilities.unboundedBatches`) passes `{ counts: false }` to check every entry but not the per-call counts.
 */
export function validateLogBatch(batch: LogBatchInput, options: { readonly counts?: boolean } = {}): void {
  const metrics = batch.metrics ?? [];
  const params = batch.params ?? [];
  const tags = batch.tags ?? [];
  const counts = [
    ['metrics', metrics.length, 'metricsPerBatch', TRACKER_LIMITS.metricsPerBatch],
    ['params', params.length, 'paramsPerBatch', TRACKER_LIMITS.paramsPerBatch],
    ['tags', tags.length, 'tagsPerBatch', TRACKER_LIMITS.tagsPerBatch],
    ['batch', metrics.length + params.length + tags.length, 'entitiesPerBatch', TRACKER_LIMITS.entitiesPerBatch],
  ] as const;
  for (const [field, count, limit, max] of counts) {
    if (options.counts !== false && count > max) {
      throw new ValidationError(`a logBatch call holds ${count} ${field}; the ${limit} limit is ${max}: split it`, {
        field,
      });
    }
  }
  metrics.forEach((m, i) => {
    validateTrackingKey(m.key, `metrics[${i}].key`);
    if (typeof m.value !== 'number')
      throw new ValidationError(`metric '${m.key}' value must be a number`, { field: `metrics[${i}].value` });
    if (m.step !== undefined && !Number.isSafeInteger(m.step)) {
      throw new ValidationError(`metric '${m.key}' step must be an integer`, { field: `metrics[${i}].step` });
    }
    if (m.timestamp !== undefined && (!Number.isSafeInteger(m.timestamp) || m.timestamp < 0)) {
      throw new ValidationError(`metric '${m.key}' timestamp must be non-negative epoch milliseconds`, {
        field: `metrics[${i}].timestamp`,
      });
    }
  });
  const seen = new Map<string, string>();
  params.forEach((p, i) => {
    validateTrackingKey(p.key, `params[${i}].key`);
    if (typeof p.value !== 'string') {
      throw new ValidationError(`param '${p.key}' value must be a string`, { field: `params[${i}].value` });
    }
    validateText(p.value, `params[${i}].value`, `param '${p.key}' value`);
    if (p.value.length > TRACKER_LIMITS.paramValueLength) {
      throw new ValidationError(
        `param '${p.key}' value has ${p.value.length} chars; the paramValueLength limit is ${TRACKER_LIMITS.paramValueLength}`,
        { field: `params[${i}].value` },
      );
    }
    const previous = seen.get(p.key);
    if (previous !== undefined && previous !== p.value) {
      throw new ValidationError(`param '${p.key}' appears twice in one batch with different values`, {
        field: `params[${i}].key`,
      });
    }
    seen.set(p.key, p.value);
  });
  tags.forEach((t, i) => {
    validateTrackingKey(t.key, `tags[${i}].key`);
    if (typeof t.value !== 'string') {
      throw new ValidationError(`tag '${t.key}' value must be a string`, { field: `tags[${i}].value` });
    }
    validateText(t.value, `tags[${i}].value`, `tag '${t.key}' value`);
    if (t.value.length > TRACKER_LIMITS.runTagValueLength) {
      throw new ValidationError(
        `tag '${t.key}' value has ${t.value.length} chars; the runTagValueLength limit is ${TRACKER_LIMITS.runTagValueLength}`,
        { field: `tags[${i}].value` },
      );
    }
  });
}

/**
 * Joins a relative artifact path onto a run's artifact URI (or key prefix): `<root>/<path>`. ValidationError
 * when `path` is absolute or has empty, `.` or `..` segments, so a run can never write outside its root.
 */
export function joinArtifactPath(artifactRoot: string, path: string): string {
  const segments = path.split('/');
  if (path === '' || path.startsWith('/') || segments.some((s) => s === '' || s === '.' || s === '..')) {
    throw new ValidationError(`artifact path '${path}' must be relative, without empty, '.' or '..' segments`, {
      field: 'path',
    });
  }
  return `${artifactRoot.replace(/\/+$/, '')}/${path}`;
}

/**
 * ValidationError unless `location` can be an experiment's artifact location: an absolute URI with a scheme
 * (ARTIFACT_URI_PATTERN) that names storage, so not a `runs:/` or `models:/` URI, which name other things.
 */
export function validateArtifactLocation(location: unknown, field = 'artifactLocation'): asserts location is string {
  if (typeof location !== 'string' || location.trim() === '') {
    throw new ValidationError(`${field} must be a non-empty string`, { field });
  }
  validateNoControlCharacters(location, field, field);
  if (/^(runs|models):/i.test(location)) {
    throw new ValidationError(
      `${field} must name storage, not a run or a model: got '${location}' (runs:/ and models:/ URIs are resolved, never written to)`,
      { field },
    );
  }
  if (!ARTIFACT_URI_PATTERN.test(location)) {
    throw new ValidationError(
      `${field} must be an absolute URI with a scheme, such as s3://bucket/prefix or file:///data/artifacts, got '${location}'`,
      { field },
    );
  }
}

/** ValidationError (field `name`) unless `name` is a non-empty experiment name within `experimentNameLength`. */
export function validateExperimentName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.trim() === '') {
    throw new ValidationError('experiment name must be a non-empty string', { field: 'name' });
  }
  if (name.length > TRACKER_LIMITS.experimentNameLength) {
    throw new ValidationError(
      `experiment name has ${name.length} chars; the experimentNameLength limit is ${TRACKER_LIMITS.experimentNameLength}`,
      { field: 'name' },
    );
  }
}

/** ValidationError (field `name`) unless `name` is a string within `runTagValueLength` (MLflow keeps it in a tag). */
export function validateRunName(name: unknown): void {
  if (typeof name !== 'string') throw new ValidationError('run name must be a string', { field: 'name' });
  // MLflow keeps the run name in the mlflow.runName tag, so the tag value limit applies.
  if (name.length > TRACKER_LIMITS.runTagValueLength) {
    throw new ValidationError(
      `run name has ${name.length} chars; the runTagValueLength limit is ${TRACKER_LIMITS.runTagValueLength}`,
      { field: 'name' },
    );
  }
}

/** Checks experiment tags (keys as tracking keys, `experimentTagKeyLength`, `experimentTagValueLength`); returns the entries. */
export function validateExperimentTags(tags: Readonly<Record<string, string>>): [string, string][] {
  const entries = Object.entries(tags);
  for (const [key, value] of entries) {
    validateTrackingKey(key, `tags.${key}`);
    if (key.length > TRACKER_LIMITS.experimentTagKeyLength) {
      throw new ValidationError(
        `experiment tag key '${key.slice(0, 50)}...' exceeds the experimentTagKeyLength limit of ${TRACKER_LIMITS.experimentTagKeyLength}`,
        { field: `tags.${key}` },
      );
    }
    if (typeof value !== 'string') {
      throw new ValidationError(`experiment tag '${key}' value must be a string`, { field: `tags.${key}` });
    }
    validateText(value, `tags.${key}`, `experiment tag '${key}' value`);
    if (value.length > TRACKER_LIMITS.experimentTagValueLength) {
      throw new ValidationError(
        `experiment tag '${key}' value has ${value.length} chars; the experimentTagValueLength limit is ${TRACKER_LIMITS.experimentTagValueLength}`,
        { field: `tags.${key}` },
      );
    }
  }
  return entries;
}

/** Checks a logInputs call against TRACKER_LIMITS; ValidationError naming the field and the limit. */
export function validateDatasetInputs(inputs: readonly DatasetInput[]): void {
  if (!Array.isArray(inputs as unknown)) throw new ValidationError('inputs must be an array', { field: 'inputs' });
  if (inputs.length > TRACKER_LIMITS.datasetsPerBatch) {
    throw new ValidationError(
      `a logInputs call holds ${inputs.length} datasets; the datasetsPerBatch limit is ${TRACKER_LIMITS.datasetsPerBatch}: split it`,
      { field: 'inputs' },
    );
  }
  const limit = (field: string, value: string | undefined, name: keyof typeof TRACKER_LIMITS, required = true) => {
    if (value === undefined && !required) return;
    if (typeof value !== 'string' || (required && value === '')) {
      throw new ValidationError(`${field} must be a non-empty string`, { field });
    }
    validateText(value, field, field);
    if (value.length > TRACKER_LIMITS[name]) {
      throw new ValidationError(`${field} has ${value.length} chars; the ${name} limit is ${TRACKER_LIMITS[name]}`, {
        field,
      });
    }
  };
  inputs.forEach((input, i) => {
    const d = input?.dataset;
    if (!d) throw new ValidationError(`inputs[${i}].dataset is required`, { field: `inputs[${i}].dataset` });
    limit(`inputs[${i}].dataset.name`, d.name, 'datasetNameLength');
    limit(`inputs[${i}].dataset.digest`, d.digest, 'datasetDigestLength');
    limit(`inputs[${i}].dataset.source`, d.source, 'datasetSourceLength');
    limit(`inputs[${i}].dataset.schema`, d.schema, 'datasetSchemaLength', false);
    limit(`inputs[${i}].dataset.profile`, d.profile, 'datasetProfileLength', false);
    if (typeof d.sourceType !== 'string' || d.sourceType === '') {
      throw new ValidationError(`inputs[${i}].dataset.sourceType must be a non-empty string`, {
        field: `inputs[${i}].dataset.sourceType`,
      });
    }
    validateNoControlCharacters(d.sourceType, `inputs[${i}].dataset.sourceType`, 'dataset sourceType');
    (input.tags ?? []).forEach((t, j) => {
      limit(`inputs[${i}].tags[${j}].key`, t.key, 'inputTagKeyLength');
      limit(`inputs[${i}].tags[${j}].value`, t.value, 'inputTagValueLength');
    });
  });
}
