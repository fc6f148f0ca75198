import type { RouteDefinition } from '../http/route.js';
import { artifactRoutes } from './artifacts.js';
import { auditRoutes } from './audit.js';
import { experimentRoutes } from './experiments.js';
import { jobRoutes } from './jobs.js';
import { modelRoutes } from './models.js';
import { pipelineRoutes } from './pipelines.js';
import { roleRoutes } from './roles.js';
import { runRoutes } from './runs.js';
import { tokenRoutes } from './tokens.js';
import { webhookRoutes } from './webhooks.js';

/** Every route of /api/v1, in the order the docs list them. */
export const v1Routes: readonly RouteDefinition[] = [
  ...experimentRoutes,
  ...runRoutes,
  ...artifactRoutes,
  ...modelRoutes,
  ...jobRoutes,
  ...pipelineRoutes,
  ...tokenRoutes,
  ...roleRoutes,
  ...auditRoutes,
  ...webhookRoutes,
];
