import type { JobSpec, JobStatus } from '../ports/compute-backend.js';
import type { Run } from '../ports/experiment-tracker.js';
import type { ModelVersion } from '../ports/model-registry.js';
import type { Rollout, RolloutPlan } from '../ports/model-server.js';

export type { JobSpec, ModelVersion, Rollout, RolloutPlan, Run };

export interface PlatformInfo {
  readonly pluginIds: readonly string[];
  readonly startedAt: Date;
}

export interface ShutdownInfo {
  /** The signal that triggered the stop, when one did. */
  readonly signal: string | undefined;
  /** Work still running at this instant is abandoned. */
  readonly deadline: Date;
}

/** A move of a model version: to a stage (`Production`) or an alias (`champion`). */
export interface ModelPromotion {
  readonly kind: 'stage' | 'alias';
  readonly from: string | undefined;
  readonly to: string;
  readonly actor: string | undefined;
  readonly reason: string | undefined;
}

export interface JobEvent {
  readonly spec: JobSpec;
  readonly status: JobStatus;
}

/**
 * What `deployment.beforeRollout` judges: the spec after and before, the traffic split after and before, the actor
 * and the kind of rollout (see RolloutKind in ports/model-server.ts).
 */
export type DeploymentRollout = RolloutPlan;

export interface ArtifactPutRequest {
  readonly key: string;
  readonly contentType: string | undefined;
  readonly metadata: Readonly<Record<string, string>>;
  /** Known up front only for buffered bodies. */
  readonly size: number | undefined;
}
