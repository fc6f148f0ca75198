import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type {
  ArtifactStore,
  ComputeBackend,
  ExperimentTracker,
  HeldLease,
  JobSpec,
  JobStatus,
  Logger,
  MetadataStore,
  ModelRegistry,
  ServiceRef,
} from '@mlplane/core';
import {
  artifactStoreRef,
  ConflictError,
  computeBackendRef,
  experimentTrackerRef,
  isTerminalJobPhase,
  metadataStoreRef,
  modelRegistryRef,
  ValidationError,
  WiringError,
} from '@mlplane/core';
import { SqlLeaseManager } from '@mlplane/sql';
import pRetry, { AbortError } from 'p-retry';
import { z } from 'zod';
import { type ArtifactRef, isArtifactRef } from '../define/artifact.js';
import { type Binding, dependenciesOf, type Pipeline, type PipelineNode, type Ref } from '../define/pipeline.js';
import type { ActionContext, Schemas, StepJob } from '../define/step.js';
import { type CacheInputs, cacheKeyOf, differences, type StepExplanation, sameAs, splitInputs } from './cache.js';
import { LINEAGE_TAGS, Lineage } from './lineage.js';
import {
  FINISHED_STEP_STATUSES,
  type PipelineRunRecord,
  type PipelineRunStatus,
  PipelineRunStore,
  type StepRecord,
} from './run-store.js';
import {
  artifactsPresent,
  checkOutput,
  collectOutputs,
  STEP_ENV,
  storeFile,
  withLocalPaths,
  writeInputsFile,
} from './step-io.js';

export interface PipelineOrchestratorOptions {
  /** Holds run state, step results and the cache index (SQLite or PostgreSQL). */
  readonly store: MetadataStore;
  /** Where job steps run: only the port is used, so the local backend and Kubernetes behave alike. */
  readonly compute: ComputeBackend;
  /** Where step outputs are kept, by content hash. */
  readonly artifacts: ArtifactStore;
  /** Lineage: a run per pipeline run and per step. Without it nothing is tracked. */
  readonly tracker?: ExperimentTracker;
  /** Handed to action steps (registering models, moving aliases). */
  readonly registry?: ModelRegistry;
  /**
   * A directory the orchestrator shares with the jobs it starts: each attempt's inputs file and outputs directory,
   * and local copies of input artifacts, live here. The local backend shares the host's filesystem; on Kubernetes
   * mount a ReadWriteMany volume at the same path in the steps (StepJob.volumeMounts).
   */
  readonly workspace: string;
  /** Project of runs, jobs and cache lookups when a run names none; default `default`. */
  readonly project?: string;
  /**
   * A run is orchestrated by one process at a time, under a lease renewed every third of this. After a crash,
   * `resume` can take the run over once the lease expired. Default 15 000 ms.
   */
  readonly leaseTtlMs?: number;
  readonly logger?: Logger;
}

export interface RunPipelineOptions {
  readonly project?: string;
  /** Steps executing at once in this run (jobs submitted and unfinished, actions running); default 64. */
  readonly maxParallel?: number;
}

/** A pipeline run as stored: its steps and their outputs. */
export interface PipelineRunResult {
  readonly runId: string;
  readonly pipeline: string;
  /** The project the run was started in. */
  readonly project: string;
  readonly status: PipelineRunStatus;
  readonly error: string | undefined;
  readonly trackerRunId: string | undefined;
  readonly steps: readonly StepRecord[];
  /** Outputs of a step (of a fan-out: lists in item order); undefined unless it succeeded or was reused. */
  outputs(stepId: string): Readonly<Record<string, unknown>> | undefined;
}

export interface StartedPipelineRun {
  readonly runId: string;
  /** Settles when the run ends: resolves with its result (failed steps included), rejects when the orchestration itself broke. */
  readonly done: Promise<PipelineRunResult>;
}

/** Anything that can hand out the platform's ports (a started Platform). */
export interface PortSource {
  get<T>(ref: ServiceRef<T>): Promise<T>;
}

const DEFAULT_PROJECT = 'default';
const DEFAULT_LEASE_TTL_MS = 15_000;
const DEFAULT_MAX_PARALLEL = 64;

/**
 * Runs pipelines: each step as a job on the ComputeBackend (or, for actions, in this process), with step caching,
 * retries with backoff, per-attempt timeouts, state in the MetadataStore so that a run survives the orchestrator's
 * death (`resume`), and lineage in the tracker.
 */
export class PipelineOrchestrator {
  readonly #options: PipelineOrchestratorOptions;
  readonly #runs: PipelineRunStore;
  readonly #leases: SqlLeaseManager;
  readonly #lineage: Lineage;
  readonly #workspace: string;

  private constructor(options: PipelineOrchestratorOptions, runs: PipelineRunStore, leases: SqlLeaseManager) {
    this.#options = options;
    this.#runs = runs;
    this.#leases = leases;
    this.#lineage = new Lineage(options.tracker, options.logger);
    this.#workspace = resolve(options.workspace);
  }

  /** Applies the pipeline tables' migrations and prepares the workspace. */
  static async open(options: PipelineOrchestratorOptions): Promise<PipelineOrchestrator> {
    if (typeof options.workspace !== 'string' || options.workspace === '') {
      throw new ValidationError('the orchestrator needs a workspace directory shared with its jobs', {
        field: 'workspace',
      });
    }
    const ttl = options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
    if (!Number.isInteger(ttl) || ttl < 100) {
      throw new ValidationError('leaseTtlMs must be an integer of at least 100', { field: 'leaseTtlMs' });
    }
    const runs = await PipelineRunStore.open(options.store);
    const leases = await SqlLeaseManager.open(options.store);
    await mkdir(options.workspace, { recursive: true, mode: 0o700 });
    return new PipelineOrchestrator(options, runs, leases);
  }

  /** An orchestrator on a started platform's ports (tracker and registry when it provides them). */
  static async forPlatform(
    platform: PortSource,
    options: Omit<PipelineOrchestratorOptions, 'store' | 'compute' | 'artifacts' | 'tracker' | 'registry'>,
  ): Promise<PipelineOrchestrator> {
    // A port no plugin provides is a WiringError: that lineage is then not recorded. Other failures are real.
    const optional = <T>(ref: ServiceRef<T>) =>
      platform.get(ref).catch((err: unknown) => {
        if (err instanceof WiringError) return undefined;
        throw err;
      });
    const [store, compute, artifacts, tracker, registry] = await Promise.all([
      platform.get(metadataStoreRef),
      platform.get(computeBackendRef),
      platform.get(artifactStoreRef),
      optional(experimentTrackerRef),
      optional(modelRegistryRef),
    ]);
    return PipelineOrchestrator.open({
      ...options,
      store,
      compute,
      artifacts,
      ...(tracker ? { tracker } : {}),
      ...(registry ? { registry } : {}),
    });
  }

  /**
   * Starts a run and returns its id at once (the run's state is stored before this resolves). ValidationError naming
   * `params.<name>` when a parameter fails its schema.
   */
  async start<P extends Schemas>(
    pipeline: Pipeline<P>,
    params: { readonly [K in keyof P]: z.input<P[K]> },
    options: RunPipelineOptions = {},
  ): Promise<StartedPipelineRun> {
    const checked = checkParams(pipeline, params as Record<string, unknown>);
    const project = options.project ?? this.#options.project ?? DEFAULT_PROJECT;
    const runId = randomUUID();
    const lease = await this.#leases.tryAcquire(leaseName(runId), this.#ttl);
    if (!lease) throw new ConflictError(`pipeline run ${runId} is already leased`);
    try {
      const trackerRunId = await this.#lineage.startPipeline(pipeline.name, runId, checked);
      const now = new Date();
      const record: PipelineRunRecord = {
        id: runId,
        pipeline: pipeline.name,
        project,
        definitionHash: pipeline.definitionHash,
        params: checked,
        status: 'Running',
        trackerRunId,
        error: undefined,
        createdAt: now,
        updatedAt: now,
        finishedAt: undefined,
      };
      await this.#runs.insertRun(record);
      const execution = new RunExecution(this.#context(), pipeline, record, lease, options, [], false);
      return { runId, done: execution.execute() };
    } catch (err) {
      await this.#leases.release(lease).catch(() => undefined);
      throw err;
    }
  }

  /** Runs a pipeline to its end; see `start`. */
  async run<P extends Schemas>(
    pipeline: Pipeline<P>,
    params: { readonly [K in keyof P]: z.input<P[K]> },
    options: RunPipelineOptions = {},
  ): Promise<PipelineRunResult> {
    return (await this.start(pipeline, params, options)).done;
  }

  /**
   * Continues a run whose orchestrator stopped (crashed, killed, or the run failed and its cause is fixed): finished
   * steps keep their results, steps whose jobs are still running are watched again (not resubmitted), and the rest
   * run. A run that succeeded is returned as is. NotFoundError for an unknown run; ConflictError when `pipeline` is
   * not the definition the run was started with, or another orchestrator holds the run (its lease has not expired).
   */
  async resume(runId: string, pipeline: Pipeline<any>, options: RunPipelineOptions = {}): Promise<PipelineRunResult> {
    const run = await this.#runs.getRun(runId);
    if (run.pipeline !== pipeline.name || run.definitionHash !== pipeline.definitionHash) {
      throw new ConflictError(
        `pipeline run ${runId} was started with another definition of pipeline '${run.pipeline}' (hash ${run.definitionHash.slice(0, 12)}, given ${pipeline.name} ${pipeline.definitionHash.slice(0, 12)}): resume it with that definition`,
      );
    }
    if (run.status === 'Succeeded') return this.result(runId);
    const lease = await this.#leases.tryAcquire(leaseName(runId), this.#ttl);
    if (!lease) {
      throw new ConflictError(
        `pipeline run ${runId} is orchestrated by another process; if that process died, resume after its lease expires (${this.#ttl} ms)`,
      );
    }
    if (run.status !== 'Running') await this.#runs.finishRun(runId, 'Running');
    const steps = await this.#runs.listSteps(runId);
    const execution = new RunExecution(
      this.#context(),
      pipeline,
      { ...run, status: 'Running' },
      lease,
      options,
      steps,
      true,
    );
    return execution.execute();
  }

  /**
   * Stores a local file in the ArtifactStore by its content hash and returns its reference, to pass as a pipeline
   * parameter of type `artifact()`: steps reading it are then cached by the file's content, not its path.
   */
  importArtifact(path: string): Promise<ArtifactRef> {
    return storeFile(this.#options.artifacts, path);
  }

  /** The run as stored now. NotFoundError for an unknown run. */
  async result(runId: string): Promise<PipelineRunResult> {
    const run = await this.#runs.getRun(runId);
    return resultOf(run, await this.#runs.listSteps(runId));
  }

  /**
   * Why each step of a run was or was not reused: one entry per step (fan-out items included) in step id order,
   * with the cache key, the execution it was reused from, or what differed from the latest execution of the step.
   */
  async explainCache(runId: string): Promise<readonly StepExplanation[]> {
    const run = await this.#runs.getRun(runId);
    const steps = await this.#runs.listSteps(runId);
    return steps.map(
      (s) =>
        s.explanation ?? {
          step: s.stepId,
          decision: 'pending' as const,
          reasons: [run.status === 'Running' ? 'not finished yet' : `not run: the run ended ${run.status}`],
        },
    );
  }

  get #ttl(): number {
    return this.#options.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
  }

  #context(): ExecutionContext {
    return {
      options: this.#options,
      runs: this.#runs,
      leases: this.#leases,
      lineage: this.#lineage,
      workspace: this.#workspace,
      ttl: this.#ttl,
    };
  }
}

interface ExecutionContext {
  readonly options: PipelineOrchestratorOptions;
  readonly runs: PipelineRunStore;
  readonly leases: SqlLeaseManager;
  readonly lineage: Lineage;
  readonly workspace: string;
  readonly ttl: number;
}

interface Outcome {
  readonly status: 'Succeeded' | 'Cached' | 'Skipped' | 'Failed';
  readonly outputs?: Readonly<Record<string, unknown>>;
  /** Why it failed, for the run's error. */
  readonly error?: string;
}

/** A failed attempt that may be retried (a job that did not succeed). */
class AttemptFailedError extends Error {}

/** The run stopped being this process's to orchestrate. */
class LeaseLostError extends ConflictError {}

const leaseName = (runId: string) => `pipeline-run:${runId}`;

function checkParams(pipeline: Pipeline<any>, params: Record<string, unknown>): Record<string, unknown> {
  const parsed = z.strictObject(pipeline.params as Record<string, z.ZodType>).safeParse(params ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.code === 'unrecognized_keys' ? `params.${issue.keys[0]}` : `params.${issue.path.join('.')}`;
    throw new ValidationError(`pipeline '${pipeline.name}' parameter ${field.slice(7)}: ${issue.message}`, { field });
  }
  return parsed.data as Record<string, unknown>;
}

function resultOf(run: PipelineRunRecord, steps: readonly StepRecord[]): PipelineRunResult {
  const byId = new Map(steps.map((s) => [s.stepId, s]));
  return {
    runId: run.id,
    pipeline: run.pipeline,
    project: run.project,
    status: run.status,
    error: run.error,
    trackerRunId: run.trackerRunId,
    steps,
    outputs: (stepId) => {
      const s = byId.get(stepId);
      return s && (s.status === 'Succeeded' || s.status === 'Cached') ? s.outputs : undefined;
    },
  };
}

function jobName(pipeline: string, stepId: string): string {
  const name = `${pipeline}-${stepId}`
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .slice(0, 52)
    .replace(/^-+|-+$/g, '');
  return name || 'step';
}

/** A counting semaphore: at most `limit` holders at once, served in arrival order. */
class Limiter {
  #active = 0;
  readonly #waiting: (() => void)[] = [];
  constructor(readonly limit: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#active >= this.limit) await new Promise<void>((r) => this.#waiting.push(r));
    else this.#active++;
    try {
      return await fn();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#active--;
    }
  }
}

/** One orchestration of one run, from start or from where a previous orchestrator stopped. */
class RunExecution {
  readonly #ctx: ExecutionContext;
  readonly #pipeline: Pipeline<any>;
  readonly #run: PipelineRunRecord;
  readonly #lease: HeldLease;
  readonly #records = new Map<string, StepRecord>();
  readonly #outcomes = new Map<string, Outcome>();
  readonly #limiter: Limiter;
  readonly #resumed: boolean;
  readonly #abort = new AbortController();
  #failure: string | undefined;
  #pendingSaves = new Map<string, StepRecord>();
  #flush: Promise<void> | undefined;
  #writing: Promise<void> | undefined;

  constructor(
    ctx: ExecutionContext,
    pipeline: Pipeline<any>,
    run: PipelineRunRecord,
    lease: HeldLease,
    options: RunPipelineOptions,
    steps: readonly StepRecord[],
    resumed: boolean,
  ) {
    this.#ctx = ctx;
    this.#pipeline = pipeline;
    this.#run = run;
    this.#lease = lease;
    this.#resumed = resumed;
    const maxParallel = options.maxParallel ?? DEFAULT_MAX_PARALLEL;
    if (!Number.isInteger(maxParallel) || maxParallel < 1) {
      throw new ValidationError('maxParallel must be a positive integer', { field: 'maxParallel' });
    }
    this.#limiter = new Limiter(maxParallel);
    for (const s of steps) this.#records.set(s.stepId, s);
  }

  get #log(): Logger | undefined {
    return this.#ctx.options.logger;
  }

  async execute(): Promise<PipelineRunResult> {
    const renew = setInterval(
      () => {
        this.#ctx.leases.renew(this.#lease, this.#ctx.ttl).then(
          (held) => {
            if (!held) this.#abort.abort(new LeaseLostError(`the lease on pipeline run ${this.#run.id} was lost`));
          },
          (err) => this.#log?.warn({ err, runId: this.#run.id }, 'renewing the pipeline run lease failed'),
        );
      },
      Math.max(50, Math.floor(this.#ctx.ttl / 3)),
    );
    try {
      await this.#loop();
      await this.#flushSaves();
      if (this.#abort.signal.aborted) throw this.#abort.signal.reason;
      const status: PipelineRunStatus = this.#failure ? 'Failed' : 'Succeeded';
      await this.#ctx.runs.finishRun(this.#run.id, status, this.#failure);
      await this.#ctx.lineage.finishPipeline(this.#run.trackerRunId, status === 'Succeeded' ? 'FINISHED' : 'FAILED');
    } catch (err) {
      if (!(err instanceof LeaseLostError)) {
        const message = `the orchestrator failed: ${(err as Error).message}`;
        await this.#ctx.runs.finishRun(this.#run.id, 'Failed', message).catch(() => undefined);
      }
      throw err;
    } finally {
      clearInterval(renew);
      this.#abort.abort();
      await this.#ctx.leases.release(this.#lease).catch(() => undefined);
    }
    return resultOf(await this.#ctx.runs.getRun(this.#run.id), await this.#ctx.runs.listSteps(this.#run.id));
  }

  async #loop(): Promise<void> {
    const inflight = new Map<string, Promise<void>>();
    let broken: unknown;
    for (;;) {
      if (!this.#failure && broken === undefined && !this.#abort.signal.aborted) {
        for (const node of this.#pipeline.nodes) {
          if (this.#outcomes.has(node.id) || inflight.has(node.id)) continue;
          if (![...dependenciesOf(node)].every((d) => this.#outcomes.has(d))) continue;
          const work = this.#runNode(node).then(
            (outcome) => {
              this.#outcomes.set(node.id, outcome);
              if (outcome.status === 'Failed') {
                this.#failure ??= `step '${node.id}' failed${outcome.error ? `: ${outcome.error}` : ''}`;
              }
            },
            (err) => {
              broken ??= err;
            },
          );
          inflight.set(
            node.id,
            work.finally(() => inflight.delete(node.id)),
          );
        }
      }
      if (inflight.size === 0) break;
      await Promise.race(inflight.values());
    }
    if (broken !== undefined) throw broken;
  }

  // ------------------------------------------------------------------------------------------------ saving state

  /**
   * Queues a step record; writes made in the same turn share one transaction. Batches are written one after another,
   * so a later state of a step never lands before an earlier one.
   */
  #save(record: StepRecord): Promise<void> {
    this.#records.set(record.stepId, record);
    this.#pendingSaves.set(record.stepId, record);
    if (!this.#flush) {
      const previous = this.#writing;
      this.#flush = (async () => {
        await previous?.catch(() => undefined);
        await new Promise<void>((resolve) => setImmediate(resolve));
        const batch = [...this.#pendingSaves.values()];
        this.#pendingSaves = new Map();
        this.#flush = undefined;
        const write = this.#ctx.runs.saveSteps(this.#run.pipeline, this.#run.project, batch);
        this.#writing = write;
        await write;
      })();
    }
    return this.#flush;
  }

  async #flushSaves(): Promise<void> {
    while (this.#flush) await this.#flush;
    await this.#writing;
  }

  // ------------------------------------------------------------------------------------------------ nodes

  /** The value a binding resolves to now that its producer finished. */
  #valueOf(binding: Binding, item: unknown): unknown {
    if (binding.kind === 'value') return binding.value;
    if (binding.kind === 'item') return item;
    if (binding.node === '$params') return this.#run.params[binding.output];
    return this.#outcomes.get(binding.node)?.outputs?.[binding.output];
  }

  /** The first binding of the node that comes from a skipped step, if any. */
  #skippedSource(node: PipelineNode): string | undefined {
    const refs: [string, Binding | undefined][] = [
      ...Object.entries(node.inputs).map(([k, b]) => [`input '${k}'`, b] as [string, Binding]),
      ['the fan-out list', node.over],
      ...Object.entries(node.when?.refs ?? {}).map(
        ([k, r]) => [`condition value '${k}'`, { kind: 'ref', node: r.node, output: r.output }] as [string, Binding],
      ),
    ];
    for (const [what, b] of refs) {
      if (b?.kind === 'ref' && b.node !== '$params' && this.#outcomes.get(b.node)?.status === 'Skipped') {
        return `${what} comes from step '${b.node}', which was skipped`;
      }
    }
    return undefined;
  }

  async #runNode(node: PipelineNode): Promise<Outcome> {
    const saved = this.#records.get(node.id);
    if (node.over && saved && saved.status !== 'Failed' && FINISHED_STEP_STATUSES.includes(saved.status)) {
      return this.#kept(saved);
    }
    if (!node.over && saved && saved.status !== 'Failed' && saved.status !== 'Running') {
      return this.#kept(saved);
    }
    const skippedBecause = this.#skippedSource(node);
    if (skippedBecause) return this.#skip(node.id, node.id, [skippedBecause]);
    if (node.when) {
      const values = Object.fromEntries(
        Object.entries(node.when.refs).map(([k, r]) => [k, this.#valueOf(bindingOf(r), undefined)]),
      );
      let pass: boolean;
      try {
        pass = node.when.test(values) === true;
      } catch (err) {
        return this.#fail(node.id, node.id, undefined, `its condition threw: ${(err as Error).message}`, []);
      }
      if (!pass) {
        return this.#skip(node.id, node.id, [
          `condition false: ${node.when.description} (values ${JSON.stringify(values)})`,
        ]);
      }
    }
    if (!node.over) return this.#runStep(node, node.id, undefined);

    const list = this.#valueOf(node.over, undefined);
    if (!Array.isArray(list)) {
      return this.#fail(node.id, node.id, undefined, `its fan-out list is not a list: ${JSON.stringify(list)}`, []);
    }
    const items = await Promise.all(list.map((item, i) => this.#runStep(node, `${node.id}[${i}]`, item)));
    const outputs: Record<string, unknown[]> = {};
    for (const name of Object.keys(node.definition.outputs ?? {})) outputs[name] = items.map((o) => o.outputs?.[name]);
    const count = (s: Outcome['status']) => items.filter((o) => o.status === s).length;
    const mapError = () => {
      const first = items.findIndex((o) => o.status === 'Failed');
      return `${count('Failed')} of ${items.length} items failed, first ${node.id}[${first}]: ${items[first]?.error ?? 'stopped'}`;
    };
    const status: Outcome['status'] =
      count('Failed') > 0 ? 'Failed' : items.length > 0 && count('Cached') === items.length ? 'Cached' : 'Succeeded';
    const reasons = [
      `fan-out over ${items.length} item${items.length === 1 ? '' : 's'}: ${count('Succeeded')} ran, ${count('Cached')} reused, ${count('Failed')} failed, ${count('Skipped')} skipped (see ${node.id}[i])`,
    ];
    const now = new Date();
    await this.#save({
      ...this.#blank(node.id, node.id),
      status,
      outputs: status === 'Failed' ? undefined : outputs,
      explanation: {
        step: node.id,
        decision: status === 'Failed' ? 'failed' : status === 'Cached' ? 'reused' : 'ran',
        reasons,
      },
      startedAt: now,
      finishedAt: now,
      ...(status === 'Failed' ? { error: mapError() } : {}),
    });
    return status === 'Failed' ? { status, error: mapError() } : { status, outputs };
  }

  #kept(saved: StepRecord): Outcome {
    if (this.#resumed && saved.explanation && !saved.explanation.resumed) {
      const explanation: StepExplanation = {
        ...saved.explanation,
        resumed: true,
        reasons: [...saved.explanation.reasons, 'finished before the orchestrator restarted: kept, not run again'],
      };
      void this.#save({ ...saved, explanation });
    }
    return {
      status: saved.status as Outcome['status'],
      ...(saved.outputs ? { outputs: saved.outputs } : {}),
    };
  }

  /** A step's record before anything happened to it; every caller sets the status it writes. */
  #blank(stepId: string, node: string): StepRecord {
    return {
      runId: this.#run.id,
      stepId,
      node,
      status: 'Running',
      attempt: 0,
      jobId: undefined,
      cacheKey: undefined,
      cacheInputs: undefined,
      inputs: undefined,
      outputs: undefined,
      explanation: undefined,
      trackerRunId: undefined,
      error: undefined,
      startedAt: undefined,
      finishedAt: undefined,
    };
  }

  async #skip(stepId: string, node: string, reasons: string[]): Promise<Outcome> {
    const now = new Date();
    await this.#save({
      ...this.#blank(stepId, node),
      status: 'Skipped',
      explanation: { step: stepId, decision: 'skipped', reasons },
      startedAt: now,
      finishedAt: now,
    });
    return { status: 'Skipped' };
  }

  async #fail(
    stepId: string,
    node: string,
    base: StepRecord | undefined,
    message: string,
    reasons: readonly string[],
  ): Promise<Outcome> {
    const now = new Date();
    this.#log?.warn({ runId: this.#run.id, step: stepId }, `step ${stepId} failed: ${message}`);
    await this.#save({
      ...(base ?? this.#blank(stepId, node)),
      status: 'Failed',
      error: message,
      explanation: {
        step: stepId,
        decision: 'failed',
        reasons: [...reasons, `failed: ${message}`],
        ...(base?.cacheKey ? { cacheKey: base.cacheKey } : {}),
      },
      startedAt: base?.startedAt ?? now,
      finishedAt: now,
    });
    return { status: 'Failed', error: message };
  }

  // ------------------------------------------------------------------------------------------------ one execution

  async #runStep(node: PipelineNode, stepId: string, item: unknown): Promise<Outcome> {
    const saved = this.#records.get(stepId);
    if (saved && (saved.status === 'Succeeded' || saved.status === 'Cached' || saved.status === 'Skipped')) {
      return this.#kept(saved);
    }
    return this.#limiter.run(() => this.#execute(node, stepId, item, saved));
  }

  async #execute(node: PipelineNode, stepId: string, item: unknown, saved: StepRecord | undefined): Promise<Outcome> {
    if (this.#abort.signal.aborted) return { status: 'Failed' };
    const definition = node.definition;
    const { artifacts } = this.#ctx.options;
    const inputs: Record<string, unknown> = {};
    for (const [name, binding] of Object.entries(node.inputs)) inputs[name] = this.#valueOf(binding, item);

    let local: Record<string, unknown>;
    let job: StepJob | undefined;
    try {
      local = await withLocalPaths(artifacts, this.#ctx.workspace, inputs);
      if (definition.kind === 'job') {
        job = typeof definition.job === 'function' ? definition.job(local as never) : definition.job;
        if (!Array.isArray(job?.command) || job.command.length === 0) {
          throw new ValidationError(`step '${stepId}' has no command`, { field: `steps.${node.id}.job.command` });
        }
      }
    } catch (err) {
      return this.#fail(stepId, node.id, saved, `preparing its inputs failed: ${(err as Error).message}`, []);
    }
    const cacheInputs: CacheInputs = {
      step: definition.name,
      kind: definition.kind,
      version: definition.version,
      ...(job
        ? {
            job: {
              ...(job.image !== undefined ? { image: job.image } : {}),
              command: job.command,
              args: job.args ?? [],
              env: job.env ?? {},
              ...(job.workingDir !== undefined ? { workingDir: job.workingDir } : {}),
            },
          }
        : {}),
      ...splitInputs(inputs),
    };
    const cacheKey = cacheKeyOf(cacheInputs);
    const interrupted = saved?.status === 'Running';
    const reasons: string[] = [];
    if (interrupted) {
      reasons.push(...(saved.explanation?.reasons ?? []));
    } else if (!node.cache) {
      reasons.push('caching is off for this step');
    } else {
      const hit = await this.#ctx.runs.findByCacheKey(this.#run.project, cacheKey);
      if (hit?.outputs) {
        const unfit = unfitOutput(definition.outputs ?? {}, hit.outputs);
        const missing = unfit ? undefined : await artifactsPresent(artifacts, hit.outputs);
        if (!unfit && !missing) return this.#reuse(node, stepId, inputs, cacheInputs, cacheKey, hit);
        reasons.push(
          unfit
            ? `step '${hit.stepId}' of run ${hit.runId} had the same cache key, but its stored output ${unfit} (the outputs changed without a new version)`
            : `step '${hit.stepId}' of run ${hit.runId} had the same cache key, but its output ${missing} is gone from the ArtifactStore`,
        );
      } else {
        reasons.push(...(await this.#whyMiss(stepId, cacheInputs)));
      }
    }

    const trackerRunId =
      saved?.trackerRunId ??
      (this.#resumed ? await this.#ctx.lineage.findStepRun(this.#run.pipeline, this.#run.id, stepId) : undefined) ??
      (await this.#ctx.lineage.startStep(this.#run.pipeline, this.#run.id, this.#run.trackerRunId, stepId));
    let record: StepRecord = {
      ...(saved ?? this.#blank(stepId, node.id)),
      status: 'Running',
      cacheKey,
      cacheInputs,
      inputs,
      trackerRunId,
      explanation: { step: stepId, decision: 'pending', reasons, cacheKey },
      startedAt: saved?.startedAt ?? new Date(),
      error: undefined,
    };
    let reattach = interrupted ? { attempt: saved.attempt, jobId: saved.jobId } : undefined;
    let attempt = interrupted ? saved.attempt - 1 : (saved?.attempt ?? 0);
    const retry = node.retry;
    const budget = interrupted ? Math.max(0, retry.retries - (saved.attempt - 1)) : retry.retries;
    try {
      const outputs = await pRetry(
        async () => {
          if (this.#abort.signal.aborted) throw new AbortError('the run stopped');
          attempt += 1;
          const resume = reattach;
          reattach = undefined;
          record = { ...record, attempt, jobId: resume?.jobId };
          if (definition.kind === 'action') {
            await this.#save(record);
            return this.#runAction(node, stepId, local, record);
          }
          // A job attempt is recorded with its job id, once submitted: one write instead of two. An orchestrator that
          // dies before that write resubmits the same attempt on resume, and its idempotency key finds the job.
          return this.#runJob(node, stepId, job!, local, record, resume !== undefined, (jobId) => {
            record = { ...record, jobId };
            return this.#save(record);
          });
        },
        {
          retries: budget,
          minTimeout: retry.minDelayMs ?? 1000,
          factor: retry.factor ?? 2,
          maxTimeout: retry.maxDelayMs ?? 60_000,
          randomize: false,
          signal: this.#abort.signal,
          shouldRetry: ({ error }) => error instanceof AttemptFailedError,
          onFailedAttempt: ({ error, attemptNumber, retriesLeft, retryDelay }) => {
            if (error instanceof AttemptFailedError && retriesLeft > 0) {
              this.#log?.info(
                { runId: this.#run.id, step: stepId, attempt: attemptNumber },
                `step ${stepId} attempt failed (${error.message}); retrying in ${retryDelay} ms`,
              );
            }
          },
        },
      );
      if (this.#abort.signal.aborted) return { status: 'Failed' };
      const lineage = await this.#recordLineage(stepId, trackerRunId, inputs, outputs, cacheKey);
      const finished: StepRecord = {
        ...record,
        status: 'Succeeded',
        outputs,
        explanation: { step: stepId, decision: 'ran', reasons: [...reasons, ...lineage], cacheKey },
        finishedAt: new Date(),
      };
      await this.#save(finished);
      return { status: 'Succeeded', outputs };
    } catch (err) {
      if (this.#abort.signal.aborted) return { status: 'Failed' };
      const attempts = record.attempt;
      const message = `${(err as Error).message}${attempts > 1 ? ` (after ${attempts} attempts)` : ''}`;
      await this.#ctx.lineage.finishStep(trackerRunId, inputs, undefined, 'FAILED').catch(() => undefined);
      return this.#fail(stepId, node.id, record, message, reasons);
    }
  }

  /**
   * Logs a finished step's lineage. The step's work is done and stored by then, so a tracker that fails here does not
   * fail the step: the failure is logged and said in the step's explanation.
   */
  async #recordLineage(
    stepId: string,
    trackerRunId: string | undefined,
    inputs: Record<string, unknown>,
    outputs: Readonly<Record<string, unknown>> | undefined,
    cacheKey: string,
  ): Promise<string[]> {
    try {
      await this.#ctx.lineage.finishStep(trackerRunId, inputs, outputs, 'FINISHED', {
        [LINEAGE_TAGS.cacheKey]: cacheKey,
      });
      return [];
    } catch (err) {
      this.#log?.error({ err, runId: this.#run.id, step: stepId }, 'recording a step in the tracker failed');
      return [`its lineage could not be recorded in tracker run ${trackerRunId}: ${(err as Error).message}`];
    }
  }

  /** Why nothing could be reused: what differs from the latest execution of the same step in the project. */
  async #whyMiss(stepId: string, now: CacheInputs): Promise<string[]> {
    const before = await this.#ctx.runs.latestOfStep(this.#run.project, this.#run.pipeline, stepId, this.#run.id);
    if (!before?.cacheInputs) {
      return [
        `no earlier execution of step '${stepId}' of pipeline '${this.#run.pipeline}' in project '${this.#run.project}'`,
      ];
    }
    const diff = differences(now, before.cacheInputs);
    if (diff.length === 0) {
      return [
        `no stored result with this cache key (the latest execution, run ${before.runId}, had the same inputs but was reused from a result no longer indexed)`,
      ];
    }
    return diff.map((d) => `${d} (since run ${before.runId})`);
  }

  async #reuse(
    node: PipelineNode,
    stepId: string,
    inputs: Record<string, unknown>,
    cacheInputs: CacheInputs,
    cacheKey: string,
    hit: StepRecord,
  ): Promise<Outcome> {
    const trackerRunId = await this.#ctx.lineage.startStep(
      this.#run.pipeline,
      this.#run.id,
      this.#run.trackerRunId,
      stepId,
      {
        [LINEAGE_TAGS.reusedFrom]: `${hit.runId}/${hit.stepId}`,
      },
    );
    await this.#ctx.lineage.finishStep(trackerRunId, inputs, hit.outputs, 'FINISHED', {
      [LINEAGE_TAGS.cacheKey]: cacheKey,
    });
    const now = new Date();
    await this.#save({
      ...this.#blank(stepId, node.id),
      status: 'Cached',
      cacheKey,
      cacheInputs,
      inputs,
      outputs: hit.outputs,
      trackerRunId,
      explanation: {
        step: stepId,
        decision: 'reused',
        reasons: [sameAs(cacheInputs, hit)],
        cacheKey,
        reusedFrom: { runId: hit.runId, stepId: hit.stepId, finishedAt: (hit.finishedAt ?? now).toISOString() },
      },
      startedAt: now,
      finishedAt: now,
    });
    return { status: 'Cached', ...(hit.outputs ? { outputs: hit.outputs } : {}) };
  }

  async #runAction(
    node: PipelineNode,
    stepId: string,
    local: Record<string, unknown>,
    record: StepRecord,
  ): Promise<Record<string, unknown>> {
    const definition = node.definition;
    if (definition.kind !== 'action') throw new Error('not an action');
    const producers = new Map<string, string>();
    for (const r of this.#records.values()) {
      for (const v of Object.values(r.outputs ?? {})) {
        for (const a of Array.isArray(v) ? v : [v]) {
          if (isArtifactRef(a) && r.trackerRunId && !producers.has(a.sha256)) producers.set(a.sha256, r.trackerRunId);
        }
      }
    }
    const { artifacts, registry, tracker } = this.#ctx.options;
    const ctx: ActionContext = {
      artifacts,
      registry,
      tracker,
      pipelineRunId: this.#run.id,
      stepRunId: record.trackerRunId,
      idempotencyKey: `${this.#run.id}/${stepId}`,
      producerRunOf: (a: ArtifactRef) => producers.get(a.sha256),
    };
    let produced: Record<string, unknown>;
    try {
      produced = (await definition.run(local as never, ctx)) as Record<string, unknown>;
    } catch (err) {
      if (err instanceof ValidationError) throw err;
      throw new AttemptFailedError(`action threw: ${(err as Error).message}`, { cause: err });
    }
    const outputs: Record<string, unknown> = {};
    for (const [name, schema] of Object.entries(definition.outputs ?? {})) {
      outputs[name] = checkOutput(schema, produced?.[name], stepId, name);
    }
    return outputs;
  }

  async #runJob(
    node: PipelineNode,
    stepId: string,
    job: StepJob,
    local: Record<string, unknown>,
    record: StepRecord,
    resuming: boolean,
    onSubmitted: (jobId: string) => Promise<void>,
  ): Promise<Record<string, unknown>> {
    const { compute, artifacts } = this.#ctx.options;
    const dir = join(
      this.#ctx.workspace,
      'runs',
      this.#run.id,
      stepId.replace(/[[\]]/g, '_'),
      `attempt-${record.attempt}`,
    );
    const outputsDir = join(dir, 'outputs');
    const inputsFile = join(dir, 'inputs.json');
    if (!resuming) {
      // Never emptied: after a crash this attempt's job may still be running and writing here.
      await mkdir(outputsDir, { recursive: true });
      await writeInputsFile(inputsFile, local);
    }
    let jobId = record.jobId;
    if (!jobId) {
      const spec: JobSpec = {
        name: jobName(this.#run.pipeline, stepId),
        project: this.#run.project,
        ...(record.trackerRunId ? { runId: record.trackerRunId } : {}),
        replicaGroups: [
          {
            role: 'main',
            command: job.command,
            ...(job.image !== undefined ? { image: job.image } : {}),
            ...(job.args ? { args: job.args } : {}),
            env: {
              ...job.env,
              [STEP_ENV.inputs]: inputsFile,
              [STEP_ENV.outputs]: outputsDir,
              [STEP_ENV.pipelineRunId]: this.#run.id,
              [STEP_ENV.stepId]: stepId,
            },
            ...(job.secretEnv ? { secretEnv: job.secretEnv } : {}),
            ...(job.workingDir !== undefined ? { workingDir: job.workingDir } : {}),
            ...(job.resources ? { resources: job.resources } : {}),
            ...(job.volumeMounts ? { volumeMounts: job.volumeMounts } : {}),
            ...(job.sharedMemory ? { sharedMemory: job.sharedMemory } : {}),
            ...(job.tolerations ? { tolerations: job.tolerations } : {}),
            ...(job.nodeSelector ? { nodeSelector: job.nodeSelector } : {}),
          },
        ],
        ...(job.volumes ? { volumes: job.volumes } : {}),
        ...(job.serviceAccount ? { serviceAccount: job.serviceAccount } : {}),
        ...(job.queue ? { queue: job.queue } : {}),
        ...(job.priority ? { priority: job.priority } : {}),
        ...(node.timeoutSeconds !== undefined ? { timeoutSeconds: node.timeoutSeconds } : {}),
        labels: {
          'mlplane.dev/pipeline': this.#run.pipeline,
          'mlplane.dev/pipeline-run': this.#run.id,
          'mlplane.dev/step': node.id,
        },
        // The same attempt resubmitted after a crash (before its job id was saved) finds the job it started.
        idempotencyKey: `pipeline:${this.#run.id}/${stepId}/${record.attempt}`,
      };
      const submitted = await compute.submit(spec);
      jobId = submitted.id;
      await onSubmitted(jobId);
    }
    const final = await this.#waitFor(jobId);
    if (final.phase !== 'Succeeded') {
      const exit = final.replicas.find((r) => r.exitCode !== undefined && r.exitCode !== 0)?.exitCode;
      throw new AttemptFailedError(
        `job ${jobId} ended ${final.phase}${final.reason ? ` (${final.reason})` : ''}${exit !== undefined ? ` with exit code ${exit}` : ''}${final.message ? `: ${final.message}` : ''}`,
      );
    }
    return collectOutputs(artifacts, outputsDir, node.definition.outputs ?? {}, stepId);
  }

  async #waitFor(jobId: string): Promise<JobStatus> {
    let last: JobStatus | undefined;
    for await (const status of this.#ctx.options.compute.watch({ id: jobId }, { signal: this.#abort.signal })) {
      last = status;
      if (isTerminalJobPhase(status.phase)) return status;
    }
    if (this.#abort.signal.aborted) throw new AbortError('the run stopped');
    // The watch ended without a terminal status (the backend closed): read it once more.
    last = await this.#ctx.options.compute.get(jobId);
    if (isTerminalJobPhase(last.phase)) return last;
    throw new AttemptFailedError(`lost track of job ${jobId} (phase ${last.phase})`);
  }
}

/** The first declared output a stored result lacks or holds in another shape, described; undefined when all fit. */
function unfitOutput(schemas: Schemas, stored: Readonly<Record<string, unknown>>): string | undefined {
  for (const [name, schema] of Object.entries(schemas)) {
    if (!(name in stored)) return `'${name}' is missing`;
    if (!schema.safeParse(stored[name]).success) return `'${name}' fails the output's schema`;
  }
  return undefined;
}

function bindingOf(ref: Ref<unknown>): Binding {
  return { kind: 'ref', node: ref.node, output: ref.output };
}
