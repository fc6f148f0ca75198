import { loadConfig, platformConfigSchema, type RawConfig } from '@mlplane/core';
import { embeddedConfigSchema } from '@mlplane/defaults';
import { managementPlugin } from '@mlplane/sql';
import type { z } from 'zod';
import { PRODUCTION_PLUGINS } from './distribution.js';

/** The config sections the reference distribution reads, with the schema each is validated with at start. */
export function distributionSchemas(): Record<string, z.ZodType> {
  return {
    platform: platformConfigSchema,
    embedded: embeddedConfigSchema,
    management: managementPlugin().configSchema,
    ...Object.fromEntries(
      Object.entries(PRODUCTION_PLUGINS).map(([section, make]) => [section, make().configSchema as z.ZodType]),
    ),
  };
}

export interface ConfigCheck {
  readonly file: string;
  /** The sections found; a production section installs its plugin. */
  readonly sections: readonly string[];
  /** Each problem as `section.path: reason`; empty when the file is valid. */
  readonly problems: readonly string[];
}

/**
 * Validates a config file offline, as `mlplane up --config` would read it: the file parses, `${env:...}` references
 * resolve, every section belongs to a plugin of the distribution and holds valid values with no unknown key.
 * `${secret:...}` references are left as they are (the SecretStore resolves them at start); what the servers say
 * (reachable, credentials) is only known at start.
 */
export async function checkConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<ConfigCheck> {
  const config: RawConfig = await loadConfig({ files: [file], env });
  const schemas = distributionSchemas();
  const problems: string[] = [];
  for (const [section, value] of Object.entries(config)) {
    const schema = schemas[section];
    if (!schema) {
      problems.push(
        `${section}: no plugin of the reference distribution reads this section (known: ${Object.keys(schemas).join(', ')})`,
      );
      continue;
    }
    const result = schema.safeParse(value ?? {});
    if (!result.success) {
      problems.push(...result.error.issues.map((i) => `${[section, ...i.path.map(String)].join('.')}: ${i.message}`));
      continue;
    }
    problems.push(...unknownKeys(value, result.data, section).map((p) => `${p}: unknown config key`));
  }
  return { file, sections: Object.keys(config), problems };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Keys of `input` the schema's output lacks: zod strips them silently, the kernel refuses them. */
function unknownKeys(input: unknown, output: unknown, path: string): string[] {
  if (!isObject(input) || !isObject(output)) return [];
  return Object.entries(input).flatMap(([k, v]) =>
    k in output ? unknownKeys(v, output[k], `${path}.${k}`) : [`${path}.${k}`],
  );
}
