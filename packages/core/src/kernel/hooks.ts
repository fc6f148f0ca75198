import { AsyncSeriesBailHook } from 'tapable';
import { VetoedError } from '../ports/errors.js';

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

/**
 * A bail hook whose answer is a veto (the contract of every `before*` policy gate); an interceptor stamps each veto with the name of the tap that gave it. */
export function vetoHook<Args extends unknown[]>(argNames: string[]): VetoHook<Args> {
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
