import { setTimeout as delay } from 'node:timers/promises';
import { createServiceRef } from '../kernel/service-ref.js';
import { UnavailableError, ValidationError } from './errors.js';
import type { Page, PageLimits, PageOptions } from './paging.js';

export { ConflictError, NotFoundError, UnavailableError, ValidationError } from './errors.js';
export type { Page, PageOptions } from './paging.js';

export const LIST_FEATURE_OBJECTS_PAGE: PageLimits = Object.freeze({ default: 100, max: 1000 });
/** Feast project names: letters, digits and `_`, not starting with `_` (Feast's `is_valid_name`). */
export const FEATURE_PROJECT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_]*$/;

/**
 * Bounds of the inline historical answer (`getHistoricalFeatures`), checked before any work is done: past them,
 * ValidationError says to use `startHistoricalRetrieval`, whose result is a Parquet file of any size.
 */
export const HISTORICAL_INLINE_LIMITS = Object.freeze({
  /** Entity rows, hence answer rows. */
  rows: 10_000,
  /** Answer cells: rows x (entity dataframe columns + selected features). */
  cells: 1_000_000,
});
/** Entity rows a historical retrieval job takes inline; larger entity dataframes go in as a Parquet dataset. */
export const HISTORICAL_JOB_MAX_INLINE_ROWS = 100_000;
/** Default ArtifactStore key prefix of retrieval results: `<prefix>/<project>/<jobId>.parquet`. */
export const FEATURE_DATASETS_PREFIX = 'feature-datasets';
export const LIST_FEATURE_JOBS_PAGE: PageLimits = Object.freeze({ default: 100, max: 1000 });
/** Separates view and feature in a feature reference: `driver_stats:conv_rate`. */
export const FEATURE_REF_SEPARATOR = ':';
/** Joins view and feature in full feature names: `driver_stats__conv_rate` (Feast's convention). */
export const FULL_FEATURE_NAME_SEPARATOR = '__';
/** Column holding each entity row's point in time for historical retrieval (Feast's name). */
export const EVENT_TIMESTAMP_COLUMN = 'event_timestamp';

/** Value types as Feast's ValueType (feast/types/Value.proto), minus INVALID and NULL. */
export const FEATURE_VALUE_TYPES = Object.freeze([
  'BYTES',
  'STRING',
  'INT32',
  'INT64',
  'DOUBLE',
  'FLOAT',
  'BOOL',
  'UNIX_TIMESTAMP',
  'BYTES_LIST',
  'STRING_LIST',
  'INT32_LIST',
  'INT64_LIST',
  'DOUBLE_LIST',
  'FLOAT_LIST',
  'BOOL_LIST',
  'UNIX_TIMESTAMP_LIST',
  'MAP',
  'MAP_LIST',
  'BYTES_SET',
  'STRING_SET',
  'INT32_SET',
  'INT64_SET',
  'DOUBLE_SET',
  'FLOAT_SET',
  'BOOL_SET',
  'UNIX_TIMESTAMP_SET',
  'UUID',
  'TIME_UUID',
  'UUID_LIST',
  'TIME_UUID_LIST',
] as const);
export type FeatureValueType = (typeof FEATURE_VALUE_TYPES)[number];

/**
 * A value as JavaScript holds it: INT32, FLOAT, DOUBLE -> number; INT64 -> number when it is a safe
 * integer, else bigint; UNIX_TIMESTAMP -> Date; BYTES -> Uint8Array; STRING and UUIDs -> string;
 * lists and sets -> arrays; MAP -> plain object; missing -> null.
 */
export type ScalarValue = string | number | bigint | boolean | Date | Uint8Array | null;
export type FeatureValue = ScalarValue | readonly ScalarValue[] | { readonly [key: string]: FeatureValue };

/** A value a join key may take. */
export type EntityKeyValue = string | number | bigint | boolean | Uint8Array;

export interface Entity {
  readonly name: string;
  /** Columns that identify an instance; one for most entities. */
  readonly joinKeys: readonly string[];
  readonly valueType: FeatureValueType;
  readonly description: string;
  readonly tags: Readonly<Record<string, string>>;
  readonly owner?: string;
}

export interface Field {
  readonly name: string;
  readonly valueType: FeatureValueType;
  readonly description?: string;
  readonly tags?: Readonly<Record<string, string>>;
}

/**
 * Where a view's rows come from. `batch` sources are read by materialization and historical retrieval;
 * `push` sources receive rows through `push`; `stream` sources are consumed by a streaming engine; `request`
 * sources (Feast's RequestSource) name values that arrive with each online request, for on-demand views.
 */
export interface DataSource {
  readonly name: string;
  readonly kind: 'batch' | 'push' | 'stream' | 'request';
  /** Column with each row's event time. */
  readonly timestampField: string;
  /** Column breaking ties between rows of the same event time (latest write wins). */
  readonly createdTimestampField?: string;
  /** Source column -> feature or join-key name. */
  readonly fieldMapping?: Readonly<Record<string, string>>;
  /** For push and stream sources: the batch source holding the same rows offline. */
  readonly batchSource?: string;
  /** Backend-specific location (`path`, `table`, `query`, `topic`...); empty for request sources. */
  readonly options: Readonly<Record<string, string>>;
  /** The fields a request source carries (required for `request`, absent otherwise). */
  readonly schema?: readonly Field[];
}

export interface FeatureView {
  readonly name: string;
  /** Entity names; their join keys identify a row. */
  readonly entities: readonly string[];
  /** Entity columns with their types (join keys). */
  readonly entityColumns: readonly Field[];
  readonly features: readonly Field[];
  /** Values older than this (relative to the read time) are OUTSIDE_MAX_AGE; 0 means they never expire. */
  readonly ttlSeconds: number;
  readonly source: DataSource;
  /** Materialized to and served from the online store. */
  readonly online: boolean;
  readonly description: string;
  readonly tags: Readonly<Record<string, string>>;
  readonly owner?: string;
  /** Time ranges already materialized, merged and sorted. */
  readonly materializedIntervals: readonly { readonly start: Date; readonly end: Date }[];
}

/** How an on-demand transformation is written, as Feast runs it. */
export type OnDemandMode =
  /** Native Python on a dict of column lists (or one row with `singleton`). */
  | 'python'
  /** A pandas DataFrame in, a DataFrame out. */
  | 'pandas';

/** An input of an on-demand view: features of a view (all, or those listed) or the fields of a request source. */
export type OnDemandSource =
  | { readonly kind: 'featureView'; readonly name: string; readonly features?: readonly string[] }
  | { readonly kind: 'requestSource'; readonly name: string };

/**
 * The transformation, declared as source text. Feast keeps the text (UserDefinedFunction `body_text`) next to the
 * function serialized by Python, which is what it runs; so only a backend that can run Python applies one
 * (`capabilities.applyOnDemandViews`), and every backend can show it.
 */
export interface OnDemandTransformation {
  readonly mode: OnDemandMode;
  /** Name of the function `source` defines; the view's name in Feast unless given otherwise. */
  readonly functionName: string;
  /** Source text of the function, imports included. */
  readonly source: string;
  /** `python` mode: the function takes one row (dict of values) and returns one, instead of columns. */
  readonly singleton?: boolean;
}

/**
 * Features computed from other features and request data when read (or when written, with `writeToOnlineStore`),
 * as Feast's OnDemandFeatureView. Referenced like any view: `view:feature`; request fields arrive as extra fields of
 * each entity row.
 */
export interface OnDemandFeatureView {
  readonly name: string;
  /** At least one. */
  readonly sources: readonly OnDemandSource[];
  /** The output schema: the features the transformation returns. */
  readonly features: readonly Field[];
  readonly transformation: OnDemandTransformation;
  /** Transform when rows are pushed or written and store the result online (Feast's `write_to_online_store`); default on read. */
  readonly writeToOnlineStore: boolean;
  /** Entity names, when the view writes to the online store. */
  readonly entities?: readonly string[];
  readonly description: string;
  readonly tags: Readonly<Record<string, string>>;
  readonly owner?: string;
}

/** A named, versionable set of features a model consumes. */
export interface FeatureService {
  readonly name: string;
  /** Features per view; all the view's features when `features` is absent. */
  readonly projections: readonly { readonly view: string; readonly features?: readonly string[] }[];
  readonly description: string;
  readonly tags: Readonly<Record<string, string>>;
  readonly owner?: string;
}

export type FeatureStatus = 'PRESENT' | 'NULL_VALUE' | 'NOT_FOUND' | 'OUTSIDE_MAX_AGE';

export interface OnlineFeatureValue {
  /** null unless status is PRESENT. */
  readonly value: FeatureValue;
  readonly status: FeatureStatus;
  /** Event time of the stored value; absent when NOT_FOUND. */
  readonly eventTimestamp?: Date;
}

/** Which features to read: explicit `view:feature` references, or a feature service. */
export type FeatureSelection = { readonly features: readonly string[] } | { readonly featureService: string };

export type OnlineFeaturesRequest = FeatureSelection & {
  /**
   * One object per entity instance with every join key of the selected views; extra fields are passed
   * as request data to on-demand transformations. Duplicates are allowed and answered each time.
   */
  readonly entityRows: readonly Readonly<Record<string, EntityKeyValue>>[];
  /** Name features `view__feature` instead of `feature`; name clashes across views raise ValidationError without it. */
  readonly fullFeatureNames?: boolean;
};

export interface OnlineFeaturesResponse {
  /** Join keys first, then features in request order. */
  readonly featureNames: readonly string[];
  /**
   * Exactly one row per entity row, in the same order (Feast answers column by column; its adapter
   * transposes). Join keys are echoed as PRESENT.
   */
  readonly rows: readonly Readonly<Record<string, OnlineFeatureValue>>[];
}

export type HistoricalFeaturesRequest = FeatureSelection & {
  /**
   * The entity dataframe: join keys plus `event_timestamp` (Date) per row; other columns (labels) are carried
   * through. For each row and view, the feature values are those of the latest source row with event time
   * ≤ `event_timestamp` and > `event_timestamp - ttlSeconds` (point-in-time correct: no future leakage).
   */
  readonly entityRows: readonly Readonly<Record<string, FeatureValue>>[];
  readonly fullFeatureNames?: boolean;
};

/** Entities of a retrieval job: rows inline (at most HISTORICAL_JOB_MAX_INLINE_ROWS) or a Parquet dataset. */
export type EntityDataframe =
  | { readonly rows: readonly Readonly<Record<string, FeatureValue>>[] }
  /** ArtifactStore key of a Parquet file with the join keys and an `event_timestamp` column (timestamp, UTC). */
  | { readonly dataset: string };

export type HistoricalRetrievalInput = FeatureSelection & {
  /** Same columns and point-in-time rule as HistoricalFeaturesRequest. */
  readonly entities: EntityDataframe;
  readonly fullFeatureNames?: boolean;
  /** ArtifactStore key of the result; default `feature-datasets/<project>/<jobId>.parquet`. Replaced if it exists. */
  readonly destination?: string;
};

/** Pending: accepted, not started. The last three are terminal. */
export type FeatureJobState = 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Cancelled';

export const TERMINAL_FEATURE_JOB_STATES: readonly FeatureJobState[] = Object.freeze([
  'Succeeded',
  'Failed',
  'Cancelled',
]);

/** Where a retrieval job wrote its result. */
export interface FeatureDataset {
  /** ArtifactStore key of the Parquet file. */
  readonly key: string;
  /** Its absolute URI (`ArtifactStore.uri(key)`): what to record as a run's dataset source. */
  readonly uri: string;
  readonly format: 'parquet';
  /** Entity dataframe columns first (`event_timestamp` included), then features in request order. */
  readonly columns: readonly string[];
  readonly rows: number;
  readonly sizeBytes: number;
  readonly sha256: string;
}

export interface HistoricalRetrievalJob {
  readonly id: string;
  readonly project: string;
  readonly state: FeatureJobState;
  /** The feature references retrieved (a feature service expanded). */
  readonly features: readonly string[];
  readonly submittedAt: Date;
  readonly startedAt?: Date;
  readonly finishedAt?: Date;
  /** Set once Succeeded. */
  readonly dataset?: FeatureDataset;
  /** What went wrong, once Failed. */
  readonly error?: string;
}

export interface MaterializationInput {
  /**
   * Start of the event-time window. Absent: incremental, each view from where its last materialization ended (or
   * `end - ttl` for a view never materialized), as Feast's materialize-incremental.
   */
  readonly start?: Date;
  readonly end: Date;
  /** Default every online view. */
  readonly views?: readonly string[];
}

/** One view's part of a materialization job. */
export interface ViewMaterialization {
  readonly name: string;
  readonly start: Date;
  readonly end: Date;
  readonly state: FeatureJobState;
  /** 0..1 within this view, where the backend reports it; 1 once Succeeded. */
  readonly progress?: number;
  /** Rows written online so far, where the backend reports it. */
  readonly rowsWritten?: number;
  readonly error?: string;
}

export interface MaterializationJob {
  readonly id: string;
  readonly project: string;
  readonly state: FeatureJobState;
  readonly incremental: boolean;
  /** In the order they are materialized. */
  readonly views: readonly ViewMaterialization[];
  /** 0..1 over the whole job: `materializationProgress(views)`. */
  readonly progress: number;
  readonly submittedAt: Date;
  readonly startedAt?: Date;
  readonly finishedAt?: Date;
  readonly error?: string;
}

export interface ListFeatureJobsOptions extends PageOptions {
  readonly states?: readonly FeatureJobState[];
}

export interface HistoricalFeaturesResponse {
  /** Entity dataframe columns first, then features in request order. */
  readonly columns: readonly string[];
  /** One row per entity row, in the same order; null where no source row qualifies. */
  readonly rows: readonly Readonly<Record<string, FeatureValue>>[];
}

/** A row to write: join keys, the source's timestamp field (Date) and feature values by name. */
export type FeatureRow = Readonly<Record<string, FeatureValue>>;

export type PushTarget = 'online' | 'offline' | 'online_and_offline';

/** Registry objects `apply` creates or replaces. */
export interface FeatureDefinitions {
  readonly entities?: readonly Entity[];
  readonly dataSources?: readonly DataSource[];
  readonly featureViews?: readonly Omit<FeatureView, 'materializedIntervals'>[];
  /** Needs `capabilities.applyOnDemandViews`. */
  readonly onDemandFeatureViews?: readonly OnDemandFeatureView[];
  readonly featureServices?: readonly FeatureService[];
}

/** Which features differ between backends. */
export interface FeatureStoreCapabilities {
  /** `getHistoricalFeatures` and historical retrieval jobs are available. */
  readonly pointInTimeJoins: boolean;
  /** `push` to push sources. */
  readonly push: boolean;
  /** `push` may target the offline store. */
  readonly pushOffline: boolean;
  /** Stream sources are ingested continuously. */
  readonly streaming: boolean;
  /** `apply` and `delete` can change the registry (else definitions are managed outside, e.g. `feast apply`). */
  readonly registryWrites: boolean;
  /** Transformation modes of on-demand views the backend runs; empty: on-demand views are refused. */
  readonly onDemandModes: readonly OnDemandMode[];
  /** `apply` accepts on-demand views (the backend can turn source text into what it runs). */
  readonly applyOnDemandViews: boolean;
  /** `cancelMaterialization` is available. */
  readonly cancelMaterialization: boolean;
  /** `cancelHistoricalRetrieval` is available. */
  readonly cancelHistoricalRetrieval: boolean;
  /** Job handles survive a restart of the process that started them; otherwise they are NotFoundError afterwards. */
  readonly durableJobs: boolean;
}

/**
 * Feature definitions, online serving, writes and materialization, and point-in-time correct training sets.
 * Unknown views, services, entities, jobs or feature references raise NotFoundError; a missing join key or a
 * value of the wrong type raises ValidationError.
 *
 * One store serves one Feast project, fixed when it is created: Feast's feature server, its registry cache and
 * its online store keys are bound to the project of its `feature_store.yaml`, so a per-call project would need a
 * server per project anyway. A platform with several projects provides one FeatureStore per project.
 */
export interface FeatureStore {
  readonly capabilities: FeatureStoreCapabilities;
  /** The Feast project every call reads and writes; see FEATURE_PROJECT_PATTERN. */
  readonly project: string;

  getEntity(name: string): Promise<Entity>;
  listEntities(options?: PageOptions): Promise<Page<Entity>>;
  getFeatureView(name: string): Promise<FeatureView>;
  /** Sorted by name; page limits LIST_FEATURE_OBJECTS_PAGE. */
  listFeatureViews(
    options?: PageOptions & { readonly tags?: Readonly<Record<string, string>> },
  ): Promise<Page<FeatureView>>;
  getOnDemandFeatureView(name: string): Promise<OnDemandFeatureView>;
  /** Sorted by name; page limits LIST_FEATURE_OBJECTS_PAGE. */
  listOnDemandFeatureViews(options?: PageOptions): Promise<Page<OnDemandFeatureView>>;
  getFeatureService(name: string): Promise<FeatureService>;
  listFeatureServices(options?: PageOptions): Promise<Page<FeatureService>>;
  /** Needs `capabilities.registryWrites`; creates or replaces by name, all or nothing; ValidationError for dangling references. */
  apply?(definitions: FeatureDefinitions): Promise<void>;
  /** Needs `capabilities.registryWrites`; ConflictError when another object still refers to it. */
  delete?(
    kind: 'entity' | 'dataSource' | 'featureView' | 'onDemandFeatureView' | 'featureService',
    name: string,
  ): Promise<void>;

  /** Latest value per entity row and feature; statuses as FeatureStatus. */
  getOnlineFeatures(request: OnlineFeaturesRequest): Promise<OnlineFeaturesResponse>;
  /**
   * Writes rows to the push source `pushSource` and so to every view fed by it; needs `capabilities.push`
   * (and `pushOffline` for offline targets). Default target `online`.
   */
  push(pushSource: string, rows: readonly FeatureRow[], options?: { readonly to?: PushTarget }): Promise<void>;
  /**
   * Writes rows straight into a view's online table. A row older than the stored one for the same
   * entity is ignored (latest event time wins), so replays are safe.
   */
  writeOnline(view: string, rows: readonly FeatureRow[]): Promise<void>;

  /**
   * Starts copying source rows with event time in [start, end) to the online store, view by view, and returns the
   * job at once (Pending or Running). Rerunning a window rewrites the same latest values, so a retried or partly
   * cancelled job loses nothing. NotFoundError for an unknown view; ValidationError for `start >= end` or a view
   * that is not online; ConflictError naming the job when a running job of this store already materializes one of
   * the views.
   */
  startMaterialization(input: MaterializationInput): Promise<MaterializationJob>;
  getMaterialization(id: string): Promise<MaterializationJob>;
  /** Newest first; page limits LIST_FEATURE_JOBS_PAGE. */
  listMaterializations(options?: ListFeatureJobsOptions): Promise<Page<MaterializationJob>>;
  /**
   * Needs `capabilities.cancelMaterialization`. Views not started are Cancelled; a running view stops where the
   * backend can stop it (its rows so far stay written). Idempotent; a no-op on a finished job.
   */
  cancelMaterialization?(id: string): Promise<MaterializationJob>;

  /**
   * The small, inline answer: needs `capabilities.pointInTimeJoins`; the join rule is described at
   * HistoricalFeaturesRequest. ValidationError past HISTORICAL_INLINE_LIMITS, checked before any work.
   */
  getHistoricalFeatures(request: HistoricalFeaturesRequest): Promise<HistoricalFeaturesResponse>;
  /**
   * The same retrieval as a job whose result is a Parquet file in the ArtifactStore (`FeatureDataset`), for any
   * size; returns the job at once. Poll `getHistoricalRetrieval` (or `waitForFeatureJob`) until it is terminal.
   * NotFoundError for unknown features or an entity dataset key that does not exist; ValidationError for more than
   * HISTORICAL_JOB_MAX_INLINE_ROWS inline rows or entities without the join keys and `event_timestamp`.
   */
  startHistoricalRetrieval(input: HistoricalRetrievalInput): Promise<HistoricalRetrievalJob>;
  getHistoricalRetrieval(id: string): Promise<HistoricalRetrievalJob>;
  /** Newest first; page limits LIST_FEATURE_JOBS_PAGE. */
  listHistoricalRetrievals(options?: ListFeatureJobsOptions): Promise<Page<HistoricalRetrievalJob>>;
  /** Needs `capabilities.cancelHistoricalRetrieval`; no dataset is left behind. Idempotent; a no-op on a finished job. */
  cancelHistoricalRetrieval?(id: string): Promise<HistoricalRetrievalJob>;
}

export const featureStoreRef = createServiceRef<FeatureStore>({ id: 'core.featureStore' });

/** Splits `view:feature`; ValidationError when either side is missing. */
export function parseFeatureRef(ref: string): { view: string; feature: string } {
  const i = ref.indexOf(FEATURE_REF_SEPARATOR);
  if (i <= 0 || i === ref.length - 1 || ref.indexOf(FEATURE_REF_SEPARATOR, i + 1) !== -1) {
    throw new ValidationError(`feature reference '${ref}' must look like 'view:feature'`, { field: 'features' });
  }
  return { view: ref.slice(0, i), feature: ref.slice(i + 1) };
}

/** The column name of a feature in results: `feature`, or `view__feature` with full feature names. */
export function featureColumnName(view: string, feature: string, fullFeatureNames: boolean): string {
  return fullFeatureNames ? `${view}${FULL_FEATURE_NAME_SEPARATOR}${feature}` : feature;
}

export function isTerminalFeatureJobState(state: FeatureJobState): boolean {
  return TERMINAL_FEATURE_JOB_STATES.includes(state);
}

/**
 * Progress of a materialization over all its views, 0..1: each view weighs the same; a finished view (Succeeded,
 * Failed or Cancelled) counts whole, a running one by its own `progress` (0 where unreported).
 */
export function materializationProgress(views: readonly Pick<ViewMaterialization, 'state' | 'progress'>[]): number {
  if (views.length === 0) return 1;
  const done = views.reduce(
    (sum, v) => sum + (isTerminalFeatureJobState(v.state) ? 1 : v.state === 'Running' ? clamp01(v.progress ?? 0) : 0),
    0,
  );
  return done / views.length;
}

function clamp01(n: number): number {
  return Number.isFinite(n) ? Math.min(1, Math.max(0, n)) : 0;
}

export interface WaitForFeatureJobOptions {
  /** First delay between polls; doubles up to `maxIntervalMs`. Default 250 ms. */
  readonly intervalMs?: number;
  /** Default 5 s. */
  readonly maxIntervalMs?: number;
  /** Give up with UnavailableError after this long; default no limit. */
  readonly timeoutMs?: number;
  /** Stops waiting with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Called with every state read, e.g. to report `progress`. */
  readonly onPoll?: (job: { readonly state: FeatureJobState }) => void;
}

/**
 * Polls `read` (e.g. `() => store.getMaterialization(id)`) until the job is terminal and returns it; errors of
 * `read` propagate. The job's outcome is for the caller to judge: a Failed job is returned, not thrown.
 */
export async function waitForFeatureJob<J extends { readonly state: FeatureJobState }>(
  read: () => Promise<J>,
  options: WaitForFeatureJobOptions = {},
): Promise<J> {
  const maxInterval = options.maxIntervalMs ?? 5000;
  let interval = Math.min(options.intervalMs ?? 250, maxInterval);
  const deadline = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
  for (;;) {
    options.signal?.throwIfAborted();
    const job = await read();
    options.onPoll?.(job);
    if (isTerminalFeatureJobState(job.state)) return job;
    if (deadline !== undefined && Date.now() + interval > deadline) {
      throw new UnavailableError(
        `the feature job is still ${job.state} after ${options.timeoutMs} ms; it goes on running: poll it again later`,
      );
    }
    await delay(interval, undefined, options.signal ? { signal: options.signal } : {});
    interval = Math.min(interval * 2, maxInterval);
  }
}

/** ValidationError unless `project` is a Feast project name. */
export function validateFeatureProject(project: unknown): asserts project is string {
  if (typeof project !== 'string' || !FEATURE_PROJECT_PATTERN.test(project)) {
    throw new ValidationError(
      `feature project '${String(project)}' must be letters, digits and '_', not starting with '_' (Feast's rule)`,
      { field: 'project' },
    );
  }
}

/**
 * ValidationError unless an inline historical request fits HISTORICAL_INLINE_LIMITS; `featureCount` is the number
 * of features selected (a feature service expanded). Backends call it before reading anything.
 */
export function checkHistoricalInlineSize(
  request: Pick<HistoricalFeaturesRequest, 'entityRows'>,
  featureCount: number,
): void {
  const rows = request.entityRows;
  if (!Array.isArray(rows)) throw new ValidationError('entityRows must be an array of rows', { field: 'entityRows' });
  const use = 'use startHistoricalRetrieval, whose result is a Parquet dataset of any size';
  if (rows.length > HISTORICAL_INLINE_LIMITS.rows) {
    throw new ValidationError(
      `${rows.length} entity rows exceed the inline limit of ${HISTORICAL_INLINE_LIMITS.rows}: ${use}`,
      { field: 'entityRows' },
    );
  }
  const columns = new Set<string>();
  for (const row of rows) for (const key of Object.keys(row ?? {})) columns.add(key);
  const cells = rows.length * (columns.size + featureCount);
  if (cells > HISTORICAL_INLINE_LIMITS.cells) {
    throw new ValidationError(
      `the answer would hold ${cells} cells (${rows.length} rows x ${columns.size + featureCount} columns), over the inline limit of ${HISTORICAL_INLINE_LIMITS.cells}: ${use}`,
      { field: 'entityRows' },
    );
  }
}
