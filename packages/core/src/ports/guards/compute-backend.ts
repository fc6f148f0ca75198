import { AsyncParallelHook, AsyncSeriesWaterfallHook } from 'tapable';
import { afterChange, type GuardContext, intercept } from '../../kernel/port.js';
import { type ComputeBackend, isTerminalJobPhase, type JobSpec, type JobStatus } from '../compute-backend.js';

export interface JobEvent {
  readonly spec: JobSpec;
  readonly status: JobStatus;
}

export function createComputeBackendHooks() {
  return Object.freeze({
    /** Transform: each tap may return a rewritten spec (add tolerations, labels, a queue) before the backend sees it. */
    beforeSubmit: new AsyncSeriesWaterfallHook<[JobSpec]>(['spec']),
    /** The job reached Running (seen by the process that submitted it). */
    started: new AsyncParallelHook<[JobEvent]>(['job']),
    /** The job reached Succeeded, Failed or Cancelled (seen by the process that submitted it). */
    finished: new AsyncParallelHook<[JobEvent]>(['job']),
  });
}
export type ComputeBackendHooks = ReturnType<typeof createComputeBackendHooks>;

/**
 * Runs `job.beforeSubmit` on every spec before the backend sees it, then follows each job this process submitted
 * through the backend's own `watch` and fires `job.started` and `job.finished` once each, until the platform stops.
 */
export function guardComputeBackend(
  backend: ComputeBackend,
  context: GuardContext<ComputeBackendHooks>,
): ComputeBackend {
  const { hooks, signal } = context;
  const follow = async (spec: JobSpec, first: JobStatus) => {
    let started = false;
    const see = async (status: JobStatus) => {
      if (!started && status.phase === 'Running') {
        started = true;
        await afterChange(context, 'job.started', () => hooks.started.promise({ spec, status }));
      }
      if (isTerminalJobPhase(status.phase)) {
        await afterChange(context, 'job.finished', () => hooks.finished.promise({ spec, status }));
        return true;
      }
      return false;
    };
    if (await see(first)) return;
    try {
      for await (const status of backend.watch({ id: first.id }, { signal })) {
        if (await see(status)) return;
      }
    } catch (err) {
      if (!signal.aborted) context.logger.warn({ err, job: first.id }, 'stopped following a job for its hooks');
    }
  };
  return intercept(backend, {
    async submit(spec) {
      const rewritten = await hooks.beforeSubmit.promise(spec);
      const status = await backend.submit(rewritten);
      void follow(rewritten, status);
      return status;
    },
  });
}
