import {
  ConflictError,
  type CreateModelInput,
  type CreateVersionInput,
  currentActor,
  type ExperimentTracker,
  MODEL_STAGES,
  type ModelLineage,
  type ModelRegistry,
  type ModelRegistryCapabilities,
  type ModelStage,
  type ModelVersion,
  NotFoundError,
  normalizeModelName,
  normalizeStage,
  type Page,
  type PageOptions,
  parseModelUri,
  type RegisteredModel,
  type RunArtifact,
  resolveMaxResults,
  runIdOfSource,
  SEARCH_MODELS_PAGE,
  SEARCH_VERSIONS_PAGE,
  type SearchModelsOptions,
  type SearchVersionsOptions,
  type SetAliasInput,
  type StageTransition,
  TRANSITION_HISTORY_PAGE,
  type TransitionStageInput,
  unlessNotFound,
  ValidationError,
  validateAlias,
  validateDescription,
  validateNoControlCharacters,
  validateOptionalString,
  validateRunId,
  validateSignature,
  validateTag,
  validateTags,
  validateVersionNumber,
} from '@mlplane/core';
import type { MlflowClient } from './client.js';
import { MODEL_ORDER, modelFilter, modelOrderBy, versionFilter, versionOrderBy } from './filter.js';
import { page, queryKey, readToken } from './paging.js';
import { MlflowExperimentTracker } from './tracker.js';
import {
  byStage,
  toModelVersion,
  toRegisteredModel,
  VERSION_USER_TAG,
  type WireModelVersion,
  type WireRegisteredModel,
} from './wire.js';

/** Most artifact entries getLineage lists for a run, as the SQL registry. */
export const LINEAGE_ARTIFACT_LIMIT = 1000;

/**
 * The ModelRegistry on an MLflow tracking server's model registry. Versions link to runs of the same server
 * (the tracker), so lineage reads the run and its artifacts from there. MLflow keeps no stage history and no
 * signatures with versions, and has no compare-and-set for promotions: the capabilities say so.
 * Hooks (`model.beforePromote`, `model.registered`, `model.promoted`) are fired by the kernel around this adapter.
 */
export class MlflowModelRegistry implements ModelRegistry {
  readonly capabilities: ModelRegistryCapabilities = Object.freeze({
    transitionHistory: false,
    signatures: false,
    asyncRegistration: false,
    atomicPromotionCheck: false,
    modelOrderBy: Object.freeze([...MODEL_ORDER]),
    changeEvents: false,
  });

  readonly #client: MlflowClient;
  /** Runs that versions link to live on the same server. */
  readonly #tracker: ExperimentTracker;

  constructor(client: MlflowClient) {
    this.#client = client;
    this.#tracker = new MlflowExperimentTracker(client);
  }

  // ---------------------------------------------------------------- models

  async createModel(input: CreateModelInput): Promise<RegisteredModel> {
    input = { ...input, name: normalizeModelName(input?.name) };
    validateOptionalString(input.description, 'description');
    const tags = validateTags(input.tags);
    try {
      const { registered_model } = await this.#client.call<{ registered_model: WireRegisteredModel }>(
        'POST',
        'mlflow/registered-models/create',
        {
          params: {
            name: input.name,
            ...(input.description !== undefined ? { description: input.description } : {}),
            tags: tags.map(([key, value]) => ({ key, value })),
          },
          idempotent: false,
        },
      );
      return toRegisteredModel(registered_model);
    } catch (err) {
      if (err instanceof ConflictError) throw modelNameTaken(input.name, err);
      throw err;
    }
  }

  async getModel(name: string): Promise<RegisteredModel> {
    name = normalizeModelName(name);
    return toRegisteredModel(await this.#model(name));
  }

  async updateModel(name: string, changes: { readonly description: string }): Promise<RegisteredModel> {
    name = normalizeModelName(name);
    validateDescription(changes?.description);
    await this.#modelCall(name, 'PATCH', 'mlflow/registered-models/update', {
      name,
      description: changes.description,
    });
    return this.getModel(name);
  }

  async renameModel(name: string, newName: string): Promise<RegisteredModel> {
    name = normalizeModelName(name);
    newName = normalizeModelName(newName, 'newName');
    try {
      await this.#modelCall(name, 'POST', 'mlflow/registered-models/rename', { name, new_name: newName }, false);
    } catch (err) {
      if (err instanceof ConflictError) throw modelNameTaken(newName, err);
      throw err;
    }
    return this.getModel(newName);
  }

  async deleteModel(name: string): Promise<void> {
    name = normalizeModelName(name);
    await this.#modelCall(name, 'DELETE', 'mlflow/registered-models/delete', { name }, false);
  }

  async searchModels(options: SearchModelsOptions = {}): Promise<Page<RegisteredModel>> {
    const maxResults = resolveMaxResults(options.maxResults, SEARCH_MODELS_PAGE);
    const filter = modelFilter(options.filter);
    const orderBy = modelOrderBy(options.orderBy);
    const query = queryKey(['models', filter, orderBy]);
    const pageToken = readToken(options.pageToken, query, 'filter and order');
    const res = await this.#client.call<{ registered_models?: WireRegisteredModel[]; next_page_token?: string }>(
      'GET',
      'mlflow/registered-models/search',
      {
        params: {
          max_results: maxResults,
          ...(filter ? { filter } : {}),
          order_by: orderBy,
          ...(pageToken ? { page_token: pageToken } : {}),
        },
        idempotent: true,
      },
    );
    return page((res.registered_models ?? []).map(toRegisteredModel), res.next_page_token, query);
  }

  // ---------------------------------------------------------------- versions

  async createVersion(input: CreateVersionInput): Promise<ModelVersion> {
    input = { ...input, name: normalizeModelName(input?.name) };
    if (typeof input.source !== 'string' || input.source.trim() === '') {
      throw new ValidationError('source must be a non-empty artifact URI', { field: 'source' });
    }
    validateNoControlCharacters(input.source, 'source', 'source');
    validateOptionalString(input.runLink, 'runLink');
    validateOptionalString(input.description, 'description');
    validateOptionalString(input.userId, 'userId');
    validateSignature(input.signature);
    if (input.signature !== undefined) {
      throw new ValidationError(
        "an MLflow registry keeps no signature with a version (capabilities.signatures is false): MLflow reads it from the model's MLmodel file, so log the model with its signature",
        { field: 'signature' },
      );
    }
    const tags = validateTags(input.tags);
    if (tags.some(([key]) => key === VERSION_USER_TAG)) throw reservedTag(`tags.${VERSION_USER_TAG}`);
    let runId = input.runId;
    const sourceRun = runIdOfSource(input.source);
    if (runId !== undefined) validateRunId(runId);
    if (sourceRun !== undefined) {
      if (runId !== undefined && runId !== sourceRun) {
        throw new ValidationError(`source '${input.source}' names run '${sourceRun}' but runId is '${runId}'`, {
          field: 'runId',
        });
      }
      runId = sourceRun;
      validateRunId(runId, 'source');
    }
    // A run linked to another tracking server cannot be checked here; one on this server must exist.
    if (runId !== undefined && input.runLink === undefined) await this.#tracker.getRun(runId);
    const userId = input.userId ?? currentActor()?.actor;
    if (userId !== undefined) tags.push([VERSION_USER_TAG, userId]);
    const { model_version } = await this.#modelCall<{ model_version: WireModelVersion }>(
      input.name,
      'POST',
      'mlflow/model-versions/create',
      {
        name: input.name,
        source: input.source,
        ...(runId !== undefined ? { run_id: runId } : {}),
        ...(input.runLink !== undefined ? { run_link: input.runLink } : {}),
        ...(input.description !== undefined ? { description: input.description } : {}),
        tags: tags.map(([key, value]) => ({ key, value })),
      },
      false,
    );
    return toModelVersion(model_version);
  }

  async getVersion(name: string, version: number): Promise<ModelVersion> {
    name = normalizeModelName(name);
    validateVersionNumber(version);
    return toModelVersion(await this.#version(name, version));
  }

  async updateVersion(name: string, version: number, changes: { readonly description: string }): Promise<ModelVersion> {
    name = normalizeModelName(name);
    validateVersionNumber(version);
    validateDescription(changes?.description);
    await this.#versionCall(name, version, 'PATCH', 'mlflow/model-versions/update', {
      description: changes.description,
    });
    return this.getVersion(name, version);
  }

  async deleteVersion(name: string, version: number): Promise<void> {
    name = normalizeModelName(name);
    validateVersionNumber(version);
    await this.#versionCall(name, version, 'DELETE', 'mlflow/model-versions/delete', {}, false);
  }

  async searchVersions(options: SearchVersionsOptions = {}): Promise<Page<ModelVersion>> {
    const maxResults = resolveMaxResults(options.maxResults, SEARCH_VERSIONS_PAGE);
    const filter = versionFilter(options.filter);
    const orderBy = versionOrderBy(options.orderBy);
    const query = queryKey(['versions', filter, orderBy]);
    const pageToken = readToken(options.pageToken, query, 'filter and order');
    const res = await this.#client.call<{ model_versions?: WireModelVersion[]; next_page_token?: string }>(
      'GET',
      'mlflow/model-versions/search',
      {
        params: {
          max_results: maxResults,
          ...(filter ? { filter } : {}),
          order_by: orderBy,
          ...(pageToken ? { page_token: pageToken } : {}),
        },
        idempotent: true,
      },
    );
    return page((res.model_versions ?? []).map(toModelVersion), res.next_page_token, query);
  }

  async getLatestVersions(name: string, stages?: readonly ModelStage[]): Promise<readonly ModelVersion[]> {
    name = normalizeModelName(name);
    if (stages !== undefined && !Array.isArray(stages)) {
      throw new ValidationError('stages must be an array of stage names', { field: 'stages' });
    }
    const wanted = stages === undefined ? MODEL_STAGES : [...new Set(stages.map((s) => normalizeStage(String(s))))];
    const { model_versions = [] } = await this.#modelCall<{ model_versions?: WireModelVersion[] }>(
      name,
      'POST',
      'mlflow/registered-models/get-latest-versions',
      { name, stages: wanted },
    );
    return model_versions.map(toModelVersion).sort(byStage);
  }

  // ---------------------------------------------------------------- stages

  async transitionStage(input: TransitionStageInput): Promise<ModelVersion> {
    input = { ...input, name: normalizeModelName(input?.name) };
    validateVersionNumber(input.version);
    if (typeof input.to !== 'string') throw new ValidationError('to must be a stage name', { field: 'stage' });
    const to = normalizeStage(input.to);
    validateOptionalString(input.reason, 'reason');
    validateOptionalString(input.actor, 'actor');
    const archiveExisting = input.archiveExisting ?? false;
    if (typeof archiveExisting !== 'boolean') {
      throw new ValidationError('archiveExisting must be a boolean', { field: 'archiveExisting' });
    }
    if (archiveExisting && to !== 'Staging' && to !== 'Production') {
      throw new ValidationError(`archiveExisting applies only to transitions to Staging or Production, not ${to}`, {
        field: 'archiveExisting',
      });
    }
    const current = await this.getVersion(input.name, input.version);
    if (current.stage === to) return current;
    const { model_version } = await this.#versionCall<{ model_version: WireModelVersion }>(
      input.name,
      input.version,
      'POST',
      'mlflow/model-versions/transition-stage',
      { stage: to, archive_existing_versions: archiveExisting },
    );
    return toModelVersion(model_version);
  }

  /** MLflow keeps only each version's current stage; NotFoundError still names an unknown model or version. */
  async getTransitionHistory(
    name: string,
    version?: number,
    options: PageOptions = {},
  ): Promise<Page<StageTransition>> {
    name = normalizeModelName(name);
    if (version !== undefined) validateVersionNumber(version);
    resolveMaxResults(options.maxResults, TRANSITION_HISTORY_PAGE);
    await this.#model(name);
    if (version !== undefined) await this.#version(name, version);
    throw new ValidationError(
      'an MLflow registry keeps no stage transition history (capabilities.transitionHistory is false); getVersion tells the current stage',
    );
  }

  // ---------------------------------------------------------------- aliases

  async setAlias(input: SetAliasInput): Promise<void> {
    input = { ...input, name: normalizeModelName(input?.name) };
    if (typeof input.alias !== 'string') throw new ValidationError('alias must be a string', { field: 'alias' });
    validateAlias(input.alias);
    validateVersionNumber(input.version);
    validateOptionalString(input.actor, 'actor');
    validateOptionalString(input.reason, 'reason');
    await this.#versionCall(input.name, input.version, 'POST', 'mlflow/registered-models/alias', {
      alias: input.alias,
    });
  }

  async deleteAlias(name: string, alias: string): Promise<void> {
    name = normalizeModelName(name);
    if (typeof alias !== 'string') throw new ValidationError('alias must be a string', { field: 'alias' });
    await this.#modelCall(name, 'DELETE', 'mlflow/registered-models/alias', { name, alias });
  }

  async getVersionByAlias(name: string, alias: string): Promise<ModelVersion> {
    name = normalizeModelName(name);
    if (typeof alias !== 'string') throw new ValidationError('alias must be a string', { field: 'alias' });
    try {
      const { model_version } = await this.#client.call<{ model_version: WireModelVersion }>(
        'GET',
        'mlflow/registered-models/alias',
        { params: { name, alias }, idempotent: true },
      );
      return toModelVersion(model_version);
    } catch (err) {
      // MLflow answers an unknown alias as a bad parameter, and an unknown model as not found.
      const unknownAlias = err instanceof ValidationError && /alias .* not found/i.test(err.message);
      if (!(err instanceof NotFoundError) && !unknownAlias) throw err;
      await this.#model(name);
      throw new NotFoundError(`model '${name}' has no alias '${alias}'`, { cause: err });
    }
  }

  // ---------------------------------------------------------------- tags

  async setModelTag(name: string, key: string, value: string): Promise<void> {
    name = normalizeModelName(name);
    validateTag(key, value);
    await this.#modelCall(name, 'POST', 'mlflow/registered-models/set-tag', { name, key, value });
  }

  async deleteModelTag(name: string, key: string): Promise<void> {
    name = normalizeModelName(name);
    if (typeof key !== 'string') throw new ValidationError('tag key must be a string', { field: 'key' });
    await this.#idempotentDelete(
      () => this.#modelCall(name, 'DELETE', 'mlflow/registered-models/delete-tag', { name, key }),
      () => this.#model(name),
    );
  }

  async setVersionTag(name: string, version: number, key: string, value: string): Promise<void> {
    name = normalizeModelName(name);
    validateVersionNumber(version);
    validateTag(key, value);
    if (key === VERSION_USER_TAG) throw reservedTag('key');
    await this.#versionCall(name, version, 'POST', 'mlflow/model-versions/set-tag', { key, value });
  }

  async deleteVersionTag(name: string, version: number, key: string): Promise<void> {
    name = normalizeModelName(name);
    validateVersionNumber(version);
    if (typeof key !== 'string') throw new ValidationError('tag key must be a string', { field: 'key' });
    if (key === VERSION_USER_TAG) throw reservedTag('key');
    await this.#idempotentDelete(
      () => this.#versionCall(name, version, 'DELETE', 'mlflow/model-versions/delete-tag', { key }),
      () => this.#version(name, version),
    );
  }

  // ---------------------------------------------------------------- lineage, URIs

  async getLineage(name: string, version: number): Promise<ModelLineage> {
    const v = await this.getVersion(name, version);
    const base: ModelLineage = {
      name: v.name,
      version: v.version,
      source: v.source,
      ...(v.runId !== undefined ? { runId: v.runId } : {}),
      ...(v.runLink !== undefined ? { runLink: v.runLink } : {}),
    };
    if (v.runId === undefined || v.runLink !== undefined) return base;
    // A run purged since registration leaves source-only lineage.
    const run = await unlessNotFound(this.#tracker.getRun(v.runId));
    if (!run) return base;
    return { ...base, experimentId: run.info.experimentId, run, artifacts: await this.#artifactTree(run.info.id) };
  }

  /** The run's artifact tree breadth first, at most LINEAGE_ARTIFACT_LIMIT entries. */
  async #artifactTree(runId: string): Promise<RunArtifact[]> {
    const out: RunArtifact[] = [];
    const dirs: (string | undefined)[] = [undefined];
    while (dirs.length > 0 && out.length < LINEAGE_ARTIFACT_LIMIT) {
      const path = dirs.shift();
      let pageToken: string | undefined;
      do {
        const listing = await this.#tracker.listRunArtifacts(runId, {
          ...(path !== undefined ? { path } : {}),
          ...(pageToken ? { pageToken } : {}),
        });
        for (const entry of listing.items) {
          if (out.length >= LINEAGE_ARTIFACT_LIMIT) break;
          out.push(entry);
          if (entry.isDir) dirs.push(entry.path);
        }
        pageToken = out.length < LINEAGE_ARTIFACT_LIMIT ? listing.nextPageToken : undefined;
      } while (pageToken);
    }
    return out;
  }

  async resolve(modelUri: string): Promise<ModelVersion> {
    if (typeof modelUri !== 'string') throw new ValidationError('modelUri must be a string', { field: 'modelUri' });
    const uri = parseModelUri(modelUri);
    switch (uri.kind) {
      case 'version':
        return this.getVersion(uri.name, uri.version);
      case 'alias':
        return this.getVersionByAlias(uri.name, uri.alias);
      case 'stage': {
        const [latest] = await this.getLatestVersions(uri.name, [uri.stage]);
        if (!latest) throw new NotFoundError(`model '${uri.name}' has no version in stage ${uri.stage}`);
        return latest;
      }
      case 'latest': {
        // The highest version is the latest of its own stage.
        const latest = (await this.getLatestVersions(uri.name)).reduce<ModelVersion | undefined>(
          (best, v) => (best === undefined || v.version > best.version ? v : best),
          undefined,
        );
        if (!latest) throw new NotFoundError(`model '${uri.name}' has no versions`);
        return latest;
      }
    }
  }

  // ---------------------------------------------------------------- calls

  async #model(name: string): Promise<WireRegisteredModel> {
    const { registered_model } = await this.#modelCall<{ registered_model: WireRegisteredModel }>(
      name,
      'GET',
      'mlflow/registered-models/get',
      { name },
    );
    return registered_model;
  }

  async #version(name: string, version: number): Promise<WireModelVersion> {
    const { model_version } = await this.#versionCall<{ model_version: WireModelVersion }>(
      name,
      version,
      'GET',
      'mlflow/model-versions/get',
      {},
    );
    return model_version;
  }

  /** A call about one model: MLflow's "not found" becomes the port's message for that model. */
  async #modelCall<T = unknown>(
    name: string,
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    path: string,
    params: Record<string, unknown>,
    idempotent = true,
  ): Promise<T> {
    try {
      return await this.#client.call<T>(method, path, { params, idempotent });
    } catch (err) {
      if (err instanceof NotFoundError && /Registered Model with name=/i.test(err.message)) {
        throw modelNotFound(name, err);
      }
      throw err;
    }
  }

  /** A call about one version; an unknown model or version is NotFoundError naming both. */
  async #versionCall<T = unknown>(
    name: string,
    version: number,
    method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
    path: string,
    params: Record<string, unknown>,
    idempotent = true,
  ): Promise<T> {
    try {
      return await this.#client.call<T>(method, path, {
        params: { name, version: String(version), ...params },
        idempotent,
      });
    } catch (err) {
      if (err instanceof NotFoundError && /Model Version|Registered Model/i.test(err.message)) {
        throw new NotFoundError(`version ${version} of model '${name}' does not exist`, { cause: err });
      }
      throw err;
    }
  }

  /** MLflow refuses to delete a missing tag; the port makes it a no-op once the owner is known to exist. */
  async #idempotentDelete(remove: () => Promise<unknown>, owner: () => Promise<unknown>): Promise<void> {
    try {
      await remove();
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
      await owner();
    }
  }
}

function modelNotFound(name: string, cause?: unknown): NotFoundError {
  return new NotFoundError(`registered model '${name}' does not exist`, cause === undefined ? undefined : { cause });
}

function modelNameTaken(name: string, cause?: unknown): ConflictError {
  return new ConflictError(
    `a registered model named '${name}' already exists`,
    cause === undefined ? undefined : { cause },
  );
}

function reservedTag(field: string): ValidationError {
  return new ValidationError(`tag '${VERSION_USER_TAG}' is where this registry keeps userId; it cannot be set`, {
    field,
  });
}
