import { describe, expect, it } from 'vitest';
import { STAGE_POLICY, veto } from '../../kernel/hooks.js';
import type { PlatformHooks } from '../../kernel/platform-hooks.js';
import type { ServiceRef } from '../../kernel/service-ref.js';
import { artifactStoreRef } from '../../ports/artifact-store.js';
import { computeBackendRef, type JobSpec } from '../../ports/compute-backend.js';
import { ConflictError, VetoedError } from '../../ports/errors.js';
import { type DomainEvent, eventBusRef } from '../../ports/event-bus.js';
import { experimentTrackerRef } from '../../ports/experiment-tracker.js';
import type { JobEvent } from '../../ports/guards/compute-backend.js';
import type { EventHandling } from '../../ports/guards/event-bus.js';
import type { DeploymentRollout } from '../../ports/guards/model-server.js';
import { modelRegistryRef } from '../../ports/model-registry.js';
import { type DeploymentSpec, modelServerRef } from '../../ports/model-server.js';
import { currentTraceContext } from '../../ports/trace-context.js';
import { eventually, uniqueTag } from './support.js';

/** A started platform, as the suite needs it. */
export interface HooksPlatform {
  readonly hooks: PlatformHooks;
  get<T>(ref: ServiceRef<T>): Promise<T>;
  stop(): Promise<void>;
}

export interface HooksFixture {
  readonly platform: HooksPlatform;
  /** A job the platform's ComputeBackend runs to success quickly (a `true` command, say); job cases need it. */
  readonly job?: (name: string) => JobSpec;
  /** A deployment the platform's ModelServer accepts; deployment cases need it. */
  readonly deployment?: (name: string) => DeploymentSpec;
}

async function provided(platform: HooksPlatform, ref: ServiceRef<unknown>): Promise<boolean> {
  try {
    await platform.get(ref);
    return true;
  } catch {
    return false;
  }
}

/**
 * Proves that every hook of the core ports fires for the providers a platform chose, whoever wrote them: the kernel
 * guards each provider, so no adapter can forget a hook. Ports the platform does not provide are skipped, by name.
 */
export function platformHooksConformance(name: string, factory: () => Promise<HooksFixture>): void {
  describe(`Hooks conformance: ${name}`, async () => {
    const probe = await factory();
    const has = {
      artifacts: await provided(probe.platform, artifactStoreRef),
      tracker: await provided(probe.platform, experimentTrackerRef),
      bus: await provided(probe.platform, eventBusRef),
      registry: await provided(probe.platform, modelRegistryRef),
      compute: (await provided(probe.platform, computeBackendRef)) && probe.job !== undefined,
      serving: (await provided(probe.platform, modelServerRef)) && probe.deployment !== undefined,
    };
    const atomicPromotions =
      has.registry && (await probe.platform.get(modelRegistryRef)).capabilities.atomicPromotionCheck;
    await probe.platform.stop();

    const withPlatform = (fn: (fixture: HooksFixture) => Promise<void>) => async () => {
      const fixture = await factory();
      try {
        await fn(fixture);
      } finally {
        await fixture.platform.stop();
      }
    };

    describe.skipIf(!has.artifacts)('artifact.beforePut (no ArtifactStore provided: skipped)', () => {
      it(
        'vetoes a put, which then stores nothing',
        withPlatform(async ({ platform }) => {
          const store = await platform.get(artifactStoreRef);
          const seen: string[] = [];
          platform.hooks.artifact.beforePut.tapPromise({ name: 'no-exe', stage: STAGE_POLICY }, async (request) => {
            seen.push(`${request.via}:${request.key}`);
            return request.key.endsWith('.exe') ? veto('no executables') : undefined;
          });
          const key = `hooks/${uniqueTag()}/tool.exe`;
          await expect(store.put(key, 'MZ')).rejects.toBeInstanceOf(VetoedError);
          expect(await store.exists(key)).toBe(false);
          await store.put(`hooks/${uniqueTag()}/ok.txt`, 'fine');
          expect(seen).toHaveLength(2);
        }),
      );
    });

    describe.skipIf(!has.tracker)('run.created, run.finished (no ExperimentTracker provided: skipped)', () => {
      it(
        'fire after createRun and after the first move to a terminal status, once',
        withPlatform(async ({ platform }) => {
          const tracker = await platform.get(experimentTrackerRef);
          const created: string[] = [];
          const finished: string[] = [];
          platform.hooks.run.created.tapPromise('probe', async (run) => void created.push(run.info.id));
          platform.hooks.run.finished.tapPromise('probe', async (run) => void finished.push(run.info.status));
          const experiment = await tracker.createExperiment({ name: `hooks-${uniqueTag()}` });
          const run = await tracker.createRun({ experimentId: experiment.id });
          expect(created).toEqual([run.info.id]);
          await tracker.updateRun({ runId: run.info.id, status: 'FINISHED' });
          await tracker.updateRun({ runId: run.info.id, status: 'FINISHED' });
          expect(finished).toEqual(['FINISHED']);
        }),
      );

      it(
        'fires run.logged after each logBatch, logMetric, logParam and setTag that wrote, with what was logged',
        withPlatform(async ({ platform }) => {
          const tracker = await platform.get(experimentTrackerRef);
          const logged: [string, number, number, number][] = [];
          platform.hooks.run.logged.tapPromise('probe', async (runId, batch) => {
            logged.push([runId, batch.metrics?.length ?? 0, batch.params?.length ?? 0, batch.tags?.length ?? 0]);
          });
          const experiment = await tracker.createExperiment({ name: `hooks-${uniqueTag()}` });
          const id = (await tracker.createRun({ experimentId: experiment.id })).info.id;
          await tracker.logBatch(id, {
            metrics: [
              { key: 'loss', value: 1, step: 0 },
              { key: 'loss', value: 0.5, step: 1 },
            ],
            params: [{ key: 'lr', value: '0.1' }],
            tags: [{ key: 'team', value: 'a' }],
          });
          await tracker.logMetric(id, { key: 'acc', value: 0.9, step: 1 });
          await tracker.logParam(id, { key: 'seed', value: '1' });
          await tracker.setTag(id, { key: 'note', value: 'x' });
          // A write the tracker refuses fires nothing.
          await expect(tracker.logParam(id, { key: 'lr', value: '0.2' })).rejects.toBeDefined();
          expect(logged).toEqual([
            [id, 2, 1, 1],
            [id, 1, 0, 0],
            [id, 0, 1, 0],
            [id, 0, 0, 1],
          ]);
        }),
      );

      it.skipIf(!has.artifacts)(
        'gates run artifacts with artifact.beforePut exactly once, whatever store the tracker writes to',
        withPlatform(async ({ platform }) => {
          const tracker = await platform.get(experimentTrackerRef);
          const seen: { key: string; runId: string | undefined }[] = [];
          platform.hooks.artifact.beforePut.tapPromise('probe', async (request) => {
            seen.push({ key: request.key, runId: request.runId });
            return request.key.endsWith('.exe') ? veto('no executables') : undefined;
          });
          const experiment = await tracker.createExperiment({ name: `hooks-${uniqueTag()}` });
          const run = await tracker.createRun({ experimentId: experiment.id });
          await tracker.logArtifact(run.info.id, 'model/weights.bin', 'w');
          await expect(tracker.logArtifact(run.info.id, 'tools/setup.exe', 'MZ')).rejects.toBeInstanceOf(VetoedError);
          expect(seen).toEqual([
            { key: 'model/weights.bin', runId: run.info.id },
            { key: 'tools/setup.exe', runId: run.info.id },
          ]);
          const listed = await tracker.listRunArtifacts(run.info.id, { path: 'tools' });
          expect(listed.items).toEqual([]);
        }),
      );
    });

    describe.skipIf(!has.bus)('event.handled (no EventBus provided: skipped)', () => {
      it(
        "fires after every handler call, failed ones too, and runs handlers inside the event's trace context",
        withPlatform(async ({ platform }) => {
          const bus = await platform.get(eventBusRef);
          const handled: EventHandling[] = [];
          const ns = `hooks${uniqueTag()}`;
          // Other groups (the audit log's) handle the event too; the probe's group is the one under test.
          platform.hooks.event.handled.tapPromise('probe', async (handling) => {
            if (handling.group === `${ns}-probe`) handled.push(handling);
          });
          const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
          const traces: (string | undefined)[] = [];
          let calls = 0;
          const subscription = await bus.subscribe({
            group: `${ns}-probe`,
            types: [`${ns}.*`],
            maxAttempts: 3,
            backoff: { initialMs: 1, maxMs: 5 },
            handler: async () => {
              traces.push(currentTraceContext()?.traceparent);
              if (++calls === 1) throw new Error('first call fails');
            },
          });
          try {
            const event: DomainEvent = {
              id: `${ns}-1`,
              type: `${ns}.thing.happened`,
              version: 1,
              occurredAt: new Date(Date.now() - 1000).toISOString(),
              subject: `${ns}:s`,
              traceContext: { traceparent },
              payload: {},
            };
            await bus.publish(event);
            await eventually(() => expect(handled.map((h) => h.ok)).toEqual([false, true]), 10_000);
            expect(handled.every((h) => h.event.id === event.id)).toBe(true);
            expect(handled[1]!.lagSeconds).toBeGreaterThanOrEqual(1);
            expect(traces).toEqual([traceparent, traceparent]);
          } finally {
            await subscription.close();
          }
        }),
      );
    });

    describe.skipIf(!has.registry)('model.* (no ModelRegistry provided: skipped)', () => {
      it(
        'fires model.registered, gates promotions with model.beforePromote, and fires model.promoted',
        withPlatform(async ({ platform }) => {
          const registry = await platform.get(modelRegistryRef);
          const events: string[] = [];
          platform.hooks.model.registered.tapPromise(
            'probe',
            async (v) => void events.push(`registered v${v.version}`),
          );
          platform.hooks.model.promoted.tapPromise(
            'probe',
            async (v, p) => void events.push(`promoted v${v.version} ${p.kind}:${p.to}`),
          );
          platform.hooks.model.beforePromote.tapPromise({ name: 'review', stage: STAGE_POLICY }, async (v, to) =>
            to === 'Production' && !v.tags.reviewed ? veto('needs a review') : undefined,
          );
          const name = `hooks-${uniqueTag()}`;
          await registry.createModel({ name });
          await registry.createVersion({ name, source: 'file:///models/a' });
          await expect(registry.transitionStage({ name, version: 1, to: 'Production' })).rejects.toBeInstanceOf(
            VetoedError,
          );
          expect((await registry.getVersion(name, 1)).stage).toBe('None');
          await registry.setVersionTag(name, 1, 'reviewed', 'yes');
          await registry.transitionStage({ name, version: 1, to: 'Production' });
          await registry.setAlias({ name, alias: 'champion', version: 1 });
          expect(events).toEqual(['registered v1', 'promoted v1 stage:Production', 'promoted v1 alias:champion']);
        }),
      );

      it.skipIf(!atomicPromotions)(
        'never applies a promotion on a state the policy did not see (a tag deleted while it judged; skipped without capabilities.atomicPromotionCheck)',
        withPlatform(async ({ platform }) => {
          const registry = await platform.get(modelRegistryRef);
          const name = `hooks-${uniqueTag()}`;
          await registry.createModel({ name });
          await registry.createVersion({ name, source: 'file:///models/a', tags: { reviewed: 'yes' } });
          platform.hooks.model.beforePromote.tapPromise({ name: 'review', stage: STAGE_POLICY }, async (v) => {
            if (!v.tags.reviewed) return veto('needs a review');
            // The review is withdrawn while the policy is still deciding.
            await registry.deleteVersionTag(name, 1, 'reviewed');
            return undefined;
          });
          await expect(registry.transitionStage({ name, version: 1, to: 'Production' })).rejects.toBeInstanceOf(
            ConflictError,
          );
          expect((await registry.getVersion(name, 1)).stage).toBe('None');
        }),
      );
    });

    describe.skipIf(!has.compute)('job.* (no ComputeBackend or job spec provided: skipped)', () => {
      it(
        'rewrites the spec with job.beforeSubmit and fires job.started and job.finished once each',
        withPlatform(async ({ platform, job }) => {
          const backend = await platform.get(computeBackendRef);
          const started: JobEvent[] = [];
          const finished: JobEvent[] = [];
          platform.hooks.job.beforeSubmit.tapPromise('labeller', async (spec) => ({
            ...spec,
            labels: { ...spec.labels, team: 'hooks' },
          }));
          platform.hooks.job.started.tapPromise('probe', async (e) => void started.push(e));
          platform.hooks.job.finished.tapPromise('probe', async (e) => void finished.push(e));
          const submitted = await backend.submit(job!(`hooks-${uniqueTag()}`.toLowerCase()));
          expect(submitted.labels.team).toBe('hooks');
          await eventually(() => expect(finished).toHaveLength(1), 60_000, 20);
          expect(finished[0]!.status.phase).toBe('Succeeded');
          expect(finished[0]!.spec.labels?.team).toBe('hooks');
          expect(started.length).toBeLessThanOrEqual(1);
        }),
      );
    });

    describe.skipIf(!has.serving)('deployment.* (no ModelServer or deployment provided: skipped)', () => {
      it(
        'vetoes a rollout, which then changes nothing, and fires deployment.rolledOut after one',
        withPlatform(async ({ platform, deployment }) => {
          const server = await platform.get(modelServerRef);
          const rolled: DeploymentRollout[] = [];
          platform.hooks.deployment.rolledOut.tapPromise('probe', async (r) => void rolled.push(r));
          platform.hooks.deployment.beforeRollout.tapPromise({ name: 'freeze', stage: STAGE_POLICY }, async (r) =>
            r.spec.name.endsWith('-frozen') ? veto('change freeze') : undefined,
          );
          const frozen = deployment!(`hooks-${uniqueTag()}-frozen`.toLowerCase());
          await expect(server.deploy(frozen)).rejects.toBeInstanceOf(VetoedError);
          await expect(server.get(frozen.name)).rejects.toThrow();
          const spec = deployment!(`hooks-${uniqueTag()}`.toLowerCase());
          await server.deploy(spec);
          expect(rolled.map((r) => [r.spec.name, r.previous?.name])).toEqual([[spec.name, undefined]]);
        }),
      );
    });
  });
}
