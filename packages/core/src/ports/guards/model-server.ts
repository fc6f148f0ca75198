import { AsyncParallelHook } from 'tapable';
import { callVetoHook, vetoHook } from '../../kernel/hooks.js';
import { afterChange, type GuardContext, intercept } from '../../kernel/port.js';
import { currentActor } from '../actor-context.js';
import { NotFoundError } from '../errors.js';
import type { DeploymentSpec, ModelServer } from '../model-server.js';

export interface DeploymentRollout {
  readonly spec: DeploymentSpec;
  /** The spec being replaced, when this is an update. */
  readonly previous: DeploymentSpec | undefined;
  readonly actor: string | undefined;
}

export function createModelServerHooks() {
  return Object.freeze({
    /** Policy gate before a deployment, or a change of what it serves or of its traffic, rolls out. */
    beforeRollout: vetoHook<[DeploymentRollout]>(['rollout']),
    /** The rollout was applied (after the change). */
    rolledOut: new AsyncParallelHook<[DeploymentRollout]>(['rollout']),
  });
}
export type ModelServerHooks = ReturnType<typeof createModelServerHooks>;

async function currentSpec(server: ModelServer, name: string): Promise<DeploymentSpec | undefined> {
  try {
    return (await server.get(name)).spec;
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/** Gates every rollout (deploy, traffic change) with `deployment.beforeRollout` and fires `deployment.rolledOut`. */
export function guardModelServer(server: ModelServer, context: GuardContext<ModelServerHooks>): ModelServer {
  const { hooks } = context;
  const rollout = async <R>(spec: DeploymentSpec, previous: DeploymentSpec | undefined, apply: () => Promise<R>) => {
    const event: DeploymentRollout = { spec, previous, actor: currentActor()?.actor };
    await callVetoHook(hooks.beforeRollout, `rollout of deployment '${spec.name}'`, event);
    const result = await apply();
    await afterChange(context, 'deployment.rolledOut', () => hooks.rolledOut.promise(event));
    return result;
  };
  return intercept(server, {
    async deploy(spec) {
      return rollout(spec, await currentSpec(server, spec.name), () => server.deploy(spec));
    },
    async setTraffic(name, traffic) {
      const previous = (await server.get(name)).spec;
      return rollout({ ...previous, traffic }, previous, () => server.setTraffic(name, traffic));
    },
  });
}
