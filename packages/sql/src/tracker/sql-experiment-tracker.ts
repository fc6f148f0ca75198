import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type {
  ArtifactBody,
  ArtifactInfo,
  ArtifactStore,
  DomainEvent,
  MetadataStore,
  PutArtifactOptions,
} from '@mlplane/core';
import {
  ARTIFACT_URI_PATTERN,
  assertArguments,
  ConflictError,
  type CreateExperimentInput,
  type CreateRunInput,
  currentActor,
  type DatasetInput,
  decodePageToken,
  type Experiment,
  type ExperimentTracker,
  type ExperimentTrackerCapabilities,
  encodePageToken,
  experimentTrackerInputs,
  isTerminalRunStatus,
  joinArtifactPath,
  type LogBatchInput,
  METRIC_HISTORY_PAGE,
  type Metric,
  type MetricInput,
  malformedPageToken,
  NotFoundError,
  normalizeName,
  type Page,
  type PageOptions,
  type Param,
  RUN_ARTIFACTS_PAGE,
  type Run,
  type RunArtifact,
  type RunInfo,
  type RunStatus,
  type RunTag,
  resolveMaxResults,
  SEARCH_EXPERIMENTS_PAGE,
  SEARCH_RUNS_PAGE,
  type SearchExperimentsOptions,
  type SearchRunsOptions,
  TRACKER_LIMITS,
  type UpdateRunInput,
  ValidationError,
  validateArtifactLocation,
  validateDatasetInputs,
  validateExperimentTags,
  validateLogBatch,
  validateNoControlCharacters,
  validateTrackingKey,
} from '@mlplane/core';
import type { Kysely, Transaction } from 'kysely';
import { type SqlDialect, sqlDialect } from '../dialect/dialect.js';
import { isUniqueViolation } from '../dialect/errors.js';
import { domainEvent, OUTBOX_MIGRATIONS, OUTBOX_OWNER, recordEvent } from '../outbox/outbox.js';
import { appendMetricsInOneStatement } from './postgres-metric-append.js';
import {
  experimentsById,
  findExperiment,
  findExperimentByName,
  findRun,
  type HistoryCursor,
  insertMetrics,
  insertParams,
  loadRuns,
  metricHistory,
  toRunInfo,
  upsertLatestMetrics,
  upsertRunTags,
} from './repository.js';
import { generateRunName } from './run-names.js';
import type { ExperimentRow, NewMetric, RunRow, TrackerDatabase } from './schema.js';
import { TRACKER_MIGRATIONS, TRACKER_OWNER } from './schema.js';
import { RUN_ATTRIBUTES, searchExperimentIds, searchRunIds } from './search.js';

export interface SqlExperimentTrackerOptions {
  readonly store: MetadataStore;
  readonly artifacts: ArtifactStore;
  /**
   * Key prefix in the ArtifactStore under which experiments get their default artifact location (`experiments`):
   * experiment 7's location is then `artifacts.uri('experiments/7')`.
   */
  readonly artifactRoot?: string;
}

/** Tag that MLflow uses for nesting; here it mirrors the run's `parent_run_id` column and is set only at creation. */
const PARENT_RUN_TAG = 'mlflow.parentRunId';
const RUN_STATUSES: readonly RunStatus[] = ['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED'];
const RUN_ID_PATTERN = /^[a-zA-Z0-9][\w-]{0,255}$/;
const EXPERIMENT_ID_PATTERN = /^[1-9][0-9]{0,15}$/;

type Trx = Transaction<TrackerDatabase>;

/** The key `uri` is asked about to learn what it puts before a key; any valid key would do. */
const URI_PROBE_KEY = 'mlplane-uri-probe';

/**
 * The ExperimentTracker on a MetadataStore (SQLite or PostgreSQL), with run artifacts in an ArtifactStore.
 * Each write is one transaction that also records its domain events in the outbox.
 *
 * Artifact locations are stored as the ArtifactStore's URIs (`file:///…/experiments/7`, `s3://bucket/…`), the
 * same meaning an MLflow-backed tracker gives them; reads and writes map a URI back to its key (`#keyOf`).
 */
export class SqlExperimentTracker implements ExperimentTracker {
  readonly capabilities: ExperimentTrackerCapabilities = Object.freeze({
    datasetInputs: true,
    datasetFilters: true,
    filterAttributes: Object.freeze(Object.keys(RUN_ATTRIBUTES)),
    atomicBatch: true,
    unboundedBatches: false,
    duplicateMetricPoints: true,
    nanRanksHighest: true,
    stablePaging: true,
    selectiveRestore: true,
    changeEvents: true,
  });

  readonly #store: MetadataStore;
  readonly #artifacts: ArtifactStore;
  readonly #artifactRoot: string;
  /** What the store's `uri` puts before every key (`file:///data/artifacts/`, `s3://bucket/prefix/`). */
  readonly #artifactBase: string;
  readonly #dialect: SqlDialect;

  private constructor(options: SqlExperimentTrackerOptions) {
    this.#store = options.store;
    this.#artifacts = options.artifacts;
    this.#artifactRoot = (options.artifactRoot ?? 'experiments').replace(/\/+$/, '');
    this.#artifactBase = uriBaseOf(options.artifacts);
    this.#dialect = sqlDialect(options.store.dialect);
  }

  /**
   * Applies the outbox and tracker migrations, turns artifact locations recorded as bare keys (before locations
   * became URIs) into the store's URIs, then returns a ready tracker.
   */
  static async open(options: SqlExperimentTrackerOptions): Promise<SqlExperimentTracker> {
    await options.store.migrate(OUTBOX_OWNER, OUTBOX_MIGRATIONS);
    await options.store.migrate(TRACKER_OWNER, TRACKER_MIGRATIONS);
    const tracker = new SqlExperimentTracker(options);
    await tracker.#adoptKeyLocations();
    return tracker;
  }

  /**
   * Rows written before artifact locations were URIs hold the ArtifactStore key itself. A valid key never holds
   * `//` (empty segments are refused), so `NOT LIKE '%://%'` narrows the scan to them and to URIs without `//`,
   * which the scheme test then skips; each bare key becomes the store's URI for it. Idempotent; once done, it
   * costs one scan of each table per open.
   */
  async #adoptKeyLocations(): Promise<void> {
    await this.#transaction(async (trx) => {
      const experiments = await trx
        .selectFrom('experiments')
        .select(['experiment_id', 'artifact_location'])
        .where('artifact_location', 'not like', '%://%')
        .execute();
      for (const row of experiments) {
        if (ARTIFACT_URI_PATTERN.test(row.artifact_location)) continue;
        const uri = this.#uriOrUndefined(row.artifact_location);
        if (uri === undefined) continue;
        await trx
          .updateTable('experiments')
          .set({ artifact_location: uri })
          .where('experiment_id', '=', row.experiment_id)
          .execute();
      }
      const runs = await trx
        .selectFrom('runs')
        .select(['run_id', 'artifact_uri'])
        .where('artifact_uri', 'not like', '%://%')
        .execute();
      for (const row of runs) {
        if (ARTIFACT_URI_PATTERN.test(row.artifact_uri)) continue;
        const uri = this.#uriOrUndefined(row.artifact_uri);
        if (uri === undefined) continue;
        await trx.updateTable('runs').set({ artifact_uri: uri }).where('run_id', '=', row.run_id).execute();
      }
    });
  }

  /** The store's URI for `key`, or undefined when `key` breaks the key rules (the store's `uri` refuses it). */
  #uriOrUndefined(key: string): string | undefined {
    try {
      return this.#artifacts.uri(key);
    } catch (err) {
      if (err instanceof ValidationError) return undefined;
      throw err;
    }
  }

  /**
   * The ArtifactStore key an artifact URI names, or undefined when it names a place outside the store. The part
   * after the store's base is tried as is (S3-style URIs) and percent-decoded (file URLs); a candidate counts only
   * if the store maps it back to exactly `uri`, so no encoding guess can name the wrong key.
   */
  #keyOf(uri: string): string | undefined {
    if (!uri.startsWith(this.#artifactBase)) return undefined;
    const rest = uri.slice(this.#artifactBase.length);
    for (const candidate of new Set([rest, decodeOrUndefined(rest)])) {
      if (candidate !== undefined && this.#uriOrUndefined(candidate) === uri) return candidate;
    }
    return undefined;
  }

  /** The key prefix of a run's artifacts; ConflictError when its URI lies outside this tracker's store. */
  #runArtifactKey(run: RunRow): string {
    const key = this.#keyOf(run.artifact_uri);
    if (key === undefined) {
      throw new ConflictError(
        `run '${run.run_id}' keeps its artifacts at '${run.artifact_uri}', outside this tracker's artifact store (${this.#artifactBase}): the store's root changed since the run was created; open the tracker on the store that holds them`,
      );
    }
    return key;
  }

  get #db(): Kysely<TrackerDatabase> {
    return this.#store.db<TrackerDatabase>();
  }

  #transaction<T>(fn: (trx: Trx) => Promise<T>): Promise<T> {
    return this.#store.transaction<T, TrackerDatabase>(fn);
  }

  // ---------------------------------------------------------------- experiments

  async createExperiment(input: CreateExperimentInput): Promise<Experiment> {
    // Stored and looked up NFC, so a name equal to a taken one after normalisation is taken too.
    input = { ...input, name: experimentName(input?.name) };
    const tags = validateExperimentTags(input.tags ?? {});
    if (input.artifactLocation !== undefined) {
      validateArtifactLocation(input.artifactLocation);
      if (input.artifactLocation.length > TRACKER_LIMITS.artifactLocationLength) {
        throw new ValidationError(
          `artifactLocation has ${input.artifactLocation.length} chars; the artifactLocationLength limit is ${TRACKER_LIMITS.artifactLocationLength}`,
          { field: 'artifactLocation' },
        );
      }
      // This tracker writes artifacts only through its ArtifactStore, so a location elsewhere could never be written.
      if (this.#keyOf(input.artifactLocation.replace(/\/+$/, '')) === undefined) {
        throw new ValidationError(
          `artifactLocation '${input.artifactLocation}' is outside this tracker's artifact store: use a URI under ${this.#artifactBase}`,
          { field: 'artifactLocation' },
        );
      }
    }
    const now = Date.now();
    try {
      return await this.#transaction(async (trx) => {
        if (await findExperimentByName(trx, input.name)) throw experimentNameTaken(input.name);
        const inserted = await trx
          .insertInto('experiments')
          .values({
            name: input.name,
            artifact_location: input.artifactLocation ?? '',
            lifecycle_stage: 'active',
            creation_time: now,
            last_update_time: now,
          })
          .returning('experiment_id')
          .executeTakeFirstOrThrow();
        const id = Number(inserted.experiment_id);
        const artifactLocation =
          input.artifactLocation?.replace(/\/+$/, '') ?? this.#artifacts.uri(`${this.#artifactRoot}/${id}`);
        if (input.artifactLocation === undefined) {
          await trx
            .updateTable('experiments')
            .set({ artifact_location: artifactLocation })
            .where('experiment_id', '=', id)
            .execute();
        }
        if (tags.length > 0) {
          await trx
            .insertInto('experiment_tags')
            .values(tags.map(([key, value]) => ({ experiment_id: id, key, value })))
            .execute();
        }
        await recordEvent(
          trx,
          domainEvent('experiment.created', experimentSubject(id), {
            experimentId: String(id),
            name: input.name,
            artifactLocation,
          }),
        );
        return {
          id: String(id),
          name: input.name,
          artifactLocation,
          lifecycleStage: 'active' as const,
          tags: Object.fromEntries(tags),
          createdAt: new Date(now),
          updatedAt: new Date(now),
        };
      });
    } catch (err) {
      // A concurrent create of the same name loses on the unique index.
      if (isUniqueViolation(err)) throw experimentNameTaken(input.name);
      throw err;
    }
  }

  async getExperiment(experimentId: string): Promise<Experiment> {
    const id = parseExperimentId(experimentId);
    const experiment = (await experimentsById(this.#db, [id])).get(id);
    if (!experiment) throw experimentNotFound(experimentId);
    return experiment;
  }

  async getExperimentByName(name: string): Promise<Experiment> {
    name = experimentName(name);
    const row = await findExperimentByName(this.#db, name);
    if (!row) throw new NotFoundError(`experiment named '${name}' does not exist`);
    return this.getExperiment(String(row.experiment_id));
  }

  async searchExperiments(options: SearchExperimentsOptions = {}): Promise<Page<Experiment>> {
    const maxResults = resolveMaxResults(options.maxResults, SEARCH_EXPERIMENTS_PAGE);
    const { ids, nextPageToken } = await searchExperimentIds(this.#db, this.#dialect, {
      filter: options.filter,
      orderBy: options.orderBy,
      viewType: options.viewType,
      maxResults,
      pageToken: options.pageToken,
    });
    const byId = await experimentsById(this.#db, ids);
    const items = ids.flatMap((id) => byId.get(id) ?? []);
    return nextPageToken ? { items, nextPageToken } : { items };
  }

  async updateExperiment(experimentId: string, changes: { readonly name: string }): Promise<Experiment> {
    const id = parseExperimentId(experimentId);
    changes = { ...changes, name: experimentName(changes?.name) };
    try {
      await this.#transaction(async (trx) => {
        const row = await requireExperiment(trx, id, experimentId);
        if (row.name === changes.name) return;
        if (await findExperimentByName(trx, changes.name)) throw experimentNameTaken(changes.name);
        await trx
          .updateTable('experiments')
          .set({ name: changes.name, last_update_time: Date.now() })
          .where('experiment_id', '=', id)
          .execute();
        await recordEvent(
          trx,
          domainEvent('experiment.renamed', experimentSubject(id), {
            experimentId,
            name: changes.name,
            previousName: row.name,
          }),
        );
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw experimentNameTaken(changes.name);
      throw err;
    }
    return this.getExperiment(experimentId);
  }

  async setExperimentTag(experimentId: string, key: string, value: string): Promise<void> {
    const id = parseExperimentId(experimentId);
    validateExperimentTags({ [key]: value });
    await this.#transaction(async (trx) => {
      await requireExperiment(trx, id, experimentId);
      await trx
        .insertInto('experiment_tags')
        .values({ experiment_id: id, key, value })
        .onConflict((oc) => oc.columns(['experiment_id', 'key']).doUpdateSet({ value }))
        .execute();
      await trx
        .updateTable('experiments')
        .set({ last_update_time: Date.now() })
        .where('experiment_id', '=', id)
        .execute();
      await recordEvent(trx, domainEvent('experiment.tag.set', experimentSubject(id), { experimentId, key, value }));
    });
  }

  async deleteExperiment(experimentId: string): Promise<void> {
    const id = parseExperimentId(experimentId);
    await this.#transaction(async (trx) => {
      const row = await requireExperiment(trx, id, experimentId);
      if (row.lifecycle_stage === 'deleted') return;
      const now = Date.now();
      await trx
        .updateTable('experiments')
        .set({ lifecycle_stage: 'deleted', last_update_time: now })
        .where('experiment_id', '=', id)
        .execute();
      const runs = await trx
        .updateTable('runs')
        .set({ lifecycle_stage: 'deleted', deleted_time: now, deleted_with_experiment: 1 })
        .where('experiment_id', '=', id)
        .where('lifecycle_stage', '=', 'active')
        .executeTakeFirst();
      await recordEvent(
        trx,
        domainEvent('experiment.deleted', experimentSubject(id), {
          experimentId,
          runsDeleted: Number(runs.numUpdatedRows),
        }),
      );
    });
  }

  async restoreExperiment(experimentId: string): Promise<void> {
    const id = parseExperimentId(experimentId);
    await this.#transaction(async (trx) => {
      const row = await requireExperiment(trx, id, experimentId);
      if (row.lifecycle_stage === 'active') return;
      await trx
        .updateTable('experiments')
        .set({ lifecycle_stage: 'active', last_update_time: Date.now() })
        .where('experiment_id', '=', id)
        .execute();
      const runs = await trx
        .updateTable('runs')
        .set({ lifecycle_stage: 'active', deleted_time: null, deleted_with_experiment: 0 })
        .where('experiment_id', '=', id)
        .where('deleted_with_experiment', '=', 1)
        .executeTakeFirst();
      await recordEvent(
        trx,
        domainEvent('experiment.restored', experimentSubject(id), {
          experimentId,
          runsRestored: Number(runs.numUpdatedRows),
        }),
      );
    });
  }

  // ---------------------------------------------------------------- runs

  async createRun(input: CreateRunInput): Promise<Run> {
    const experimentId = parseExperimentId(input.experimentId, 'experimentId');
    const tags = Object.entries(input.tags ?? {}).map(([key, value]) => ({ key, value }));
    validateLogBatch({ tags });
    let parentRunId = input.parentRunId;
    const parentTag = input.tags?.[PARENT_RUN_TAG];
    if (parentTag !== undefined) {
      if (parentRunId !== undefined && parentRunId !== parentTag) {
        throw new ValidationError(`tag ${PARENT_RUN_TAG} ('${parentTag}') contradicts parentRunId ('${parentRunId}')`, {
          field: 'parentRunId',
        });
      }
      parentRunId = parentTag;
    }
    const name = runName(input.name ?? generateRunName());
    const status = input.status ?? 'RUNNING';
    if (status !== 'RUNNING' && status !== 'SCHEDULED') {
      throw new ValidationError(`a run is created RUNNING or SCHEDULED, got '${status}'`, { field: 'status' });
    }
    const startTime = input.startTime ?? new Date();
    if (!(startTime instanceof Date) || Number.isNaN(startTime.getTime())) {
      throw new ValidationError('startTime must be a valid Date', { field: 'startTime' });
    }
    if (
      input.userId !== undefined &&
      (typeof input.userId !== 'string' || input.userId.length > TRACKER_LIMITS.keyLength)
    ) {
      throw new ValidationError(`userId must be a string of at most ${TRACKER_LIMITS.keyLength} chars`, {
        field: 'userId',
      });
    }
    if (input.userId !== undefined) validateNoControlCharacters(input.userId, 'userId', 'userId');
    const runId = randomUUID().replaceAll('-', '');
    if (parentRunId !== undefined && !tags.some((t) => t.key === PARENT_RUN_TAG)) {
      tags.push({ key: PARENT_RUN_TAG, value: parentRunId });
    }
    const row = await this.#transaction(async (trx) => {
      const experiment = await requireExperiment(trx, experimentId, input.experimentId);
      if (experiment.lifecycle_stage === 'deleted') {
        throw new ConflictError(`experiment '${input.experimentId}' is deleted: restore it before creating runs`);
      }
      if (parentRunId !== undefined) {
        if (!RUN_ID_PATTERN.test(parentRunId) || !(await findRun(trx, parentRunId))) {
          throw new NotFoundError(`parent run '${parentRunId}' does not exist`);
        }
      }
      const row: RunRow = {
        run_id: runId,
        experiment_id: experimentId,
        name,
        status,
        start_time: startTime.getTime(),
        end_time: null,
        artifact_uri: `${experiment.artifact_location.replace(/\/+$/, '')}/${runId}/artifacts`,
        lifecycle_stage: 'active',
        parent_run_id: parentRunId ?? null,
        // Whoever creates the run is its user unless the input names another, as MLflow records it.
        user_id: input.userId ?? currentActor()?.actor ?? null,
        deleted_time: null,
        deleted_with_experiment: 0,
      };
      await trx.insertInto('runs').values(row).execute();
      await upsertRunTags(trx, runId, tags);
      await recordEvent(
        trx,
        domainEvent(
          'run.created',
          runSubject(runId),
          {
            runId,
            experimentId: input.experimentId,
            name,
            status,
            ...(parentRunId !== undefined ? { parentRunId } : {}),
          },
          { actor: input.userId },
        ),
      );
      return row;
    });
    return {
      info: toRunInfo(row),
      data: { metrics: {}, params: {}, tags: Object.fromEntries(tags.map((t) => [t.key, t.value])) },
      inputs: { datasetInputs: [] },
    };
  }

  async getRun(runId: string): Promise<Run> {
    const run = RUN_ID_PATTERN.test(runId) ? (await loadRuns(this.#db, [runId])).get(runId) : undefined;
    if (!run) throw runNotFound(runId);
    return run;
  }

  async updateRun(input: UpdateRunInput): Promise<RunInfo> {
    if (input.status !== undefined && !RUN_STATUSES.includes(input.status)) {
      throw new ValidationError(`status must be one of ${RUN_STATUSES.join(', ')}, got '${input.status}'`, {
        field: 'status',
      });
    }
    if (input.endTime !== undefined && (!(input.endTime instanceof Date) || Number.isNaN(input.endTime.getTime()))) {
      throw new ValidationError('endTime must be a valid Date', { field: 'endTime' });
    }
    if (input.name !== undefined) input = { ...input, name: runName(input.name) };
    return this.#transaction(async (trx) => {
      const row = await requireActiveRun(trx, input.runId);
      const changes: Partial<RunRow> = {};
      if (input.status !== undefined) changes.status = input.status;
      if (input.name !== undefined) changes.name = input.name;
      if (input.endTime !== undefined) changes.end_time = input.endTime.getTime();
      else if (input.status !== undefined && isTerminalRunStatus(input.status)) changes.end_time = Date.now();
      const updated: RunRow = { ...row, ...changes };
      if (Object.keys(changes).length === 0) return toRunInfo(updated);
      await trx.updateTable('runs').set(changes).where('run_id', '=', input.runId).execute();
      const events: DomainEvent[] = [
        domainEvent('run.updated', runSubject(input.runId), {
          runId: input.runId,
          ...(input.status !== undefined ? { status: input.status, previousStatus: row.status } : {}),
          ...(input.name !== undefined ? { name: input.name } : {}),
          ...(changes.end_time !== undefined ? { endTime: changes.end_time } : {}),
        }),
      ];
      if (
        input.status !== undefined &&
        isTerminalRunStatus(input.status) &&
        !isTerminalRunStatus(row.status as RunStatus)
      ) {
        events.push(
          domainEvent('run.finished', runSubject(input.runId), {
            runId: input.runId,
            experimentId: String(row.experiment_id),
            status: input.status,
            endTime: updated.end_time,
          }),
        );
      }
      await recordEvent(trx, events);
      return toRunInfo(updated);
    });
  }

  async deleteRun(runId: string): Promise<void> {
    await this.#setRunStage(runId, 'deleted');
  }

  async restoreRun(runId: string): Promise<void> {
    await this.#setRunStage(runId, 'active');
  }

  async #setRunStage(runId: string, stage: 'active' | 'deleted'): Promise<void> {
    await this.#transaction(async (trx) => {
      const row = await requireRun(trx, runId);
      if (row.lifecycle_stage === stage) return;
      await trx
        .updateTable('runs')
        .set({
          lifecycle_stage: stage,
          deleted_time: stage === 'deleted' ? Date.now() : null,
          deleted_with_experiment: 0,
        })
        .where('run_id', '=', runId)
        .execute();
      await recordEvent(
        trx,
        domainEvent(stage === 'deleted' ? 'run.deleted' : 'run.restored', runSubject(runId), {
          runId,
          experimentId: String(row.experiment_id),
        }),
      );
    });
  }

  // ---------------------------------------------------------------- params, metrics, tags

  // Single writes are one-item batches, checked first as themselves so that errors name `value`, not `params[0].value`.

  async logMetric(runId: string, metric: MetricInput): Promise<void> {
    assertArguments(experimentTrackerInputs, 'logMetric', [runId, metric]);
    return this.logBatch(runId, { metrics: [metric] });
  }

  async logParam(runId: string, param: Param): Promise<void> {
    assertArguments(experimentTrackerInputs, 'logParam', [runId, param]);
    return this.logBatch(runId, { params: [param] });
  }

  async setTag(runId: string, tag: RunTag): Promise<void> {
    assertArguments(experimentTrackerInputs, 'setTag', [runId, tag]);
    return this.logBatch(runId, { tags: [tag] });
  }

  async deleteTag(runId: string, key: string): Promise<void> {
    validateTrackingKey(key);
    if (key === PARENT_RUN_TAG) throw parentTagImmutable();
    await this.#transaction(async (trx) => {
      await requireActiveRun(trx, runId);
      const deleted = await trx
        .deleteFrom('run_tags')
        .where('run_id', '=', runId)
        .where('key', '=', key)
        .executeTakeFirst();
      if (Number(deleted.numDeletedRows) === 0) throw new NotFoundError(`run '${runId}' has no tag '${key}'`);
      await recordEvent(trx, domainEvent('run.tag.deleted', runSubject(runId), { runId, key }));
    });
  }

  async logBatch(runId: string, batch: LogBatchInput): Promise<void> {
    validateLogBatch(batch);
    const params = batch.params ?? [];
    const tags = batch.tags ?? [];
    const metrics = batch.metrics ?? [];
    tags.forEach((t, i) => {
      if (t.key === PARENT_RUN_TAG) throw parentTagImmutable(`tags[${i}].key`);
    });
    if (params.length + tags.length + metrics.length === 0) {
      await this.#transaction((trx) => requireActiveRun(trx, runId));
      return;
    }
    const now = Date.now();
    const points: NewMetric[] = metrics.map((m) => {
      const nan = Number.isNaN(m.value);
      return {
        run_id: runId,
        key: m.key,
        value: nan ? 0 : m.value,
        is_nan: nan ? 1 : 0,
        step: m.step ?? 0,
        timestamp: m.timestamp ?? now,
      };
    });
    // The hot path (metrics only) takes one round trip on PostgreSQL; a missing or deleted run falls through to
    // the general path below, which raises the precise error.
    if (
      points.length > 0 &&
      params.length === 0 &&
      tags.length === 0 &&
      this.#dialect.name === 'postgres' &&
      (await appendMetricsInOneStatement(this.#db, runId, points, metricsLoggedEvent(runId, points)))
    ) {
      return;
    }
    await this.#transaction(async (trx) => {
      const run = await requireActiveRun(trx, runId, this.#dialect);
      const events: DomainEvent[] = [];
      if (params.length > 0) {
        const { inserted, conflicts } = await insertParams(trx, runId, params);
        const first = conflicts[0];
        if (first) {
          throw new ConflictError(
            `param '${first.key}' of run '${runId}' is already '${first.stored}' and cannot change to '${first.requested}': params are immutable`,
          );
        }
        // Re-logging equal values changes nothing, so it records nothing.
        if (inserted > 0)
          events.push(
            domainEvent('run.params.logged', runSubject(runId), {
              runId,
              params: Object.fromEntries(params.map((p) => [p.key, p.value])),
            }),
          );
      }
      if (points.length > 0) {
        await insertMetrics(trx, this.#dialect, points);
        await upsertLatestMetrics(trx, run.experiment_id, points);
        events.push(metricsLoggedEvent(runId, points));
      }
      if (tags.length > 0) {
        await upsertRunTags(trx, runId, tags);
        events.push(
          domainEvent('run.tags.set', runSubject(runId), {
            runId,
            tags: Object.fromEntries(tags.map((t) => [t.key, t.value])),
          }),
        );
      }
      await recordEvent(trx, events);
    });
  }

  async getMetricHistory(runId: string, key: string, options: PageOptions = {}): Promise<Page<Metric>> {
    validateTrackingKey(key);
    const maxResults = resolveMaxResults(options.maxResults, METRIC_HISTORY_PAGE);
    const cursor = options.pageToken === undefined ? undefined : readHistoryToken(options.pageToken, runId, key);
    await requireRun(this.#db, runId);
    const rows = await metricHistory(this.#db, runId, key, cursor, maxResults + 1);
    const page = rows.slice(0, maxResults);
    const items = page.map(({ id: _id, ...metric }) => metric);
    const last = page.at(-1);
    return rows.length > maxResults && last
      ? {
          items,
          nextPageToken: encodePageToken({ r: runId, k: key, s: last.step, t: last.timestamp, i: last.id }),
        }
      : { items };
  }

  async logInputs(runId: string, inputs: readonly DatasetInput[]): Promise<void> {
    validateDatasetInputs(inputs);
    await this.#transaction(async (trx) => {
      const run = await requireActiveRun(trx, runId);
      const added: { name: string; digest: string }[] = [];
      for (const input of inputs) {
        const d = input.dataset;
        await trx
          .insertInto('datasets')
          .values({
            experiment_id: run.experiment_id,
            name: d.name,
            digest: d.digest,
            source_type: d.sourceType,
            source: d.source,
            schema: d.schema ?? null,
            profile: d.profile ?? null,
          })
          .onConflict((oc) => oc.columns(['experiment_id', 'name', 'digest']).doNothing())
          .execute();
        const dataset = await trx
          .selectFrom('datasets')
          .select('dataset_id')
          .where('experiment_id', '=', run.experiment_id)
          .where('name', '=', d.name)
          .where('digest', '=', d.digest)
          .executeTakeFirstOrThrow();
        const context = input.tags.find((t) => t.key === 'mlflow.data.context')?.value ?? null;
        const inserted = await trx
          .insertInto('run_inputs')
          .values({ run_id: runId, dataset_id: dataset.dataset_id, context, tags: JSON.stringify(input.tags) })
          .onConflict((oc) => oc.columns(['run_id', 'dataset_id']).doNothing())
          .executeTakeFirst();
        if (Number(inserted.numInsertedOrUpdatedRows ?? 0n) > 0) added.push({ name: d.name, digest: d.digest });
      }
      if (added.length > 0) {
        await recordEvent(trx, domainEvent('run.inputs.logged', runSubject(runId), { runId, datasets: added }));
      }
    });
  }

  // ---------------------------------------------------------------- search

  async searchRuns(options: SearchRunsOptions): Promise<Page<Run>> {
    if (!options || !Array.isArray(options.experimentIds) || options.experimentIds.length === 0) {
      throw new ValidationError('searchRuns needs at least one experiment id', { field: 'experimentIds' });
    }
    if (options.experimentIds.length > TRACKER_LIMITS.experimentIdsPerSearch) {
      throw new ValidationError(
        `experimentIds holds ${options.experimentIds.length} experiment ids; the experimentIdsPerSearch limit is ${TRACKER_LIMITS.experimentIdsPerSearch}: search fewer experiments at once`,
        { field: 'experimentIds' },
      );
    }
    const maxResults = resolveMaxResults(options.maxResults, SEARCH_RUNS_PAGE);
    const experimentIds = options.experimentIds.map((id) => parseExperimentId(id, 'experimentIds'));
    // The experiments are checked while the search runs (one round trip less per page); an unknown experiment
    // still wins over whatever the search says, as if checked first.
    const [known, found] = await Promise.allSettled([
      this.#db.selectFrom('experiments').select('experiment_id').where('experiment_id', 'in', experimentIds).execute(),
      searchRunIds(this.#db, this.#dialect, {
        experimentIds,
        filter: options.filter,
        orderBy: options.orderBy,
        viewType: options.runViewType,
        maxResults,
        pageToken: options.pageToken,
      }),
    ]);
    if (known.status === 'rejected') throw known.reason;
    const knownIds = new Set(known.value.map((k) => Number(k.experiment_id)));
    const missing = options.experimentIds.find((_, i) => !knownIds.has(experimentIds[i]!));
    if (missing !== undefined) throw experimentNotFound(missing);
    if (found.status === 'rejected') throw found.reason;
    const { ids, nextPageToken } = found.value;
    const runs = await loadRuns(this.#db, ids);
    const items = ids.flatMap((id) => runs.get(id) ?? []);
    return nextPageToken ? { items, nextPageToken } : { items };
  }

  // ---------------------------------------------------------------- artifacts

  async logArtifact(
    runId: string,
    path: string,
    body: ArtifactBody,
    options?: PutArtifactOptions,
  ): Promise<ArtifactInfo> {
    const run = await requireActiveRun(this.#db, runId);
    const key = joinArtifactPath(this.#runArtifactKey(run), path);
    const info = await this.#artifacts.put(key, body, options);
    // The artifact store is not transactional with the database: the event follows a successful put.
    await this.#transaction(async (trx) => {
      await recordEvent(
        trx,
        domainEvent('run.artifact.logged', runSubject(runId), { runId, path, size: info.size, sha256: info.sha256 }),
      );
    });
    return info;
  }

  async listRunArtifacts(
    runId: string,
    options: PageOptions & { readonly path?: string } = {},
  ): Promise<Page<RunArtifact>> {
    const pageSize = resolveMaxResults(options.maxResults, RUN_ARTIFACTS_PAGE);
    const run = await requireRun(this.#db, runId);
    const root = `${this.#runArtifactKey(run)}/`;
    const dir = options.path === undefined || options.path === '' ? root : `${joinArtifactPath(root, options.path)}/`;
    let storeToken: string | undefined;
    if (options.pageToken !== undefined) {
      const state = decodePageToken<{ r?: unknown; p?: unknown; a?: unknown }>(options.pageToken);
      if (!state || state.r !== runId || state.p !== (options.path ?? '') || typeof state.a !== 'string') {
        throw new ValidationError(
          'pageToken belongs to a different listing: keep runId and path unchanged while paging',
          {
            field: 'pageToken',
          },
        );
      }
      storeToken = state.a;
    }
    const page = await this.#artifacts.list({
      prefix: dir,
      delimiter: '/',
      maxResults: pageSize,
      ...(storeToken !== undefined ? { pageToken: storeToken } : {}),
    });
    const items: RunArtifact[] = [
      ...page.items.map((i) => ({ path: i.key.slice(root.length), isDir: false, size: i.size })),
      ...page.prefixes.map((p) => ({ path: p.slice(root.length).replace(/\/$/, ''), isDir: true })),
    ].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
    return page.nextPageToken
      ? { items, nextPageToken: encodePageToken({ r: runId, p: options.path ?? '', a: page.nextPageToken }) }
      : { items };
  }

  async openArtifact(runId: string, path: string): Promise<{ info: RunArtifact; body: Readable }> {
    if (typeof path !== 'string') throw new ValidationError('path must be a string', { field: 'path' });
    const run = await requireRun(this.#db, runId);
    const key = joinArtifactPath(this.#runArtifactKey(run), path);
    try {
      const { info, body } = await this.#artifacts.get(key);
      return { info: { path, isDir: false, size: info.size }, body };
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      // Directories exist only as key prefixes: say so rather than claim nothing is there.
      const below = await this.#artifacts.list({ prefix: `${key}/`, delimiter: '/', maxResults: 1 });
      const isDir = below.items.length > 0 || below.prefixes.length > 0;
      throw new NotFoundError(
        isDir
          ? `'${path}' in run '${runId}' is a directory, not a file: list it with listRunArtifacts`
          : `run '${runId}' has no artifact file '${path}'`,
        { cause: err },
      );
    }
  }
}

// ---------------------------------------------------------------- helpers

const experimentSubject = (id: number | string) => `experiment:${id}`;
const runSubject = (id: string) => `run:${id}`;

function metricsLoggedEvent(runId: string, points: readonly NewMetric[]): DomainEvent {
  let minStep = points[0]!.step;
  let maxStep = minStep;
  for (const p of points) {
    if (p.step < minStep) minStep = p.step;
    if (p.step > maxStep) maxStep = p.step;
  }
  return domainEvent('run.metrics.logged', runSubject(runId), {
    runId,
    count: points.length,
    keys: [...new Set(points.map((p) => p.key))].sort(),
    minStep,
    maxStep,
  });
}

/**
 * What `store.uri` puts before a key, learned from one probe key. The tracker maps URIs back to keys by it, so a
 * store whose URIs do not end with the key cannot back the tracker: it says so at once.
 */
function uriBaseOf(store: ArtifactStore): string {
  const uri = store.uri(URI_PROBE_KEY);
  if (!uri.endsWith(`/${URI_PROBE_KEY}`) || !ARTIFACT_URI_PATTERN.test(uri)) {
    throw new ValidationError(
      `the ArtifactStore's uri('${URI_PROBE_KEY}') gave '${uri}', not an absolute URI ending with '/${URI_PROBE_KEY}': the tracker cannot map its artifact URIs back to keys`,
      { field: 'artifacts' },
    );
  }
  return uri.slice(0, -URI_PROBE_KEY.length);
}

function decodeOrUndefined(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

function experimentNotFound(id: string): NotFoundError {
  return new NotFoundError(`experiment '${id}' does not exist`);
}

function runNotFound(id: string): NotFoundError {
  return new NotFoundError(`run '${id}' does not exist`);
}

function experimentNameTaken(name: string): ConflictError {
  return new ConflictError(
    `an experiment named '${name}' already exists (it may be deleted: restore or rename that one)`,
  );
}

function parentTagImmutable(field = 'key'): ValidationError {
  return new ValidationError(
    `tag ${PARENT_RUN_TAG} is set from parentRunId when the run is created and cannot change`,
    {
      field,
    },
  );
}

/** Experiment ids are decimal strings; anything else cannot name an experiment. */
function parseExperimentId(id: string, field = 'experimentId'): number {
  if (typeof id !== 'string') throw new ValidationError(`${field} must be a string`, { field });
  if (!EXPERIMENT_ID_PATTERN.test(id) || !Number.isSafeInteger(Number(id))) throw experimentNotFound(id);
  return Number(id);
}

async function requireExperiment(db: Kysely<TrackerDatabase>, id: number, raw: string): Promise<ExperimentRow> {
  const row = await findExperiment(db, id);
  if (!row) throw experimentNotFound(raw);
  return row;
}

async function requireRun(db: Kysely<TrackerDatabase>, runId: string, lock?: SqlDialect): Promise<RunRow> {
  if (typeof runId !== 'string' || !RUN_ID_PATTERN.test(runId)) throw runNotFound(String(runId));
  const row = await findRun(db, runId, lock);
  if (!row) throw runNotFound(runId);
  return row;
}

/** Writes to a deleted run are refused; finished runs still accept them (as MLflow). */
async function requireActiveRun(db: Kysely<TrackerDatabase>, runId: string, lock?: SqlDialect): Promise<RunRow> {
  const row = await requireRun(db, runId, lock);
  if (row.lifecycle_stage === 'deleted') {
    throw new ConflictError(`run '${runId}' is deleted: restore it before writing to it`);
  }
  return row;
}

/** The stored form of an experiment name (NFC; no control or bidi characters); ValidationError naming `name`. */
function experimentName(name: unknown): string {
  return normalizeName(name, {
    field: 'name',
    what: 'experiment name',
    maxLength: TRACKER_LIMITS.experimentNameLength,
    limitName: 'experimentNameLength',
  });
}

/** The stored form of a run name, as experimentName; run names may be empty, as in MLflow. */
function runName(name: unknown): string {
  if (typeof name !== 'string') throw new ValidationError('run name must be a string', { field: 'name' });
  // MLflow keeps the run name in the mlflow.runName tag, so the tag value limit applies.
  return normalizeName(name, {
    field: 'name',
    what: 'run name',
    maxLength: TRACKER_LIMITS.runTagValueLength,
    limitName: 'runTagValueLength',
    allowEmpty: true,
  });
}

function readHistoryToken(token: string, runId: string, key: string): HistoryCursor {
  const state = decodePageToken<{ r?: unknown; k?: unknown; s?: unknown; t?: unknown; i?: unknown }>(token);
  const valid =
    state &&
    typeof state === 'object' &&
    Number.isSafeInteger(state.s) &&
    Number.isSafeInteger(state.t) &&
    Number.isSafeInteger(state.i);
  if (!valid) {
    throw malformedPageToken();
  }
  if (state.r !== runId || state.k !== key) {
    throw new ValidationError(
      'pageToken belongs to another metric history: keep runId and key unchanged while paging',
      {
        field: 'pageToken',
      },
    );
  }
  return { step: state.s as number, timestamp: state.t as number, id: state.i as number };
}
