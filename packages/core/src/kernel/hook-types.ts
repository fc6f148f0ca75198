export type { ArtifactPutRequest } from '../ports/guards/artifact-store.js';
export type { JobEvent } from '../ports/guards/compute-backend.js';
export type { ModelPromotion } from '../ports/guards/model-registry.js';
export type { DeploymentRollout } from '../ports/guards/model-server.js';

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
