import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  ConfigError,
  coreServices,
  createKernelPlatform,
  definePlugin,
  NotFoundError,
  type Plugin,
  PluginFailedError,
  type SecretStore,
  secretStoreRef,
} from '../../src/index.js';

// JSON-escaping changes it (quotes, backslash), so a line that only escaped it would still carry it.
const SECRET = 'tok "en"\\ 4f9a-77c1';
const SECRETS: Record<string, string> = { 'db-password': SECRET, short: 'abc' };

/** A read-only SecretStore over a fixed map; it checks nothing, like a store written outside this repository. */
const mapSecrets = definePlugin({
  id: 'map-secrets',
  register(env) {
    env.provide(secretStoreRef, {
      factory: (): SecretStore => ({
        capabilities: { writable: false },
        async get(name) {
          const value = SECRETS[name];
          if (value === undefined) throw new NotFoundError(`secret '${name}' not found`);
          return value;
        },
        async list() {
          return Object.keys(SECRETS).sort();
        },
      }),
    });
  },
});

/** Every encoding of SECRET a log line or a message could carry. */
function leaks(text: string): string[] {
  const forms = [
    SECRET,
    JSON.stringify(SECRET).slice(1, -1),
    encodeURIComponent(SECRET),
    Buffer.from(SECRET).toString('base64').slice(0, 20),
  ];
  return forms.filter((f) => text.includes(f));
}

function platformWith(plugin: Plugin<any>, lines: string[]) {
  return createKernelPlatform({
    plugins: [mapSecrets(), plugin],
    config: { platform: { signals: [] }, client: { password: '${secret:db-password}' } },
    log: { level: 'info', destination: { write: (s: string) => void lines.push(s) } },
  });
}

describe('secrets in logged and thrown errors', () => {
  it('keeps the secret out of logger.error({ err }) and logger.error(err): message, stack, causes, aggregates', async () => {
    const lines: string[] = [];
    let original: Error | undefined;
    const client = definePlugin({
      id: 'client',
      configSchema: z.object({ password: z.string() }),
      register(env) {
        env.registerInit({
          deps: { logger: coreServices.logger },
          init: ({ logger, config }) => {
            // What a database driver does: echo the connection string, wrap the attempt errors.
            const url = `postgres://app:${encodeURIComponent(config.password)}@db:5432/ml`;
            const basic = Buffer.from(`app:${config.password}`).toString('base64');
            const attempt = Object.assign(
              new Error(`auth failed for ${JSON.stringify({ password: config.password })}`),
              {
                headers: { authorization: `Basic ${basic}` },
              },
            );
            original = new Error(`cannot connect to ${url}`, {
              cause: new AggregateError([attempt], `every address refused ${config.password}`),
            });
            logger.error({ err: original }, 'connect failed');
            logger.error(original);
            logger.warn({ error: original, config }, 'retrying');
          },
        });
      },
    });
    const platform = platformWith(client(), lines);
    await platform.start();
    await platform.stop();
    const logged = lines.filter((l) => l.includes('"plugin":"client"'));
    expect(logged).toHaveLength(3);
    // The lines carry the errors (scrubbed), not nothing.
    expect(logged[0]).toContain('cannot connect to postgres://app:***@db:5432/ml');
    expect(logged[0]).toContain('every address refused ***');
    expect(logged[1]).toContain('"msg":"cannot connect to postgres://app:***@db:5432/ml"');
    expect(leaks(lines.join('\n'))).toEqual([]);
    // Logging leaves the plugin's own error as it was.
    expect(original!.message).toContain(encodeURIComponent(SECRET));
  });

  it('scrubs the error start() rejects with, down to AggregateError.errors', async () => {
    const lines: string[] = [];
    const client = definePlugin({
      id: 'client',
      configSchema: z.object({ password: z.string() }),
      register(env) {
        env.registerInit({
          deps: {},
          init: ({ config }) => {
            const attempts = [
              new Error(`connect ECONNREFUSED with password=${config.password}`),
              Object.assign(new Error('TLS handshake failed'), { options: { password: config.password } }),
            ];
            throw new AggregateError(attempts, `all attempts failed (${encodeURIComponent(config.password)})`);
          },
        });
      },
    });
    const err = (await platformWith(client(), lines)
      .start()
      .catch((e: unknown) => e)) as PluginFailedError;
    expect(err).toBeInstanceOf(PluginFailedError);
    const aggregate = err.cause as AggregateError;
    expect(aggregate).toBeInstanceOf(AggregateError);
    expect(aggregate.errors).toHaveLength(2);
    expect(aggregate.errors[0].message).toBe('connect ECONNREFUSED with password=***');
    expect((aggregate.errors[1] as { options: unknown }).options).toEqual({ password: '***' });
    const everything = [
      err.message,
      err.stack,
      aggregate.message,
      aggregate.stack,
      ...aggregate.errors.flatMap((e: Error) => [e.message, e.stack, JSON.stringify(e)]),
    ].join('\n');
    expect(leaks(everything)).toEqual([]);
    expect(leaks(lines.join('\n'))).toEqual([]);
  });

  it('refuses to resolve a secret shorter than the minimum, naming where it is used and not the value', async () => {
    const client = definePlugin({ id: 'client', configSchema: z.object({ password: z.string() }), register() {} });
    const platform = createKernelPlatform({
      plugins: [mapSecrets(), client()],
      config: { platform: { signals: [] }, client: { password: 'x${secret:short}' } },
      log: { level: 'silent' },
    });
    const err = await platform.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toBe(
      "config client.password references secret 'short', whose value is 3 characters long; secrets need at least 8 " +
        'so that they can be scrubbed from logs and errors',
    );
  });
});

describe('secrets read at run time', () => {
  it('scrubs a value a plugin reads from the SecretStore after start, though no config names it', async () => {
    const lines: string[] = [];
    const reader = definePlugin({
      id: 'reader',
      register(env) {
        env.registerInit({
          deps: { secrets: secretStoreRef, logger: coreServices.logger },
          async init({ secrets, logger }) {
            const value = await secrets.get('db-password');
            logger.info({ value }, `connecting with ${value}`);
          },
        });
      },
    });
    const platform = createKernelPlatform({
      plugins: [mapSecrets(), reader()],
      config: { platform: { signals: [] } },
      log: { level: 'info', destination: { write: (s: string) => void lines.push(s) } },
    });
    await platform.start();
    await platform.stop();
    const line = lines.find((l) => l.includes('connecting with'));
    expect(line).toBeDefined();
    expect(leaks(lines.join('\n'))).toEqual([]);
  });
});
