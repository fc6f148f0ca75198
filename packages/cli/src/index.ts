/**
 * @mlplane/cli: the reference distribution (`createReferencePlatform`: embedded defaults plus the production plugins
 * a config names), `startDistribution` (what `mlplane up` runs: the platform, its HTTP API and the first admin
 * token) and the `mlplane` command line (`bin`).
 */
export type { ConfigCheck } from './config-check.js';
export { checkConfig, distributionSchemas } from './config-check.js';
export { createReferencePlatform, PRODUCTION_PLUGINS, productionPlugins } from './distribution.js';
export { ADMIN_TOKEN_FILE } from './files.js';
export { CliError, EXIT } from './output.js';
export { buildProgram, main } from './program.js';
export type { RunningDistribution, UpOptions } from './up.js';
export { ADMIN_PRINCIPAL, ensureAdminToken, startDistribution } from './up.js';
