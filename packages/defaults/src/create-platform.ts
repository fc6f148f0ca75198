import { type CreatePlatformOptions, createKernelPlatform, type Platform } from '@mlplane/core';
import { managementPlugin } from '@mlplane/sql';
import { embeddedPlugin } from './plugin.js';

export interface CreatePlatformWithDefaultsOptions extends CreatePlatformOptions {
  /**
   * Installs the embedded defaults (plugin `embedded`) so every port has a provider with no servers, and the
   * `management` plugin (outbox relay, audit consumer) that runs on whichever providers are chosen.
   * Any other plugin providing a port replaces the default without further config. Default true.
   */
  readonly defaults?: boolean;
}

/** Creates a platform from plugins and config; call `start()` to wire and run it. */
export function createPlatform(options: CreatePlatformWithDefaultsOptions): Platform {
  const { defaults = true, ...rest } = options;
  const installed = new Set(options.plugins.map((p) => p.id));
  const builtIn = [embeddedPlugin, managementPlugin].map((make) => make()).filter((p) => !installed.has(p.id));
  const plugins = defaults ? [...builtIn, ...options.plugins] : options.plugins;
  return createKernelPlatform({ ...rest, plugins });
}
