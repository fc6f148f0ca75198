import { AsyncParallelHook } from 'tapable';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { minimalProvidersPlugin, probeDeployment, probeJob } from '../../../../test-support/minimal-providers.js';
import {
  artifactStoreRef,
  ConfigError,
  coreServices,
  createKernelPlatform,
  createServiceRef,
  definePlugin,
  definePort,
  type ExperimentTracker,
  experimentTrackerRef,
  intercept,
  type ModelRegistry,
  modelRegistryRef,
  type Plugin,
  secretStoreRef,
  ValidationError,
} from '../../src/index.js';
import { platformHooksConformance } from '../../src/testing/index.js';

function kernel(plugins: Plugin<any>[], config: Record<string, unknown> = {}, lines?: string[]) {
  return createKernelPlatform({
    plugins,
    config: { platform: { signals: [] }, ...config },
    log: lines ? { level: 'info', destination: { write: (s: string) => void lines.push(s) } } : { level: 'silent' },
  });
}

platformHooksConformance('minimal third-party providers (in memory, firing no hook themselves)', async () => {
  const platform = kernel([minimalProvidersPlugin()]);
  await platform.start();
  return { platform, job: probeJob, deployment: probeDeployment };
});

describe('plugin scope', () => {
  it('names every tap a plugin makes after the plugin, through its own view of the hooks', async () => {
    const policy = definePlugin({
      id: 'risk-policy',
      register(env) {
        env.registerInit({
          deps: { hooks: coreServices.hooks, me: coreServices.pluginMetadata },
          init({ hooks, me }) {
            hooks.model.beforePromote.tapPromise('review', async () => undefined);
            hooks.artifact.beforePut.tap({ name: `${me.id}/size`, stage: 10 }, () => undefined);
          },
        });
      },
    });
    const platform = kernel([minimalProvidersPlugin(), policy()]);
    await platform.start();
    platform.hooks.run.created.tapPromise('host-tap', async () => undefined);
    expect(platform.hooks.model.beforePromote.taps.map((t) => t.name)).toEqual(['risk-policy/review']);
    expect(platform.hooks.artifact.beforePut.taps.map((t) => t.name)).toEqual(['risk-policy/size']);
    expect(platform.hooks.run.created.taps.map((t) => t.name)).toEqual(['host-tap']);
    await platform.stop();
  });

  it('logs one line per port naming its provider and whether it is a default', async () => {
    const lines: string[] = [];
    const local = definePlugin({
      id: 'local-files',
      register(env) {
        env.provide(artifactStoreRef, {
          asDefault: true,
          local: true,
          factory: () => ({}) as never,
        });
      },
    });
    const platform = kernel([local()], {}, lines);
    await platform.start();
    await platform.stop();
    const line = lines.map((l) => JSON.parse(l)).find((l) => l.port === 'core.artifactStore');
    expect(line).toMatchObject({ provider: 'local-files', default: true, local: true });
    expect(line.msg).toBe(
      "port core.artifactStore: plugin 'local-files' (embedded default, keeps its data on this machine)",
    );
  });

  it('with platform.strict refuses a local default that config did not choose, and accepts it when chosen', async () => {
    const local = definePlugin({
      id: 'local-files',
      register(env) {
        env.provide(artifactStoreRef, { asDefault: true, local: true, factory: () => ({}) as never });
      },
    });
    const refused = kernel([local()], { platform: { signals: [], strict: true } });
    const err = await refused.start().catch((e: Error) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(String(err)).toContain(
      "core.artifactStore would fall back to 'local-files', which keeps its data on this machine",
    );
    const chosen = kernel([local()], {
      platform: { signals: [], strict: true, providers: { 'core.artifactStore': 'local-files' } },
    });
    await chosen.start();
    await chosen.stop();
  });
});

describe('decorators and plugin-defined ports', () => {
  it('wraps the chosen provider with a decorator, and the guard still fires the port hooks once', async () => {
    const counting = definePlugin({
      id: 'counting',
      register(env) {
        env.decorate(artifactStoreRef, {
          decorate: ({ service }) => {
            let puts = 0;
            return intercept(service, {
              put: (key, body, options) => {
                puts++;
                return service.put(key, body, options);
              },
              exists: async () => puts > 0,
            });
          },
        });
      },
    });
    const platform = kernel([minimalProvidersPlugin(), counting()]);
    await platform.start();
    let judged = 0;
    platform.hooks.artifact.beforePut.tap('count', () => void judged++);
    const store = await platform.get(artifactStoreRef);
    expect(await store.exists('x')).toBe(false);
    await store.put('x', 'y');
    expect(await store.exists('anything')).toBe(true);
    expect(judged).toBe(1);
    await platform.stop();
  });

  it('guards the provider of a port a plugin defines, so its hooks fire through hooks.of(port)', async () => {
    interface Greeter {
      greet(name: string): Promise<string>;
    }
    const greeterRef = createServiceRef<Greeter>({ id: 'acme.greeter' });
    const greeterPort = definePort({
      ref: greeterRef,
      hooksKey: 'greeter',
      createHooks: () => Object.freeze({ greeted: new AsyncParallelHook<[string]>(['name']) }),
      guard: (greeter, { hooks }) =>
        intercept(greeter, {
          greet: async (name) => {
            const text = await greeter.greet(name);
            await hooks.greeted.promise(name);
            return text;
          },
        }),
    });
    const acme = definePlugin({
      id: 'acme',
      register(env) {
        env.registerPort(greeterPort);
        env.provide(greeterRef, { factory: () => ({ greet: async (n: string) => `hello ${n}` }) });
      },
    });
    const platform = kernel([acme()]);
    const greeted: string[] = [];
    platform.hooks.of(greeterPort).greeted.tap('host', (n) => void greeted.push(n));
    await platform.start();
    expect(await (await platform.get(greeterRef)).greet('ada')).toBe('hello ada');
    expect(greeted).toEqual(['ada']);
    await platform.stop();
  });
});

describe('configuration order', () => {
  it('validates the config of a plugin whose service the SecretStore needs before creating the store', async () => {
    const vaultAddressRef = createServiceRef<{ address: string }>({ id: 'acme.vaultAddress' });
    const address = definePlugin({
      id: 'vault-address',
      configSchema: z.object({ address: z.string().default('http://127.0.0.1:8200') }),
      register(env) {
        env.provide(vaultAddressRef, { factory: ({ config }) => ({ address: config.address }) });
      },
    });
    const seen: unknown[] = [];
    const vault = definePlugin({
      id: 'vault',
      register(env) {
        env.provide(secretStoreRef, {
          deps: { where: vaultAddressRef },
          factory: ({ where }) => {
            seen.push(where.address);
            return {
              capabilities: { writable: false },
              get: async () => 'from-vault',
              list: async () => [],
            };
          },
        });
      },
    });
    const user = definePlugin({
      id: 'user',
      configSchema: z.object({ token: z.string() }),
      register: () => undefined,
    });
    const platform = kernel([address(), vault(), user()], {
      'vault-address': { address: 'http://vault:8200' },
      user: { token: '${secret:api-token}' },
    });
    await platform.start();
    expect(seen).toEqual(['http://vault:8200']);
    await platform.stop();
  });
});

describe('input at the port boundary', () => {
  it("checks every call against the port's argument schemas, whoever provides the port", async () => {
    const reached: string[] = [];
    // A provider that checks nothing itself: whatever reaches it got through the kernel's boundary.
    const trusting = definePlugin({
      id: 'trusting',
      register(env) {
        env.provide(experimentTrackerRef, {
          factory: () => ({ logBatch: async () => void reached.push('logBatch') }) as unknown as ExperimentTracker,
        });
        env.provide(modelRegistryRef, {
          factory: () =>
            ({
              capabilities: { atomicPromotionCheck: false },
              setModelTag: async () => void reached.push('setModelTag'),
            }) as unknown as ModelRegistry,
        });
      },
    });
    const platform = kernel([trusting()]);
    await platform.start();
    const tracker = await platform.get(experimentTrackerRef);
    const err = await tracker.logBatch('run-1', { metrics: [null] } as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).field).toMatch(/^metrics\[0\]/);
    const registry = await platform.get(modelRegistryRef);
    await expect(registry.setModelTag('m', 'k', 42 as never)).rejects.toBeInstanceOf(ValidationError);
    expect(reached).toEqual([]);
    await tracker.logBatch('run-1', { metrics: [{ key: 'loss', value: 0.5 }] });
    expect(reached).toEqual(['logBatch']);
    await platform.stop();
  });
});
