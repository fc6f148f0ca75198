export { type S3Config, type S3ConfigInput, s3ConfigSchema } from './config.js';
export { s3Plugin } from './plugin.js';
export { S3ArtifactStore, SHA256_METADATA } from './s3-artifact-store.js';
