import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  ConfigError,
  coreServices,
  createExtensionPoint,
  createKernelPlatform,
  createServiceRef,
  definePlugin,
  type Plugin,
  WiringError,
} from '../../src/index.js';

const boot = (plugins: Plugin<any>[], config: Record<string, unknown> = {}) =>
  createKernelPlatform({ plugins, config: { platform: { signals: [] }, ...config }, log: { level: 'silent' } });

interface Greeter {
  greet(name: string): string;
}
const greeterRef = createServiceRef<Greeter>({ id: 'test.greeter' });
const clockRef = createServiceRef<{ now(): number }>({ id: 'test.clock' });

const greeterPlugin = (id: string, word = 'hello') =>
  definePlugin({
    id,
    register(env) {
      env.provide(greeterRef, { factory: () => ({ greet: (n: string) => `${word} ${n}` }) });
    },
  })();

const consumer = (id = 'consumer', sink: string[] = []) =>
  definePlugin({
    id,
    register(env) {
      env.registerInit({ deps: { greeter: greeterRef }, init: ({ greeter }) => void sink.push(greeter.greet(id)) });
    },
  })();

describe('wiring', () => {
  it('wires a provider to a consumer', async () => {
    const sink: string[] = [];
    const platform = boot([consumer('consumer', sink), greeterPlugin('greeter')]);
    await platform.start();
    expect(sink).toEqual(['hello consumer']);
    expect(platform.state).toBe('running');
    expect((await platform.get(greeterRef)).greet('host')).toBe('hello host');
    await platform.stop();
    expect(platform.state).toBe('stopped');
  });

  it('fails when a required port has no provider, naming the plugin and the port', async () => {
    const platform = boot([consumer('needy')]);
    await expect(platform.start()).rejects.toThrow(
      "plugin 'needy' init requires port 'test.greeter' (as 'greeter'), but no installed plugin provides it",
    );
    await expect(platform.start()).rejects.toThrow(WiringError);
  });

  it('fails when two plugins provide one port without a choice', async () => {
    const platform = boot([greeterPlugin('en'), greeterPlugin('fr', 'bonjour'), consumer()]);
    await expect(platform.start()).rejects.toThrow(
      "port 'test.greeter' is provided by plugins 'en' and 'fr'; choose one with config platform.providers['test.greeter']",
    );
  });

  it('uses the provider chosen in config', async () => {
    const sink: string[] = [];
    const platform = boot([greeterPlugin('en'), greeterPlugin('fr', 'bonjour'), consumer('c', sink)], {
      platform: { signals: [], providers: { 'test.greeter': 'fr' } },
    });
    await platform.start();
    expect(sink).toEqual(['bonjour c']);
    await platform.stop();
  });

  it('rejects a choice of a plugin that does not provide the port', async () => {
    const platform = boot([greeterPlugin('en'), consumer()], {
      platform: { signals: [], providers: { 'test.greeter': 'consumer' } },
    });
    await expect(platform.start()).rejects.toThrow(
      "config platform.providers chooses plugin 'consumer' for 'test.greeter', but it does not provide it (provided by 'en')",
    );
  });

  it('lets a real provider replace a default without a choice', async () => {
    const sink: string[] = [];
    const fallback = definePlugin({
      id: 'fallback',
      register(env) {
        env.provide(greeterRef, { asDefault: true, factory: () => ({ greet: () => 'default' }) });
      },
    })();
    const platform = boot([fallback, greeterPlugin('real'), consumer('c', sink)]);
    await platform.start();
    expect(sink).toEqual(['hello c']);
    await platform.stop();
  });

  it('detects a cycle between services', async () => {
    const a = definePlugin({
      id: 'a',
      register(env) {
        env.provide(greeterRef, { deps: { clock: clockRef }, factory: () => ({ greet: () => '' }) });
      },
    })();
    const b = definePlugin({
      id: 'b',
      register(env) {
        env.provide(clockRef, { deps: { greeter: greeterRef }, factory: () => ({ now: () => 0 }) });
      },
    })();
    await expect(boot([a, b]).start()).rejects.toThrow(
      "dependency cycle between services: test.greeter (plugin 'a') -> test.clock (plugin 'b') -> test.greeter (plugin 'a')",
    );
  });

  it('detects a cycle between plugin inits through extension points', async () => {
    const point = createExtensionPoint<{ add(x: string): void }>({ id: 'a.things' });
    const a = definePlugin({
      id: 'a',
      register(env) {
        env.registerExtensionPoint(point, { add: () => undefined });
        env.provide(greeterRef, { factory: () => ({ greet: () => '' }) });
        env.registerInit({ deps: {}, init: () => undefined });
      },
    })();
    // b contributes to a's extension point (so b inits before a) and uses a's service (so a inits before b).
    const b = definePlugin({
      id: 'b',
      register(env) {
        env.registerInit({ deps: { things: point, greeter: greeterRef }, init: () => undefined });
      },
    })();
    await expect(boot([a, b]).start()).rejects.toThrow(
      /dependency cycle between plugins: '(a|b)' -> '(a|b)' -> '(a|b)'/,
    );
  });

  it('rejects duplicate plugin ids, init registered twice and the reserved dep name', async () => {
    await expect(boot([greeterPlugin('x'), greeterPlugin('x')]).start()).rejects.toThrow(
      "plugin 'x' is installed twice",
    );
    const twice = definePlugin({
      id: 'twice',
      register(env) {
        env.registerInit({ deps: {}, init: () => undefined });
        env.registerInit({ deps: {}, init: () => undefined });
      },
    })();
    await expect(boot([twice]).start()).rejects.toThrow("plugin 'twice' registered init twice");
    const reserved = definePlugin({
      id: 'reserved',
      register(env) {
        env.registerInit({ deps: { config: greeterRef } as never, init: () => undefined });
      },
    })();
    await expect(boot([reserved]).start()).rejects.toThrow(
      "plugin 'reserved' names a dependency 'config', which is reserved",
    );
  });

  it('rejects an extension point nobody registers', async () => {
    const point = createExtensionPoint<string[]>({ id: 'nobody.list' });
    const p = definePlugin({
      id: 'p',
      register(env) {
        env.registerInit({ deps: { list: point }, init: () => undefined });
      },
    })();
    await expect(boot([p]).start()).rejects.toThrow(
      "plugin 'p' init uses extension point 'nobody.list' (as 'list'), but no installed plugin registers it",
    );
  });

  it('reports plugin failures with the plugin id and step, and cleans up what was created', async () => {
    const disposed: string[] = [];
    const good = definePlugin({
      id: 'good',
      register(env) {
        env.provide(clockRef, { factory: () => ({ now: () => 1 }), dispose: () => void disposed.push('clock') });
      },
    })();
    const bad = definePlugin({
      id: 'bad',
      register(env) {
        env.registerInit({
          deps: { clock: clockRef },
          init: () => {
            throw new Error('boom');
          },
        });
      },
    })();
    const platform = boot([good, bad]);
    await expect(platform.start()).rejects.toThrow("plugin 'bad' failed to init: boom");
    expect(platform.state).toBe('failed');
    expect(disposed).toEqual(['clock']);
  });

  it('validates plugin ids and service ref ids', () => {
    expect(() => definePlugin({ id: 'Bad_Id', register: () => undefined })).toThrow(
      "plugin id 'Bad_Id' must be kebab-case, e.g. 'model-policy'",
    );
    expect(() => createServiceRef({ id: 'no spaces' })).toThrow("service ref id 'no spaces' must be dotted camelCase");
  });
});

describe('config', () => {
  const configured = definePlugin({
    id: 'store',
    configSchema: z.object({
      bucket: z.string().min(1),
      partSizeMiB: z.number().int().positive().default(16),
      retry: z.object({ attempts: z.number().default(3) }).default({ attempts: 3 }),
    }),
    register(env) {
      env.provide(clockRef, { factory: ({ config }) => ({ now: () => config.partSizeMiB }) });
    },
  });

  it('applies defaults and merges inline config under the file config', async () => {
    const platform = boot([configured({ bucket: 'inline', partSizeMiB: 8 })], { store: { bucket: 'from-file' } });
    await platform.start();
    expect((await platform.get(clockRef)).now()).toBe(8);
    await platform.stop();
  });

  it('names the plugin and the zod path of every invalid value', async () => {
    const platform = boot([configured()], { store: { bucket: '', partSizeMiB: 'big', retry: { attempts: 'x' } } });
    const err = await platform.start().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems.some((p) => p.startsWith('store.bucket: '))).toBe(true);
    expect(problems.some((p) => p.startsWith('store.partSizeMiB: '))).toBe(true);
    expect(problems.some((p) => p.startsWith('store.retry.attempts: '))).toBe(true);
  });

  it('rejects unknown keys, nested ones too, and sections for plugins that are not installed', async () => {
    const platform = boot([configured()], { store: { bucket: 'b', buckett: 'typo', retry: { atempts: 1 } }, s3: {} });
    const err = (await platform.start().catch((e: unknown) => e)) as ConfigError;
    expect(err.problems).toContain('store.buckett: unknown config key');
    expect(err.problems).toContain('store.retry.atempts: unknown config key');
    expect(err.problems.find((p) => p.startsWith('s3: config section for no installed plugin'))).toBeDefined();
  });

  it('validates the kernel section too', async () => {
    const platform = createKernelPlatform({
      plugins: [],
      config: { platform: { shutdownDeadlineMs: -1 } },
      log: { level: 'silent' },
    });
    await expect(platform.start()).rejects.toThrow(/platform\.shutdownDeadlineMs: /);
  });
});

describe('core services', () => {
  it('gives each plugin its own logger and lifecycle', async () => {
    const lines: string[] = [];
    const destination = { write: (s: string) => void lines.push(s) };
    const p = definePlugin({
      id: 'talker',
      register(env) {
        env.registerInit({
          deps: { log: coreServices.logger, lifecycle: coreServices.lifecycle },
          init: ({ log, lifecycle }) => {
            log.info('hi from init');
            lifecycle.addShutdownHook(() => log.info('bye'));
          },
        });
      },
    })();
    const platform = createKernelPlatform({
      plugins: [p],
      config: { platform: { signals: [] } },
      log: { destination },
    });
    await platform.start();
    await platform.stop();
    const talker = lines.map((l) => JSON.parse(l)).filter((l) => l.plugin === 'talker');
    expect(talker.map((l) => l.msg)).toEqual(['hi from init', 'bye']);
  });
});
