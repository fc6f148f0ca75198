// mlplane.yaml.example at the repository root must stay a config the reference distribution starts with, list every
// key with its default, and its commented-out production sections must be valid for their plugins once uncommented.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createReferencePlatform, PRODUCTION_PLUGINS } from '@mlplane/cli';
import { deepMerge, loadConfig, platformConfigSchema, type RawConfig } from '@mlplane/core';
import { embeddedConfigSchema } from '@mlplane/defaults';
import { managementPlugin } from '@mlplane/sql';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { z } from 'zod';

const example = fileURLToPath(new URL('../../mlplane.yaml.example', import.meta.url));

const schemas: Record<string, z.ZodType> = {
  platform: platformConfigSchema,
  embedded: embeddedConfigSchema,
  management: managementPlugin().configSchema,
  ...Object.fromEntries(Object.entries(PRODUCTION_PLUGINS).map(([section, make]) => [section, make().configSchema])),
};

/**
 * Commented-out config lines have the '#' in place of nothing (`#postgres:`, `#  strict: true`): removing it gives
 * the YAML line with its indentation. Prose comments are '# ' followed by text.
 */
function uncomment(text: string): string {
  return text
    .split('\n')
    .map((line) => (/^#(?! \S)(?!\s*$)/.test(line) ? line.slice(1) : line))
    .join('\n');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Paths in `input` that the schema's output lacks: the kernel refuses them as unknown config keys. */
function unknownKeys(input: unknown, output: unknown, path: string): string[] {
  if (!isObject(input) || !isObject(output)) return [];
  return Object.entries(input).flatMap(([k, v]) =>
    k in output ? unknownKeys(v, output[k], `${path}.${k}`) : [`${path}.${k}`],
  );
}

/** Paths in `output` (the section with defaults applied) that `input` does not list. */
function unlisted(input: unknown, output: unknown, path: string): string[] {
  if (!isObject(output)) return [];
  if (!isObject(input)) return [path];
  return Object.entries(output).flatMap(([k, v]) =>
    k in input ? unlisted(input[k], v, `${path}.${k}`) : [`${path}.${k}`],
  );
}

function validate(config: RawConfig) {
  const problems: string[] = [];
  for (const [section, value] of Object.entries(config)) {
    const schema = schemas[section];
    if (!schema) {
      problems.push(`${section}: no plugin of the reference distribution reads this section`);
      continue;
    }
    const result = schema.safeParse(value);
    if (!result.success) {
      problems.push(...result.error.issues.map((i) => `${section}.${i.path.join('.')}: ${i.message}`));
      continue;
    }
    problems.push(...unknownKeys(value, result.data, section).map((p) => `${p}: unknown config key`));
    problems.push(...unlisted(value, result.data, section).map((p) => `${p}: not listed in the example`));
  }
  return problems;
}

describe('mlplane.yaml.example', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mlplane-config-example-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('starts the reference distribution on the embedded defaults', async () => {
    const config = await loadConfig({ files: [example], env: {} });
    expect(Object.keys(config)).toEqual(['platform', 'embedded', 'management']);
    const platform = createReferencePlatform(
      deepMerge(config, { platform: { signals: [] }, embedded: { dataDir: join(dir, 'data') } }),
      { log: { level: 'silent' } },
    );
    await platform.start();
    try {
      expect(platform.pluginIds).toEqual(['embedded', 'management']);
      expect(platform.platformConfig).toMatchObject({ strict: false, logLevel: 'info', shutdownDeadlineMs: 10_000 });
    } finally {
      await platform.stop();
    }
  });

  it('gives every active key its default value', async () => {
    const config = await loadConfig({ files: [example], env: {} });
    expect(validate(config).filter((p) => !p.endsWith('not listed in the example'))).toEqual([]);
    for (const [section, value] of Object.entries(config)) {
      expect(schemas[section]!.parse({}), section).toEqual(schemas[section]!.parse(value));
    }
  });

  it('lists every key of every section, and the production sections validate once uncommented', async () => {
    const file = join(dir, 'mlplane.yaml');
    await writeFile(file, uncomment(await readFile(example, 'utf8')));
    const masterKey = randomBytes(32).toString('base64');
    const config = await loadConfig({ files: [file], env: { MLPLANE_MASTER_KEY: masterKey } });
    expect(Object.keys(config)).toEqual([
      'platform',
      'embedded',
      'management',
      'postgres',
      'kafka',
      'redis-streams',
      'redis-cache',
      'mlflow',
      's3',
    ]);
    expect(validate(config)).toEqual([]);
    expect(config.platform).toMatchObject({ strict: true });
    expect(config.embedded).toMatchObject({ secrets: { masterKey } });
    // A broken value is caught the same way, so the check above can fail.
    expect(validate({ ...config, kafka: { ...(config.kafka as object), brokers: ['no-port'] } })).toEqual([
      'kafka.brokers.0: must be host:port',
    ]);
  });
});
