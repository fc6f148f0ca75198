/**
 * @mlplane/core: the kernel (plugins, DI, hooks, config), the ports, and the helpers adapters share (key and name
 * validation, the filter language, event codec, leases, webhook signatures). It loads no database, broker or native
 * module: the implementations live in @mlplane/sql, @mlplane/defaults and the plugin packages.
 */

export * from './infra/index.js';
export * from './kernel/index.js';
export * from './ports/index.js';
