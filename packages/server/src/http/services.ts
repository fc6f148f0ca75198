import {
  type ArtifactStore,
  type AuditLog,
  type Authorizer,
  artifactStoreRef,
  auditLogRef,
  authorizerRef,
  type EventBus,
  type ExperimentTracker,
  eventBusRef,
  experimentTrackerRef,
  type ModelRegistry,
  modelRegistryRef,
  type Platform,
} from '@mlplane/core';
import { ProjectScope } from './projects.js';

/** The ports the API serves, resolved once when it is created. */
export interface ApiServices {
  readonly tracker: ExperimentTracker;
  readonly registry: ModelRegistry;
  readonly artifacts: ArtifactStore;
  readonly audit: AuditLog;
  readonly authorizer: Authorizer;
  readonly events: EventBus;
  /** Which project each experiment, run and model belongs to. */
  readonly projects: ProjectScope;
}

export async function resolveServices(platform: Pick<Platform, 'get'>): Promise<ApiServices> {
  const [tracker, registry, artifacts, audit, authorizer, events] = await Promise.all([
    platform.get(experimentTrackerRef),
    platform.get(modelRegistryRef),
    platform.get(artifactStoreRef),
    platform.get(auditLogRef),
    platform.get(authorizerRef),
    platform.get(eventBusRef),
  ]);
  return { tracker, registry, artifacts, audit, authorizer, events, projects: new ProjectScope(tracker, registry) };
}
