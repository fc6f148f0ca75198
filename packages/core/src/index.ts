/**
 * @mlplane/core: the kernel (plugins, DI, hooks, config), the ports, and the embedded defaults
 * that run a whole platform on one machine.
 */

export type { CreatePlatformWithDefaultsOptions } from './create-platform.js';
export { createPlatform } from './create-platform.js';
export * from './embedded/index.js';
export * from './infra/index.js';
export * from './kernel/index.js';
export * from './plugins/index.js';
export * from './ports/index.js';
