import { AsyncParallelHook } from 'tapable';
import { afterChange, type GuardContext, intercept } from '../../kernel/port.js';
import { artifactStorePort } from '../artifact-store.js';
import { type ExperimentTracker, isTerminalRunStatus, type LogBatchInput, type Run } from '../experiment-tracker.js';
import { judgePut, sizeOf, withPutJudged } from './artifact-store.js';

export function createExperimentTrackerHooks() {
  return Object.freeze({
    /** A run was created (after the write). */
    created: new AsyncParallelHook<[Run]>(['run']),
    /** A run reached FINISHED, FAILED or KILLED from a live status (after the write). */
    finished: new AsyncParallelHook<[Run]>(['run']),
    /**
     * Metrics, params or tags were logged to a run (after the write), whichever operation logged them (`logBatch`,
     * `logMetric`, `logParam`, `setTag`), as one batch: ingest counters and live metric feeds tap it.
     */
    logged: new AsyncParallelHook<[string, LogBatchInput]>(['runId', 'batch']),
  });
}
export type ExperimentTrackerHooks = ReturnType<typeof createExperimentTrackerHooks>;

/**
 * Fires `run.created`, `run.finished` and `run.logged` after the tracker's writes, and `artifact.beforePut` before a run artifact is
 * stored, whether the tracker stores it through the ArtifactStore or through its own artifact service (MLflow's proxy).
 */
export function guardExperimentTracker(
  tracker: ExperimentTracker,
  context: GuardContext<ExperimentTrackerHooks>,
): ExperimentTracker {
  const { hooks } = context;
  const artifactHooks = context.hooksOf(artifactStorePort);
  // The ingest path is the hottest one: with nothing tapped, logging costs no more than the provider's write.
  const logged = async (runId: string, batch: LogBatchInput) => {
    if (hooks.logged.isUsed()) await afterChange(context, 'run.logged', () => hooks.logged.promise(runId, batch));
  };
  return intercept(tracker, {
    async createRun(input) {
      const run = await tracker.createRun(input);
      await afterChange(context, 'run.created', () => hooks.created.promise(run));
      return run;
    },
    async updateRun(input) {
      // Only a move from a live status to a terminal one finishes a run; re-finishing fires nothing.
      const finishing = input.status !== undefined && isTerminalRunStatus(input.status);
      const before = finishing ? await tracker.getRun(input.runId) : undefined;
      const info = await tracker.updateRun(input);
      if (before && !isTerminalRunStatus(before.info.status) && isTerminalRunStatus(info.status)) {
        await afterChange(context, 'run.finished', async () => hooks.finished.promise(await tracker.getRun(info.id)));
      }
      return info;
    },
    async logBatch(runId, batch) {
      await tracker.logBatch(runId, batch);
      await logged(runId, batch);
    },
    async logMetric(runId, metric) {
      await tracker.logMetric(runId, metric);
      await logged(runId, { metrics: [metric] });
    },
    async logParam(runId, param) {
      await tracker.logParam(runId, param);
      await logged(runId, { params: [param] });
    },
    async setTag(runId, tag) {
      await tracker.setTag(runId, tag);
      await logged(runId, { tags: [tag] });
    },
    async logArtifact(runId, path, body, options) {
      await judgePut(artifactHooks, {
        key: path,
        runId,
        contentType: options?.contentType,
        metadata: options?.metadata ?? {},
        size: sizeOf(body),
        via: 'put',
      });
      return withPutJudged(() => tracker.logArtifact(runId, path, body, options));
    },
  });
}
