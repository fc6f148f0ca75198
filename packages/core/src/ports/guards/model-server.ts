import { AsyncParallelHook } from 'tapable';
import { callVetoHook, vetoHook } from '../../kernel/hooks.js';
import { afterChange, type GuardContext, intercept } from '../../kernel/port.js';
import { currentActor } from '../actor-context.js';
import { unlessNotFound } from '../errors.js';
import {
  type ModelServer,
  planRollout,
  type Rollout,
  type RolloutOptions,
  type RolloutPlan,
  type RolloutRequest,
  type RolloutResult,
} from '../model-server.js';

/** What `deployment.beforeRollout` judges: the plan of a rollout (spec and traffic after and before, actor, kind). */
export type DeploymentRollout = RolloutPlan;

export function createModelServerHooks() {
  return Object.freeze({
    /** Policy gate before a rollout (deploy, canary start, traffic shift, promote, rollback) changes anything. */
    beforeRollout: vetoHook<[RolloutPlan]>(['rollout']),
    /** The rollout was applied (after the change). */
    rolledOut: new AsyncParallelHook<[Rollout]>(['rollout']),
  });
}
export type ModelServerHooks = ReturnType<typeof createModelServerHooks>;

/**
 * Gates every rollout with `deployment.beforeRollout`, judging the plan made from the deployment as it is, then hands
 * the provider the generation the policies judged (`expectedGeneration`), so a rollout that landed in between is not
 * overwritten by one nobody reviewed; `deployment.rolledOut` follows the change.
 */
export function guardModelServer(server: ModelServer, context: GuardContext<ModelServerHooks>): ModelServer {
  const { hooks } = context;
  const rollout = async (request: RolloutRequest, apply: (options: RolloutOptions) => Promise<RolloutResult>) => {
    const name = request.kind === 'deploy' ? request.spec?.name : request.name;
    const actor = request.actor ?? currentActor()?.actor;
    const plan = planRollout(await unlessNotFound(server.get(name)), { ...request, actor }, server.capabilities);
    await callVetoHook(hooks.beforeRollout, `${request.kind} of deployment '${name}'`, plan);
    const result = await apply({
      ...(actor !== undefined ? { actor } : {}),
      ...(request.reason !== undefined ? { reason: request.reason } : {}),
      expectedGeneration: request.expectedGeneration ?? plan.fromGeneration,
    });
    await afterChange(context, 'deployment.rolledOut', () => hooks.rolledOut.promise(result.rollout));
    return result;
  };
  return intercept(server, {
    deploy: (spec, options) => rollout({ ...options, kind: 'deploy', spec }, (o) => server.deploy(spec, o)),
    startCanary: (name, canary, options) =>
      rollout({ ...options, kind: 'startCanary', name, canary }, (o) => server.startCanary(name, canary, o)),
    shiftTraffic: (name, percent, options) =>
      rollout({ ...options, kind: 'shiftTraffic', name, percent }, (o) => server.shiftTraffic(name, percent, o)),
    promote: (name, options) => rollout({ ...options, kind: 'promote', name }, (o) => server.promote(name, o)),
    rollback: (name, options) => rollout({ ...options, kind: 'rollback', name }, (o) => server.rollback(name, o)),
  });
}
