import type { DomainEvent, ExperimentTracker, MetadataStore, RunArtifact } from '@mlplane/core';
import {
  ConflictError,
  type CreateModelInput,
  type CreateVersionInput,
  currentActor,
  decodePageToken,
  encodePageToken,
  MODEL_STAGES,
  type ModelLineage,
  type ModelRegistry,
  type ModelRegistryCapabilities,
  type ModelStage,
  type ModelVersion,
  malformedPageToken,
  NotFoundError,
  normalizeModelName,
  normalizeStage,
  type Page,
  type PageOptions,
  parseModelUri,
  type RegisteredModel,
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
  ValidationError,
  validateAlias,
  validateDescription,
  validateOptionalLine,
  validateOptionalString,
  validateRunId,
  validateSignature,
  validateTag,
  validateTags,
  validateVersionNumber,
} from '@mlplane/core';
import type { Kysely, Transaction } from 'kysely';
import { type SqlDialect, sqlDialect } from '../dialect/dialect.js';
import { isUniqueViolation } from '../dialect/errors.js';
import { domainEvent, OUTBOX_MIGRATIONS, OUTBOX_OWNER, recordEvent } from '../outbox/outbox.js';
import {
  findAlias,
  findModelByName,
  findVersion,
  findVersionByName,
  latestVersions,
  loadModels,
  loadVersion,
  loadVersions,
  nextVersionNumber,
  toTransition,
  touchModel,
} from './repository.js';
import type { ModelVersionRow, RegisteredModelRow, RegistryDatabase } from './schema.js';
import { REGISTRY_MIGRATIONS, REGISTRY_OWNER } from './schema.js';
import { searchModelIds, searchVersionKeys } from './search.js';

export interface SqlModelRegistryOptions {
  readonly store: MetadataStore;
  /**
   * The tracker holding the runs that versions come from. With it, createVersion refuses unknown run ids and
   * getLineage returns the run's params, metrics, tags, dataset inputs and artifacts.
   */
  readonly tracker?: ExperimentTracker;
}

/** One move of an alias, kept by the SQL registry beside the stage history. */
export interface AliasMove {
  readonly name: string;
  readonly alias: string;
  /** Absent when the alias was new. */
  readonly fromVersion?: number;
  /** Absent when the alias was deleted (directly or with its version). */
  readonly toVersion?: number;
  readonly actor?: string;
  readonly reason?: string;
  readonly at: Date;
}

/** Most artifact entries getLineage lists for a run, so lineage stays cheap for runs with huge trees. */
export const LINEAGE_ARTIFACT_LIMIT = 1000;

type Trx = Transaction<RegistryDatabase>;
type Db = Kysely<RegistryDatabase>;

/**
 * The ModelRegistry on a MetadataStore (SQLite or PostgreSQL). Each change is one transaction that also records
 * its domain events in the outbox; promotions pass the `model.beforePromote` veto hook first, and every stage
 * transition and alias move is kept in a history table.
 */
export class SqlModelRegistry implements ModelRegistry {
  readonly capabilities: ModelRegistryCapabilities = Object.freeze({
    transitionHistory: true,
    signatures: true,
    asyncRegistration: false,
    atomicPromotionCheck: true,
    modelOrderBy: Object.freeze(['name', 'creation_timestamp', 'last_updated_timestamp', 'timestamp']),
    changeEvents: true,
  });

  readonly #store: MetadataStore;
  readonly #tracker: ExperimentTracker | undefined;
  readonly #dialect: SqlDialect;
  /**
   * Whether every change locks its model row (Postgres only: SQLite's write transactions already exclude each other).
   * Changes of one model then run one at a time, so one racing a delete of the model finds it gone (NotFoundError)
   * instead of hitting a foreign key, a missing row or committing an event for a change that did not happen.
   */
  readonly #lockRows: boolean;

  constructor(options: SqlModelRegistryOptions) {
    this.#store = options.store;
    this.#tracker = options.tracker;
    this.#dialect = sqlDialect(options.store.dialect);
    this.#lockRows = options.store.dialect === 'postgres';
  }

  /** Applies the outbox and registry migrations, then returns a ready registry. */
  static async open(options: SqlModelRegistryOptions): Promise<SqlModelRegistry> {
    await options.store.migrate(OUTBOX_OWNER, OUTBOX_MIGRATIONS);
    await options.store.migrate(REGISTRY_OWNER, REGISTRY_MIGRATIONS);
    return new SqlModelRegistry(options);
  }

  get #db(): Db {
    return this.#store.db<RegistryDatabase>();
  }

  #transaction<T>(fn: (trx: Trx) => Promise<T>): Promise<T> {
    return this.#store.transaction<T, RegistryDatabase>(fn);
  }

  // ---------------------------------------------------------------- models

  async createModel(input: CreateModelInput): Promise<RegisteredModel> {
    input = { ...input, name: normalizeModelName(input?.name) };
    validateOptionalString(input.description, 'description', 'descriptionLength');
    const tags = validateTags(input.tags);
    const now = Date.now();
    try {
      const modelId = await this.#transaction(async (trx) => {
        if (await findModelByName(trx, input.name)) throw modelNameTaken(input.name);
        const { model_id } = await trx
          .insertInto('registered_models')
          .values({
            name: input.name,
            description: input.description ?? '',
            user_id: null,
            creation_time: now,
            last_update_time: now,
          })
          .returning('model_id')
          .executeTakeFirstOrThrow();
        const id = Number(model_id);
        if (tags.length > 0) {
          await trx
            .insertInto('registered_model_tags')
            .values(tags.map(([key, value]) => ({ model_id: id, key, value })))
            .execute();
        }
        await recordEvent(
          trx,
          domainEvent('model.created', modelSubject(input.name), {
            name: input.name,
            description: input.description ?? '',
            tags: Object.fromEntries(tags),
          }),
        );
        return id;
      });
      return await this.#modelById(modelId, input.name);
    } catch (err) {
      // A concurrent create of the same name loses on the unique index.
      if (isUniqueViolation(err)) throw modelNameTaken(input.name);
      throw err;
    }
  }

  async getModel(name: string): Promise<RegisteredModel> {
    name = normalizeModelName(name);
    const row = await requireModel(this.#db, name);
    return this.#modelById(Number(row.model_id), name);
  }

  async updateModel(name: string, changes: { readonly description: string }): Promise<RegisteredModel> {
    name = normalizeModelName(name);
    validateDescription(changes?.description);
    const modelId = await this.#transaction(async (trx) => {
      const row = await requireModel(trx, name, this.#lockRows);
      const id = Number(row.model_id);
      await trx
        .updateTable('registered_models')
        .set({ description: changes.description, last_update_time: Date.now() })
        .where('model_id', '=', id)
        .execute();
      await recordEvent(
        trx,
        domainEvent('model.updated', modelSubject(name), { name, description: changes.description }),
      );
      return id;
    });
    return this.#modelById(modelId, name);
  }

  async renameModel(name: string, newName: string): Promise<RegisteredModel> {
    name = normalizeModelName(name);
    newName = normalizeModelName(newName, 'newName');
    try {
      const modelId = await this.#transaction(async (trx) => {
        const row = await requireModel(trx, name, this.#lockRows);
        const id = Number(row.model_id);
        if (name === newName) return id;
        if (await findModelByName(trx, newName)) throw modelNameTaken(newName);
        await trx
          .updateTable('registered_models')
          .set({ name: newName, last_update_time: Date.now() })
          .where('model_id', '=', id)
          .execute();
        await recordEvent(
          trx,
          domainEvent('model.renamed', modelSubject(newName), { name: newName, previousName: name }),
        );
        return id;
      });
      return await this.#modelById(modelId, newName);
    } catch (err) {
      if (isUniqueViolation(err)) throw modelNameTaken(newName);
      throw err;
    }
  }

  async deleteModel(name: string): Promise<void> {
    name = normalizeModelName(name);
    await this.#transaction(async (trx) => {
      const row = await requireModel(trx, name, this.#lockRows);
      const id = Number(row.model_id);
      const versions = await trx
        .selectFrom('model_versions')
        .select('version')
        .where('model_id', '=', id)
        .orderBy('version')
        .execute();
      // Foreign keys cascade to versions, tags, aliases and history.
      await trx.deleteFrom('registered_models').where('model_id', '=', id).execute();
      await recordEvent(
        trx,
        domainEvent('model.deleted', modelSubject(name), { name, versions: versions.map((v) => Number(v.version)) }),
      );
    });
  }

  async searchModels(options: SearchModelsOptions = {}): Promise<Page<RegisteredModel>> {
    const maxResults = resolveMaxResults(options.maxResults, SEARCH_MODELS_PAGE);
    const { ids, nextPageToken } = await searchModelIds(this.#db, this.#dialect, {
      filter: options.filter,
      orderBy: options.orderBy,
      maxResults,
      pageToken: options.pageToken,
    });
    const models = await loadModels(this.#db, ids);
    const items = ids.flatMap((id) => models.get(id) ?? []);
    return nextPageToken ? { items, nextPageToken } : { items };
  }

  // ---------------------------------------------------------------- versions

  async createVersion(input: CreateVersionInput): Promise<ModelVersion> {
    input = { ...input, name: normalizeModelName(input?.name) };
    if (typeof input.source !== 'string' || input.source.trim() === '') {
      throw new ValidationError('source must be a non-empty artifact URI', { field: 'source' });
    }
    validateOptionalLine(input.source, 'source', 'sourceLength');
    validateOptionalLine(input.runLink, 'runLink', 'runLinkLength');
    validateOptionalString(input.description, 'description', 'descriptionLength');
    validateOptionalLine(input.userId, 'userId', 'userIdLength');
    validateSignature(input.signature);
    const tags = validateTags(input.tags);
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
    // A run linked to another tracking server cannot be checked here; a local one must exist.
    if (runId !== undefined && input.runLink === undefined && this.#tracker) await this.#tracker.getRun(runId);
    const now = Date.now();
    const key = await this.#transaction(async (trx) => {
      const model = await requireModel(trx, input.name, this.#lockRows);
      const modelId = Number(model.model_id);
      const version = await nextVersionNumber(trx, modelId, now);
      if (version === undefined) throw modelNotFound(input.name);
      await trx
        .insertInto('model_versions')
        .values({
          model_id: modelId,
          version,
          source: input.source,
          run_id: runId ?? null,
          run_link: input.runLink ?? null,
          signature: input.signature === undefined ? null : JSON.stringify(input.signature),
          status: 'READY',
          status_message: null,
          stage: 'None',
          description: input.description ?? '',
          // Whoever registers the version is its user unless the input names another.
          user_id: input.userId ?? currentActor()?.actor ?? null,
          creation_time: now,
          last_update_time: now,
        })
        .execute();
      if (tags.length > 0) {
        await trx
          .insertInto('model_version_tags')
          .values(tags.map(([key, value]) => ({ model_id: modelId, version, key, value })))
          .execute();
      }
      await recordEvent(
        trx,
        domainEvent(
          'model.version.created',
          modelSubject(input.name),
          {
            name: input.name,
            version,
            source: input.source,
            ...(runId !== undefined ? { runId } : {}),
            ...(input.runLink !== undefined ? { runLink: input.runLink } : {}),
            status: 'READY',
          },
          { actor: input.userId },
        ),
      );
      return { modelId, version };
    });
    const created = await this.#versionByKey(key.modelId, key.version, input.name);
    return created;
  }

  async getVersion(name: string, version: number): Promise<ModelVersion> {
    name = normalizeModelName(name);
    validateVersionNumber(version);
    const found = await findVersionByName(this.#db, this.#dialect, name, { version });
    if (found) return found;
    await requireModel(this.#db, name);
    throw versionNotFound(name, version);
  }

  async updateVersion(name: string, version: number, changes: { readonly description: string }): Promise<ModelVersion> {
    name = normalizeModelName(name);
    validateVersionNumber(version);
    validateDescription(changes?.description);
    const modelId = await this.#transaction(async (trx) => {
      const { modelId } = await requireVersion(trx, name, version, this.#lockRows);
      const now = Date.now();
      await trx
        .updateTable('model_versions')
        .set({ description: changes.description, last_update_time: now })
        .where('model_id', '=', modelId)
        .where('version', '=', version)
        .execute();
      await recordEvent(
        trx,
        domainEvent('model.version.updated', modelSubject(name), { name, version, description: changes.description }),
      );
      return modelId;
    });
    return this.#versionByKey(modelId, version, name);
  }

  async deleteVersion(name: string, version: number): Promise<void> {
    name = normalizeModelName(name);
    validateVersionNumber(version);
    await this.#transaction(async (trx) => {
      const { modelId, row } = await requireVersion(trx, name, version, this.#lockRows);
      const now = Date.now();
      const aliases = await trx
        .selectFrom('registered_model_aliases')
        .select('alias')
        .where('model_id', '=', modelId)
        .where('version', '=', version)
        .orderBy('alias')
        .execute();
      if (aliases.length > 0) {
        await trx
          .insertInto('model_alias_moves')
          .values(
            aliases.map((a) => ({
              model_id: modelId,
              alias: a.alias,
              from_version: version,
              to_version: null,
              actor: null,
              reason: `version ${version} was deleted`,
              move_time: now,
            })),
          )
          .execute();
      }
      // Tags and aliases of the version cascade.
      await trx.deleteFrom('model_versions').where('model_id', '=', modelId).where('version', '=', version).execute();
      await touchModel(trx, modelId, now);
      await recordEvent(
        trx,
        domainEvent('model.version.deleted', modelSubject(name), {
          name,
          version,
          stage: row.stage,
          aliases: aliases.map((a) => a.alias),
        }),
      );
    });
  }

  async searchVersions(options: SearchVersionsOptions = {}): Promise<Page<ModelVersion>> {
    const maxResults = resolveMaxResults(options.maxResults, SEARCH_VERSIONS_PAGE);
    const { keys, nextPageToken } = await searchVersionKeys(this.#db, this.#dialect, {
      filter: options.filter,
      orderBy: options.orderBy,
      maxResults,
      pageToken: options.pageToken,
    });
    const versions = await loadVersions(this.#db, keys);
    const items = keys.flatMap((k) => versions.get(`${k.modelId}/${k.version}`) ?? []);
    return nextPageToken ? { items, nextPageToken } : { items };
  }

  async getLatestVersions(name: string, stages?: readonly ModelStage[]): Promise<readonly ModelVersion[]> {
    name = normalizeModelName(name);
    if (stages !== undefined && !Array.isArray(stages)) {
      throw new ValidationError('stages must be an array of stage names', { field: 'stages' });
    }
    const wanted = stages === undefined ? MODEL_STAGES : [...new Set(stages.map((s) => normalizeStage(String(s))))];
    const model = await requireModel(this.#db, name);
    return latestVersions(this.#db, Number(model.model_id), wanted);
  }

  // ---------------------------------------------------------------- stages

  async transitionStage(input: TransitionStageInput): Promise<ModelVersion> {
    // An actor named in the input wins; otherwise whoever the work is done for (actingAs).
    const actor = input?.actor ?? currentActor()?.actor;
    input = { ...input, name: normalizeModelName(input?.name) };
    validateVersionNumber(input.version);
    if (typeof input.to !== 'string') throw new ValidationError('to must be a stage name', { field: 'stage' });
    const to = normalizeStage(input.to);
    validateOptionalString(input.reason, 'reason', 'reasonLength');
    validateOptionalLine(actor, 'actor', 'userIdLength');
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
    const modelId = await this.#transaction(async (trx) => {
      const { modelId, row } = await requireVersion(trx, input.name, input.version, this.#lockRows);
      if (row.stage !== current.stage) {
        throw new ConflictError(
          `${input.name} v${input.version} moved from ${current.stage} to ${row.stage} while the promotion was being checked; retry`,
        );
      }
      await this.#requireUnchanged(trx, modelId, input.expected);
      const now = Date.now();
      const moves: { version: number; from: string; causedBy: number | null }[] = [
        { version: input.version, from: row.stage, causedBy: null },
      ];
      if (archiveExisting) {
        const others = await trx
          .selectFrom('model_versions')
          .select(['version', 'stage'])
          .where('model_id', '=', modelId)
          .where('stage', '=', to)
          .where('version', '!=', input.version)
          .orderBy('version')
          .execute();
        for (const o of others) moves.push({ version: Number(o.version), from: o.stage, causedBy: input.version });
      }
      const events: DomainEvent[] = [];
      for (const move of moves) {
        const target = move.causedBy === null ? to : 'Archived';
        await trx
          .updateTable('model_versions')
          .set({ stage: target, last_update_time: now })
          .where('model_id', '=', modelId)
          .where('version', '=', move.version)
          .execute();
        await trx
          .insertInto('model_stage_transitions')
          .values({
            model_id: modelId,
            version: move.version,
            from_stage: move.from,
            to_stage: target,
            actor: actor ?? null,
            reason: input.reason ?? null,
            caused_by_version: move.causedBy,
            transition_time: now,
          })
          .execute();
        events.push(
          domainEvent(
            'model.version.stage.transitioned',
            modelSubject(input.name),
            {
              name: input.name,
              version: move.version,
              from: move.from,
              to: target,
              ...(input.reason !== undefined ? { reason: input.reason } : {}),
              ...(move.causedBy !== null ? { causedBy: { version: move.causedBy } } : {}),
            },
            { actor },
          ),
        );
      }
      await touchModel(trx, modelId, now);
      await recordEvent(trx, events);
      return modelId;
    });
    return this.#versionByKey(modelId, input.version, input.name);
  }

  async getTransitionHistory(
    name: string,
    version?: number,
    options: PageOptions = {},
  ): Promise<Page<StageTransition>> {
    name = normalizeModelName(name);
    if (version !== undefined) validateVersionNumber(version);
    const maxResults = resolveMaxResults(options.maxResults, TRANSITION_HISTORY_PAGE);
    const model = await requireModel(this.#db, name);
    const modelId = Number(model.model_id);
    // History outlives deleted versions, so only a number never assigned is unknown.
    if (version !== undefined && version > Number(model.last_version)) throw versionNotFound(name, version);
    const scope = `${modelId}/${version ?? '*'}`;
    let after = 0;
    if (options.pageToken !== undefined) {
      const state = decodePageToken<{ a?: unknown; s?: unknown }>(options.pageToken);
      if (!state || typeof state !== 'object' || !Number.isSafeInteger(state.a)) {
        throw malformedPageToken();
      }
      if (state.s !== scope) {
        throw new ValidationError(
          'pageToken belongs to another history: keep name and version unchanged while paging',
          {
            field: 'pageToken',
          },
        );
      }
      after = state.a as number;
    }
    let q = this.#db
      .selectFrom('model_stage_transitions')
      .selectAll()
      .where('model_id', '=', modelId)
      .where('transition_id', '>', after);
    if (version !== undefined) q = q.where('version', '=', version);
    const rows = await q
      .orderBy('transition_id')
      .limit(maxResults + 1)
      .execute();
    const page = rows.slice(0, maxResults);
    const items = page.map((r) => toTransition(r, name));
    const last = page.at(-1);
    return rows.length > maxResults && last
      ? { items, nextPageToken: encodePageToken({ a: Number(last.transition_id), s: scope }) }
      : { items };
  }

  // ---------------------------------------------------------------- aliases

  async setAlias(input: SetAliasInput): Promise<void> {
    // An actor named in the input wins; otherwise whoever the work is done for (actingAs).
    const actor = input?.actor ?? currentActor()?.actor;
    input = { ...input, name: normalizeModelName(input?.name) };
    if (typeof input.alias !== 'string') throw new ValidationError('alias must be a string', { field: 'alias' });
    validateAlias(input.alias);
    validateVersionNumber(input.version);
    validateOptionalLine(actor, 'actor', 'userIdLength');
    validateOptionalString(input.reason, 'reason', 'reasonLength');
    await this.getVersion(input.name, input.version);
    const model = await requireModel(this.#db, input.name);
    const previous = await findAlias(this.#db, Number(model.model_id), input.alias);
    if (previous === input.version) return;
    const modelId = await this.#transaction(async (trx) => {
      const { modelId } = await requireVersion(trx, input.name, input.version, this.#lockRows);
      const now = Date.now();
      const current = await findAlias(trx, modelId, input.alias);
      await this.#requireUnchanged(trx, modelId, input.expected);
      const judged = input.expectedPrevious === undefined ? previous : (input.expectedPrevious ?? undefined);
      if (current !== previous || current !== judged) {
        throw new ConflictError(
          `alias '${input.alias}' of model '${input.name}' moved while the promotion was being checked; retry`,
        );
      }
      await trx
        .insertInto('registered_model_aliases')
        .values({ model_id: modelId, alias: input.alias, version: input.version })
        .onConflict((oc) => oc.columns(['model_id', 'alias']).doUpdateSet({ version: input.version }))
        .execute();
      await trx
        .insertInto('model_alias_moves')
        .values({
          model_id: modelId,
          alias: input.alias,
          from_version: previous ?? null,
          to_version: input.version,
          actor: actor ?? null,
          reason: input.reason ?? null,
          move_time: now,
        })
        .execute();
      await touchModel(trx, modelId, now);
      await recordEvent(
        trx,
        domainEvent(
          'model.alias.set',
          modelSubject(input.name),
          {
            name: input.name,
            alias: input.alias,
            version: input.version,
            ...(previous !== undefined ? { previousVersion: previous } : {}),
            ...(input.reason !== undefined ? { reason: input.reason } : {}),
          },
          { actor },
        ),
      );
      return modelId;
    });
    void modelId;
  }

  async deleteAlias(name: string, alias: string): Promise<void> {
    name = normalizeModelName(name);
    if (typeof alias !== 'string') throw new ValidationError('alias must be a string', { field: 'alias' });
    await this.#transaction(async (trx) => {
      const model = await requireModel(trx, name, this.#lockRows);
      const modelId = Number(model.model_id);
      const current = await findAlias(trx, modelId, alias);
      if (current === undefined) return;
      const now = Date.now();
      await trx
        .deleteFrom('registered_model_aliases')
        .where('model_id', '=', modelId)
        .where('alias', '=', alias)
        .execute();
      await trx
        .insertInto('model_alias_moves')
        .values({
          model_id: modelId,
          alias,
          from_version: current,
          to_version: null,
          actor: null,
          reason: null,
          move_time: now,
        })
        .execute();
      await touchModel(trx, modelId, now);
      await recordEvent(trx, domainEvent('model.alias.deleted', modelSubject(name), { name, alias, version: current }));
    });
  }

  async getVersionByAlias(name: string, alias: string): Promise<ModelVersion> {
    name = normalizeModelName(name);
    if (typeof alias !== 'string') throw new ValidationError('alias must be a string', { field: 'alias' });
    const found = await findVersionByName(this.#db, this.#dialect, name, { alias });
    if (found) return found;
    // A miss: say whether the model, the alias or (after a concurrent delete) the version is missing.
    const model = await requireModel(this.#db, name);
    const modelId = Number(model.model_id);
    const version = await findAlias(this.#db, modelId, alias);
    if (version === undefined) throw new NotFoundError(`model '${name}' has no alias '${alias}'`);
    return this.#versionByKey(modelId, version, name);
  }

  /** Every move of the model's aliases (or of one alias), oldest first: who pointed it where, when and why. */
  async getAliasHistory(name: string, alias?: string): Promise<readonly AliasMove[]> {
    name = normalizeModelName(name);
    validateOptionalString(alias, 'alias');
    const model = await requireModel(this.#db, name);
    let q = this.#db.selectFrom('model_alias_moves').selectAll().where('model_id', '=', Number(model.model_id));
    if (alias !== undefined) q = q.where('alias', '=', alias);
    const rows = await q.orderBy('move_id').execute();
    return rows.map((r) => ({
      name,
      alias: r.alias,
      ...(r.from_version !== null ? { fromVersion: Number(r.from_version) } : {}),
      ...(r.to_version !== null ? { toVersion: Number(r.to_version) } : {}),
      ...(r.actor !== null ? { actor: r.actor } : {}),
      ...(r.reason !== null ? { reason: r.reason } : {}),
      at: new Date(Number(r.move_time)),
    }));
  }

  // ---------------------------------------------------------------- tags

  async setModelTag(name: string, key: string, value: string): Promise<void> {
    name = normalizeModelName(name);
    validateTag(key, value);
    await this.#transaction(async (trx) => {
      const modelId = Number((await requireModel(trx, name, this.#lockRows)).model_id);
      await trx
        .insertInto('registered_model_tags')
        .values({ model_id: modelId, key, value })
        .onConflict((oc) => oc.columns(['model_id', 'key']).doUpdateSet({ value }))
        .execute();
      await touchModel(trx, modelId, Date.now());
      await recordEvent(trx, domainEvent('model.tag.set', modelSubject(name), { name, key, value }));
    });
  }

  async deleteModelTag(name: string, key: string): Promise<void> {
    name = normalizeModelName(name);
    if (typeof key !== 'string') throw new ValidationError('tag key must be a string', { field: 'key' });
    await this.#transaction(async (trx) => {
      const modelId = Number((await requireModel(trx, name, this.#lockRows)).model_id);
      const deleted = await trx
        .deleteFrom('registered_model_tags')
        .where('model_id', '=', modelId)
        .where('key', '=', key)
        .executeTakeFirst();
      if (Number(deleted.numDeletedRows) === 0) return;
      await touchModel(trx, modelId, Date.now());
      await recordEvent(trx, domainEvent('model.tag.deleted', modelSubject(name), { name, key }));
    });
  }

  async setVersionTag(name: string, version: number, key: string, value: string): Promise<void> {
    name = normalizeModelName(name);
    validateVersionNumber(version);
    validateTag(key, value);
    await this.#transaction(async (trx) => {
      const { modelId } = await requireVersion(trx, name, version, this.#lockRows);
      await trx
        .insertInto('model_version_tags')
        .values({ model_id: modelId, version, key, value })
        .onConflict((oc) => oc.columns(['model_id', 'version', 'key']).doUpdateSet({ value }))
        .execute();
      await touchVersion(trx, modelId, version, Date.now());
      await recordEvent(trx, domainEvent('model.version.tag.set', modelSubject(name), { name, version, key, value }));
    });
  }

  async deleteVersionTag(name: string, version: number, key: string): Promise<void> {
    name = normalizeModelName(name);
    validateVersionNumber(version);
    if (typeof key !== 'string') throw new ValidationError('tag key must be a string', { field: 'key' });
    await this.#transaction(async (trx) => {
      const { modelId } = await requireVersion(trx, name, version, this.#lockRows);
      const deleted = await trx
        .deleteFrom('model_version_tags')
        .where('model_id', '=', modelId)
        .where('version', '=', version)
        .where('key', '=', key)
        .executeTakeFirst();
      if (Number(deleted.numDeletedRows) === 0) return;
      await touchVersion(trx, modelId, version, Date.now());
      await recordEvent(trx, domainEvent('model.version.tag.deleted', modelSubject(name), { name, version, key }));
    });
  }

  // ---------------------------------------------------------------- lineage and URIs

  async getLineage(name: string, version: number): Promise<ModelLineage> {
    const v = await this.getVersion(name, version);
    const lineage: ModelLineage = {
      name: v.name,
      version: v.version,
      source: v.source,
      ...(v.runId !== undefined ? { runId: v.runId } : {}),
      ...(v.runLink !== undefined ? { runLink: v.runLink } : {}),
    };
    if (v.runId === undefined || v.runLink !== undefined || !this.#tracker) return lineage;
    let run: Awaited<ReturnType<ExperimentTracker['getRun']>>;
    try {
      run = await this.#tracker.getRun(v.runId);
    } catch (err) {
      // The run may have been purged since; the version still names it.
      if (err instanceof NotFoundError) return lineage;
      throw err;
    }
    return {
      ...lineage,
      experimentId: run.info.experimentId,
      run,
      artifacts: await listArtifacts(this.#tracker, v.runId),
    };
  }

  async resolve(modelUri: string): Promise<ModelVersion> {
    if (typeof modelUri !== 'string') throw new ValidationError('modelUri must be a string', { field: 'modelUri' });
    const parsed = parseModelUri(modelUri);
    const uri = { ...parsed, name: normalizeModelName(parsed.name) };
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
        const model = await requireModel(this.#db, uri.name);
        const row = await this.#db
          .selectFrom('model_versions')
          .select((eb) => eb.fn.max('version').as('version'))
          .where('model_id', '=', Number(model.model_id))
          .executeTakeFirst();
        if (row?.version === null || row?.version === undefined) {
          throw new NotFoundError(`model '${uri.name}' has no versions`);
        }
        return this.#versionByKey(Number(model.model_id), Number(row.version), uri.name);
      }
    }
  }

  // ---------------------------------------------------------------- internals

  async #modelById(modelId: number, name: string): Promise<RegisteredModel> {
    const model = (await loadModels(this.#db, [modelId])).get(modelId);
    if (!model) throw modelNotFound(name);
    return model;
  }

  async #versionByKey(modelId: number, version: number, name: string): Promise<ModelVersion> {
    const found = await loadVersion(this.#db, modelId, version);
    if (!found) throw versionNotFound(name, version);
    return found;
  }

  /**
   * The promotion check: inside the write's transaction (the version row locked on PostgreSQL, the database on
   * SQLite), the version must still be what the `model.beforePromote` policies judged, or nothing is applied.
   */
  async #requireUnchanged(trx: Trx, modelId: number, expected: ModelVersion | undefined): Promise<void> {
    if (!expected) return;
    const now = await loadVersion(trx, modelId, expected.version);
    if (!now) throw versionNotFound(expected.name, expected.version);
    const drift = changedFields(expected, now);
    if (drift.length > 0) {
      throw new ConflictError(
        `${expected.name} v${expected.version} changed (${drift.join(', ')}) while the promotion policies were judging it; nothing was applied, retry`,
      );
    }
  }
}

// ---------------------------------------------------------------- helpers

const modelSubject = (name: string) => `model:${name}`;

function modelNotFound(name: string): NotFoundError {
  return new NotFoundError(`registered model '${name}' does not exist`);
}

function versionNotFound(name: string, version: number): NotFoundError {
  return new NotFoundError(`version ${version} of model '${name}' does not exist`);
}

function modelNameTaken(name: string): ConflictError {
  return new ConflictError(`a registered model named '${name}' already exists`);
}

async function requireModel(db: Db, name: string, forUpdate = false): Promise<RegisteredModelRow> {
  const row = await findModelByName(db, name, forUpdate);
  if (!row) throw modelNotFound(name);
  return row;
}

async function requireVersion(
  db: Db,
  name: string,
  version: number,
  lockModel = false,
): Promise<{ modelId: number; row: ModelVersionRow }> {
  const modelId = Number((await requireModel(db, name, lockModel)).model_id);
  const row = await findVersion(db, modelId, version);
  if (!row) throw versionNotFound(name, version);
  return { modelId, row };
}

async function touchVersion(trx: Trx, modelId: number, version: number, now: number): Promise<void> {
  await trx
    .updateTable('model_versions')
    .set({ last_update_time: now })
    .where('model_id', '=', modelId)
    .where('version', '=', version)
    .execute();
}

/** Walks the run's artifact tree breadth first, up to LINEAGE_ARTIFACT_LIMIT entries. */
async function listArtifacts(tracker: ExperimentTracker, runId: string): Promise<RunArtifact[]> {
  const out: RunArtifact[] = [];
  const dirs: (string | undefined)[] = [undefined];
  while (dirs.length > 0 && out.length < LINEAGE_ARTIFACT_LIMIT) {
    const path = dirs.shift();
    let pageToken: string | undefined;
    do {
      const page = await tracker.listRunArtifacts(runId, {
        ...(path !== undefined ? { path } : {}),
        ...(pageToken !== undefined ? { pageToken } : {}),
      });
      for (const item of page.items) {
        if (out.length >= LINEAGE_ARTIFACT_LIMIT) return out;
        out.push(item);
        if (item.isDir) dirs.push(item.path);
      }
      pageToken = page.nextPageToken;
    } while (pageToken);
  }
  return out;
}

/** What a promotion policy may have based its judgement on, compared between the judged and the stored version. */
function changedFields(a: ModelVersion, b: ModelVersion): string[] {
  const sortedTags = (v: ModelVersion) => JSON.stringify(Object.entries(v.tags).sort(([x], [y]) => (x < y ? -1 : 1)));
  const checks: [string, unknown, unknown][] = [
    ['stage', a.stage, b.stage],
    ['status', a.status, b.status],
    ['description', a.description, b.description],
    ['source', a.source, b.source],
    ['runId', a.runId, b.runId],
    ['tags', sortedTags(a), sortedTags(b)],
    ['aliases', [...a.aliases].sort().join(','), [...b.aliases].sort().join(',')],
  ];
  return checks.filter(([, x, y]) => x !== y).map(([name]) => name);
}
