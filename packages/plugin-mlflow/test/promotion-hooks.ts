// Fires the registry's hooks around an adapter, as the kernel's provider wrapper will for every chosen
// ModelRegistry (adapters never fire hooks themselves). Until the kernel wraps providers, the conformance run
// of the MLflow registry uses this, so the veto and after-commit cases check the adapter under a real gate.
import {
  callVetoHook,
  currentActor,
  type ModelPromotion,
  type ModelRegistry,
  type ModelVersion,
  normalizeStage,
  type PlatformHooks,
  type SetAliasInput,
  type TransitionStageInput,
} from '@mlplane/core';

export function withPromotionHooks(registry: ModelRegistry, hooks: PlatformHooks): ModelRegistry {
  const after = async (fire: () => Promise<void>) => {
    // After-commit taps never fail the call whose change already happened.
    await fire().catch(() => undefined);
  };
  return new Proxy(registry, {
    get(target, prop) {
      if (prop === 'createVersion') {
        return async (input: Parameters<ModelRegistry['createVersion']>[0]) => {
          const version = await target.createVersion(input);
          await after(() => hooks.model.registered.promise(version));
          return version;
        };
      }
      if (prop === 'transitionStage') {
        return async (input: TransitionStageInput) => {
          const current = await target.getVersion(input.name, input.version);
          const to = typeof input.to === 'string' ? normalizeStage(input.to) : input.to;
          if (current.stage === to) return target.transitionStage(input);
          const promotion: ModelPromotion = {
            kind: 'stage',
            from: current.stage,
            to,
            actor: input.actor ?? currentActor()?.actor,
            reason: input.reason,
          };
          await callVetoHook(
            hooks.model.beforePromote,
            `promotion of ${input.name} v${input.version} to ${to}`,
            current,
            to,
            promotion,
          );
          const promoted = await target.transitionStage(input);
          await after(() => hooks.model.promoted.promise(promoted, promotion));
          return promoted;
        };
      }
      if (prop === 'setAlias') {
        return async (input: SetAliasInput) => {
          const version: ModelVersion = await target.getVersion(input.name, input.version);
          const previous = (await target.getModel(input.name)).aliases[input.alias];
          if (previous === input.version) return;
          const promotion: ModelPromotion = {
            kind: 'alias',
            from: previous === undefined ? undefined : String(previous),
            to: input.alias,
            actor: input.actor ?? currentActor()?.actor,
            reason: input.reason,
          };
          await callVetoHook(
            hooks.model.beforePromote,
            `promotion of ${input.name} v${input.version} to @${input.alias}`,
            version,
            input.alias,
            promotion,
          );
          await target.setAlias(input);
          const promoted = await target.getVersion(input.name, input.version);
          await after(() => hooks.model.promoted.promise(promoted, promotion));
        };
      }
      // Methods run on the adapter itself, whose private fields a proxy receiver cannot reach.
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
