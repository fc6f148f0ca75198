import { experimentTrackerInputs } from '@mlplane/core';
import { z } from 'zod';
import { PROJECT_TAG } from '../http/projects.js';
import { defineRoute } from '../http/route.js';
import {
  argumentSchema,
  assertWritableTag,
  experimentSchema,
  experimentWire,
  pageQuery,
  pageSchema,
  pageWire,
  projectParams,
  refuseReservedTags,
} from './wire.js';

const createInput = argumentSchema(experimentTrackerInputs.createExperiment, 0) as z.ZodObject<{
  name: z.ZodType<string>;
  artifactLocation: z.ZodOptional<z.ZodType<string>>;
  tags: z.ZodOptional<z.ZodType<Record<string, string>>>;
}>;
const experimentParams = projectParams.extend({ experimentId: z.string().min(1).max(64) });

/** A project's own filter clause, ahead of the caller's (the filter language joins clauses with `and`). */
export function inProject(project: string, filter: string | undefined): string {
  const own = `tags."${PROJECT_TAG}" = '${project}'`;
  return filter && filter.trim() !== '' ? `${own} and ${filter}` : own;
}

export const experimentRoutes = [
  defineRoute({
    operationId: 'createExperiment',
    method: 'POST',
    path: '/projects/{project}/experiments',
    summary: 'Create an experiment in the project',
    tag: 'experiments',
    permission: 'experiment.write',
    scope: 'project',
    params: projectParams,
    body: createInput.pick({ name: true, artifactLocation: true, tags: true }).strict(),
    response: experimentSchema,
    status: 201,
    async handle({ body, project, services }) {
      const input = body;
      refuseReservedTags(input.tags);
      const experiment = await services.tracker.createExperiment({
        ...input,
        tags: { ...input.tags, [PROJECT_TAG]: project },
      });
      services.projects.remember('experiment', experiment.id, project);
      return experimentWire(experiment);
    },
  }),
  defineRoute({
    operationId: 'getExperiment',
    method: 'GET',
    path: '/projects/{project}/experiments/{experimentId}',
    summary: 'Get an experiment',
    tag: 'experiments',
    permission: 'experiment.read',
    scope: 'project',
    params: experimentParams,
    response: experimentSchema,
    async handle({ params, services }) {
      await services.projects.experiment(params.project, params.experimentId);
      return experimentWire(await services.tracker.getExperiment(params.experimentId));
    },
  }),
  defineRoute({
    operationId: 'searchExperiments',
    method: 'GET',
    path: '/projects/{project}/experiments',
    summary: "Search the project's experiments (MLflow's filter language)",
    tag: 'experiments',
    permission: 'experiment.read',
    scope: 'project',
    params: projectParams,
    query: pageQuery.extend({
      filter: z.string().max(10_000).optional(),
      orderBy: z.union([z.string(), z.array(z.string())]).optional(),
      viewType: z.enum(['ACTIVE_ONLY', 'DELETED_ONLY', 'ALL']).optional(),
    }),
    response: pageSchema(experimentSchema),
    async handle({ query, project, services }) {
      const page = await services.tracker.searchExperiments({
        filter: inProject(project, query.filter),
        ...(query.orderBy ? { orderBy: [query.orderBy].flat() } : {}),
        ...(query.viewType ? { viewType: query.viewType } : {}),
        ...(query.maxResults ? { maxResults: query.maxResults } : {}),
        ...(query.pageToken ? { pageToken: query.pageToken } : {}),
      });
      return pageWire(page, experimentWire);
    },
  }),
  defineRoute({
    operationId: 'renameExperiment',
    method: 'PATCH',
    path: '/projects/{project}/experiments/{experimentId}',
    summary: 'Rename an experiment',
    tag: 'experiments',
    permission: 'experiment.write',
    scope: 'project',
    params: experimentParams,
    body: z.object({ name: z.string() }).strict(),
    response: experimentSchema,
    async handle({ params, body, services }) {
      await services.projects.experiment(params.project, params.experimentId);
      return experimentWire(await services.tracker.updateExperiment(params.experimentId, { name: body.name }));
    },
  }),
  defineRoute({
    operationId: 'setExperimentTag',
    method: 'PUT',
    path: '/projects/{project}/experiments/{experimentId}/tags/{key}',
    summary: 'Set a tag on an experiment',
    tag: 'experiments',
    permission: 'experiment.write',
    scope: 'project',
    params: experimentParams.extend({ key: z.string().min(1) }),
    body: z.object({ value: z.string() }).strict(),
    response: 'empty',
    async handle({ params, body, services }) {
      assertWritableTag(params.key);
      await services.projects.experiment(params.project, params.experimentId);
      await services.tracker.setExperimentTag(params.experimentId, params.key, body.value);
      return undefined;
    },
  }),
  defineRoute({
    operationId: 'deleteExperiment',
    method: 'DELETE',
    path: '/projects/{project}/experiments/{experimentId}',
    summary: 'Delete an experiment (restorable) with its runs',
    tag: 'experiments',
    permission: 'experiment.delete',
    scope: 'project',
    params: experimentParams,
    response: 'empty',
    async handle({ params, services }) {
      await services.projects.experiment(params.project, params.experimentId);
      await services.tracker.deleteExperiment(params.experimentId);
      return undefined;
    },
  }),
  defineRoute({
    operationId: 'restoreExperiment',
    method: 'POST',
    path: '/projects/{project}/experiments/{experimentId}/restore',
    summary: 'Restore a deleted experiment',
    tag: 'experiments',
    permission: 'experiment.delete',
    scope: 'project',
    params: experimentParams,
    response: 'empty',
    async handle({ params, services }) {
      await services.projects.experiment(params.project, params.experimentId);
      await services.tracker.restoreExperiment(params.experimentId);
      return undefined;
    },
  }),
];
