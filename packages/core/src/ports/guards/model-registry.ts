import { AsyncParallelHook } from 'tapable';
import { callVetoHook, vetoHook } from '../../kernel/hooks.js';
import { afterChange, type GuardContext, intercept } from '../../kernel/port.js';
import { currentActor } from '../actor-context.js';
import { unlessNotFound } from '../errors.js';
import { type ModelRegistry, type ModelVersion, normalizeStage, validateAlias } from '../model-registry.js';

/** A move of a model version: to a stage (`Production`) or an alias (`champion`). */
export interface ModelPromotion {
  readonly kind: 'stage' | 'alias';
  readonly from: string | undefined;
  readonly to: string;
  readonly actor: string | undefined;
  readonly reason: string | undefined;
}

export function createModelRegistryHooks() {
  return Object.freeze({
    /** A version was created (after the write). */
    registered: new AsyncParallelHook<[ModelVersion]>(['version']),
    /**
     * Policy gate: veto a stage transition or alias move before it happens. The version passed is the state the
     * policy judges; providers with `capabilities.atomicPromotionCheck` apply the move only on that very state.
     */
    beforePromote: vetoHook<[ModelVersion, string, ModelPromotion]>(['version', 'to', 'promotion']),
    /** A stage transition or alias move was applied (after the write). */
    promoted: new AsyncParallelHook<[ModelVersion, ModelPromotion]>(['version', 'promotion']),
  });
}
export type ModelRegistryHooks = ReturnType<typeof createModelRegistryHooks>;

async function aliasTarget(registry: ModelRegistry, name: string, alias: string): Promise<number | undefined> {
  return (await unlessNotFound(registry.getVersionByAlias(name, alias)))?.version;
}

/**
 * Fires `model.registered` after a version is created, and gates every promotion with `model.beforePromote`: the guard
 * reads the version, asks the policies, then hands the provider the state they judged (`expected`), so a provider
 * that checks it atomically never applies a move on a state no policy saw. `model.promoted` follows the write.
 */
export function guardModelRegistry(registry: ModelRegistry, context: GuardContext<ModelRegistryHooks>): ModelRegistry {
  const { hooks } = context;
  return intercept(registry, {
    async createVersion(input) {
      const version = await registry.createVersion(input);
      await afterChange(context, 'model.registered', () => hooks.registered.promise(version));
      return version;
    },
    async transitionStage(input) {
      const current = await registry.getVersion(input?.name, input?.version);
      const to = typeof input.to === 'string' ? normalizeStage(input.to) : input.to;
      // A no-op changes nothing, so there is nothing for a policy to judge; the provider still validates the input.
      if (current.stage === to) return registry.transitionStage(input);
      const promotion: ModelPromotion = {
        kind: 'stage',
        from: current.stage,
        to,
        actor: input.actor ?? currentActor()?.actor,
        reason: input.reason,
      };
      await callVetoHook(
        hooks.beforePromote,
        `promotion of ${input.name} v${input.version} to ${to}`,
        current,
        to,
        promotion,
      );
      const promoted = await registry.transitionStage({ ...input, expected: current });
      await afterChange(context, 'model.promoted', () => hooks.promoted.promise(promoted, promotion));
      return promoted;
    },
    async setAlias(input) {
      // The alias rule first, so a bad alias is named as such rather than as a failed lookup.
      if (typeof input?.alias === 'string') validateAlias(input.alias);
      const target = await registry.getVersion(input?.name, input?.version);
      const previous =
        typeof input.alias === 'string' ? await aliasTarget(registry, input.name, input.alias) : undefined;
      if (previous === input.version) return registry.setAlias(input);
      const promotion: ModelPromotion = {
        kind: 'alias',
        from: previous === undefined ? undefined : String(previous),
        to: input.alias,
        actor: input.actor ?? currentActor()?.actor,
        reason: input.reason,
      };
      await callVetoHook(
        hooks.beforePromote,
        `promotion of ${input.name} v${input.version} to @${input.alias}`,
        target,
        input.alias,
        promotion,
      );
      await registry.setAlias({ ...input, expected: target, expectedPrevious: previous ?? null });
      await afterChange(context, 'model.promoted', async () =>
        hooks.promoted.promise(await registry.getVersion(input.name, input.version), promotion),
      );
    },
  });
}
