import type { Readable } from 'node:stream';
import { z } from 'zod';
import { validateNoControlCharacters, validateText } from '../infra/validation/text.js';
import { definePort } from '../kernel/port.js';
import { createServiceRef } from '../kernel/service-ref.js';
import {
  ARTIFACT_KEY_MAX_BYTES,
  type ArtifactBody,
  type ArtifactInfo,
  artifactBody,
  type PutArtifactOptions,
  putArtifactOptions,
  validateWriteOptions,
} from './artifact-store.js';
import { describeValue, quoteValue, ValidationError } from './errors.js';
import { createExperimentTrackerHooks, guardExperimentTracker } from './guards/experiment-tracker.js';
import {
  fromValidator,
  limitedArray,
  limitedRecord,
  limitedString,
  oneOf,
  textCheck,
  validDate,
} from './input-schemas.js';
import { type Page, type PageLimits, type PageOptions, pageOptions } from './paging.js';
import { checkInput, type PortInputs, portArg, portInput } from './port-inputs.js';
import { searchFilter, searchOrderBy } from './search-filter.js';

export { ConflictError, NotFoundError, UnavailableError, ValidationError } from './errors.js';
export type { Page, PageOptions } from './paging.js';

/**
 * Limits every implementation enforces, equal to MLflow's (mlflow/utils/validation.py,
 * mlflow/store/tracking/__init__.py) so data moves between the SQL default and an MLflow server unchanged;
 * createExperiment and createRun take at most `tagsPerBatch` tags. Search inputs (filters, orderBy) have the
 * SEARCH_FILTER_LIMITS shared with the registry.
 * A breach raises ValidationError whose `field` names the offending input and whose message names the limit;
 * values are never silently truncated (MLflow's client truncates by default; ours refuses).
 */
/**
 * The project (tenant) an experiment or registered model belongs to, as a tag: the HTTP API sets it when it creates
 * one and refuses to change it; runs and versions belong to their experiment's and model's project. Components that
 * create experiments for a project (the local ComputeBackend's job runs) set it the same way. Untagged means
 * DEFAULT_PROJECT.
 */
export const PROJECT_TAG = 'mlplane.project';
/** The project of experiments and models without PROJECT_TAG. */
export const DEFAULT_PROJECT = 'default';

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
  // The limits below are mlplane's own (MLflow's columns bound some of them; its API checks none).
  /** Experiment and run ids given to any operation (run ids are `^[a-zA-Z0-9][\w-]{0,255}$`). */
  idLength: 256,
  /** An explicit experiment artifact location (a URI or key prefix). */
  artifactLocationLength: 1024,
  /** A dataset's source type (MLflow's column is VARCHAR(36)). */
  datasetSourceTypeLength: 36,
  /** Tags of one dataset input. */
  inputTagsPerDataset: 100,
  /** searchRuns: experiment ids per search. */
  experimentIdsPerSearch: 1000,
  /**
   * logBatch on a backend with `capabilities.unboundedBatches`, which splits a batch into calls within the per-call
   * counts: metrics + params + tags per call. Also what the port boundary lets through to any backend, which then
   * applies its own per-call counts.
   */
  entitiesPerSplitBatch: 100_000,
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
  checkInput(trackingKey(), key, field, true);
}

/**
 * Checks a logBatch's types, keys, values and counts against TRACKER_LIMITS (the `logBatch` schema of
 * `experimentTrackerInputs`, plus the per-call counts); throws ValidationError naming the first problem. Backends call
 * it before writing anything; one that splits batches itself (`capabilities.unboundedBatches`) passes
 * `{ counts: false }` to check every entry but not the per-call counts (`entitiesPerSplitBatch` still applies).
 */
export function validateLogBatch(batch: LogBatchInput, options: { readonly counts?: boolean } = {}): void {
  checkInput(options.counts === false ? logBatchEntries : logBatchInput, batch, 'batch');
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

// ---------------------------------------------------------------- argument schemas

/** An empty, `.` or `..` segment, or a leading `/`: a key that would normalize to another path. */
const PATH_LIKE_KEY = /(^|\/)\.{0,2}(\/|$)/;

/**
 * What is wrong with a metric, param or tag key, as a predicate that follows the field's name; undefined for a
 * valid key: a string within `max` (the `limit` named), of TRACKING_KEY_PATTERN's characters, not normalizing to
 * another path, in Unicode NFC.
 */
export function trackingKeyProblem(
  key: unknown,
  limit = 'keyLength',
  max: number = TRACKER_LIMITS.keyLength,
): string | undefined {
  if (typeof key !== 'string') return `must be a string, got ${describeValue(key)}`;
  if (key.length > max) return `exceeds the ${limit} limit of ${max}`;
  if (!TRACKING_KEY_PATTERN.test(key)) {
    return `${quoteValue(key)} is not a valid key: use letters, digits, '_', '-', '.', '/' and spaces`;
  }
  if (PATH_LIKE_KEY.test(key)) return `${quoteValue(key)} is not a valid key: it must not resolve to another path`;
  // Refused rather than normalised: keys are stored as given, and 'Å' (U+212B) beside 'Å' (U+00C5) would be two.
  if (key.normalize('NFC') !== key) {
    return `${quoteValue(key)} is not a valid key: write it in Unicode NFC form (key.normalize('NFC'))`;
  }
  return undefined;
}

/** A metric, param or tag key under `trackingKeyProblem`'s rules. */
export function trackingKey(limit = 'keyLength', max: number = TRACKER_LIMITS.keyLength) {
  return z.string().check((ctx) => {
    const problem = trackingKeyProblem(ctx.value, limit, max);
    if (problem) ctx.issues.push({ code: 'custom', input: undefined, message: problem });
  });
}

const id = limitedString('idLength', TRACKER_LIMITS.idLength, { nonEmpty: true });
const runId = portArg('runId', id);
const experimentId = portArg('experimentId', id);
const experimentName = limitedString('experimentNameLength', TRACKER_LIMITS.experimentNameLength, {
  nonEmpty: true,
  blankIsEmpty: true,
});
const experimentTagKey = trackingKey('experimentTagKeyLength', TRACKER_LIMITS.experimentTagKeyLength);
const experimentTagValue = limitedString('experimentTagValueLength', TRACKER_LIMITS.experimentTagValueLength).check(
  textCheck('text'),
);
const runTagValue = limitedString('runTagValueLength', TRACKER_LIMITS.runTagValueLength).check(textCheck('text'));
const paramValue = limitedString('paramValueLength', TRACKER_LIMITS.paramValueLength).check(textCheck('text'));
const RUN_STATUS_VALUES = ['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED'] as const;
const viewType = oneOf(['ACTIVE_ONLY', 'DELETED_ONLY', 'ALL']);

const METRIC_SHAPE = 'a metric { key, value, step?, timestamp? }';

/** What is wrong with one metric: the path below it and a predicate, or undefined. */
function metricProblem(metric: unknown): [(string | number)[], string] | undefined {
  if (typeof metric !== 'object' || metric === null || Array.isArray(metric)) {
    return [[], `must be ${METRIC_SHAPE}, got ${describeValue(metric)}`];
  }
  const { key, value, step, timestamp } = metric as Record<string, unknown>;
  const keyProblem = trackingKeyProblem(key);
  if (keyProblem) return [['key'], keyProblem];
  if (typeof value !== 'number') return [['value'], `must be a number, got ${describeValue(value)}`];
  if (step !== undefined && !Number.isSafeInteger(step)) {
    return [['step'], `must be an integer, got ${describeValue(step)}`];
  }
  if (timestamp !== undefined && !(Number.isSafeInteger(timestamp) && (timestamp as number) >= 0)) {
    return [['timestamp'], `must be non-negative epoch milliseconds, got ${describeValue(timestamp)}`];
  }
  return undefined;
}

/**
 * One metric (logMetric) or a list of them (logBatch, up to `metricsPerBatch`), checked by plain code rather than
 * a zod object per point: a 1,000-point batch is the tracker's hot path, and this keeps its check near 0.1 ms.
 */
const metricInput = z.unknown().check((ctx) => {
  const problem = metricProblem(ctx.value);
  if (problem) ctx.issues.push({ code: 'custom', input: undefined, path: problem[0], message: problem[1] });
}) as unknown as z.ZodType<MetricInput>;
function metricList(limit: string, max: number) {
  return z
    .array(z.unknown())
    .max(max, {
      error: (issue) =>
        `holds ${(issue.input as unknown[]).length} items; the ${limit} limit is ${max}: split the call`,
      abort: true,
    })
    .check((ctx) => {
      ctx.value.forEach((metric, i) => {
        const problem = metricProblem(metric);
        if (problem)
          ctx.issues.push({ code: 'custom', input: undefined, path: [i, ...problem[0]], message: problem[1] });
      });
    }) as unknown as z.ZodType<MetricInput[]>;
}
const param = z.object(
  { key: trackingKey(), value: paramValue },
  { error: (issue) => `must be a param { key, value }, got ${describeValue(issue.input)}` },
);
const runTag = z.object(
  { key: trackingKey(), value: runTagValue },
  { error: (issue) => `must be a tag { key, value }, got ${describeValue(issue.input)}` },
);

/**
 * A logBatch `batch` whose lists and total are bounded by the given limits: valid keys, typed values, no param twice
 * with two values.
 */
function logBatchSchema(bounds: {
  readonly metrics: readonly [string, number];
  readonly params: readonly [string, number];
  readonly tags: readonly [string, number];
  readonly total: readonly [string, number];
}) {
  return z
    .object({
      metrics: metricList(...bounds.metrics).optional(),
      params: limitedArray(param, ...bounds.params).optional(),
      tags: limitedArray(runTag, ...bounds.tags).optional(),
    })
    .check((ctx) => {
      const { metrics = [], params = [], tags = [] } = ctx.value;
      const total = metrics.length + params.length + tags.length;
      const [limit, max] = bounds.total;
      if (total > max) {
        ctx.issues.push({
          code: 'custom',
          input: undefined,
          message: `holds ${total} metrics, params and tags; the ${limit} limit is ${max}: split the call`,
        });
      }
      const seen = new Map<string, string>();
      params.forEach((p, i) => {
        const previous = seen.get(p.key);
        if (previous !== undefined && previous !== p.value) {
          ctx.issues.push({
            code: 'custom',
            input: undefined,
            path: ['params', i, 'key'],
            message: `names param '${p.key}' a second time with a different value: a batch may repeat a param only with the same value`,
          });
        }
        seen.set(p.key, p.value);
      });
    });
}

/** The `batch` of logBatch within the per-call counts of TRACKER_LIMITS (what `validateLogBatch` checks by default). */
export const logBatchInput = logBatchSchema({
  metrics: ['metricsPerBatch', TRACKER_LIMITS.metricsPerBatch],
  params: ['paramsPerBatch', TRACKER_LIMITS.paramsPerBatch],
  tags: ['tagsPerBatch', TRACKER_LIMITS.tagsPerBatch],
  total: ['entitiesPerBatch', TRACKER_LIMITS.entitiesPerBatch],
});

/**
 * The `batch` of logBatch at the port boundary: every entry checked, at most `entitiesPerSplitBatch` of them. The
 * per-call counts depend on the backend (`capabilities.unboundedBatches`), so each implementation checks those.
 */
export const logBatchEntries = logBatchSchema({
  metrics: ['entitiesPerSplitBatch', TRACKER_LIMITS.entitiesPerSplitBatch],
  params: ['entitiesPerSplitBatch', TRACKER_LIMITS.entitiesPerSplitBatch],
  tags: ['entitiesPerSplitBatch', TRACKER_LIMITS.entitiesPerSplitBatch],
  total: ['entitiesPerSplitBatch', TRACKER_LIMITS.entitiesPerSplitBatch],
});

const runTags = limitedRecord(trackingKey(), runTagValue, 'tagsPerBatch', TRACKER_LIMITS.tagsPerBatch);
const experimentTags = limitedRecord(experimentTagKey, experimentTagValue, 'tagsPerBatch', TRACKER_LIMITS.tagsPerBatch);
/** A path below a run's artifact root; `joinArtifactPath` checks its segments. */
const artifactPath = limitedString('ARTIFACT_KEY_MAX_BYTES', ARTIFACT_KEY_MAX_BYTES);
const requiredText = (limit: keyof typeof TRACKER_LIMITS) =>
  limitedString(limit, TRACKER_LIMITS[limit], { nonEmpty: true });
const optionalText = (limit: keyof typeof TRACKER_LIMITS) => limitedString(limit, TRACKER_LIMITS[limit]).optional();

const datasetInput = z.object({
  dataset: z.object({
    name: requiredText('datasetNameLength'),
    digest: requiredText('datasetDigestLength'),
    sourceType: requiredText('datasetSourceTypeLength'),
    source: requiredText('datasetSourceLength'),
    schema: optionalText('datasetSchemaLength'),
    profile: optionalText('datasetProfileLength'),
  }),
  tags: limitedArray(
    z.object({ key: requiredText('inputTagKeyLength'), value: requiredText('inputTagValueLength') }),
    'inputTagsPerDataset',
    TRACKER_LIMITS.inputTagsPerDataset,
  ).default([]),
});

const searchPage = pageOptions(SEARCH_RUNS_PAGE);

/**
 * The arguments of every ExperimentTracker operation, with TRACKER_LIMITS, SEARCH_FILTER_LIMITS and the page
 * limits; `validatePortInputs(tracker, experimentTrackerInputs)` applies them at the port's boundary. What needs
 * the backend's state (unknown ids, immutable params, deleted runs) or parsing (filter clauses, IN lists, artifact
 * path segments) is left to the implementation.
 */
export const experimentTrackerInputs = {
  createExperiment: z.tuple([
    portInput(
      'input',
      z.object({
        name: experimentName,
        artifactLocation: limitedString('artifactLocationLength', TRACKER_LIMITS.artifactLocationLength, {
          nonEmpty: true,
          blankIsEmpty: true,
        })
          .check(fromValidator((location: string) => validateArtifactLocation(location)))
          .optional(),
        tags: experimentTags.optional(),
      }),
    ),
  ]),
  getExperiment: z.tuple([experimentId]),
  getExperimentByName: z.tuple([
    portArg('name', limitedString('experimentNameLength', TRACKER_LIMITS.experimentNameLength)),
  ]),
  searchExperiments: z.tuple([
    portInput(
      'options',
      pageOptions(SEARCH_EXPERIMENTS_PAGE).extend({
        filter: searchFilter.optional(),
        orderBy: searchOrderBy.optional(),
        viewType: viewType.optional(),
      }),
    ).optional(),
  ]),
  updateExperiment: z.tuple([experimentId, portInput('changes', z.object({ name: experimentName }))]),
  setExperimentTag: z.tuple([experimentId, portArg('key', experimentTagKey), portArg('value', experimentTagValue)]),
  deleteExperiment: z.tuple([experimentId]),
  restoreExperiment: z.tuple([experimentId]),

  createRun: z.tuple([
    portInput(
      'input',
      z.object({
        experimentId: id,
        name: limitedString('runTagValueLength', TRACKER_LIMITS.runTagValueLength).optional(),
        startTime: validDate.optional(),
        status: oneOf(['RUNNING', 'SCHEDULED']).optional(),
        tags: runTags.optional(),
        parentRunId: id.optional(),
        userId: limitedString('keyLength', TRACKER_LIMITS.keyLength).optional(),
      }),
    ),
  ]),
  getRun: z.tuple([runId]),
  updateRun: z.tuple([
    portInput(
      'input',
      z.object({
        runId: id,
        status: oneOf(RUN_STATUS_VALUES).optional(),
        endTime: validDate.optional(),
        name: limitedString('runTagValueLength', TRACKER_LIMITS.runTagValueLength).optional(),
      }),
    ),
  ]),
  deleteRun: z.tuple([runId]),
  restoreRun: z.tuple([runId]),

  logMetric: z.tuple([runId, portInput('metric', metricInput)]),
  logParam: z.tuple([runId, portInput('param', param)]),
  setTag: z.tuple([runId, portInput('tag', runTag)]),
  deleteTag: z.tuple([runId, portArg('key', trackingKey())]),
  logBatch: z.tuple([runId, portInput('batch', logBatchEntries)]),
  getMetricHistory: z.tuple([
    runId,
    portArg('key', trackingKey()),
    portInput('options', pageOptions(METRIC_HISTORY_PAGE)).optional(),
  ]),
  logInputs: z.tuple([
    runId,
    portArg('inputs', limitedArray(datasetInput, 'datasetsPerBatch', TRACKER_LIMITS.datasetsPerBatch)),
  ]),

  searchRuns: z.tuple([
    portInput(
      'options',
      searchPage.extend({
        experimentIds: limitedArray(
          id,
          'experimentIdsPerSearch',
          TRACKER_LIMITS.experimentIdsPerSearch,
          'experiment ids',
          ': search fewer experiments at once',
        ).min(1, { error: 'needs at least one experiment id' }),
        filter: searchFilter.optional(),
        orderBy: searchOrderBy.optional(),
        runViewType: viewType.optional(),
      }),
    ),
  ]),

  logArtifact: z
    .tuple([
      runId,
      portArg('path', artifactPath),
      portArg('body', artifactBody),
      portInput('options', putArtifactOptions).optional(),
    ])
    .check(
      fromValidator(([, path, , options]: readonly [string, string, unknown, PutArtifactOptions?]) =>
        validateWriteOptions(path, options),
      ),
    ),
  listRunArtifacts: z.tuple([
    runId,
    portInput('options', pageOptions(RUN_ARTIFACTS_PAGE).extend({ path: artifactPath.optional() })).optional(),
  ]),
  openArtifact: z.tuple([runId, portArg('path', artifactPath)]),
} satisfies PortInputs<ExperimentTracker>;

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
  if (typeof tags !== 'object' || tags === null || Array.isArray(tags)) {
    throw new ValidationError('tags must be an object of string values', { field: 'tags' });
  }
  const entries = Object.entries(tags);
  if (entries.length > TRACKER_LIMITS.tagsPerBatch) {
    throw new ValidationError(
      `tags holds ${entries.length} entries; the tagsPerBatch limit is ${TRACKER_LIMITS.tagsPerBatch}: set the rest one by one`,
      { field: 'tags' },
    );
  }
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
    limit(`inputs[${i}].dataset.sourceType`, d.sourceType, 'datasetSourceTypeLength');
    validateNoControlCharacters(d.sourceType, `inputs[${i}].dataset.sourceType`, 'dataset sourceType');
    const tags = input.tags ?? [];
    if (!Array.isArray(tags) || tags.length > TRACKER_LIMITS.inputTagsPerDataset) {
      throw new ValidationError(
        `inputs[${i}].tags must be an array of at most ${TRACKER_LIMITS.inputTagsPerDataset} tags (the inputTagsPerDataset limit)`,
        { field: `inputs[${i}].tags` },
      );
    }
    tags.forEach((t, j) => {
      limit(`inputs[${i}].tags[${j}].key`, t?.key, 'inputTagKeyLength');
      limit(`inputs[${i}].tags[${j}].value`, t?.value, 'inputTagValueLength');
    });
  });
}
