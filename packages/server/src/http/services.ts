import {
  type ArtifactStore,
  type AuditLog,
  type Authorizer,
  artifactStoreRef,
  auditLogRef,
  authorizerRef,
  type ComputeBackend,
  computeBackendRef,
  type EventBus,
  type ExperimentTracker,
  eventBusRef,
  experimentTrackerRef,
  type ModelRegistry,
  modelRegistryRef,
  type Platform,
  WiringError,
} from '@mlplane/core';
import {
  type SchedulerQueues,
  schedulerQueuesRef,
  type WebhookSubscriptions,
  webhookSubscriptionsRef,
} from '@mlplane/sql';
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
  /** The platform's ComputeBackend (the scheduler's, when one decorates it); absent on a platform without one. */
  readonly compute: ComputeBackend | undefined;
  /** Queue state of the durable scheduler, when the platform installs one (the `scheduler` plugin). */
  readonly queues: SchedulerQueues | undefined;
  /** Pipeline runs, when the host runs an orchestrator (`mlplane up` does); absent otherwise. */
  readonly pipelineRuns: PipelineRunReader | undefined;
  /** Which project each experiment, run and model belongs to. */
  readonly projects: ProjectScope;
}

/** Step explanation of a pipeline run's cache decisions, as @mlplane/pipelines' orchestrator reports them. */
export interface PipelineStepExplanation {
  readonly step: string;
  readonly decision: 'reused' | 'ran' | 'skipped' | 'failed' | 'pending';
  readonly reasons: readonly string[];
  readonly cacheKey?: string;
  readonly reusedFrom?: { readonly runId: string; readonly stepId: string; readonly finishedAt: string };
  readonly resumed?: boolean;
}

/**
 * What the API reads of pipeline runs: @mlplane/pipelines' `PipelineOrchestrator` fits it. The server does not
 * depend on the orchestrator: the host passes one in (`createApi(..., { pipelineRuns })`).
 */
export interface PipelineRunReader {
  result(runId: string): Promise<{
    readonly runId: string;
    readonly pipeline: string;
    readonly project: string;
    readonly status: string;
    readonly error: string | undefined;
    readonly trackerRunId: string | undefined;
    readonly steps: readonly {
      readonly stepId: string;
      readonly node: string;
      readonly status: string;
      readonly attempt: number;
      readonly jobId: string | undefined;
      readonly trackerRunId: string | undefined;
      readonly error: string | undefined;
      readonly startedAt: Date | undefined;
      readonly finishedAt: Date | undefined;
    }[];
  }>;
  explainCache(runId: string): Promise<readonly PipelineStepExplanation[]>;
}

export async function resolveServices(
  platform: Pick<Platform, 'get'>,
  pipelineRuns?: PipelineRunReader,
): Promise<ApiServices> {
  const [tracker, registry, artifacts, audit, authorizer, events] = await Promise.all([
    platform.get(experimentTrackerRef),
    platform.get(modelRegistryRef),
    platform.get(artifactStoreRef),
    platform.get(auditLogRef),
    platform.get(authorizerRef),
    platform.get(eventBusRef),
  ]);
  const optional = <T>(lookup: Promise<T>) =>
    lookup.catch((err: unknown) => {
      if (err instanceof WiringError) return undefined;
      throw err;
    });
  const [webhooks, compute, queues] = await Promise.all([
    optional(platform.get(webhookSubscriptionsRef)),
    optional(platform.get(computeBackendRef)),
    optional(platform.get(schedulerQueuesRef)),
  ]);
  return {
    tracker,
    registry,
    artifacts,
    audit,
    authorizer,
    events,
    webhooks,
    compute,
    queues,
    pipelineRuns,
    projects: new ProjectScope(tracker, registry),
  };
}
