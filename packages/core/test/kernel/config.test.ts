import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  ConfigError,
  coreServices,
  createKernelPlatform,
  definePlugin,
  loadConfig,
  NotFoundError,
  type SecretStore,
  secretStoreRef,
} from '../../src/index.js';

/** A minimal SecretStore from outside the core: secrets are MLPLANE_SECRET_<NAME> environment variables. */
const envSecrets = definePlugin({
  id: 'env-secrets',
  configSchema: z.object({ prefix: z.string().default('MLPLANE_SECRET_') }),
  register(env) {
    env.provide(secretStoreRef, {
      factory: ({ config }): SecretStore => ({
        capabilities: { writable: false },
        async get(name) {
          const value = process.env[config.prefix + name.toUpperCase().replace(/[^A-Z0-9]/g, '_')];
          if (value === undefined) throw new NotFoundError(`secret '${name}' not found`);
          return value;
        },
        async list() {
          return [];
        },
      }),
    });
  },
});
const createPlatform = (options: Parameters<typeof createKernelPlatform>[0]) =>
  createKernelPlatform({ ...options, plugins: [envSecrets(), ...options.plugins] });

async function tempFile(name: string, text: string) {
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-config-'));
  const path = join(dir, name);
  await writeFile(path, text);
  return { dir, path };
}

describe('loadConfig', () => {
  it('reads YAML, resolves ${env:...} with defaults, and applies environment overrides', async () => {
    const { path } = await tempFile(
      'mlplane.yaml',
      [
        'platform:',
        '  logLevel: warn',
        's3:',
        '  bucket: ${env:BUCKET}',
        '  endpoint: http://${env:S3_HOST:-127.0.0.1}:7070',
        '  partSizeMiB: 16',
        '  secretKey: ${secret:s3-key}',
      ].join('\n'),
    );
    const config = await loadConfig({
      files: [path],
      env: {
        BUCKET: 'ml',
        MLPLANE__S3__PART_SIZE_MIB: '64',
        MLPLANE__S3__NEW_FLAG: 'true',
        MLPLANE__PLATFORM__LOG_LEVEL: 'debug',
      },
    });
    expect(config).toEqual({
      platform: { logLevel: 'debug' },
      s3: {
        bucket: 'ml',
        endpoint: 'http://127.0.0.1:7070',
        partSizeMiB: 64,
        newFlag: true,
        // Secret references stay until the platform resolves them through the SecretStore.
        secretKey: '${secret:s3-key}',
      },
    });
  });

  it('merges several files in order and reads a TS module', async () => {
    const base = await tempFile('base.json', JSON.stringify({ s3: { bucket: 'a', region: 'eu' } }));
    const override = await tempFile('override.mts', 'export default () => ({ s3: { bucket: "b" } });');
    const config = await loadConfig({ files: [base.path, override.path], env: {} });
    expect(config).toEqual({ s3: { bucket: 'b', region: 'eu' } });
  });

  it('names the config path of a missing environment variable', async () => {
    const { path } = await tempFile('c.yaml', 's3:\n  bucket: ${env:NOPE_NOT_SET}\n');
    await expect(loadConfig({ files: [path], env: {} })).rejects.toThrow(
      'config s3.bucket references environment variable NOPE_NOT_SET, which is not set',
    );
  });

  it('reports unreadable and malformed files', async () => {
    await expect(loadConfig('/nonexistent/mlplane.yaml')).rejects.toThrow(
      /cannot read config file \/nonexistent\/mlplane.yaml/,
    );
    const { path } = await tempFile('list.yaml', '- a\n- b\n');
    await expect(loadConfig(path)).rejects.toThrow(ConfigError);
    await expect(loadConfig(path)).rejects.toThrow('must hold an object at its top level');
  });
});

describe('loadConfig on hostile YAML', () => {
  it('reports a self-referencing anchor as a ConfigError instead of overflowing the stack', async () => {
    const { path } = await tempFile('self.yaml', 'a: &a [*a]\n');
    const err = await loadConfig({ files: [path], env: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(
      `config file ${path}: a[0] contains itself (it is the same value as a, as with a YAML alias inside its own ` +
        'anchor); config must be a tree',
    );
  });

  it('reports a cycle deeper in a mapping, and one in a config given to the platform directly', async () => {
    const { path } = await tempFile('deep.yaml', 's3:\n  opts: &o\n    inner:\n      back: *o\n');
    await expect(loadConfig({ files: [path], env: {} })).rejects.toThrow(
      'config file ' + path + ': s3.opts.inner.back contains itself (it is the same value as s3.opts,',
    );
    const section: Record<string, unknown> = {};
    section.loop = [section];
    const platform = createKernelPlatform({ plugins: [], config: { x: section }, log: { level: 'silent' } });
    const err = await platform.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toContain('config: x.loop[0] contains itself (it is the same value as x,');
  });

  it('caps alias expansion: a billion-laughs document is a ConfigError, not exhausted memory', async () => {
    const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 9; i++) {
      const name = String.fromCharCode(97 + i);
      const prev = String.fromCharCode(96 + i);
      lines.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    const { path } = await tempFile('laughs.yaml', `${lines.join('\n')}\n`);
    const err = await loadConfig({ files: [path], env: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(
      `cannot read config file ${path}: its YAML aliases expand to more than 100 nodes; write the repeated parts out ` +
        'or use fewer nested aliases',
    );
  });

  it('still reads ordinary aliases', async () => {
    const { path } = await tempFile('ok.yaml', 'base: &b { region: eu }\ns3: { opts: *b, again: *b }\n');
    expect(await loadConfig({ files: [path], env: {} })).toEqual({
      base: { region: 'eu' },
      s3: { opts: { region: 'eu' }, again: { region: 'eu' } },
    });
  });
});

describe('secrets in config', () => {
  const secretValue = `s3cr3t-${randomBytes(8).toString('hex')}`;
  const leaky = definePlugin({
    id: 'leaky',
    configSchema: z.object({ password: z.string(), port: z.number().default(1) }),
    register(env) {
      env.registerInit({
        deps: { logger: coreServices.logger },
        init: ({ logger, config }) => {
          // A careless plugin logs its whole config; the platform must still keep the secret out.
          logger.info({ config }, `configured with ${config.password}`);
        },
      });
    },
  });

  it('resolves ${secret:name} through the SecretStore and scrubs the value from every log line', async () => {
    const lines: string[] = [];
    const platform = createPlatform({
      plugins: [leaky()],
      config: {
        platform: { signals: [] },
        leaky: { password: '${secret:db-password}' },
      },
      log: { level: 'info', destination: { write: (s: string) => void lines.push(s) } },
    });
    process.env.MLPLANE_SECRET_DB_PASSWORD = secretValue;
    try {
      await platform.start();
    } finally {
      delete process.env.MLPLANE_SECRET_DB_PASSWORD;
    }
    await platform.stop();
    const leakyLines = lines.filter((l) => l.includes('"plugin":"leaky"'));
    expect(leakyLines).toHaveLength(1);
    expect(leakyLines[0]).toContain('configured with ***');
    expect(lines.join('\n')).not.toContain(secretValue);
  });

  it('keeps resolved secrets out of validation errors', async () => {
    const strict = definePlugin({
      id: 'strict',
      configSchema: z.object({ token: z.string().regex(/^tok_/, { message: 'must start with tok_' }) }),
      register: () => undefined,
    });
    const platform = createPlatform({
      plugins: [strict()],
      config: {
        platform: { signals: [] },
        strict: { token: '${secret:api-token}' },
      },
      log: { level: 'silent' },
    });
    process.env.MLPLANE_SECRET_API_TOKEN = secretValue;
    const err = await platform.start().catch((e: Error) => e);
    delete process.env.MLPLANE_SECRET_API_TOKEN;
    expect(String(err)).toContain('strict.token: must start with tok_');
    expect(String(err)).not.toContain(secretValue);
  });

  it('refuses secret references in the SecretStore provider own config', async () => {
    const platform = createPlatform({
      plugins: [],
      config: { platform: { signals: [] }, 'env-secrets': { prefix: '${secret:where}' } },
      log: { level: 'silent' },
    });
    await expect(platform.start()).rejects.toThrow(
      "config env-secrets.prefix references a secret, but 'env-secrets' provides the SecretStore and cannot read secrets to configure itself",
    );
  });
});
