export { type ArtifactStoreFixture, artifactStoreConformance } from './artifact-store.js';
export { type EventBusConformanceOptions, type EventBusFixture, eventBusConformance } from './event-bus.js';
export { type SecretStoreFixture, secretStoreConformance } from './secret-store.js';
export { type TelemetryFixture, telemetryConformance } from './telemetry.js';
