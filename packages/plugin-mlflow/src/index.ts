/** @mlplane/plugin-mlflow: ExperimentTracker and ModelRegistry backed by an MLflow tracking server. */

export { MLFLOW_BATCH_LIMITS } from './batching.js';
export {
  type CallOptions,
  isWriteRace,
  MlflowApiError,
  type MlflowAuth,
  MlflowClient,
  type MlflowClientOptions,
  mapMlflowError,
} from './client.js';
export { type MlflowConfig, mlflowClient, mlflowConfigSchema, mlflowPlugin } from './plugin.js';
export { LINEAGE_ARTIFACT_LIMIT, MlflowModelRegistry } from './registry.js';
export { MlflowExperimentTracker } from './tracker.js';
