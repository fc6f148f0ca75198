import { describe, expect, it } from 'vitest';
import {
  callVetoHook,
  createPlatformHooks,
  type JobSpec,
  type ModelPromotion,
  type ModelVersion,
  STAGE_EARLY,
  STAGE_LATE,
  STAGE_POLICY,
  VetoedError,
  veto,
} from '../../src/index.js';

const version = { name: 'fraud', version: 3, tags: {} } as unknown as ModelVersion;
const promotion: ModelPromotion = { kind: 'stage', from: 'Staging', to: 'Production', actor: 'ana', reason: undefined };

describe('hooks', () => {
  it('are frozen: nobody adds or replaces hooks at run time', () => {
    const hooks = createPlatformHooks();
    expect(Object.isFrozen(hooks)).toBe(true);
    expect(Object.isFrozen(hooks.model)).toBe(true);
    expect(() => {
      (hooks.model as Record<string, unknown>).extra = 1;
    }).toThrow(TypeError);
  });

  it('orders taps by stage, not by registration order', async () => {
    const hooks = createPlatformHooks();
    const order: string[] = [];
    hooks.platform.ready.tap({ name: 'late', stage: STAGE_LATE }, () => void order.push('late'));
    hooks.platform.ready.tap({ name: 'default' }, () => void order.push('default'));
    hooks.platform.ready.tap({ name: 'early', stage: STAGE_EARLY }, () => void order.push('early'));
    await hooks.platform.ready.promise({ pluginIds: [], startedAt: new Date() });
    expect(order).toEqual(['early', 'default', 'late']);
  });

  it('lets a policy veto a promotion, names the tap, and skips later taps', async () => {
    const hooks = createPlatformHooks();
    const seen: string[] = [];
    hooks.model.beforePromote.tapPromise({ name: 'enricher', stage: STAGE_EARLY }, async () => {
      seen.push('enricher');
      return undefined;
    });
    hooks.model.beforePromote.tapPromise({ name: 'risk-review', stage: STAGE_POLICY }, async (v, to) =>
      to === 'Production' && !v.tags.reviewed ? veto('needs a risk review') : undefined,
    );
    hooks.model.beforePromote.tapPromise({ name: 'after', stage: STAGE_LATE }, async () => {
      seen.push('after');
      return undefined;
    });
    const err = await callVetoHook(
      hooks.model.beforePromote,
      'promotion of fraud v3 to Production',
      version,
      'Production',
      promotion,
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VetoedError);
    expect((err as VetoedError).message).toBe(
      'promotion of fraud v3 to Production was vetoed by risk-review: needs a risk review',
    );
    expect((err as VetoedError).by).toBe('risk-review');
    expect(seen).toEqual(['enricher']);

    // The same policy lets a reviewed version through, and every tap runs.
    seen.length = 0;
    const reviewed = { ...version, tags: { reviewed: 'yes' } } as unknown as ModelVersion;
    await callVetoHook(hooks.model.beforePromote, 'promotion', reviewed, 'Production', promotion);
    expect(seen).toEqual(['enricher', 'after']);
  });

  it('stamps vetoes from sync and callback taps too', async () => {
    const hooks = createPlatformHooks();
    hooks.artifact.beforePut.tapAsync('size-policy', (_req, cb) => cb(null, veto('too large')));
    await expect(
      callVetoHook(hooks.artifact.beforePut, 'put of a.bin', {
        key: 'a.bin',
        contentType: undefined,
        metadata: {},
        size: 1,
        via: 'put',
      }),
    ).rejects.toThrow('put of a.bin was vetoed by size-policy: too large');
    const other = createPlatformHooks();
    other.artifact.beforePut.tap('sync-policy', () => veto('nope'));
    await expect(
      callVetoHook(other.artifact.beforePut, 'put', {
        key: 'a',
        contentType: undefined,
        metadata: {},
        size: 1,
        via: 'put',
      }),
    ).rejects.toThrow('put was vetoed by sync-policy: nope');
  });

  it('passes a job spec through waterfall taps that rewrite it', async () => {
    const hooks = createPlatformHooks();
    hooks.job.beforeSubmit.tapPromise({ name: 'queue', stage: STAGE_EARLY }, async (spec) => ({
      ...spec,
      queue: 'gpu',
    }));
    hooks.job.beforeSubmit.tapPromise('tolerations', async (spec) => ({
      ...spec,
      replicaGroups: spec.replicaGroups.map((group) => ({
        ...group,
        tolerations: [
          ...(group.tolerations ?? []),
          { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' } as const,
        ],
      })),
    }));
    const spec: JobSpec = { name: 'train', project: 'p', replicaGroups: [{ role: 'main', command: ['train'] }] };
    const out = await hooks.job.beforeSubmit.promise(spec);
    expect(out.queue).toBe('gpu');
    expect(out.replicaGroups[0]?.tolerations).toEqual([
      { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' },
    ]);
    expect(spec).not.toHaveProperty('queue');
  });

  it('runs parallel side effects concurrently', async () => {
    const hooks = createPlatformHooks();
    let running = 0;
    let peak = 0;
    const tap = async () => {
      running += 1;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 20));
      running -= 1;
    };
    hooks.run.finished.tapPromise('a', tap);
    hooks.run.finished.tapPromise('b', tap);
    await hooks.run.finished.promise({} as never);
    expect(peak).toBe(2);
  });

  it('requires a reason to veto', () => {
    expect(() => veto('  ')).toThrow('veto(reason) needs a reason the user can act on');
  });
});
