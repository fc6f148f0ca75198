import type {
  ArtifactStore,
  ExperimentTracker,
  JobSpec,
  ModelRegistry,
  ReplicaGroup,
  ResourceRequest,
  SecretRef,
} from '@mlplane/core';
import { ValidationError } from '@mlplane/core';
import type { z } from 'zod';
import type { ArtifactRef, LocalArtifact } from './artifact.js';

/** Step and output names: they become parts of job names, artifact keys and tracker tags. */
export const STEP_NAME_PATTERN = /^[a-z][a-z0-9-]{0,39}$/;
export const OUTPUT_NAME_PATTERN = /^[a-zA-Z][a-zA-Z0-9_]{0,62}$/;

export type Schemas = Readonly<Record<string, z.ZodType>>;

/** The value a step receives for one input: artifacts come with a local copy (`path`). */
export type InputValue<T> = T extends ArtifactRef
  ? LocalArtifact
  : T extends readonly ArtifactRef[]
    ? LocalArtifact[]
    : T;

export type InputValues<I extends Schemas> = { readonly [K in keyof I]: InputValue<z.output<I[K]>> };
export type OutputValues<O extends Schemas> = { readonly [K in keyof O]: z.output<O[K]> };

/** How failed attempts are retried: each retry is a new job, after a delay growing by `factor`. */
export interface RetryPolicy {
  /** Attempts after the first; default 0. */
  readonly retries: number;
  /** Delay before the first retry; default 1000 ms. */
  readonly minDelayMs?: number;
  /** Default 2. */
  readonly factor?: number;
  /** Default 60 000 ms. */
  readonly maxDelayMs?: number;
}

/**
 * What a job step runs: one replica group of a JobSpec and the job-level fields a step may set, less what the
 * orchestrator sets (name, project, run, the env it adds, labels, idempotency key). `image`, `command`, `args`, `env`
 * and `workingDir` are part of the step's cache key; the rest (resources, secrets, volumes, queue, priority) change
 * where, when and with which credentials it runs, not what it computes.
 */
export interface StepJob {
  readonly image?: string;
  readonly command: readonly string[];
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly secretEnv?: Readonly<Record<string, SecretRef>>;
  readonly workingDir?: string;
  readonly resources?: ResourceRequest;
  /** Volumes of the job, and where this step mounts them (on Kubernetes: the workspace shared with the orchestrator). */
  readonly volumes?: JobSpec['volumes'];
  readonly volumeMounts?: ReplicaGroup['volumeMounts'];
  readonly sharedMemory?: string;
  readonly tolerations?: ReplicaGroup['tolerations'];
  readonly nodeSelector?: ReplicaGroup['nodeSelector'];
  readonly serviceAccount?: string;
  /** Where the job waits for quota, and its priority class (backends with `capabilities.queues` / `priorities`). */
  readonly queue?: string;
  readonly priority?: string;
}

interface StepCommon<I extends Schemas, O extends Schemas> {
  /** Names the definition; also the default name of the step in a pipeline. See STEP_NAME_PATTERN. */
  readonly name: string;
  /**
   * The version of the step's code. Part of the cache key: bump it when the code changes in a way the command
   * and image do not show (a script edited in place), so that cached results of the old code are not reused.
   */
  readonly version: string;
  readonly inputs?: I;
  readonly outputs?: O;
  /** Reuse the outputs of an earlier execution with the same cache key; default true. */
  readonly cache?: boolean;
  readonly retry?: RetryPolicy;
}

/** A step that runs as a job on the ComputeBackend. */
export interface JobStepDefinition<I extends Schemas = Schemas, O extends Schemas = Schemas> extends StepCommon<I, O> {
  readonly kind: 'job';
  /** The job, fixed or computed from the step's input values (arguments naming input files, a tuned parameter). */
  readonly job: StepJob | ((inputs: InputValues<I>) => StepJob);
  /** Wall-clock limit of each attempt (the job's `timeoutSeconds`); the attempt fails with `DeadlineExceeded`. */
  readonly timeoutSeconds?: number;
}

/** What an action receives besides its inputs: the platform's ports for control-plane work. */
export interface ActionContext {
  readonly artifacts: ArtifactStore;
  readonly registry: ModelRegistry | undefined;
  readonly tracker: ExperimentTracker | undefined;
  /** The pipeline run, and the tracker run of this step (absent without a tracker). */
  readonly pipelineRunId: string;
  readonly stepRunId: string | undefined;
  /** `<pipeline run id>/<step id>`: stable across a resume, for actions that must not act twice. */
  readonly idempotencyKey: string;
  /** The tracker run of the step that produced each artifact input (lineage for model registration). */
  producerRunOf(artifact: ArtifactRef): string | undefined;
}

/**
 * A step the orchestrator runs itself: control-plane work such as registering a model or moving an alias, which
 * needs the platform's ports rather than a process. Keep actions small; computation belongs in job steps. An
 * action may run again after a resume (when the orchestrator died during it), so it must be idempotent: use
 * `ctx.idempotencyKey`.
 */
export interface ActionStepDefinition<I extends Schemas = Schemas, O extends Schemas = Schemas>
  extends StepCommon<I, O> {
  readonly kind: 'action';
  readonly run: (inputs: InputValues<I>, ctx: ActionContext) => Promise<OutputValues<O>> | OutputValues<O>;
}

export type StepDefinition<I extends Schemas = Schemas, O extends Schemas = Schemas> =
  | JobStepDefinition<I, O>
  | ActionStepDefinition<I, O>;

export type JobStepInit<I extends Schemas, O extends Schemas> = Omit<JobStepDefinition<I, O>, 'kind'>;
export type ActionStepInit<I extends Schemas, O extends Schemas> = Omit<ActionStepDefinition<I, O>, 'kind'>;

/**
 * Defines a step that runs as a job. Its process reads its inputs from the JSON file `$MLPLANE_INPUTS`
 * (artifacts as `{ key, uri, sha256, size, path }`) and writes each output to `$MLPLANE_OUTPUTS/<name>`: the file
 * itself for an artifact, its JSON for a value.
 */
export function step<I extends Schemas = {}, O extends Schemas = {}>(init: JobStepInit<I, O>): JobStepDefinition<I, O> {
  checkDefinition(init);
  return Object.freeze({ ...init, kind: 'job' as const });
}

/** Defines a step the orchestrator runs itself (see ActionStepDefinition). */
export function action<I extends Schemas = {}, O extends Schemas = {}>(
  init: ActionStepInit<I, O>,
): ActionStepDefinition<I, O> {
  checkDefinition(init);
  return Object.freeze({ ...init, kind: 'action' as const });
}

function checkDefinition(init: StepCommon<Schemas, Schemas>): void {
  if (typeof init.name !== 'string' || !STEP_NAME_PATTERN.test(init.name)) {
    throw new ValidationError(
      `step name '${String(init.name)}' must be lowercase letters, digits and '-', starting with a letter, at most 40 chars`,
      { field: 'name' },
    );
  }
  if (typeof init.version !== 'string' || init.version === '') {
    throw new ValidationError(`step '${init.name}' needs a non-empty version`, { field: `${init.name}.version` });
  }
  for (const side of ['inputs', 'outputs'] as const) {
    for (const name of Object.keys(init[side] ?? {})) {
      if (!OUTPUT_NAME_PATTERN.test(name)) {
        throw new ValidationError(`step '${init.name}' ${side.slice(0, -1)} name '${name}' must be an identifier`, {
          field: `${init.name}.${side}.${name}`,
        });
      }
    }
  }
  const retry = init.retry;
  if (retry !== undefined && (!Number.isInteger(retry.retries) || retry.retries < 0 || retry.retries > 100)) {
    throw new ValidationError(`step '${init.name}' retry.retries must be an integer from 0 to 100`, {
      field: `${init.name}.retry.retries`,
    });
  }
}
