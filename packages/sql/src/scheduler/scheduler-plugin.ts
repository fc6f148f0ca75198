import { computeBackendRef, coreServices, createServiceRef, definePlugin, metadataStoreRef } from '@mlplane/core';
import { z } from 'zod';
import type { ProjectQuota } from './config.js';
import { type QueueState, SqlScheduler, type SqlSchedulerOptions } from './sql-scheduler.js';

const quantity = z.union([z.number().nonnegative(), z.string().min(1)]);
const quota = z.object({
  cpu: quantity.optional(),
  memory: z.string().min(1).optional(),
  gpus: z.number().int().nonnegative().optional(),
  gpuTypes: z.record(z.string(), z.number().int().nonnegative()).optional(),
  maxRunning: z.number().int().nonnegative().optional(),
  weight: z.number().positive().optional(),
});

/** Drops the keys zod left undefined, so the options read as the scheduler's optional fields. */
function defined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/**
 * The durable scheduler in front of whichever ComputeBackend is chosen: jobs wait in queues for their project's quota
 * and are dispatched by the platform's processes with `dispatch` on (any number of them on PostgreSQL); see
 * docs/operations/scheduler.md. A process with `dispatch: false` (an API server) accepts jobs and leaves dispatching
 * to the others.
 */
/** Queue state of the platform's scheduler (`SqlScheduler.queueState`), for APIs and dashboards. */
export interface SchedulerQueues {
  queueState(): Promise<QueueState>;
}
export const schedulerQueuesRef = createServiceRef<SchedulerQueues>({ id: 'scheduler.queues' });

export const schedulerPlugin = definePlugin({
  id: 'scheduler',
  configSchema: z.object({
    queues: z
      .array(
        z.object({
          name: z.string().min(1),
          maxRunning: z.number().int().positive().optional(),
          defaultPriority: z.string().min(1).optional(),
        }),
      )
      .min(1)
      .default([{ name: 'default' }]),
    defaultQueue: z.string().min(1).optional(),
    priorityClasses: z.record(z.string(), z.number().int()).optional(),
    defaultPriority: z.string().min(1).optional(),
    quotas: z.record(z.string(), quota).optional(),
    defaultQuota: quota.optional(),
    dispatch: z.boolean().default(true),
    leaseTtlMs: z.number().int().positive().optional(),
    pollIntervalMs: z.number().int().positive().optional(),
    followIntervalMs: z.number().int().nonnegative().optional(),
    admitBatch: z.number().int().positive().max(10_000).optional(),
  }),
  register(env) {
    // The decorated backend reaches the platform's callers behind the port's guard; queue state goes through its own
    // service, which asks for the ComputeBackend first so that the scheduler exists.
    let made: SqlScheduler | undefined;
    env.provide(schedulerQueuesRef, {
      deps: { compute: computeBackendRef },
      factory: () => ({
        queueState: () => {
          if (!made) throw new Error('the scheduler did not start');
          return made.queueState();
        },
      }),
    });
    env.decorate(computeBackendRef, {
      deps: { store: metadataStoreRef, logger: coreServices.logger, lifecycle: coreServices.lifecycle },
      decorate: async ({ service, config, store, logger, lifecycle }) => {
        const { dispatch, quotas, defaultQuota, queues, ...rest } = config;
        const options: SqlSchedulerOptions = {
          ...defined(rest),
          queues: queues.map((q) => defined(q)),
          ...(quotas
            ? { quotas: Object.fromEntries(Object.entries(quotas).map(([p, q]) => [p, defined(q) as ProjectQuota])) }
            : {}),
          ...(defaultQuota ? { defaultQuota: defined(defaultQuota) as ProjectQuota } : {}),
          logger,
        };
        const scheduler = await SqlScheduler.open(store, service, options);
        made = scheduler;
        // Services are made when first asked for, which may be after the platform started: dispatch starts now.
        if (dispatch) scheduler.start();
        lifecycle.addShutdownHook(() => scheduler.stop(), 'scheduler dispatch');
        return scheduler;
      },
    });
  },
});
