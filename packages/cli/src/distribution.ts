import type { CreatePlatformOptions, Platform, Plugin, RawConfig } from '@mlplane/core';
import { createPlatform } from '@mlplane/defaults';
import { kafkaPlugin } from '@mlplane/plugin-kafka';
import { mlflowPlugin } from '@mlplane/plugin-mlflow';
import { postgresPlugin } from '@mlplane/plugin-postgres';
import { redisCachePlugin, redisStreamsPlugin } from '@mlplane/plugin-redis';
import { s3Plugin } from '@mlplane/plugin-s3';
import { schedulerPlugin } from '@mlplane/sql';

/**
 * The production plugins the reference distribution knows, by config section: a section in the config installs its
 * plugin (see mlplane.yaml.example and docs/deployment.md). Without any, every port runs on its embedded default.
 */
export const PRODUCTION_PLUGINS: Readonly<Record<string, () => Plugin<any>>> = Object.freeze({
  postgres: () => postgresPlugin(),
  kafka: () => kafkaPlugin(),
  'redis-streams': () => redisStreamsPlugin(),
  'redis-cache': () => redisCachePlugin(),
  mlflow: () => mlflowPlugin(),
  s3: () => s3Plugin(),
  scheduler: () => schedulerPlugin(),
});

/** The production plugins whose config section `config` holds. */
export function productionPlugins(config: RawConfig): Plugin<any>[] {
  return Object.entries(PRODUCTION_PLUGINS)
    .filter(([section]) => config[section] !== undefined)
    .map(([, make]) => make());
}

/** The reference distribution: embedded defaults and the SQL management layer, plus the configured production plugins. */
export function createReferencePlatform(
  config: RawConfig,
  options: Omit<CreatePlatformOptions, 'plugins' | 'config'> = {},
): Platform {
  return createPlatform({ ...options, config, plugins: productionPlugins(config) });
}
