import type { Logger } from '../ports/telemetry.js';
import type { PlatformHooks } from './platform-hooks.js';
import { createServiceRef } from './service-ref.js';

/** Start and shutdown work a plugin registers from its init; shutdown runs in reverse init order. */
export interface PluginLifecycle {
  addStartHook(fn: () => void | Promise<void>, label?: string): void;
  addShutdownHook(fn: () => void | Promise<void>, label?: string): void;
}

export interface PluginMetadata {
  readonly id: string;
  readonly description: string | undefined;
}

/** Services the kernel itself provides to every plugin. */
export const coreServices = Object.freeze({
  /** A logger bound to the consuming plugin's id; secrets are scrubbed from every line. */
  logger: createServiceRef<Logger>({ id: 'core.logger', scope: 'plugin' }),
  lifecycle: createServiceRef<PluginLifecycle>({ id: 'core.lifecycle', scope: 'plugin' }),
  /** The platform's hooks; every tap the consuming plugin makes is named after it (`my-plugin/review`). */
  hooks: createServiceRef<PlatformHooks>({ id: 'core.hooks', scope: 'plugin' }),
  /** Who is asking: the consuming plugin's id and description. */
  pluginMetadata: createServiceRef<PluginMetadata>({ id: 'core.pluginMetadata', scope: 'plugin' }),
});
