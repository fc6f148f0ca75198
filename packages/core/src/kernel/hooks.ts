import { AsyncParallelHook, AsyncSeriesBailHook, AsyncSeriesHook, AsyncSeriesWaterfallHook } from 'tapable';
import { VetoedError } from '../ports/errors.js';
import type {
  ArtifactPutRequest,
  DeploymentRollout,
  JobEvent,
  JobSpec,
  ModelPromotion,
  ModelVersion,
  PlatformInfo,
  Rollout,
  Run,
  ShutdownInfo,
} from './hook-types.js';

/**
 * Tap stages: taps run in ascending stage order, registration order breaking ties.
 * Policies that may veto run at STAGE_POLICY so that enrichment (STAGE_EARLY) has already happened.
 */
export const STAGE_EARLY = -100;
export const STAGE_DEFAULT = 0;
export const STAGE_POLICY = 50;
export const STAGE_LATE = 100;

/** What a bail (veto) tap returns to refuse an action; `undefined` lets it through. */
export interface Veto {
  readonly $$type: 'mlplane.veto';
  readonly reason: string;
  /** The tap that vetoed, filled in by the hook. */
  readonly by?: string;
}

export function veto(reason: string): Veto {
  if (!reason.trim()) throw new TypeError('veto(reason) needs a reason the user can act on');
  return Object.freeze({ $$type: 'mlplane.veto', reason });
}

export type VetoHook<Args extends unknown[]> = AsyncSeriesBailHook<Args, Veto | undefined>;

function isVeto(value: unknown): value is Veto {
  return typeof value === 'object' && value !== null && (value as Veto).$$type === 'mlplane.veto';
}

/** A bail hook whose answer is a veto; an interceptor stamps each veto with the name of the tap that gave it. */
function vetoHook<Args extends unknown[]>(argNames: string[]): VetoHook<Args> {
  const hook = new AsyncSeriesBailHook<Args, Veto | undefined>(argNames as never);
  hook.intercept({
    register(tap) {
      const fn = tap.fn as (...a: unknown[]) => unknown;
      const stamp = (v: unknown) => (isVeto(v) && !v.by ? Object.freeze({ ...v, by: tap.name }) : v);
      if (tap.type === 'promise') return { ...tap, fn: async (...a: unknown[]) => stamp(await fn(...a)) };
      if (tap.type === 'sync') return { ...tap, fn: (...a: unknown[]) => stamp(fn(...a)) };
      return {
        ...tap,
        fn: (...a: unknown[]) => {
          const cb = a.pop() as (err: unknown, result?: unknown) => void;
          fn(...a, (err: unknown, result?: unknown) => cb(err, stamp(result)));
        },
      };
    },
  });
  return hook;
}

/**
 * Calls a veto hook and throws VetoedError when any tap vetoes; otherwise resolves.
 * `action` names what was attempted, e.g. "promotion of fraud v3 to Production".
 */
export async function callVetoHook<Args extends unknown[]>(hook: VetoHook<Args>, action: string, ...args: Args) {
  const answer = await hook.promise(...(args as never));
  if (isVeto(answer)) throw new VetoedError(action, answer.reason, answer.by);
}

/**
 * Every hook of the platform, declared once. The hook class is the contract:
 * - AsyncSeriesHook: ordered side effects (lifecycle);
 * - AsyncSeriesBailHook (veto hooks): the first tap that answers with `veto(reason)` stops the action;
 * - AsyncSeriesWaterfallHook: each tap may return a rewritten value for the next;
 * - AsyncParallelHook: independent side effects, run concurrently.
 */
export function createPlatformHooks() {
  return Object.freeze({
    platform: Object.freeze({
      /** All plugins have run `init`; services are wired. */
      init: new AsyncSeriesHook<[PlatformInfo]>(['platform']),
      /** Start hooks have run; the platform serves. */
      ready: new AsyncSeriesHook<[PlatformInfo]>(['platform']),
      /** Stop has begun; runs before plugins' shutdown hooks. */
      shutdown: new AsyncSeriesHook<[ShutdownInfo]>(['shutdown']),
    }),
    run: Object.freeze({
      created: new AsyncParallelHook<[Run]>(['run']),
      finished: new AsyncParallelHook<[Run]>(['run']),
    }),
    model: Object.freeze({
      registered: new AsyncParallelHook<[ModelVersion]>(['version']),
      /** Policy gate: veto a stage transition or alias move before it happens. */
      beforePromote: vetoHook<[ModelVersion, string, ModelPromotion]>(['version', 'to', 'promotion']),
      promoted: new AsyncParallelHook<[ModelVersion, ModelPromotion]>(['version', 'promotion']),
    }),
    job: Object.freeze({
      /** Transform: each tap may return a rewritten spec (add tolerations, labels, a queue). */
      beforeSubmit: new AsyncSeriesWaterfallHook<[JobSpec]>(['spec']),
      started: new AsyncParallelHook<[JobEvent]>(['job']),
      finished: new AsyncParallelHook<[JobEvent]>(['job']),
    }),
    deployment: Object.freeze({
      /** Policy gate before each rollout (deploy, startCanary, shiftTraffic, promote, rollback: see RolloutKind). */
      beforeRollout: vetoHook<[DeploymentRollout]>(['rollout']),
      /** After a rollout was applied, with the versions its references named. */
      rolledOut: new AsyncParallelHook<[Rollout]>(['rollout']),
    }),
    artifact: Object.freeze({
      /** Policy gate before an artifact is stored (size, type, naming rules). */
      beforePut: vetoHook<[ArtifactPutRequest]>(['request']),
    }),
  });
}

export type PlatformHooks = ReturnType<typeof createPlatformHooks>;
