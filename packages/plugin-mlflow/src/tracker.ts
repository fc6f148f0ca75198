import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import {
  type ArtifactBody,
  type ArtifactInfo,
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
  type PutArtifactOptions,
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
  unlessNotFound,
  ValidationError,
  validateDatasetInputs,
  validateExperimentTags,
  validateLogBatch,
  validateTrackingKey,
} from '@mlplane/core';
import { splitBatch } from './batching.js';
import { isWriteRace, type MlflowClient } from './client.js';
import { experimentFilter, experimentOrderBy, RUN_ATTRIBUTES, runFilter, runOrderBy, viewType } from './filter.js';
import { page, queryKey, readToken } from './paging.js';
import {
  PARENT_RUN_TAG,
  toExperiment,
  toMetric,
  toRun,
  type WireExperiment,
  type WireMetric,
  type WireRun,
} from './wire.js';

const RUN_STATUSES: readonly RunStatus[] = ['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED'];
const EXPERIMENT_ID = /^[0-9]{1,18}$/;
const RUN_ID = /^[a-zA-Z0-9][\w-]{0,255}$/;
const ARTIFACT_PROXY_SCHEME = 'mlflow-artifacts:';

/**
 * The ExperimentTracker on an MLflow tracking server through its REST API. Input is checked with the port's
 * validators before any request, so a refused call changes nothing; run artifacts go through the server's
 * `mlflow-artifacts` proxy. Capabilities name what the server does differently from the SQL tracker.
 */
export class MlflowExperimentTracker implements ExperimentTracker {
  readonly capabilities: ExperimentTrackerCapabilities = Object.freeze({
    datasetInputs: true,
    datasetFilters: true,
    filterAttributes: Object.freeze(Object.keys(RUN_ATTRIBUTES)),
    atomicBatch: false,
    unboundedBatches: true,
    duplicateMetricPoints: false,
    nanRanksHighest: false,
    stablePaging: false,
    selectiveRestore: false,
    changeEvents: false,
  });

  readonly #client: MlflowClient;

  constructor(client: MlflowClient) {
    this.#client = client;
  }

  // ---------------------------------------------------------------- experiments

  async createExperiment(input: CreateExperimentInput): Promise<Experiment> {
    input = { ...input, name: experimentName(input?.name) };
    const tags = validateExperimentTags(input.tags ?? {});
    if (input.artifactLocation !== undefined) validateArtifactLocation(input.artifactLocation);
    let id: string;
    try {
      ({ experiment_id: id } = await this.#client.call<{ experiment_id: string }>('POST', 'mlflow/experiments/create', {
        params: {
          name: input.name,
          ...(input.artifactLocation !== undefined ? { artifact_location: input.artifactLocation } : {}),
          tags: tags.map(([key, value]) => ({ key, value })),
        },
        idempotent: false,
      }));
    } catch (err) {
      if (err instanceof ConflictError) throw experimentNameTaken(input.name, err);
      throw err;
    }
    return this.getExperiment(id);
  }

  async getExperiment(experimentId: string): Promise<Experiment> {
    requireExperimentId(experimentId);
    return toExperiment(await this.#experiment(experimentId));
  }

  async getExperimentByName(name: string): Promise<Experiment> {
    if (typeof name !== 'string') throw new ValidationError('name must be a string', { field: 'name' });
    name = experimentName(name);
    try {
      const { experiment } = await this.#client.call<{ experiment: WireExperiment }>(
        'GET',
        'mlflow/experiments/get-by-name',
        { params: { experiment_name: name }, idempotent: true },
      );
      return toExperiment(experiment);
    } catch (err) {
      if (err instanceof NotFoundError)
        throw new NotFoundError(`experiment named '${name}' does not exist`, { cause: err });
      throw err;
    }
  }

  async searchExperiments(options: SearchExperimentsOptions = {}): Promise<Page<Experiment>> {
    const maxResults = resolveMaxResults(options.maxResults, SEARCH_EXPERIMENTS_PAGE);
    const filter = experimentFilter(options.filter);
    const orderBy = experimentOrderBy(options.orderBy);
    const view = viewType(options.viewType, 'viewType');
    const query = queryKey(['experiments', filter, orderBy, view]);
    const pageToken = readToken(options.pageToken, query, 'filter, order and view');
    const res = await this.#client.call<{ experiments?: WireExperiment[]; next_page_token?: string }>(
      'POST',
      'mlflow/experiments/search',
      {
        params: {
          max_results: maxResults,
          ...(filter ? { filter } : {}),
          // MLflow orders by last_update_time DESC, experiment_id ASC by default; an explicit order keeps the id tie-break.
          order_by: orderBy.length > 0 ? [...orderBy, 'experiment_id ASC'] : [],
          view_type: view,
          ...(pageToken ? { page_token: pageToken } : {}),
        },
        idempotent: true,
      },
    );
    return page((res.experiments ?? []).map(toExperiment), res.next_page_token, query);
  }

  async updateExperiment(experimentId: string, changes: { readonly name: string }): Promise<Experiment> {
    requireExperimentId(experimentId);
    changes = { name: experimentName(changes?.name) };
    const current = await this.#experiment(experimentId);
    if (current.name === changes.name) return toExperiment(current);
    const holder = await unlessNotFound(this.getExperimentByName(changes.name));
    if (holder) throw experimentNameTaken(changes.name);
    try {
      await this.#client.call('POST', 'mlflow/experiments/update', {
        params: { experiment_id: experimentId, new_name: changes.name },
        idempotent: true,
      });
    } catch (err) {
      // A rename racing another to the same name loses on the server's unique index.
      if (isWriteRace(err)) throw experimentNameTaken(changes.name, err);
      throw err;
    }
    return this.getExperiment(experimentId);
  }

  async setExperimentTag(experimentId: string, key: string, value: string): Promise<void> {
    requireExperimentId(experimentId);
    validateExperimentTags({ [key]: value });
    await this.#experimentWrite(experimentId, () =>
      this.#client.call('POST', 'mlflow/experiments/set-experiment-tag', {
        params: { experiment_id: experimentId, key, value },
        idempotent: true,
      }),
    );
  }

  async deleteExperiment(experimentId: string): Promise<void> {
    requireExperimentId(experimentId);
    if ((await this.#experiment(experimentId)).lifecycle_stage === 'deleted') return;
    await this.#settleLifecycle(experimentId, 'deleted', 'mlflow/experiments/delete');
  }

  async restoreExperiment(experimentId: string): Promise<void> {
    requireExperimentId(experimentId);
    if ((await this.#experiment(experimentId)).lifecycle_stage === 'active') return;
    await this.#settleLifecycle(experimentId, 'active', 'mlflow/experiments/restore');
  }

  /** MLflow refuses to delete a deleted experiment (or restore an active one); the port makes both idempotent. */
  async #settleLifecycle(experimentId: string, stage: 'active' | 'deleted', path: string): Promise<void> {
    try {
      await this.#client.call('POST', path, { params: { experiment_id: experimentId }, idempotent: false });
    } catch (err) {
      // Another caller got there first: the outcome is the one asked for.
      if ((await this.#experiment(experimentId)).lifecycle_stage === stage) return;
      throw err;
    }
  }

  async #experiment(experimentId: string): Promise<WireExperiment> {
    try {
      const { experiment } = await this.#client.call<{ experiment: WireExperiment }>('GET', 'mlflow/experiments/get', {
        params: { experiment_id: experimentId },
        idempotent: true,
      });
      return experiment;
    } catch (err) {
      if (err instanceof NotFoundError) throw experimentNotFound(experimentId, err);
      throw err;
    }
  }

  async #experimentWrite<T>(experimentId: string, write: () => Promise<T>): Promise<T> {
    try {
      return await write();
    } catch (err) {
      if (err instanceof NotFoundError) throw experimentNotFound(experimentId, err);
      if (isInactive(err)) {
        throw new ConflictError(`experiment '${experimentId}' is deleted: restore it first`, { cause: err });
      }
      throw err;
    }
  }

  // ---------------------------------------------------------------- runs

  async createRun(input: CreateRunInput): Promise<Run> {
    if (typeof input?.experimentId !== 'string') {
      throw new ValidationError('experimentId must be a string', { field: 'experimentId' });
    }
    requireExperimentId(input.experimentId);
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
    if (input.name !== undefined) input = { ...input, name: runName(input.name) };
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
    if (parentRunId !== undefined) {
      if (!RUN_ID.test(parentRunId)) throw new NotFoundError(`parent run '${parentRunId}' does not exist`);
      await this.getRun(parentRunId).catch((err: unknown) => {
        if (err instanceof NotFoundError) throw new NotFoundError(`parent run '${parentRunId}' does not exist`);
        throw err;
      });
      if (!tags.some((t) => t.key === PARENT_RUN_TAG)) tags.push({ key: PARENT_RUN_TAG, value: parentRunId });
    }
    const userId = input.userId ?? currentActor()?.actor;
    const { run } = await this.#experimentWrite(input.experimentId, () =>
      this.#client.call<{ run: WireRun }>('POST', 'mlflow/runs/create', {
        params: {
          experiment_id: input.experimentId,
          start_time: startTime.getTime(),
          tags,
          ...(input.name !== undefined ? { run_name: input.name } : {}),
          // Whoever creates the run is its user unless the input names another, as the SQL tracker records it.
          ...(userId !== undefined ? { user_id: userId } : {}),
        },
        idempotent: false,
      }),
    );
    if (status === 'SCHEDULED') {
      await this.#client.call('POST', 'mlflow/runs/update', {
        params: { run_id: run.info.run_id, status },
        idempotent: true,
      });
      return this.getRun(run.info.run_id);
    }
    return toRun(run);
  }

  async getRun(runId: string): Promise<Run> {
    return toRun(await this.#run(runId));
  }

  async #run(runId: string): Promise<WireRun> {
    if (typeof runId !== 'string' || !RUN_ID.test(runId)) throw runNotFound(String(runId));
    try {
      const { run } = await this.#client.call<{ run: WireRun }>('GET', 'mlflow/runs/get', {
        params: { run_id: runId },
        idempotent: true,
      });
      return run;
    } catch (err) {
      if (err instanceof NotFoundError) throw runNotFound(runId, err);
      throw err;
    }
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
    const endTime =
      input.endTime?.getTime() ??
      (input.status !== undefined && isTerminalRunStatus(input.status) ? Date.now() : undefined);
    await this.#runWrite(input.runId, () =>
      this.#client.call('POST', 'mlflow/runs/update', {
        params: {
          run_id: input.runId,
          ...(input.status !== undefined ? { status: input.status } : {}),
          ...(endTime !== undefined ? { end_time: endTime } : {}),
          ...(input.name !== undefined ? { run_name: input.name } : {}),
        },
        idempotent: true,
      }),
    );
    return (await this.getRun(input.runId)).info;
  }

  async deleteRun(runId: string): Promise<void> {
    await this.#runWrite(runId, () =>
      this.#client.call('POST', 'mlflow/runs/delete', { params: { run_id: runId }, idempotent: true }),
    );
  }

  async restoreRun(runId: string): Promise<void> {
    await this.#runWrite(runId, () =>
      this.#client.call('POST', 'mlflow/runs/restore', { params: { run_id: runId }, idempotent: true }),
    );
  }

  /** Runs a write to one run, turning MLflow's answers into the port's errors for that run. */
  async #runWrite<T>(runId: string, write: () => Promise<T>): Promise<T> {
    if (typeof runId !== 'string' || !RUN_ID.test(runId)) throw runNotFound(String(runId));
    try {
      return await write();
    } catch (err) {
      if (err instanceof NotFoundError && /^Run with id=/.test(err.message)) throw runNotFound(runId, err);
      if (isInactive(err)) {
        throw new ConflictError(`run '${runId}' is deleted: restore it before writing to it`, { cause: err });
      }
      throw err;
    }
  }

  // ---------------------------------------------------------------- params, metrics, tags

  // Single writes are one-item batches, checked first as themselves so that errors name `value`, as the port does.

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
    await this.#runWrite(runId, async () => {
      try {
        await this.#client.call('POST', 'mlflow/runs/delete-tag', {
          params: { run_id: runId, key },
          idempotent: false,
        });
      } catch (err) {
        if (err instanceof NotFoundError && /^No tag/.test(err.message)) {
          throw new NotFoundError(`run '${runId}' has no tag '${key}'`, { cause: err });
        }
        throw err;
      }
    });
  }

  /**
   * Checks every entry, then sends params, metrics and tags in as many log-batch requests as MLflow's limits need,
   * one after another. A request repeated after an outage cannot double anything: params accept an equal value,
   * tags take the last write, and MLflow stores an identical metric point once (its primary key is every field).
   */
  async logBatch(runId: string, batch: LogBatchInput): Promise<void> {
    validateLogBatch(batch, { counts: false });
    const params = batch.params ?? [];
    const tags = batch.tags ?? [];
    tags.forEach((t, i) => {
      if (t.key === PARENT_RUN_TAG) throw parentTagImmutable(`tags[${i}].key`);
    });
    const now = Date.now();
    const metrics = (batch.metrics ?? []).map((m) => ({
      key: m.key,
      value: m.value,
      step: m.step ?? 0,
      timestamp: m.timestamp ?? now,
    }));
    const requests = splitBatch(runId, { metrics, params, tags });
    if (requests.length === 0) {
      const run = await this.#run(runId);
      if (run.info.lifecycle_stage === 'deleted') {
        throw new ConflictError(`run '${runId}' is deleted: restore it before writing to it`);
      }
      return;
    }
    await this.#runWrite(runId, async () => {
      for (const request of requests) {
        try {
          await this.#client.call('POST', 'mlflow/runs/log-batch', { body: request.body, idempotent: true });
        } catch (err) {
          if (err instanceof ValidationError && /Changing param values is not allowed/.test(err.message)) {
            throw await this.#paramChanged(runId, params, err);
          }
          throw err;
        }
      }
    });
  }

  /** MLflow refuses a changed param as a bad value; the port calls it a conflict naming both values. */
  async #paramChanged(runId: string, params: readonly Param[], cause: ValidationError): Promise<ConflictError> {
    const stored = (await this.getRun(runId)).data.params;
    const changed = params.find((p) => stored[p.key] !== undefined && stored[p.key] !== p.value);
    return new ConflictError(
      changed
        ? `param '${changed.key}' of run '${runId}' is already '${stored[changed.key]}' and cannot change to '${changed.value}': params are immutable`
        : `a param of run '${runId}' already holds another value: params are immutable (${cause.message})`,
      { cause },
    );
  }

  /**
   * Points of one key ordered by step, then timestamp. MLflow returns a history ordered by timestamp, so the
   * whole history is read and sorted for each page; the token holds the position in that order.
   */
  async getMetricHistory(runId: string, key: string, options: PageOptions = {}): Promise<Page<Metric>> {
    validateTrackingKey(key);
    const maxResults = resolveMaxResults(options.maxResults, METRIC_HISTORY_PAGE);
    let offset = 0;
    if (options.pageToken !== undefined) {
      const state = decodePageToken<{ r?: unknown; k?: unknown; o?: unknown }>(options.pageToken);
      if (!state || typeof state !== 'object' || !Number.isSafeInteger(state.o) || (state.o as number) < 0) {
        throw malformedPageToken();
      }
      if (state.r !== runId || state.k !== key) {
        throw new ValidationError(
          'pageToken belongs to another metric history: keep runId and key unchanged while paging',
          { field: 'pageToken' },
        );
      }
      offset = state.o as number;
    }
    if (typeof runId !== 'string' || !RUN_ID.test(runId)) throw runNotFound(String(runId));
    let metrics: WireMetric[];
    try {
      ({ metrics = [] } = await this.#client.call<{ metrics?: WireMetric[] }>('GET', 'mlflow/metrics/get-history', {
        params: { run_id: runId, metric_key: key },
        idempotent: true,
      }));
    } catch (err) {
      if (err instanceof NotFoundError) throw runNotFound(runId, err);
      throw err;
    }
    // MLflow answers an unknown run's history with an empty one; the port names the run.
    if (metrics.length === 0) await this.#run(runId);
    const points = metrics.map(toMetric).sort((a, b) => a.step - b.step || a.timestamp - b.timestamp);
    const items = points.slice(offset, offset + maxResults);
    return offset + maxResults < points.length
      ? { items, nextPageToken: encodePageToken({ r: runId, k: key, o: offset + maxResults }) }
      : { items };
  }

  async logInputs(runId: string, inputs: readonly DatasetInput[]): Promise<void> {
    validateDatasetInputs(inputs);
    if (inputs.length === 0) {
      await this.#run(runId);
      return;
    }
    await this.#runWrite(runId, () =>
      this.#client.call('POST', 'mlflow/runs/log-inputs', {
        params: {
          run_id: runId,
          datasets: inputs.map((i) => ({
            tags: i.tags.map((t) => ({ key: t.key, value: t.value })),
            dataset: {
              name: i.dataset.name,
              digest: i.dataset.digest,
              source_type: i.dataset.sourceType,
              source: i.dataset.source,
              ...(i.dataset.schema !== undefined ? { schema: i.dataset.schema } : {}),
              ...(i.dataset.profile !== undefined ? { profile: i.dataset.profile } : {}),
            },
          })),
        },
        idempotent: true,
      }),
    );
  }

  // ---------------------------------------------------------------- search

  async searchRuns(options: SearchRunsOptions): Promise<Page<Run>> {
    if (!options || !Array.isArray(options.experimentIds) || options.experimentIds.length === 0) {
      throw new ValidationError('searchRuns needs at least one experiment id', { field: 'experimentIds' });
    }
    const maxResults = resolveMaxResults(options.maxResults, SEARCH_RUNS_PAGE);
    for (const id of options.experimentIds) {
      if (typeof id !== 'string')
        throw new ValidationError('experimentIds must be strings', { field: 'experimentIds' });
      requireExperimentId(id);
    }
    const filter = runFilter(options.filter);
    const orderBy = runOrderBy(options.orderBy);
    const view = viewType(options.runViewType, 'runViewType');
    const query = queryKey(['runs', [...options.experimentIds].sort(), filter, orderBy, view]);
    const pageToken = readToken(options.pageToken, query, 'filter, order and view');
    // MLflow skips unknown experiment ids; the port names them, so the first page checks they exist.
    if (pageToken === undefined) await Promise.all(options.experimentIds.map((id) => this.#experiment(id)));
    const res = await this.#client.call<{ runs?: WireRun[]; next_page_token?: string }>('POST', 'mlflow/runs/search', {
      params: {
        experiment_ids: options.experimentIds,
        ...(filter ? { filter } : {}),
        run_view_type: view,
        max_results: maxResults,
        ...(orderBy.length > 0 ? { order_by: orderBy } : {}),
        ...(pageToken ? { page_token: pageToken } : {}),
      },
      idempotent: true,
    });
    return page((res.runs ?? []).map(toRun), res.next_page_token, query);
  }

  // ---------------------------------------------------------------- artifacts

  /**
   * Uploads through the artifacts proxy. The sha256 is computed while streaming; with `expectedSha256` the last
   * chunk is held back until the digest is known, and a mismatch aborts the request before the body completes,
   * so the server (which writes to a staging file and publishes only a complete body) stores nothing.
   * `ifNotExists` checks the path first: MLflow has no conditional put, so a concurrent writer can still win.
   */
  async logArtifact(
    runId: string,
    path: string,
    body: ArtifactBody,
    options: PutArtifactOptions = {},
  ): Promise<ArtifactInfo> {
    const run = await this.#run(runId);
    if (run.info.lifecycle_stage === 'deleted') {
      throw new ConflictError(`run '${runId}' is deleted: restore it before writing to it`);
    }
    const root = run.info.artifact_uri ?? '';
    const key = joinArtifactPath(root, path);
    const proxyPath = artifactProxyPath(key, runId);
    if (options.metadata && Object.keys(options.metadata).length > 0) {
      throw new ValidationError("MLflow's artifact proxy stores no metadata with a file; leave metadata out", {
        field: 'metadata',
      });
    }
    if (options.expectedSha256 !== undefined && !/^[0-9a-f]{64}$/.test(options.expectedSha256)) {
      throw new ValidationError('expectedSha256 must be 64 lowercase hex characters', { field: 'expectedSha256' });
    }
    if (options.ifNotExists && (await this.#artifactExists(runId, path))) {
      throw new ConflictError(`run '${runId}' already has an artifact at '${path}'`);
    }
    let sha256: string;
    let size: number;
    if (typeof body === 'string' || body instanceof Uint8Array) {
      const bytes = typeof body === 'string' ? Buffer.from(body) : body;
      sha256 = createHash('sha256').update(bytes).digest('hex');
      size = bytes.byteLength;
      if (options.expectedSha256 !== undefined && sha256 !== options.expectedSha256) {
        throw checksumMismatch(path, options.expectedSha256, sha256);
      }
      await this.#client.upload(proxyPath, bytes);
    } else {
      const digest = { sha256: '', size: 0, mismatch: undefined as ValidationError | undefined };
      const stream = Readable.from(hashing(body, path, options.expectedSha256, digest));
      try {
        await this.#client.upload(proxyPath, stream);
      } catch (err) {
        if (digest.mismatch) throw digest.mismatch;
        throw err;
      }
      sha256 = digest.sha256;
      size = digest.size;
    }
    return {
      key,
      size,
      sha256,
      contentType: options.contentType ?? 'application/octet-stream',
      metadata: {},
      // MLflow's proxy answers an upload with no entity tag; the content hash names this content as well.
      etag: `"${sha256}"`,
      lastModified: new Date(),
    };
  }

  async listRunArtifacts(
    runId: string,
    options: PageOptions & { readonly path?: string } = {},
  ): Promise<Page<RunArtifact>> {
    const pageSize = resolveMaxResults(options.maxResults, RUN_ARTIFACTS_PAGE);
    const dir = options.path ?? '';
    // The same path rule as logArtifact: ValidationError for absolute paths and '.' or '..' segments.
    if (dir !== '') joinArtifactPath('root', dir);
    let offset = 0;
    if (options.pageToken !== undefined) {
      const state = decodePageToken<{ r?: unknown; p?: unknown; o?: unknown }>(options.pageToken);
      if (!state || typeof state !== 'object' || !Number.isSafeInteger(state.o)) throw malformedPageToken();
      if (state.r !== runId || state.p !== dir) {
        throw new ValidationError(
          'pageToken belongs to a different listing: keep runId and path unchanged while paging',
          {
            field: 'pageToken',
          },
        );
      }
      offset = state.o as number;
    }
    const entries = await this.#listDir(runId, dir);
    const items = entries.slice(offset, offset + pageSize);
    return offset + pageSize < entries.length
      ? { items, nextPageToken: encodePageToken({ r: runId, p: dir, o: offset + pageSize }) }
      : { items };
  }

  async openArtifact(runId: string, path: string): Promise<{ info: RunArtifact; body: Readable }> {
    const run = await this.#run(runId);
    const key = joinArtifactPath(run.info.artifact_uri ?? '', path);
    // The tracking API's listing decides whether the path is a file, and its size: a server whose artifact
    // destination is an object store (`s3://...`) answers the proxy's download of a missing file with a 500 (its
    // HeadObject's 404), of a directory with an empty 200, and of a file without Content-Length.
    const entry = (await this.#listDir(runId, parentPath(path))).find((e) => e.path === path);
    if (!entry) throw new NotFoundError(`run '${runId}' has no artifact '${path}'`);
    if (entry.isDir) throw new NotFoundError(`'${path}' of run '${runId}' is a directory, not a file`);
    try {
      const { body, size } = await this.#client.download(artifactProxyPath(key, runId));
      const known = size ?? entry.size;
      return { info: { path, isDir: false, ...(known !== undefined ? { size: known } : {}) }, body };
    } catch (err) {
      // Deleted between the listing and the download.
      if (err instanceof NotFoundError)
        throw new NotFoundError(`run '${runId}' has no artifact '${path}'`, { cause: err });
      throw err;
    }
  }

  async #artifactExists(runId: string, path: string): Promise<boolean> {
    return (await this.#listDir(runId, parentPath(path))).some((e) => e.path === path);
  }

  /** One directory level through the tracking API, which resolves the run's artifact root itself. */
  async #listDir(runId: string, dir: string): Promise<RunArtifact[]> {
    if (typeof runId !== 'string' || !RUN_ID.test(runId)) throw runNotFound(String(runId));
    let files: { path: string; is_dir?: boolean; file_size?: number | string }[];
    try {
      ({ files = [] } = await this.#client.call<{ files?: typeof files }>('GET', 'mlflow/artifacts/list', {
        params: { run_id: runId, ...(dir ? { path: dir } : {}) },
        idempotent: true,
      }));
    } catch (err) {
      if (err instanceof NotFoundError) throw runNotFound(runId, err);
      throw err;
    }
    return files
      .map((f) =>
        f.is_dir ? { path: f.path, isDir: true } : { path: f.path, isDir: false, size: Number(f.file_size ?? 0) },
      )
      .sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  }
}

// ---------------------------------------------------------------- helpers

async function* hashing(
  body: AsyncIterable<Uint8Array>,
  path: string,
  expected: string | undefined,
  digest: { sha256: string; size: number; mismatch: ValidationError | undefined },
): AsyncGenerator<Buffer> {
  const hash = createHash('sha256');
  let held: Buffer | undefined;
  for await (const chunk of body) {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
    hash.update(buf);
    digest.size += buf.byteLength;
    if (held) yield held;
    held = buf;
  }
  digest.sha256 = hash.digest('hex');
  if (expected !== undefined && digest.sha256 !== expected) {
    digest.mismatch = checksumMismatch(path, expected, digest.sha256);
    throw digest.mismatch;
  }
  if (held) yield held;
}

function checksumMismatch(path: string, expected: string, actual: string): ValidationError {
  return new ValidationError(
    `artifact '${path}' hashes to ${actual}, not the expected ${expected}; nothing was stored`,
    {
      field: 'expectedSha256',
    },
  );
}

/** The directory holding a run artifact path ('' at the root). */
function parentPath(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}

/** `mlflow-artifacts:/1/<run>/artifacts/x` (or with `//host:port`) as the proxy's path `1/<run>/artifacts/x`. */
function artifactProxyPath(uri: string, runId: string): string {
  if (!uri.startsWith(ARTIFACT_PROXY_SCHEME)) {
    throw new ValidationError(
      `run '${runId}' keeps its artifacts at '${uri}', which the MLflow server does not proxy: only ${ARTIFACT_PROXY_SCHEME} locations are reachable through it`,
      { field: 'runId' },
    );
  }
  const rest = uri.slice(ARTIFACT_PROXY_SCHEME.length);
  return (rest.startsWith('//') ? rest.replace(/^\/\/[^/]*/, '') : rest).replace(/^\/+/, '');
}

/** An experiment's own artifact location must be an absolute URI; MLflow would resolve a bare path on its own disk. */
function validateArtifactLocation(location: unknown): void {
  if (typeof location !== 'string' || location.trim() === '') {
    throw new ValidationError('artifactLocation must be a non-empty string', { field: 'artifactLocation' });
  }
  if (/^runs:/i.test(location)) {
    throw new ValidationError(`artifactLocation must not be a runs:/ URI, got '${location}'`, {
      field: 'artifactLocation',
    });
  }
  if (!/^[a-zA-Z][a-zA-Z0-9+.-]+:/.test(location)) {
    throw new ValidationError(
      `artifactLocation must be an absolute URI with a scheme (s3://bucket/prefix, mlflow-artifacts:/x), got '${location}'`,
      { field: 'artifactLocation' },
    );
  }
}

/** MLflow's answer to a write on a deleted run or experiment. */
function isInactive(err: unknown): boolean {
  return (
    (err instanceof ValidationError || err instanceof ConflictError) &&
    /must be in the 'active' state|non-active/i.test(err.message)
  );
}

function requireExperimentId(id: string): void {
  if (typeof id !== 'string') throw new ValidationError('experimentId must be a string', { field: 'experimentId' });
  if (!EXPERIMENT_ID.test(id)) throw experimentNotFound(id);
}

function experimentNotFound(id: string, cause?: unknown): NotFoundError {
  return new NotFoundError(`experiment '${id}' does not exist`, cause === undefined ? undefined : { cause });
}

function runNotFound(id: string, cause?: unknown): NotFoundError {
  return new NotFoundError(`run '${id}' does not exist`, cause === undefined ? undefined : { cause });
}

function experimentNameTaken(name: string, cause?: unknown): ConflictError {
  return new ConflictError(
    `an experiment named '${name}' already exists (it may be deleted: restore or rename that one)`,
    cause === undefined ? undefined : { cause },
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

/** Experiment names are stored in NFC, as every tracker does, so names equal after normalisation collide. */
function experimentName(name: unknown): string {
  return normalizeName(name, {
    field: 'name',
    what: 'experiment name',
    maxLength: TRACKER_LIMITS.experimentNameLength,
    limitName: 'experimentNameLength',
  });
}

/** Run names as experiment names, but may be empty; MLflow keeps them in a tag, so the tag value limit applies. */
function runName(name: unknown): string {
  if (typeof name !== 'string') throw new ValidationError('run name must be a string', { field: 'name' });
  return normalizeName(name, {
    field: 'name',
    what: 'run name',
    maxLength: TRACKER_LIMITS.runTagValueLength,
    limitName: 'runTagValueLength',
    allowEmpty: true,
  });
}
