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
  WiringError,
} from '@mlplane/core';
import { type WebhookSubscriptions, webhookSubscriptionsRef } from '@mlplane/sql';
import { ProjectScope } from './projects.js';

/** The ports the API serves, resolved once when it is created. */
export interface ApiServices {
  readonly tracker: ExperimentTracker;
  readonly registry: ModelRegistry;
  readonly artifacts: ArtifactStore;
  readonly audit: AuditLog;
  readonly authorizer: Authorizer;
  readonly events: EventBus;
  /**
   * Webhook subscriptions and their delivery log. They are no port: the SQL management layer (@mlplane/sql) provides
   * them as a service, which every platform built by createPlatform installs; absent on a platform without it.
   */
  readonly webhooks: WebhookSubscriptions | undefined;
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
  const webhooks = await platform.get(webhookSubscriptionsRef).catch((err: unknown) => {
    if (err instanceof WiringError) return undefined;
    throw err;
  });
  return {
    tracker,
    registry,
    artifacts,
    audit,
    authorizer,
    events,
    webhooks,
    projects: new ProjectScope(tracker, registry),
  };
}
