/** @mlplane/plugin-postgres: the MetadataStore on PostgreSQL, on which the SQL management layer runs unchanged. */

export { postgresPlugin } from './plugin.js';
export type { PostgresMetadataStoreOptions, SessionSetting } from './postgres-metadata-store.js';
export { DEFAULT_SESSION_SETTINGS, PostgresMetadataStore } from './postgres-metadata-store.js';
