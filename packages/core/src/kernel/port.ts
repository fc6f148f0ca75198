import type { Logger } from '../ports/telemetry.js';
import type { ServiceRef } from './service-ref.js';

/** What a port's guard receives besides the provider it wraps. */
export interface GuardContext<H> {
  /** The port's hooks, as declared beside its interface (taps of every plugin). */
  readonly hooks: H;
  /** The id of the plugin whose provider is being wrapped, for messages. */
  readonly providerId: string;
  /** Where a failing after-the-fact hook is reported: the change it follows has happened and stays. */
  readonly logger: Logger;
  /** The hooks of another port, for a guard that gates what its provider does through that port. */
  hooksOf<H2 extends object>(port: PortDefinition<any, H2>): H2;
  /** Aborted when the platform stops: background work a guard started (watching a job) ends with it. */
  readonly signal: AbortSignal;
}

/**
 * A port: its service ref, the hooks declared beside its interface, and the guard through which the kernel makes
 * those hooks fire for whichever provider is chosen (embedded, first-party or third-party). Adapters never fire a
 * port's hooks themselves; the guard wraps the provider once, when the kernel creates it.
 */
export interface PortDefinition<T, H extends object = object> {
  readonly $$type: 'mlplane.port';
  readonly ref: ServiceRef<T>;
  /** Where the hooks appear: `platform.hooks[hooksKey]` for the core ports, `hooks.of(port)` for any port. */
  readonly hooksKey: string;
  /** Creates the port's hooks, once per platform: a frozen object of tapable hooks. */
  readonly createHooks: () => H;
  /** Wraps a provider so that every hook fires; the result is what every consumer of the port receives. */
  readonly guard: (provider: T, context: GuardContext<H>) => T;
}

const HOOKS_KEY = /^[a-z][a-zA-Z0-9]*$/;

/** Declares a port; a plugin that defines a new port registers it with `env.registerPort(port)`. */
export function definePort<T, H extends object>(definition: {
  readonly ref: ServiceRef<T>;
  readonly hooksKey: string;
  readonly createHooks: () => H;
  readonly guard: (provider: T, context: GuardContext<H>) => T;
}): PortDefinition<T, H> {
  if (!HOOKS_KEY.test(definition.hooksKey)) {
    throw new TypeError(`port hooksKey '${definition.hooksKey}' must be camelCase, e.g. 'featureStore'`);
  }
  return Object.freeze({ $$type: 'mlplane.port', ...definition });
}

/**
 * Runs hooks that follow a change (`run.created`, `model.promoted`...): the change has happened, so a failing tap
 * is logged with the hook's name rather than turned into an error for the caller, who would then retry a done change.
 */
export async function afterChange(context: GuardContext<unknown>, hook: string, fire: () => Promise<unknown>) {
  try {
    await fire();
  } catch (err) {
    context.logger.error({ err, hook, provider: context.providerId }, `hook ${hook} failed after the change was made`);
  }
}

/**
 * The provider seen through a guard: the methods named in `overrides` are replaced, every other member reads
 * through to the provider (methods bound to it, so private fields and `this` keep working). An override is used only
 * when the provider has that method, so optional operations stay absent where the provider lacks them.
 */
export function intercept<T extends object>(provider: T, overrides: { [K in keyof T]?: T[K] }): T {
  return new Proxy(provider, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const override = (overrides as Record<PropertyKey, unknown>)[prop];
      return typeof override === 'function' ? override : value.bind(target);
    },
  });
}
