import { AsyncSeriesHook } from 'tapable';
import { artifactStoreInputs, artifactStorePort, artifactStoreRef } from '../ports/artifact-store.js';
import { auditLogInputs, auditLogRef } from '../ports/audit-log.js';
import { authorizerInputs, authorizerRef } from '../ports/authorizer.js';
import { computeBackendPort } from '../ports/compute-backend.js';
import { eventBusPort } from '../ports/event-bus.js';
import { experimentTrackerInputs, experimentTrackerPort, experimentTrackerRef } from '../ports/experiment-tracker.js';
import { modelRegistryInputs, modelRegistryPort, modelRegistryRef } from '../ports/model-registry.js';
import { modelServerPort } from '../ports/model-server.js';
import type { PortInputs } from '../ports/port-inputs.js';
import { secretStoreInputs, secretStoreRef } from '../ports/secret-store.js';
import type { PlatformInfo, ShutdownInfo } from './hook-types.js';
import type { PortDefinition } from './port.js';

/** The core ports whose providers the kernel guards, so that their hooks fire. */
export const CORE_PORTS: readonly PortDefinition<any, any>[] = Object.freeze([
  artifactStorePort,
  experimentTrackerPort,
  modelRegistryPort,
  computeBackendPort,
  modelServerPort,
  eventBusPort,
]);

/**
 * The argument schemas of the core ports, by port id: the kernel checks every call at the boundary of whichever
 * provider is chosen, so bad input gets the same ValidationError from every backend.
 */
export const CORE_PORT_INPUTS: Readonly<Record<string, PortInputs<any>>> = Object.freeze({
  [artifactStoreRef.id]: artifactStoreInputs,
  [auditLogRef.id]: auditLogInputs,
  [authorizerRef.id]: authorizerInputs,
  [experimentTrackerRef.id]: experimentTrackerInputs,
  [modelRegistryRef.id]: modelRegistryInputs,
  [secretStoreRef.id]: secretStoreInputs,
});

/**
 * Every hook of the platform, declared once: the kernel's lifecycle hooks here, each port's hooks beside its
 * interface (`platform.hooks.model` are the ModelRegistry's). `of(port)` reaches the hooks of any port, including
 * ports that plugins define. The hook class is the contract:
 * - AsyncSeriesHook: ordered side effects (lifecycle);
 * - veto hooks (AsyncSeriesBailHook): the first tap that answers with `veto(reason)` stops the action;
 * - AsyncSeriesWaterfallHook: each tap may return a rewritten value for the next;
 * - AsyncParallelHook: independent side effects, run concurrently, after the change they report.
 */
export function createPlatformHooks() {
  const byPort = new Map<string, object>();
  const of = <H extends object>(port: PortDefinition<any, H>): H => {
    let hooks = byPort.get(port.ref.id);
    if (!hooks) {
      hooks = port.createHooks();
      byPort.set(port.ref.id, hooks);
    }
    return hooks as H;
  };
  return Object.freeze({
    platform: Object.freeze({
      /** All plugins have run `init`; services are wired. */
      init: new AsyncSeriesHook<[PlatformInfo]>(['platform']),
      /** Start hooks have run; the platform serves. */
      ready: new AsyncSeriesHook<[PlatformInfo]>(['platform']),
      /** Stop has begun; runs before plugins' shutdown hooks. */
      shutdown: new AsyncSeriesHook<[ShutdownInfo]>(['shutdown']),
    }),
    artifact: of(artifactStorePort),
    run: of(experimentTrackerPort),
    model: of(modelRegistryPort),
    job: of(computeBackendPort),
    deployment: of(modelServerPort),
    event: of(eventBusPort),
    /** The hooks of any port, by its definition: `hooks.of(featureStorePort)`. */
    of,
  });
}

export type PlatformHooks = ReturnType<typeof createPlatformHooks>;

type TapOptions = string | { name: string; [key: string]: unknown };
const TAP_METHODS = new Set(['tap', 'tapAsync', 'tapPromise']);

/** A hook whose taps are named after the plugin that tapped it (`risk-policy/review`), as the tap list shows them. */
function scopedHook<H extends object>(hook: H, pluginId: string): H {
  const rename = (options: TapOptions): TapOptions => {
    const name = typeof options === 'string' ? options : options.name;
    const scoped = name.startsWith(`${pluginId}/`) ? name : `${pluginId}/${name}`;
    return typeof options === 'string' ? scoped : { ...options, name: scoped };
  };
  return new Proxy(hook, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      if (typeof prop === 'string' && TAP_METHODS.has(prop)) {
        return (options: TapOptions, fn: unknown) => value.call(target, rename(options), fn);
      }
      return value.bind(target);
    },
  });
}

function scopedGroup<G extends object>(group: G, pluginId: string): G {
  return Object.freeze(
    Object.fromEntries(Object.entries(group).map(([name, hook]) => [name, scopedHook(hook as object, pluginId)])),
  ) as G;
}

/** The platform's hooks as one plugin sees them: the same hooks, with every tap named after the plugin. */
export function hooksForPlugin(hooks: PlatformHooks, pluginId: string): PlatformHooks {
  const groups = Object.fromEntries(
    Object.entries(hooks)
      .filter(([key]) => key !== 'of')
      .map(([key, group]) => [key, scopedGroup(group as object, pluginId)]),
  );
  return Object.freeze({
    ...groups,
    of: <H extends object>(port: PortDefinition<any, H>) => scopedGroup(hooks.of(port), pluginId),
  }) as PlatformHooks;
}
