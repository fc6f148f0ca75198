/**
 * @mlplane/pipelines: the compute plane's orchestrator. Pipelines are typed steps (zod inputs and outputs) wired into
 * a DAG with fan-out, fan-in and conditions; each step runs as a job on the ComputeBackend, passes its outputs on
 * as artifacts, and is reused when its cache key (code version, image and command, inputs by value and artifact
 * hash) matches an earlier execution, with `explainCache` saying why. Run state lives in the MetadataStore, so a
 * run outlives its orchestrator (`resume`); lineage goes to the tracker and the registry.
 */

export type { ArtifactRef, ArtifactSchema, LocalArtifact } from './define/artifact.js';
export { artifact, isArtifactRef } from './define/artifact.js';
export type {
  Binding,
  Condition,
  MappedOutputs,
  Pipeline,
  PipelineBuilder,
  PipelineInit,
  PipelineNode,
  StepOptions,
  StepOutputs,
  Wire,
  Wires,
} from './define/pipeline.js';
export { pipeline, Ref, when } from './define/pipeline.js';
export { aliasMetric, REGISTERED_BY_TAG, registerModel, setAlias } from './define/registry-steps.js';
export type {
  ActionContext,
  ActionStepDefinition,
  InputValue,
  InputValues,
  JobStepDefinition,
  OutputValues,
  RetryPolicy,
  Schemas,
  StepDefinition,
  StepJob,
} from './define/step.js';
export { action, OUTPUT_NAME_PATTERN, STEP_NAME_PATTERN, step } from './define/step.js';
export type { CacheInputs, StepExplanation } from './runtime/cache.js';
export { LINEAGE_TAGS } from './runtime/lineage.js';
export type {
  PipelineOrchestratorOptions,
  PipelineRunResult,
  PortSource,
  RunPipelineOptions,
  StartedPipelineRun,
} from './runtime/orchestrator.js';
export { PipelineOrchestrator } from './runtime/orchestrator.js';
export type { PipelineRunRecord, PipelineRunStatus, StepRecord, StepStatus } from './runtime/run-store.js';
export { PIPELINES_MIGRATIONS, PIPELINES_OWNER } from './runtime/run-store.js';
export { ARTIFACT_PREFIX, STEP_ENV } from './runtime/step-io.js';
