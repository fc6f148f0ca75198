export type { LoadConfigOptions, PlatformConfig, RawConfig } from './config.js';
export { deepMerge, loadConfig, platformConfigSchema, YAML_MAX_ALIAS_COUNT } from './config.js';
export type { PluginLifecycle, PluginMetadata } from './core-services.js';
export { coreServices } from './core-services.js';
export { ConfigError, PluginFailedError, WiringError } from './errors.js';
export type {
  ArtifactPutRequest,
  DeploymentRollout,
  JobEvent,
  ModelPromotion,
  PlatformInfo,
  ShutdownInfo,
} from './hook-types.js';
export type { Veto, VetoHook } from './hooks.js';
export {
  callVetoHook,
  STAGE_DEFAULT,
  STAGE_EARLY,
  STAGE_LATE,
  STAGE_POLICY,
  veto,
  vetoHook,
} from './hooks.js';
export type { CreatePlatformOptions, Platform, PlatformState } from './platform.js';
export { createKernelPlatform } from './platform.js';
export type { PlatformHooks } from './platform-hooks.js';
export { CORE_PORT_INPUTS, CORE_PORTS, createPlatformHooks, hooksForPlugin } from './platform-hooks.js';
export type {
  Deps,
  InitOptions,
  Plugin,
  PluginContext,
  PluginDefinition,
  PluginEnv,
  PluginFactory,
  ProvideOptions,
} from './plugin.js';
export { definePlugin } from './plugin.js';
export type { GuardContext, PortDefinition } from './port.js';
export { afterChange, definePort, intercept } from './port.js';
export type { DepsOf, ExtensionPoint, ServiceRef } from './service-ref.js';
export { createExtensionPoint, createServiceRef } from './service-ref.js';
