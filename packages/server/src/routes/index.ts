import type { RouteDefinition } from '../http/route.js';
import { experimentRoutes } from './experiments.js';
import { runRoutes } from './runs.js';
import { tokenRoutes } from './tokens.js';

/** Every route of /api/v1, in the order the docs list them. */
export const v1Routes: readonly RouteDefinition[] = [...experimentRoutes, ...runRoutes, ...tokenRoutes];
