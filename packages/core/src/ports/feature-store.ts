import { createServiceRef } from '../kernel/service-ref.js';
import { ValidationError } from './errors.js';
import type { Page, PageLimits, PageOptions } from './paging.js';

export { ConflictError, NotFoundError, UnavailableError, ValidationError } from './errors.js';
export type { Page, PageOptions } from './paging.js';

export const LIST_FEATURE_OBJECTS_PAGE: PageLimits = Object.freeze({ default: 100, max: 1000 });
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
 * `push` sources receive rows through `push`; `stream` sources are consumed by a streaming engine.
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
  /** Backend-specific location (`path`, `table`, `query`, `topic`...). */
  readonly options: Readonly<Record<string, string>>;
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

export interface HistoricalFeaturesResponse {
  /** Entity dataframe columns first, then features in request order. */
  readonly columns: readonly string[];
  /** One row per entity row, in the same order; null where no source row qualifies. */
  readonly rows: readonly Readonly<Record<string, FeatureValue>>[];
}

/** A row to write: join keys, the source's timestamp field (Date) and feature values by name. */
export type FeatureRow = Readonly<Record<string, FeatureValue>>;

export type PushTarget = 'online' | 'offline' | 'online_and_offline';

export interface MaterializationResult {
  readonly views: readonly {
    readonly name: string;
    readonly start: Date;
    readonly end: Date;
    /** Rows written online, where the backend reports it. */
    readonly rowsWritten?: number;
  }[];
}

/** Registry objects `apply` creates or replaces. */
export interface FeatureDefinitions {
  readonly entities?: readonly Entity[];
  readonly dataSources?: readonly DataSource[];
  readonly featureViews?: readonly Omit<FeatureView, 'materializedIntervals'>[];
  readonly featureServices?: readonly FeatureService[];
}

/** Which features differ between backends. */
export interface FeatureStoreCapabilities {
  /** `getHistoricalFeatures` is available. */
  readonly pointInTimeJoins: boolean;
  /** `push` to push sources. */
  readonly push: boolean;
  /** `push` may target the offline store. */
  readonly pushOffline: boolean;
  /** Stream sources are ingested continuously. */
  readonly streaming: boolean;
  /** `apply` and `delete` can change the registry (else definitions are managed outside, e.g. `feast apply`). */
  readonly registryWrites: boolean;
  /** On-demand feature views transform request data at read time. */
  readonly onDemandViews: boolean;
}

/**
 * Feature definitions, online serving, writes and materialization, and point-in-time correct training sets.
 * Unknown views, services, entities or feature references raise NotFoundError; a missing join key or a
 * value of the wrong type raises ValidationError.
 */
export interface FeatureStore {
  readonly capabilities: FeatureStoreCapabilities;

  getEntity(name: string): Promise<Entity>;
  listEntities(options?: PageOptions): Promise<Page<Entity>>;
  getFeatureView(name: string): Promise<FeatureView>;
  /** Sorted by name; page limits LIST_FEATURE_OBJECTS_PAGE. */
  listFeatureViews(
    options?: PageOptions & { readonly tags?: Readonly<Record<string, string>> },
  ): Promise<Page<FeatureView>>;
  getFeatureService(name: string): Promise<FeatureService>;
  listFeatureServices(options?: PageOptions): Promise<Page<FeatureService>>;
  /** Needs `capabilities.registryWrites`; creates or replaces by name, all or nothing; ValidationError for dangling references. */
  apply?(definitions: FeatureDefinitions): Promise<void>;
  /** Needs `capabilities.registryWrites`; ConflictError when another object still refers to it. */
  delete?(kind: 'entity' | 'dataSource' | 'featureView' | 'featureService', name: string): Promise<void>;

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
  /** Copies source rows with event time in [start, end) to the online store, for `views` or every online view. */
  materialize(input: {
    readonly start: Date;
    readonly end: Date;
    readonly views?: readonly string[];
  }): Promise<MaterializationResult>;
  /** Materializes each view from where its last materialization ended (or now - ttl) up to `end`. */
  materializeIncremental(input: {
    readonly end: Date;
    readonly views?: readonly string[];
  }): Promise<MaterializationResult>;
  /** Needs `capabilities.pointInTimeJoins`; the join rule is described at HistoricalFeaturesRequest. */
  getHistoricalFeatures(request: HistoricalFeaturesRequest): Promise<HistoricalFeaturesResponse>;
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
