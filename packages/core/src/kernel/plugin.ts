import { z } from 'zod';
import type { PortDefinition } from './port.js';
import type { DepsOf, ExtensionPoint, ServiceRef } from './service-ref.js';

export type Deps = Record<string, ServiceRef<any> | ExtensionPoint<any>>;

/** What a factory or init receives besides its deps. */
export interface PluginContext<TConfig> {
  /** This plugin's validated config section, defaults applied. */
  readonly config: TConfig;
}

export interface ProvideOptions<TConfig, T, D extends Deps> {
  readonly deps?: D;
  readonly factory: (ctx: DepsOf<D> & PluginContext<TConfig>) => T | Promise<T>;
  /** Releases the instance at stop; instances are disposed in reverse creation order. */
  readonly dispose?: (instance: T) => void | Promise<void>;
  /** A default gives way to any other provider of the port without an explicit choice. */
  readonly asDefault?: boolean;
  /**
   * The service keeps its data on this machine only (files in a data dir, a process-local bus). With
   * `platform.strict`, the kernel refuses to start on such a provider unless config `platform.providers` names it.
   */
  readonly local?: boolean;
}

export interface DecorateOptions<TConfig, T, D extends Deps> {
  readonly deps?: D;
  /**
   * Wraps whichever provider of the port is chosen (a cache in front of a registry, say) and returns what every
   * consumer receives instead. The kernel's own guard wraps the result, so the port's hooks still fire once.
   */
  readonly decorate: (ctx: DepsOf<D> & PluginContext<TConfig> & { readonly service: T }) => T | Promise<T>;
}

export interface InitOptions<TConfig, D extends Deps> {
  readonly deps: D;
  readonly init: (ctx: DepsOf<D> & PluginContext<TConfig>) => void | Promise<void>;
}

/** What `register(env)` may declare. Registration only declares; nothing runs until `start()`. */
export interface PluginEnv<TConfig> {
  readonly pluginId: string;
  /** `I` is the implementation type: `dispose` sees it, so it may call methods beyond the port's. */
  provide<T, I extends T = T, D extends Deps = {}>(ref: ServiceRef<T>, options: ProvideOptions<TConfig, I, D>): void;
  /** Wraps the chosen provider of `ref`, whichever plugin provides it; decorators apply in plugin order. */
  decorate<T, D extends Deps = {}>(ref: ServiceRef<T>, options: DecorateOptions<TConfig, T, D>): void;
  /** Declares a port this plugin defines, so the kernel guards its provider and its hooks fire (`hooks.of(port)`). */
  registerPort(port: PortDefinition<any, any>): void;
  registerExtensionPoint<T>(point: ExtensionPoint<T>, implementation: T): void;
  registerInit<D extends Deps>(options: InitOptions<TConfig, D>): void;
}

export interface PluginDefinition<S extends z.ZodType> {
  /** kebab-case; also the plugin's section name in the config. */
  readonly id: string;
  readonly description?: string;
  readonly configSchema?: S;
  register(env: PluginEnv<z.output<S>>): void;
}

export interface Plugin<S extends z.ZodType = z.ZodType> {
  readonly $$type: 'mlplane.plugin';
  readonly id: string;
  readonly description?: string;
  readonly configSchema: S;
  /** Config given in code; the config file and environment override it. */
  readonly inlineConfig: Partial<z.input<S>>;
  register(env: PluginEnv<z.output<S>>): void;
}

export type PluginFactory<S extends z.ZodType> = (inlineConfig?: Partial<z.input<S>>) => Plugin<S>;

const PLUGIN_ID = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;

/**
 * Declares a plugin. The result is a factory: `myPlugin()` or `myPlugin({ some: 'config' })`.
 * The config type flows from `configSchema` into every factory and init.
 */
export function definePlugin<S extends z.ZodType = z.ZodObject<{}>>(definition: PluginDefinition<S>): PluginFactory<S> {
  if (!PLUGIN_ID.test(definition.id)) {
    throw new TypeError(`plugin id '${definition.id}' must be kebab-case, e.g. 'model-policy'`);
  }
  if (definition.id === 'platform') throw new TypeError(`plugin id 'platform' is reserved for the kernel's config`);
  const schema = (definition.configSchema ?? z.object({})) as S;
  return (inlineConfig) =>
    Object.freeze({
      $$type: 'mlplane.plugin',
      id: definition.id,
      ...(definition.description ? { description: definition.description } : {}),
      configSchema: schema,
      inlineConfig: inlineConfig ?? {},
      register: definition.register,
    }) as Plugin<S>;
}
