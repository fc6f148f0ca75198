import type { MetadataStore, Migration } from '@mlplane/core';
import { NotFoundError } from '@mlplane/core';
import type { Kysely } from 'kysely';
import type { CacheInputs, StepExplanation } from './cache.js';
import * as createPipelines from './migrations/20261202T090000_create_pipelines.js';

/** Owner of the pipeline tables' migrations. */
export const PIPELINES_OWNER = 'pipelines';

export const PIPELINES_MIGRATIONS: Readonly<Record<string, Migration>> = Object.freeze({
  '20261202T090000_create_pipelines': createPipelines,
});

export type PipelineRunStatus = 'Running' | 'Succeeded' | 'Failed';

/**
 * A step has a record once it starts (or is skipped or reused). Running: its job (or action) is under way; `attempt`
 * counts from 1. Succeeded: ran and its outputs are stored. Cached: reused an earlier execution's outputs. Skipped: a
 * condition was false, or a step it needs was skipped. Failed: its last attempt failed, or its outputs broke their
 * schemas.
 */
export type StepStatus = 'Running' | 'Succeeded' | 'Cached' | 'Skipped' | 'Failed';

export const FINISHED_STEP_STATUSES: readonly StepStatus[] = Object.freeze([
  'Succeeded',
  'Cached',
  'Skipped',
  'Failed',
]);

export interface PipelineRunRecord {
  readonly id: string;
  readonly pipeline: string;
  readonly project: string;
  readonly definitionHash: string;
  readonly params: Readonly<Record<string, unknown>>;
  readonly status: PipelineRunStatus;
  readonly trackerRunId: string | undefined;
  readonly error: string | undefined;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly finishedAt: Date | undefined;
}

export interface StepRecord {
  readonly runId: string;
  /** The step's id, or `<id>[<i>]` for item i of a fan-out. */
  readonly stepId: string;
  /** The pipeline node it belongs to. */
  readonly node: string;
  readonly status: StepStatus;
  readonly attempt: number;
  readonly jobId: string | undefined;
  readonly cacheKey: string | undefined;
  readonly cacheInputs: CacheInputs | undefined;
  /** Input values as given to the step (artifacts as references). */
  readonly inputs: Readonly<Record<string, unknown>> | undefined;
  readonly outputs: Readonly<Record<string, unknown>> | undefined;
  readonly explanation: StepExplanation | undefined;
  readonly trackerRunId: string | undefined;
  readonly error: string | undefined;
  readonly startedAt: Date | undefined;
  readonly finishedAt: Date | undefined;
}

interface RunsTable {
  id: string;
  pipeline: string;
  project: string;
  definition_hash: string;
  params: string;
  status: string;
  tracker_run_id: string | null;
  error: string | null;
  created_at: number;
  updated_at: number;
  finished_at: number | null;
}

interface StepsTable {
  run_id: string;
  step_id: string;
  node: string;
  pipeline: string;
  project: string;
  status: string;
  attempt: number;
  job_id: string | null;
  cache_key: string | null;
  cache_inputs: string | null;
  inputs: string | null;
  outputs: string | null;
  explanation: string | null;
  tracker_run_id: string | null;
  error: string | null;
  started_at: number | null;
  finished_at: number | null;
  updated_at: number;
}

interface PipelinesDatabase {
  mlplane_pipeline_runs: RunsTable;
  mlplane_pipeline_steps: StepsTable;
}

const json = (v: unknown) => (v === undefined ? null : JSON.stringify(v));
const parsed = <T>(v: string | null): T | undefined => (v === null ? undefined : (JSON.parse(v) as T));
const date = (v: number | string | null) => (v === null ? undefined : new Date(Number(v)));
const ms = (d: Date | undefined) => (d === undefined ? null : d.getTime());

function toRun(r: RunsTable): PipelineRunRecord {
  return {
    id: r.id,
    pipeline: r.pipeline,
    project: r.project,
    definitionHash: r.definition_hash,
    params: JSON.parse(r.params),
    status: r.status as PipelineRunStatus,
    trackerRunId: r.tracker_run_id ?? undefined,
    error: r.error ?? undefined,
    createdAt: new Date(Number(r.created_at)),
    updatedAt: new Date(Number(r.updated_at)),
    finishedAt: date(r.finished_at),
  };
}

function toStep(r: StepsTable): StepRecord {
  return {
    runId: r.run_id,
    stepId: r.step_id,
    node: r.node,
    status: r.status as StepStatus,
    attempt: Number(r.attempt),
    jobId: r.job_id ?? undefined,
    cacheKey: r.cache_key ?? undefined,
    cacheInputs: parsed(r.cache_inputs),
    inputs: parsed(r.inputs),
    outputs: parsed(r.outputs),
    explanation: parsed(r.explanation),
    trackerRunId: r.tracker_run_id ?? undefined,
    error: r.error ?? undefined,
    startedAt: date(r.started_at),
    finishedAt: date(r.finished_at),
  };
}

/** Pipeline runs and their steps as rows of the MetadataStore (SQLite or PostgreSQL). */
export class PipelineRunStore {
  readonly #store: MetadataStore;

  private constructor(store: MetadataStore) {
    this.#store = store;
  }

  static async open(store: MetadataStore): Promise<PipelineRunStore> {
    await store.migrate(PIPELINES_OWNER, PIPELINES_MIGRATIONS);
    return new PipelineRunStore(store);
  }

  get #db(): Kysely<PipelinesDatabase> {
    return this.#store.db<PipelinesDatabase>();
  }

  async insertRun(run: PipelineRunRecord): Promise<void> {
    await this.#db
      .insertInto('mlplane_pipeline_runs')
      .values({
        id: run.id,
        pipeline: run.pipeline,
        project: run.project,
        definition_hash: run.definitionHash,
        params: JSON.stringify(run.params),
        status: run.status,
        tracker_run_id: run.trackerRunId ?? null,
        error: run.error ?? null,
        created_at: run.createdAt.getTime(),
        updated_at: run.updatedAt.getTime(),
        finished_at: ms(run.finishedAt),
      })
      .execute();
  }

  async getRun(id: string): Promise<PipelineRunRecord> {
    const row = await this.#db.selectFrom('mlplane_pipeline_runs').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new NotFoundError(`pipeline run '${id}' does not exist`);
    return toRun(row);
  }

  async finishRun(id: string, status: PipelineRunStatus, error?: string): Promise<void> {
    const now = Date.now();
    await this.#db
      .updateTable('mlplane_pipeline_runs')
      .set({ status, error: error ?? null, updated_at: now, finished_at: status === 'Running' ? null : now })
      .where('id', '=', id)
      .execute();
  }

  /** Writes steps (new or changed) in one transaction: a fan-out of 200 items costs one commit, not 200. */
  async saveSteps(pipeline: string, project: string, steps: readonly StepRecord[]): Promise<void> {
    if (steps.length === 0) return;
    const now = Date.now();
    const rows: StepsTable[] = steps.map((s) => ({
      run_id: s.runId,
      step_id: s.stepId,
      node: s.node,
      pipeline,
      project,
      status: s.status,
      attempt: s.attempt,
      job_id: s.jobId ?? null,
      cache_key: s.cacheKey ?? null,
      cache_inputs: json(s.cacheInputs),
      inputs: json(s.inputs),
      outputs: json(s.outputs),
      explanation: json(s.explanation),
      tracker_run_id: s.trackerRunId ?? null,
      error: s.error ?? null,
      started_at: ms(s.startedAt),
      finished_at: ms(s.finishedAt),
      updated_at: now,
    }));
    await this.#store.transaction<void, PipelinesDatabase>(async (trx) => {
      // Chunks keep each statement below SQLite's bound-parameter limit.
      for (let i = 0; i < rows.length; i += 500) {
        await trx
          .insertInto('mlplane_pipeline_steps')
          .values(rows.slice(i, i + 500))
          .onConflict((oc) =>
            oc.columns(['run_id', 'step_id']).doUpdateSet((eb) => ({
              status: eb.ref('excluded.status'),
              attempt: eb.ref('excluded.attempt'),
              job_id: eb.ref('excluded.job_id'),
              cache_key: eb.ref('excluded.cache_key'),
              cache_inputs: eb.ref('excluded.cache_inputs'),
              inputs: eb.ref('excluded.inputs'),
              outputs: eb.ref('excluded.outputs'),
              explanation: eb.ref('excluded.explanation'),
              tracker_run_id: eb.ref('excluded.tracker_run_id'),
              error: eb.ref('excluded.error'),
              started_at: eb.ref('excluded.started_at'),
              finished_at: eb.ref('excluded.finished_at'),
              updated_at: eb.ref('excluded.updated_at'),
            })),
          )
          .execute();
      }
    });
  }

  async listSteps(runId: string): Promise<StepRecord[]> {
    const rows = await this.#db
      .selectFrom('mlplane_pipeline_steps')
      .selectAll()
      .where('run_id', '=', runId)
      .orderBy('step_id')
      .execute();
    return rows.map(toStep);
  }

  /** The latest execution (not a reuse) with this cache key in the project that succeeded. */
  async findByCacheKey(project: string, cacheKey: string): Promise<StepRecord | undefined> {
    const row = await this.#db
      .selectFrom('mlplane_pipeline_steps')
      .selectAll()
      .where('project', '=', project)
      .where('cache_key', '=', cacheKey)
      .where('status', '=', 'Succeeded')
      .orderBy('finished_at', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row ? toStep(row) : undefined;
  }

  /** The latest finished execution or reuse of the same step of the same pipeline in another run: what a miss differs from. */
  async latestOfStep(
    project: string,
    pipeline: string,
    stepId: string,
    exceptRun: string,
  ): Promise<StepRecord | undefined> {
    const row = await this.#db
      .selectFrom('mlplane_pipeline_steps')
      .selectAll()
      .where('project', '=', project)
      .where('pipeline', '=', pipeline)
      .where('step_id', '=', stepId)
      .where('run_id', '<>', exceptRun)
      .where('status', 'in', ['Succeeded', 'Cached'])
      .orderBy('finished_at', 'desc')
      .limit(1)
      .executeTakeFirst();
    return row ? toStep(row) : undefined;
  }
}
