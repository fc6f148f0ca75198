import {
  MODEL_STAGES,
  type ModelSignature,
  type ModelStage,
  type ModelVersion,
  type ModelVersionStatus,
  type RegisteredModel,
  type StageTransition,
} from '@mlplane/core';
import { type ExpressionBuilder, type Kysely, sql, type Transaction } from 'kysely';
import type { SqlDialect } from '../dialect/dialect.js';
import type { ModelStageTransitionRow, ModelVersionRow, RegisteredModelRow, RegistryDatabase } from './schema.js';

type Db = Kysely<RegistryDatabase>;
type Trx = Transaction<RegistryDatabase>;

/** Both dialects cap bound parameters; key lists are read in chunks below either cap. */
const KEY_CHUNK = 200;

function chunks<T>(items: readonly T[], size = KEY_CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * The model row by name. `forUpdate` row-locks it until the transaction ends (Postgres; SQLite's write transactions
 * already exclude each other), which serializes the promotions of one model.
 */
export function findModelByName(db: Db, name: string, forUpdate = false): Promise<RegisteredModelRow | undefined> {
  const q = db.selectFrom('registered_models').selectAll().where('name', '=', name);
  return (forUpdate ? q.forUpdate() : q).executeTakeFirst();
}

export function findVersion(db: Db, modelId: number, version: number): Promise<ModelVersionRow | undefined> {
  return db
    .selectFrom('model_versions')
    .selectAll()
    .where('model_id', '=', modelId)
    .where('version', '=', version)
    .executeTakeFirst();
}

export async function findAlias(db: Db, modelId: number, alias: string): Promise<number | undefined> {
  const row = await db
    .selectFrom('registered_model_aliases')
    .select('version')
    .where('model_id', '=', modelId)
    .where('alias', '=', alias)
    .executeTakeFirst();
  return row === undefined ? undefined : Number(row.version);
}

/**
 * Allocates the model's next version number; the row update serializes concurrent callers on Postgres. Undefined
 * when the model row is gone (the caller says which model), rather than kysely's untyped NoResultError.
 */
export async function nextVersionNumber(trx: Trx, modelId: number, now: number): Promise<number | undefined> {
  const row = await trx
    .updateTable('registered_models')
    .set((eb) => ({ last_version: eb('last_version', '+', 1), last_update_time: now }))
    .where('model_id', '=', modelId)
    .returning('last_version')
    .executeTakeFirst();
  return row === undefined ? undefined : Number(row.last_version);
}

export function touchModel(trx: Trx, modelId: number, now: number): Promise<unknown> {
  return trx.updateTable('registered_models').set({ last_update_time: now }).where('model_id', '=', modelId).execute();
}

export function toVersion(
  row: ModelVersionRow,
  name: string,
  tags: Record<string, string>,
  aliases: readonly string[],
): ModelVersion {
  return {
    name,
    version: Number(row.version),
    source: row.source,
    ...(row.run_id !== null ? { runId: row.run_id } : {}),
    ...(row.run_link !== null ? { runLink: row.run_link } : {}),
    ...(row.signature !== null ? { signature: JSON.parse(row.signature) as ModelSignature } : {}),
    status: row.status as ModelVersionStatus,
    ...(row.status_message !== null ? { statusMessage: row.status_message } : {}),
    stage: row.stage as ModelStage,
    tags,
    description: row.description,
    aliases: [...aliases].sort(),
    ...(row.user_id !== null ? { userId: row.user_id } : {}),
    createdAt: new Date(Number(row.creation_time)),
    updatedAt: new Date(Number(row.last_update_time)),
  };
}

const versionKey = (modelId: number, version: number) => `${modelId}/${version}`;

/** Loads whole versions (tags and aliases included) for `(model_id, version)` pairs, keyed by `model_id/version`. */
export async function loadVersions(
  db: Db,
  keys: readonly { readonly modelId: number; readonly version: number }[],
): Promise<Map<string, ModelVersion>> {
  const out = new Map<string, ModelVersion>();
  for (const chunk of chunks(keys)) {
    if (chunk.length === 0) continue;
    const modelIds = [...new Set(chunk.map((k) => k.modelId))];
    const wanted = new Set(chunk.map((k) => versionKey(k.modelId, k.version)));
    const byModel = new Map<number, number[]>();
    for (const k of chunk) byModel.set(k.modelId, [...(byModel.get(k.modelId) ?? []), k.version]);
    // One OR term per model, so the expression stays shallow (SQLite caps expression depth).
    const versionsIn = (eb: ExpressionBuilder<RegistryDatabase, any>) =>
      eb.or(
        [...byModel].map(([modelId, versions]) =>
          eb.and([eb('model_id', '=', modelId), eb('version', 'in', versions)]),
        ),
      );
    const [names, rows, tags, aliases] = await Promise.all([
      db.selectFrom('registered_models').select(['model_id', 'name']).where('model_id', 'in', modelIds).execute(),
      db.selectFrom('model_versions').selectAll().where(versionsIn).execute(),
      db.selectFrom('model_version_tags').selectAll().where(versionsIn).execute(),
      db.selectFrom('registered_model_aliases').selectAll().where(versionsIn).execute(),
    ]);
    const nameOf = new Map(names.map((n) => [Number(n.model_id), n.name]));
    // Entries first, then Object.fromEntries: a tag named `__proto__` stays an own property.
    const tagEntries = new Map<string, [string, string][]>();
    for (const t of tags) {
      const key = versionKey(Number(t.model_id), Number(t.version));
      tagEntries.set(key, [...(tagEntries.get(key) ?? []), [t.key, t.value]]);
    }
    const tagsOf = new Map([...tagEntries].map(([key, entries]) => [key, Object.fromEntries(entries)]));
    const aliasesOf = new Map<string, string[]>();
    for (const a of aliases) {
      const key = versionKey(Number(a.model_id), Number(a.version));
      const list = aliasesOf.get(key) ?? [];
      list.push(a.alias);
      aliasesOf.set(key, list);
    }
    for (const row of rows) {
      const key = versionKey(Number(row.model_id), Number(row.version));
      const name = nameOf.get(Number(row.model_id));
      if (!wanted.has(key) || name === undefined) continue;
      out.set(key, toVersion(row, name, tagsOf.get(key) ?? {}, aliasesOf.get(key) ?? []));
    }
  }
  return out;
}

/**
 * The hot read of serving (`models:/<name>@<alias>`, `models:/<name>/<version>`): the whole version, tags and
 * aliases included, in one query instead of a model lookup, an alias lookup and four parallel reads. Undefined
 * when the model, the alias or the version is missing; the caller then tells which.
 */
export async function findVersionByName(
  db: Db,
  dialect: SqlDialect,
  name: string,
  by: { readonly alias: string } | { readonly version: number },
): Promise<ModelVersion | undefined> {
  let q = db
    .selectFrom('registered_models as m')
    .innerJoin('model_versions as v', 'v.model_id', 'm.model_id')
    .selectAll('v')
    .select((eb) => [
      eb
        .selectFrom('model_version_tags as t')
        .select(dialect.jsonArrayAgg([sql.ref('t.key'), sql.ref('t.value')]).as('pairs'))
        .whereRef('t.model_id', '=', 'v.model_id')
        .whereRef('t.version', '=', 'v.version')
        .as('tag_pairs'),
      eb
        .selectFrom('registered_model_aliases as va')
        .select(dialect.jsonArrayAgg([sql.ref('va.alias')]).as('names'))
        .whereRef('va.model_id', '=', 'v.model_id')
        .whereRef('va.version', '=', 'v.version')
        .as('alias_names'),
    ])
    .where('m.name', '=', name);
  q =
    'alias' in by
      ? q.where((eb) =>
          eb(
            'v.version',
            '=',
            eb
              .selectFrom('registered_model_aliases as a')
              .select('a.version')
              .whereRef('a.model_id', '=', 'm.model_id')
              .where('a.alias', '=', by.alias),
          ),
        )
      : q.where('v.version', '=', by.version);
  const row = await q.executeTakeFirst();
  if (!row) return undefined;
  const { tag_pairs, alias_names, ...version } = row;
  // Entries, then Object.fromEntries: a tag named `__proto__` stays an own property.
  const tags = Object.fromEntries(dialect.parseJson(tag_pairs) as [string, string][]);
  const aliases = (dialect.parseJson(alias_names) as [string][]).map(([alias]) => alias);
  return toVersion(version as ModelVersionRow, name, tags, aliases);
}

export async function loadVersion(db: Db, modelId: number, version: number): Promise<ModelVersion | undefined> {
  return (await loadVersions(db, [{ modelId, version }])).get(versionKey(modelId, version));
}

/** The highest version in each of `stages` that has one, ordered by MODEL_STAGES. */
export async function latestVersions(
  db: Db,
  modelId: number,
  stages: readonly ModelStage[] = MODEL_STAGES,
): Promise<ModelVersion[]> {
  if (stages.length === 0) return [];
  const rows = await db
    .selectFrom('model_versions')
    .select(['stage', (eb) => eb.fn.max('version').as('version')])
    .where('model_id', '=', modelId)
    .where('stage', 'in', [...stages])
    .groupBy('stage')
    .execute();
  const byStage = new Map(rows.map((r) => [r.stage, Number(r.version)]));
  const keys = MODEL_STAGES.flatMap((stage) => {
    const version = byStage.get(stage);
    return version === undefined ? [] : [{ modelId, version }];
  });
  const versions = await loadVersions(db, keys);
  return keys.flatMap((k) => versions.get(versionKey(k.modelId, k.version)) ?? []);
}

/** Loads whole registered models for `modelIds`, keyed by model id. */
export async function loadModels(db: Db, modelIds: readonly number[]): Promise<Map<number, RegisteredModel>> {
  const out = new Map<number, RegisteredModel>();
  for (const chunk of chunks(modelIds)) {
    if (chunk.length === 0) continue;
    const [rows, tags, aliases, latest] = await Promise.all([
      db.selectFrom('registered_models').selectAll().where('model_id', 'in', chunk).execute(),
      db.selectFrom('registered_model_tags').selectAll().where('model_id', 'in', chunk).execute(),
      db.selectFrom('registered_model_aliases').selectAll().where('model_id', 'in', chunk).execute(),
      db
        .selectFrom('model_versions')
        .select(['model_id', 'stage', (eb) => eb.fn.max('version').as('version')])
        .where('model_id', 'in', chunk)
        .groupBy(['model_id', 'stage'])
        .execute(),
    ]);
    const latestKeys = latest.map((l) => ({ modelId: Number(l.model_id), version: Number(l.version) }));
    const versions = await loadVersions(db, latestKeys);
    const stageRank = (v: ModelVersion) => MODEL_STAGES.indexOf(v.stage);
    for (const row of rows) {
      const id = Number(row.model_id);
      out.set(id, {
        name: row.name,
        description: row.description,
        tags: Object.fromEntries(tags.filter((t) => Number(t.model_id) === id).map((t) => [t.key, t.value])),
        aliases: Object.fromEntries(
          aliases
            .filter((a) => Number(a.model_id) === id)
            .sort((a, b) => (a.alias < b.alias ? -1 : a.alias > b.alias ? 1 : 0))
            .map((a) => [a.alias, Number(a.version)]),
        ),
        latestVersions: latestKeys
          .filter((k) => k.modelId === id)
          .flatMap((k) => versions.get(versionKey(k.modelId, k.version)) ?? [])
          .sort((a, b) => stageRank(a) - stageRank(b)),
        ...(row.user_id !== null ? { userId: row.user_id } : {}),
        createdAt: new Date(Number(row.creation_time)),
        updatedAt: new Date(Number(row.last_update_time)),
      });
    }
  }
  return out;
}

export function toTransition(row: ModelStageTransitionRow, name: string): StageTransition {
  return {
    name,
    version: Number(row.version),
    from: row.from_stage as ModelStage,
    to: row.to_stage as ModelStage,
    ...(row.actor !== null ? { actor: row.actor } : {}),
    at: new Date(Number(row.transition_time)),
    ...(row.reason !== null ? { reason: row.reason } : {}),
    ...(row.caused_by_version !== null ? { causedBy: { version: Number(row.caused_by_version) } } : {}),
  };
}
