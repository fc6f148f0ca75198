export { LocalArtifactStore } from './artifact-store/local-artifact-store.js';
export { InProcessEventBus } from './event-bus/in-process-event-bus.js';
export type { EmbeddedConfig } from './plugin.js';
export { embeddedConfigSchema, embeddedPlugin } from './plugin.js';
export { EnvFileSecretStore } from './secret-store/file-secret-store.js';
export { createEmbeddedTelemetry } from './telemetry/embedded-telemetry.js';
