import { type ModelVersion, normalizeStage, type RegisteredModel } from '@mlplane/core';
import { z } from 'zod';
import { PROJECT_TAG } from '../http/projects.js';
import { assertWritableTag, refuseReservedTags } from '../routes/wire.js';
import { type MlflowContext, mlflowRoute } from './context.js';
import {
  bool,
  keyValue,
  maxResults,
  modelVersionWire,
  registeredModelWire,
  repeated,
  tagRecord,
  versionNumber,
} from './wire.js';

async function renderVersion(ctx: MlflowContext, v: ModelVersion) {
  return modelVersionWire(v, await ctx.uris.versionSource(v));
}

async function renderModel(ctx: MlflowContext, m: RegisteredModel) {
  return registeredModelWire(m, await Promise.all(m.latestVersions.map((v) => renderVersion(ctx, v))));
}

/** The model, checked to be in the request's project (RESOURCE_DOES_NOT_EXIST otherwise). */
async function modelIn(ctx: MlflowContext, name: string): Promise<string> {
  await ctx.services.projects.model(ctx.project, name);
  return name;
}

/** Limits the caller's filter to the project's models (the registry's filter joins clauses with `and`). */
function modelsInProject(project: string, filter: string | undefined): string {
  const own = `tags.\`${PROJECT_TAG}\` = '${project}'`;
  return filter?.trim() ? `${own} and ${filter}` : own;
}

/** The tag MLflow 3 marks prompts with (they are registered models underneath). */
const PROMPT_TAG = 'mlflow.prompt.is_prompt';
/**
 * The clause MLflow 3's client appends to every model search to leave prompts out. MLflow matches a model without
 * the tag; the SQL registry's `!=` needs the tag present, so the clause is taken off and prompts are dropped here.
 */
const PROMPT_EXCLUSION = /(^|\s+and\s+)tags?\.`mlflow\.prompt\.is_prompt`\s*!=\s*'true'\s*$/i;

const modelRef = z.object({ name: z.string().min(1) });
const versionRef = z.object({ name: z.string().min(1), version: versionNumber });

export const registryRoutes = [
  mlflowRoute({
    method: 'POST',
    path: '/registered-models/create',
    operation: 'modelRegistry.createModel',
    conflict: 'RESOURCE_ALREADY_EXISTS',
    input: z.object({
      name: z.string(),
      tags: repeated(keyValue).optional(),
      description: z.string().optional(),
    }),
    async handle(ctx, input) {
      const tags = tagRecord(input.tags);
      refuseReservedTags(tags);
      const model = await ctx.services.registry.createModel({
        name: input.name,
        ...(input.description ? { description: input.description } : {}),
        tags: { ...tags, [PROJECT_TAG]: ctx.project },
      });
      ctx.services.projects.remember('model', model.name, ctx.project);
      return { registered_model: await renderModel(ctx, model) };
    },
  }),
  mlflowRoute({
    method: 'GET',
    path: '/registered-models/get',
    operation: 'modelRegistry.getModel',
    input: modelRef,
    async handle(ctx, input) {
      const name = await modelIn(ctx, input.name);
      return { registered_model: await renderModel(ctx, await ctx.services.registry.getModel(name)) };
    },
  }),
  mlflowRoute({
    method: 'POST',
    path: '/registered-models/rename',
    operation: 'modelRegistry.renameModel',
    conflict: 'RESOURCE_ALREADY_EXISTS',
    input: z.object({ name: z.string().min(1), new_name: z.string() }),
    async handle(ctx, input) {
      const name = await modelIn(ctx, input.name);
      const model = await ctx.services.registry.renameModel(name, input.new_name);
      ctx.services.projects.forgetModel(name);
      ctx.services.projects.remember('model', model.name, ctx.project);
      return { registered_model: await renderModel(ctx, model) };
    },
  }),
  mlflowRoute({
    method: 'PATCH',
    path: '/registered-models/update',
    operation: 'modelRegistry.updateModel',
    input: z.object({ name: z.string().min(1), description: z.string().optional() }),
    async handle(ctx, input) {
      const name = await modelIn(ctx, input.name);
      const model = await ctx.services.registry.updateModel(name, { description: input.description ?? '' });
      return { registered_model: await renderModel(ctx, model) };
    },
  }),
  mlflowRoute({
    method: 'DELETE',
    path: '/registered-models/delete',
    operation: 'modelRegistry.deleteModel',
    input: modelRef,
    async handle(ctx, input) {
      const name = await modelIn(ctx, input.name);
      await ctx.services.registry.deleteModel(name);
      ctx.services.projects.forgetModel(name);
      return {};
    },
  }),
  mlflowRoute({
    method: 'GET',
    path: '/registered-models/search',
    operation: 'modelRegistry.searchModels',
    input: z.object({
      filter: z.string().optional(),
      max_results: maxResults.optional(),
      order_by: repeated(z.string()).optional(),
      page_token: z.string().optional(),
    }),
    async handle(ctx, input) {
      const withoutPrompts = PROMPT_EXCLUSION.test(input.filter ?? '');
      const filter = withoutPrompts ? input.filter?.replace(PROMPT_EXCLUSION, '') : input.filter;
      const page = await ctx.services.registry.searchModels({
        filter: modelsInProject(ctx.project, filter),
        ...(input.order_by?.length ? { orderBy: input.order_by } : {}),
        ...(input.max_results ? { maxResults: input.max_results } : {}),
        ...(input.page_token ? { pageToken: input.page_token } : {}),
      });
      const models = await Promise.all(
        page.items.filter((m) => !withoutPrompts || m.tags[PROMPT_TAG] !== 'true').map((m) => renderModel(ctx, m)),
      );
      return {
        ...(models.length > 0 ? { registered_models: models } : {}),
        ...(page.nextPageToken ? { next_page_token: page.nextPageToken } : {}),
      };
    },
  }),
  mlflowRoute({
    method: 'POST',
    path: '/registered-models/set-tag',
    operation: 'modelRegistry.setModelTag',
    input: z.object({ name: z.string().min(1), key: z.string(), value: z.string() }),
    async handle(ctx, input) {
      assertWritableTag(input.key);
      await ctx.services.registry.setModelTag(await modelIn(ctx, input.name), input.key, input.value);
      return {};
    },
  }),
  mlflowRoute({
    method: 'DELETE',
    path: '/registered-models/delete-tag',
    operation: 'modelRegistry.deleteModelTag',
    input: z.object({ name: z.string().min(1), key: z.string() }),
    async handle(ctx, input) {
      assertWritableTag(input.key);
      await ctx.services.registry.deleteModelTag(await modelIn(ctx, input.name), input.key);
      return {};
    },
  }),
  mlflowRoute({
    method: 'POST',
    path: '/registered-models/alias',
    operation: 'modelRegistry.setAlias',
    input: z.object({ name: z.string().min(1), alias: z.string(), version: versionNumber }),
    async handle(ctx, input) {
      await ctx.services.registry.setAlias({
        name: await modelIn(ctx, input.name),
        alias: input.alias,
        version: input.version,
        actor: ctx.actor,
      });
      return {};
    },
  }),
  mlflowRoute({
    method: 'DELETE',
    path: '/registered-models/alias',
    operation: 'modelRegistry.deleteAlias',
    input: z.object({ name: z.string().min(1), alias: z.string() }),
    async handle(ctx, input) {
      await ctx.services.registry.deleteAlias(await modelIn(ctx, input.name), input.alias);
      return {};
    },
  }),
  mlflowRoute({
    method: 'GET',
    path: '/registered-models/alias',
    operation: 'modelRegistry.getVersionByAlias',
    input: z.object({ name: z.string().min(1), alias: z.string().min(1) }),
    async handle(ctx, input) {
      const version = await ctx.services.registry.getVersionByAlias(await modelIn(ctx, input.name), input.alias);
      return { model_version: await renderVersion(ctx, version) };
    },
  }),
  ...(['POST', 'GET'] as const).map((method) =>
    mlflowRoute({
      method,
      path: '/registered-models/get-latest-versions',
      operation: 'modelRegistry.getLatestVersions',
      input: z.object({ name: z.string().min(1), stages: repeated(z.string()).optional() }),
      async handle(ctx, input) {
        const stages = input.stages?.length ? input.stages.map(normalizeStage) : undefined;
        const versions = await ctx.services.registry.getLatestVersions(await modelIn(ctx, input.name), stages);
        const rendered = await Promise.all(versions.map((v) => renderVersion(ctx, v)));
        return rendered.length > 0 ? { model_versions: rendered } : {};
      },
    }),
  ),

  mlflowRoute({
    method: 'POST',
    path: '/model-versions/create',
    operation: 'modelRegistry.createVersion',
    input: z.object({
      name: z.string().min(1),
      source: z.string(),
      run_id: z.string().optional(),
      tags: repeated(keyValue).optional(),
      run_link: z.string().optional(),
      description: z.string().optional(),
    }),
    async handle(ctx, input) {
      const name = await modelIn(ctx, input.name);
      if (input.run_id) await ctx.services.projects.run(ctx.project, input.run_id);
      const tags = tagRecord(input.tags);
      refuseReservedTags(tags);
      const source = await ctx.uris.toStoreUri(ctx.services.projects, ctx.project, input.source, 'source');
      const version = await ctx.services.registry.createVersion({
        name,
        source,
        ...(input.run_id ? { runId: input.run_id } : {}),
        ...(input.run_link ? { runLink: input.run_link } : {}),
        ...(input.description ? { description: input.description } : {}),
        tags,
        userId: ctx.actor,
      });
      return { model_version: await renderVersion(ctx, version) };
    },
  }),
  mlflowRoute({
    method: 'GET',
    path: '/model-versions/get',
    operation: 'modelRegistry.getVersion',
    input: versionRef,
    async handle(ctx, input) {
      const version = await ctx.services.registry.getVersion(await modelIn(ctx, input.name), input.version);
      return { model_version: await renderVersion(ctx, version) };
    },
  }),
  mlflowRoute({
    method: 'PATCH',
    path: '/model-versions/update',
    operation: 'modelRegistry.updateVersion',
    input: versionRef.extend({ description: z.string().optional() }),
    async handle(ctx, input) {
      const version = await ctx.services.registry.updateVersion(await modelIn(ctx, input.name), input.version, {
        description: input.description ?? '',
      });
      return { model_version: await renderVersion(ctx, version) };
    },
  }),
  mlflowRoute({
    method: 'DELETE',
    path: '/model-versions/delete',
    operation: 'modelRegistry.deleteVersion',
    input: versionRef,
    async handle(ctx, input) {
      await ctx.services.registry.deleteVersion(await modelIn(ctx, input.name), input.version);
      return {};
    },
  }),
  mlflowRoute({
    method: 'GET',
    path: '/model-versions/search',
    operation: 'modelRegistry.searchVersions',
    input: z.object({
      filter: z.string().optional(),
      max_results: maxResults.optional(),
      order_by: repeated(z.string()).optional(),
      page_token: z.string().optional(),
    }),
    async handle(ctx, input) {
      const page = await ctx.services.registry.searchVersions({
        ...(input.filter?.trim() ? { filter: input.filter } : {}),
        ...(input.order_by?.length ? { orderBy: input.order_by } : {}),
        ...(input.max_results ? { maxResults: input.max_results } : {}),
        ...(input.page_token ? { pageToken: input.page_token } : {}),
      });
      // Versions carry no project of their own: those of other projects' models are dropped from the page, so a
      // page may hold fewer than max_results while more follow (MLflow's contract allows short pages).
      const owned = await Promise.all(
        page.items.map((v) =>
          ctx.services.projects.model(ctx.project, v.name).then(
            () => true,
            () => false,
          ),
        ),
      );
      const versions = await Promise.all(page.items.filter((_, i) => owned[i]).map((v) => renderVersion(ctx, v)));
      return {
        ...(versions.length > 0 ? { model_versions: versions } : {}),
        ...(page.nextPageToken ? { next_page_token: page.nextPageToken } : {}),
      };
    },
  }),
  mlflowRoute({
    method: 'POST',
    path: '/model-versions/transition-stage',
    operation: 'modelRegistry.transitionStage',
    input: versionRef.extend({ stage: z.string(), archive_existing_versions: bool.optional() }),
    async handle(ctx, input) {
      const version = await ctx.services.registry.transitionStage({
        name: await modelIn(ctx, input.name),
        version: input.version,
        to: normalizeStage(input.stage),
        ...(input.archive_existing_versions !== undefined ? { archiveExisting: input.archive_existing_versions } : {}),
        actor: ctx.actor,
      });
      return { model_version: await renderVersion(ctx, version) };
    },
  }),
  mlflowRoute({
    method: 'POST',
    path: '/model-versions/set-tag',
    operation: 'modelRegistry.setVersionTag',
    input: versionRef.extend({ key: z.string(), value: z.string() }),
    async handle(ctx, input) {
      assertWritableTag(input.key);
      await ctx.services.registry.setVersionTag(await modelIn(ctx, input.name), input.version, input.key, input.value);
      return {};
    },
  }),
  mlflowRoute({
    method: 'DELETE',
    path: '/model-versions/delete-tag',
    operation: 'modelRegistry.deleteVersionTag',
    input: versionRef.extend({ key: z.string() }),
    async handle(ctx, input) {
      assertWritableTag(input.key);
      await ctx.services.registry.deleteVersionTag(await modelIn(ctx, input.name), input.version, input.key);
      return {};
    },
  }),
  mlflowRoute({
    method: 'GET',
    path: '/model-versions/get-download-uri',
    operation: 'modelRegistry.getVersion',
    input: versionRef,
    async handle(ctx, input) {
      const version = await ctx.services.registry.getVersion(await modelIn(ctx, input.name), input.version);
      return { artifact_uri: await ctx.uris.versionSource(version) };
    },
  }),
];
