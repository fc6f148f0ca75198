import {
  MODEL_STAGES,
  type ModelLineage,
  type ModelVersion,
  modelRegistryInputs,
  NotFoundError,
  type RegisteredModel,
  runIdOfSource,
  type StageTransition,
  ValidationError,
} from '@mlplane/core';
import { z } from 'zod';
import { actorOf } from '../http/auth.js';
import { PROJECT_TAG } from '../http/projects.js';
import { defineRoute } from '../http/route.js';
import type { ApiServices } from '../http/services.js';
import {
  argumentSchema,
  assertWritableTag,
  iso,
  isoDate,
  pageQuery,
  pageSchema,
  pageWire,
  projectParams,
  refuseReservedTags,
  runSchema,
  runWire,
  stringRecord,
} from './wire.js';

// ---------------------------------------------------------------- wire forms

const signatureSchema = z.object({
  inputs: z.array(z.record(z.string(), z.unknown())),
  outputs: z.array(z.record(z.string(), z.unknown())),
  params: z.array(z.record(z.string(), z.unknown())).optional(),
});

export const versionSchema = z.object({
  name: z.string(),
  version: z.number().int(),
  source: z.string(),
  runId: z.string().optional(),
  runLink: z.string().optional(),
  signature: signatureSchema.optional(),
  status: z.enum(['PENDING_REGISTRATION', 'FAILED_REGISTRATION', 'READY']),
  statusMessage: z.string().optional(),
  stage: z.enum(MODEL_STAGES),
  tags: stringRecord,
  description: z.string(),
  aliases: z.array(z.string()),
  userId: z.string().optional(),
  createdAt: isoDate,
  updatedAt: isoDate,
});
export const versionWire = (v: ModelVersion): z.infer<typeof versionSchema> => ({
  name: v.name,
  version: v.version,
  source: v.source,
  ...(v.runId ? { runId: v.runId } : {}),
  ...(v.runLink ? { runLink: v.runLink } : {}),
  ...(v.signature ? { signature: v.signature as unknown as z.infer<typeof signatureSchema> } : {}),
  status: v.status,
  ...(v.statusMessage ? { statusMessage: v.statusMessage } : {}),
  stage: v.stage,
  tags: { ...v.tags },
  description: v.description,
  aliases: [...v.aliases],
  ...(v.userId ? { userId: v.userId } : {}),
  createdAt: iso(v.createdAt),
  updatedAt: iso(v.updatedAt),
});

export const modelSchema = z.object({
  name: z.string(),
  description: z.string(),
  tags: stringRecord,
  aliases: z.record(z.string(), z.number().int()),
  latestVersions: z.array(versionSchema),
  userId: z.string().optional(),
  createdAt: isoDate,
  updatedAt: isoDate,
});
export const modelWire = (m: RegisteredModel): z.infer<typeof modelSchema> => ({
  name: m.name,
  description: m.description,
  tags: { ...m.tags },
  aliases: { ...m.aliases },
  latestVersions: m.latestVersions.map(versionWire),
  ...(m.userId ? { userId: m.userId } : {}),
  createdAt: iso(m.createdAt),
  updatedAt: iso(m.updatedAt),
});

const transitionSchema = z.object({
  name: z.string(),
  version: z.number().int(),
  from: z.enum(MODEL_STAGES),
  to: z.enum(MODEL_STAGES),
  actor: z.string().optional(),
  at: isoDate,
  reason: z.string().optional(),
  causedBy: z.object({ version: z.number().int() }).optional(),
});
const transitionWire = (t: StageTransition): z.infer<typeof transitionSchema> => ({
  name: t.name,
  version: t.version,
  from: t.from,
  to: t.to,
  ...(t.actor ? { actor: t.actor } : {}),
  at: iso(t.at),
  ...(t.reason ? { reason: t.reason } : {}),
  ...(t.causedBy ? { causedBy: { version: t.causedBy.version } } : {}),
});

const lineageSchema = z.object({
  name: z.string(),
  version: z.number().int(),
  source: z.string(),
  runId: z.string().optional(),
  runLink: z.string().optional(),
  experimentId: z.string().optional(),
  run: runSchema.optional(),
  artifacts: z.array(z.object({ path: z.string(), isDir: z.boolean(), size: z.number().optional() })).optional(),
});

// ---------------------------------------------------------------- inputs

const createModelInput = argumentSchema(modelRegistryInputs.createModel, 0) as z.ZodObject<{
  name: z.ZodType<string>;
  description: z.ZodOptional<z.ZodType<string>>;
  tags: z.ZodOptional<z.ZodType<Record<string, string>>>;
}>;
const createVersionInput = argumentSchema(modelRegistryInputs.createVersion, 0) as z.ZodObject<{
  name: z.ZodType<string>;
  source: z.ZodType<string>;
  runId: z.ZodOptional<z.ZodType<string>>;
  runLink: z.ZodOptional<z.ZodType<string>>;
  signature: z.ZodOptional<z.ZodType<unknown>>;
  description: z.ZodOptional<z.ZodType<string>>;
  tags: z.ZodOptional<z.ZodType<Record<string, string>>>;
  userId: z.ZodOptional<z.ZodType<string>>;
}>;
const modelName = argumentSchema(modelRegistryInputs.getModel, 0) as z.ZodType<string>;
const description = (
  argumentSchema(modelRegistryInputs.updateModel, 1) as z.ZodObject<{ description: z.ZodType<string> }>
).shape.description;
const tagValue = argumentSchema(modelRegistryInputs.setModelTag, 2) as z.ZodType<string>;
const alias = argumentSchema(modelRegistryInputs.getVersionByAlias, 1) as z.ZodType<string>;

const modelParams = projectParams.extend({ name: modelName });
/** Versions in paths are decimal strings: `/versions/3`. */
const versionNumber = z
  .string()
  .regex(/^[1-9]\d{0,15}$/, { error: 'must be a version number (1, 2, 3...)' })
  .transform(Number);
const versionParams = modelParams.extend({ version: versionNumber });
const tagKey = z.string().min(1).max(250);

/** MLflow's filter quoting: a single quote inside a quoted value is doubled. */
export const quoteFilterValue = (value: string) => `'${value.replaceAll("'", "''")}'`;

/** A filter clause restricting a search to one project's models, ahead of the caller's clauses. */
function modelsOfProject(project: string, filter: string | undefined): string {
  const own = `tags.\`${PROJECT_TAG}\` = ${quoteFilterValue(project)}`;
  return filter && filter.trim() !== '' ? `${own} and ${filter}` : own;
}

function versionsOfModel(name: string, filter: string | undefined): string {
  const own = `name = ${quoteFilterValue(name)}`;
  return filter && filter.trim() !== '' ? `${own} and ${filter}` : own;
}

/** The lineage a project may see: a producing run from another project is left out, not revealed. */
async function lineageWire(
  services: ApiServices,
  project: string,
  lineage: ModelLineage,
): Promise<z.infer<typeof lineageSchema>> {
  const base = {
    name: lineage.name,
    version: lineage.version,
    source: lineage.source,
    ...(lineage.runId ? { runId: lineage.runId } : {}),
    ...(lineage.runLink ? { runLink: lineage.runLink } : {}),
  };
  if (!lineage.runId) return base;
  try {
    await services.projects.run(project, lineage.runId);
  } catch (err) {
    if (err instanceof NotFoundError) return base;
    throw err;
  }
  return {
    ...base,
    ...(lineage.experimentId ? { experimentId: lineage.experimentId } : {}),
    ...(lineage.run ? { run: runWire(lineage.run) } : {}),
    ...(lineage.artifacts
      ? {
          artifacts: lineage.artifacts.map((a) => ({
            path: a.path,
            isDir: a.isDir,
            ...(a.size !== undefined ? { size: a.size } : {}),
          })),
        }
      : {}),
  };
}

const searchQuery = pageQuery.extend({
  filter: z.string().max(65_536).optional(),
  orderBy: z.union([z.string(), z.array(z.string())]).optional(),
});

export const modelRoutes = [
  defineRoute({
    operationId: 'createModel',
    method: 'POST',
    path: '/projects/{project}/models',
    summary: 'Register a model in the project (names are unique across projects)',
    tag: 'models',
    permission: 'model.write',
    scope: 'project',
    params: projectParams,
    body: createModelInput.strict(),
    response: modelSchema,
    status: 201,
    async handle({ body, project, services }) {
      refuseReservedTags(body.tags);
      const model = await services.registry.createModel({ ...body, tags: { ...body.tags, [PROJECT_TAG]: project } });
      services.projects.remember('model', model.name, project);
      return modelWire(model);
    },
  }),
  defineRoute({
    operationId: 'searchModels',
    method: 'GET',
    path: '/projects/{project}/models',
    summary: "Search the project's registered models (MLflow's filter language)",
    tag: 'models',
    permission: 'model.read',
    scope: 'project',
    params: projectParams,
    query: searchQuery,
    response: pageSchema(modelSchema),
    async handle({ query, project, services }) {
      const page = await services.registry.searchModels({
        filter: modelsOfProject(project, query.filter),
        ...(query.orderBy ? { orderBy: [query.orderBy].flat() } : {}),
        ...(query.maxResults ? { maxResults: query.maxResults } : {}),
        ...(query.pageToken ? { pageToken: query.pageToken } : {}),
      });
      return pageWire(page, modelWire);
    },
  }),
  defineRoute({
    operationId: 'getModel',
    method: 'GET',
    path: '/projects/{project}/models/{name}',
    summary: 'Get a registered model with its aliases and latest version per stage',
    tag: 'models',
    permission: 'model.read',
    scope: 'project',
    params: modelParams,
    response: modelSchema,
    async handle({ params, services }) {
      await services.projects.model(params.project, params.name);
      return modelWire(await services.registry.getModel(params.name));
    },
  }),
  defineRoute({
    operationId: 'updateModel',
    method: 'PATCH',
    path: '/projects/{project}/models/{name}',
    summary: "Change a model's description, or rename it (versions, aliases and history move with it)",
    tag: 'models',
    permission: 'model.write',
    scope: 'project',
    params: modelParams,
    body: z
      .object({ description: description.optional(), newName: modelName.optional() })
      .strict()
      .refine((b) => b.description !== undefined || b.newName !== undefined, {
        error: 'needs description or newName',
      }),
    response: modelSchema,
    async handle({ params, body, services }) {
      await services.projects.model(params.project, params.name);
      let model: RegisteredModel | undefined;
      if (body.description !== undefined) {
        model = await services.registry.updateModel(params.name, { description: body.description });
      }
      if (body.newName !== undefined && body.newName !== params.name) {
        model = await services.registry.renameModel(params.name, body.newName);
        // Another model may take the old name later, in any project.
        services.projects.forgetModel(params.name);
        services.projects.remember('model', body.newName, params.project);
      }
      return modelWire(model ?? (await services.registry.getModel(params.name)));
    },
  }),
  defineRoute({
    operationId: 'deleteModel',
    method: 'DELETE',
    path: '/projects/{project}/models/{name}',
    summary: 'Delete a registered model with every version, alias and tag (not restorable)',
    tag: 'models',
    permission: 'model.delete',
    scope: 'project',
    params: modelParams,
    response: 'empty',
    async handle({ params, services }) {
      await services.projects.model(params.project, params.name);
      await services.registry.deleteModel(params.name);
      services.projects.forgetModel(params.name);
      return undefined;
    },
  }),
  defineRoute({
    operationId: 'setModelTag',
    method: 'PUT',
    path: '/projects/{project}/models/{name}/tags/{key}',
    summary: 'Set a tag on a registered model',
    tag: 'models',
    permission: 'model.write',
    scope: 'project',
    params: modelParams.extend({ key: tagKey }),
    body: z.object({ value: tagValue }).strict(),
    response: 'empty',
    async handle({ params, body, services }) {
      assertWritableTag(params.key);
      await services.projects.model(params.project, params.name);
      await services.registry.setModelTag(params.name, params.key, body.value);
      return undefined;
    },
  }),
  defineRoute({
    operationId: 'deleteModelTag',
    method: 'DELETE',
    path: '/projects/{project}/models/{name}/tags/{key}',
    summary: 'Delete a tag from a registered model (idempotent)',
    tag: 'models',
    permission: 'model.write',
    scope: 'project',
    params: modelParams.extend({ key: tagKey }),
    response: 'empty',
    async handle({ params, services }) {
      assertWritableTag(params.key);
      await services.projects.model(params.project, params.name);
      await services.registry.deleteModelTag(params.name, params.key);
      return undefined;
    },
  }),
  defineRoute({
    operationId: 'createModelVersion',
    method: 'POST',
    path: '/projects/{project}/models/{name}/versions',
    summary: 'Register a new version of a model from its files (and the run that produced them)',
    tag: 'versions',
    permission: 'model.write',
    scope: 'project',
    params: modelParams,
    body: createVersionInput.omit({ name: true, userId: true }).strict(),
    response: versionSchema,
    status: 201,
    async handle({ params, body, principal, services }) {
      refuseReservedTags(body.tags);
      await services.projects.model(params.project, params.name);
      // A version may only point at a run of the same project: its lineage would show the run. A `runs:/<id>/...`
      // source names its run as runId does (the registry links it).
      const runId = body.runId ?? runIdOfSource(body.source);
      if (runId) await services.projects.run(params.project, runId);
      const version = await services.registry.createVersion({
        ...(body as Omit<typeof body, 'signature'>),
        ...(body.signature ? { signature: body.signature as never } : {}),
        name: params.name,
        userId: actorOf(principal),
      });
      return versionWire(version);
    },
  }),
  defineRoute({
    operationId: 'searchModelVersions',
    method: 'GET',
    path: '/projects/{project}/models/{name}/versions',
    summary: "List or search a model's versions (MLflow's filter language)",
    tag: 'versions',
    permission: 'model.read',
    scope: 'project',
    params: modelParams,
    query: searchQuery,
    response: pageSchema(versionSchema),
    async handle({ params, query, services }) {
      await services.projects.model(params.project, params.name);
      const page = await services.registry.searchVersions({
        filter: versionsOfModel(params.name, query.filter),
        ...(query.orderBy ? { orderBy: [query.orderBy].flat() } : {}),
        ...(query.maxResults ? { maxResults: query.maxResults } : {}),
        ...(query.pageToken ? { pageToken: query.pageToken } : {}),
      });
      return pageWire(page, versionWire);
    },
  }),
  defineRoute({
    operationId: 'getModelVersion',
    method: 'GET',
    path: '/projects/{project}/models/{name}/versions/{version}',
    summary: 'Get a model version',
    tag: 'versions',
    permission: 'model.read',
    scope: 'project',
    params: versionParams,
    response: versionSchema,
    async handle({ params, services }) {
      await services.projects.model(params.project, params.name);
      return versionWire(await services.registry.getVersion(params.name, params.version));
    },
  }),
  defineRoute({
    operationId: 'updateModelVersion',
    method: 'PATCH',
    path: '/projects/{project}/models/{name}/versions/{version}',
    summary: "Change a version's description",
    tag: 'versions',
    permission: 'model.write',
    scope: 'project',
    params: versionParams,
    body: z.object({ description }).strict(),
    response: versionSchema,
    async handle({ params, body, services }) {
      await services.projects.model(params.project, params.name);
      return versionWire(
        await services.registry.updateVersion(params.name, params.version, { description: body.description }),
      );
    },
  }),
  defineRoute({
    operationId: 'deleteModelVersion',
    method: 'DELETE',
    path: '/projects/{project}/models/{name}/versions/{version}',
    summary: 'Delete a model version and the aliases pointing at it (its number is never reused)',
    tag: 'versions',
    permission: 'model.delete',
    scope: 'project',
    params: versionParams,
    response: 'empty',
    async handle({ params, services }) {
      await services.projects.model(params.project, params.name);
      await services.registry.deleteVersion(params.name, params.version);
      return undefined;
    },
  }),
  defineRoute({
    operationId: 'setModelVersionTag',
    method: 'PUT',
    path: '/projects/{project}/models/{name}/versions/{version}/tags/{key}',
    summary: 'Set a tag on a model version',
    tag: 'versions',
    permission: 'model.write',
    scope: 'project',
    params: versionParams.extend({ key: tagKey }),
    body: z.object({ value: tagValue }).strict(),
    response: 'empty',
    async handle({ params, body, services }) {
      assertWritableTag(params.key);
      await services.projects.model(params.project, params.name);
      await services.registry.setVersionTag(params.name, params.version, params.key, body.value);
      return undefined;
    },
  }),
  defineRoute({
    operationId: 'deleteModelVersionTag',
    method: 'DELETE',
    path: '/projects/{project}/models/{name}/versions/{version}/tags/{key}',
    summary: 'Delete a tag from a model version (idempotent)',
    tag: 'versions',
    permission: 'model.write',
    scope: 'project',
    params: versionParams.extend({ key: tagKey }),
    response: 'empty',
    async handle({ params, services }) {
      assertWritableTag(params.key);
      await services.projects.model(params.project, params.name);
      await services.registry.deleteVersionTag(params.name, params.version, params.key);
      return undefined;
    },
  }),
  defineRoute({
    operationId: 'transitionModelVersionStage',
    method: 'POST',
    path: '/projects/{project}/models/{name}/versions/{version}/stage',
    summary: 'Move a version to a stage, after the promotion policies agree (409 VETOED otherwise)',
    tag: 'versions',
    permission: 'model.promote',
    scope: 'project',
    params: versionParams,
    body: z
      .object({
        stage: z.string().max(64),
        /** Moves the other versions in Staging or Production to Archived. */
        archiveExistingVersions: z.boolean().optional(),
        comment: z.string().max(1000).optional(),
      })
      .strict(),
    response: versionSchema,
    async handle({ params, body, principal, services }) {
      const stage = MODEL_STAGES.find((s) => s.toLowerCase() === body.stage.toLowerCase());
      if (!stage) {
        throw new ValidationError(`unknown stage '${body.stage.slice(0, 64)}'; use one of ${MODEL_STAGES.join(', ')}`, {
          field: 'stage',
        });
      }
      await services.projects.model(params.project, params.name);
      const version = await services.registry.transitionStage({
        name: params.name,
        version: params.version,
        to: stage,
        ...(body.archiveExistingVersions !== undefined ? { archiveExisting: body.archiveExistingVersions } : {}),
        ...(body.comment !== undefined ? { reason: body.comment } : {}),
        actor: actorOf(principal),
      });
      return versionWire(version);
    },
  }),
  defineRoute({
    operationId: 'getModelVersionLineage',
    method: 'GET',
    path: '/projects/{project}/models/{name}/versions/{version}/lineage',
    summary: 'Where a version came from: its source, and the run, params, metrics and artifacts that produced it',
    tag: 'versions',
    permission: 'model.read',
    scope: 'project',
    params: versionParams,
    response: lineageSchema,
    async handle({ params, services }) {
      await services.projects.model(params.project, params.name);
      return lineageWire(services, params.project, await services.registry.getLineage(params.name, params.version));
    },
  }),
  defineRoute({
    operationId: 'getTransitionHistory',
    method: 'GET',
    path: '/projects/{project}/models/{name}/transitions',
    summary: "The model's stage transitions (of one version with ?version=), oldest first",
    tag: 'versions',
    permission: 'model.read',
    scope: 'project',
    params: modelParams,
    query: pageQuery.extend({ version: versionNumber.optional() }),
    response: pageSchema(transitionSchema),
    async handle({ params, query, services }) {
      await services.projects.model(params.project, params.name);
      const page = await services.registry.getTransitionHistory(params.name, query.version, {
        ...(query.maxResults ? { maxResults: query.maxResults } : {}),
        ...(query.pageToken ? { pageToken: query.pageToken } : {}),
      });
      return pageWire(page, transitionWire);
    },
  }),
  defineRoute({
    operationId: 'setModelAlias',
    method: 'PUT',
    path: '/projects/{project}/models/{name}/aliases/{alias}',
    summary: 'Point an alias at a version, after the promotion policies agree (409 VETOED otherwise)',
    tag: 'versions',
    permission: 'model.promote',
    scope: 'project',
    params: modelParams.extend({ alias }),
    body: z
      .object({
        version: z.number().int().min(1),
        comment: z.string().max(1000).optional(),
      })
      .strict(),
    response: 'empty',
    async handle({ params, body, principal, services }) {
      await services.projects.model(params.project, params.name);
      await services.registry.setAlias({
        name: params.name,
        alias: params.alias,
        version: body.version,
        actor: actorOf(principal),
        ...(body.comment !== undefined ? { reason: body.comment } : {}),
      });
      return undefined;
    },
  }),
  defineRoute({
    operationId: 'deleteModelAlias',
    method: 'DELETE',
    path: '/projects/{project}/models/{name}/aliases/{alias}',
    summary: 'Remove an alias (idempotent)',
    tag: 'versions',
    permission: 'model.promote',
    scope: 'project',
    params: modelParams.extend({ alias }),
    response: 'empty',
    async handle({ params, services }) {
      await services.projects.model(params.project, params.name);
      await services.registry.deleteAlias(params.name, params.alias);
      return undefined;
    },
  }),
  defineRoute({
    operationId: 'getModelVersionByAlias',
    method: 'GET',
    path: '/projects/{project}/models/{name}/aliases/{alias}',
    summary: 'The version an alias points at',
    tag: 'versions',
    permission: 'model.read',
    scope: 'project',
    params: modelParams.extend({ alias }),
    response: versionSchema,
    async handle({ params, services }) {
      await services.projects.model(params.project, params.name);
      return versionWire(await services.registry.getVersionByAlias(params.name, params.alias));
    },
  }),
];
