import { embeddedPlugin } from './embedded/plugin.js';
import { type CreatePlatformOptions, createKernelPlatform, type Platform } from './kernel/platform.js';

export interface CreatePlatformWithDefaultsOptions extends CreatePlatformOptions {
  /**
   * Installs the embedded defaults (plugin id `embedded`) so every port has a provider with no servers.
   * Any other plugin providing a port replaces the default without further config. Default true.
   */
  readonly defaults?: boolean;
}

/** Creates a platform from plugins and config; call `start()` to wire and run it. */
export function createPlatform(options: CreatePlatformWithDefaultsOptions): Platform {
  const { defaults = true, ...rest } = options;
  const hasEmbedded = options.plugins.some((p) => p.id === 'embedded');
  const plugins = defaults && !hasEmbedded ? [embeddedPlugin(), ...options.plugins] : options.plugins;
  return createKernelPlatform({ ...rest, plugins });
}
