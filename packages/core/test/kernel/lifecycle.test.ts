import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { coreServices, createKernelPlatform, createServiceRef, definePlugin, type Plugin } from '../../src/index.js';

/** A plugin that records each lifecycle step into `log`, depending on `deps` refs. */
function recorder(
  id: string,
  log: string[],
  provides?: ReturnType<typeof createServiceRef<string>>,
  uses: ReturnType<typeof createServiceRef<string>>[] = [],
) {
  return definePlugin({
    id,
    register(env) {
      if (provides) {
        env.provide(provides, {
          factory: () => {
            log.push(`create ${provides.id}`);
            return provides.id;
          },
          dispose: () => void log.push(`dispose ${provides.id}`),
        });
      }
      const deps = Object.fromEntries(uses.map((r, i) => [`d${i}`, r]));
      env.registerInit({
        deps: { ...deps, lifecycle: coreServices.lifecycle },
        init: ({ lifecycle }) => {
          log.push(`init ${id}`);
          lifecycle.addStartHook(() => void log.push(`start ${id}`));
          lifecycle.addShutdownHook(() => void log.push(`shutdown ${id}`));
        },
      });
    },
  })();
}

describe('lifecycle', () => {
  it('inits in dependency order, starts, and stops in reverse order', async () => {
    const log: string[] = [];
    const dbRef = createServiceRef<string>({ id: 'test.db' });
    const cacheRef = createServiceRef<string>({ id: 'test.cache' });
    // Installed in the "wrong" order on purpose: api uses cache, cache uses db.
    const plugins: Plugin<any>[] = [
      recorder('api', log, undefined, [cacheRef]),
      recorder('cache', log, cacheRef, [dbRef]),
      recorder('db', log, dbRef),
    ];
    const platform = createKernelPlatform({ plugins, config: { platform: { signals: [] } }, log: { level: 'silent' } });
    platform.hooks.platform.ready.tap('test', () => void log.push('ready'));
    platform.hooks.platform.shutdown.tap('test', () => void log.push('shutdown hook'));
    await platform.start();
    expect(log).toEqual([
      'init db',
      'create test.db',
      'init cache',
      'create test.cache',
      'init api',
      'start db',
      'start cache',
      'start api',
      'ready',
    ]);
    log.length = 0;
    await platform.stop();
    expect(log).toEqual([
      'shutdown hook',
      'shutdown api',
      'shutdown cache',
      'shutdown db',
      'dispose test.cache',
      'dispose test.db',
    ]);
  });

  it('runs extension-point contributors before the owner', async () => {
    const log: string[] = [];
    const { createExtensionPoint } = await import('../../src/index.js');
    const point = createExtensionPoint<{ add(name: string): void }>({ id: 'owner.items' });
    const items: string[] = [];
    const owner = definePlugin({
      id: 'owner',
      register(env) {
        env.registerExtensionPoint(point, { add: (n) => void items.push(n) });
        env.registerInit({ deps: {}, init: () => void log.push(`owner sees ${items.join(',')}`) });
      },
    })();
    const contributor = definePlugin({
      id: 'contributor',
      register(env) {
        env.registerInit({ deps: { items: point }, init: ({ items }) => items.add('x') });
      },
    })();
    const platform = createKernelPlatform({
      plugins: [owner, contributor],
      config: { platform: { signals: [] } },
      log: { level: 'silent' },
    });
    await platform.start();
    expect(log).toEqual(['owner sees x']);
    await platform.stop();
  });

  it('keeps stopping when a step fails or hangs, within the deadline, and reports what failed', async () => {
    const log: string[] = [];
    const p = definePlugin({
      id: 'slow',
      register(env) {
        env.registerInit({
          deps: { lifecycle: coreServices.lifecycle },
          init: ({ lifecycle }) => {
            lifecycle.addShutdownHook(() => void log.push('first registered, runs last'));
            lifecycle.addShutdownHook(() => new Promise(() => undefined), 'hangs');
            lifecycle.addShutdownHook(() => {
              throw new Error('cannot flush');
            }, 'throws');
          },
        });
      },
    })();
    const platform = createKernelPlatform({
      plugins: [p],
      config: { platform: { signals: [], shutdownDeadlineMs: 300 } },
      log: { level: 'silent' },
    });
    await platform.start();
    const started = Date.now();
    const err = await platform.stop().catch((e: Error) => e);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(String(err)).toContain("plugin 'slow' shutdown (throws): cannot flush");
    expect(String(err)).toContain("plugin 'slow' shutdown (hangs): did not finish within the shutdown deadline");
    expect(String(err)).toContain(
      "plugin 'slow' shutdown (shutdown hook): skipped, shutdown deadline of 300 ms passed",
    );
    expect(log).toEqual([]);
    expect(platform.state).toBe('stopped');
  });

  it('cannot start twice; stop is idempotent', async () => {
    const platform = createKernelPlatform({
      plugins: [],
      config: { platform: { signals: [] } },
      log: { level: 'silent' },
    });
    await platform.start();
    await expect(platform.start()).rejects.toThrow("platform cannot start from state 'running'");
    await Promise.all([platform.stop(), platform.stop()]);
    await platform.stop();
    expect(platform.state).toBe('stopped');
  });

  it('stops gracefully on SIGTERM in a real process, in reverse order, and exits 0', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mlplane-signal-'));
    const entry = fileURLToPath(new URL('../../src/index.ts', import.meta.url));
    const script = join(dir, 'main.mts');
    await writeFile(
      script,
      `import { coreServices, createKernelPlatform, definePlugin } from ${JSON.stringify(entry)};
const make = (id) => definePlugin({ id, register(env) {
  env.registerInit({ deps: { lifecycle: coreServices.lifecycle }, init: ({ lifecycle }) => {
    lifecycle.addShutdownHook(async () => { await new Promise((r) => setTimeout(r, 50)); console.log('stopped ' + id); });
  } });
} })();
const platform = createKernelPlatform({ plugins: [make('first'), make('second')], config: { platform: { logLevel: 'silent' } } });
await platform.start();
console.log('ready');
setInterval(() => {}, 1000);
`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let errOut = '';
    child.stderr.on('data', (b) => (errOut += b));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.stdout.on('data', (b: Buffer) => {
        out += b;
        if (out.includes('ready') && !child.killed) child.kill('SIGTERM');
      });
      child.on('error', reject);
      child.on('exit', (c) => resolve(c));
    });
    expect(errOut).toBe('');
    expect(out.trim().split('\n')).toEqual(['ready', 'stopped second', 'stopped first']);
    expect(code).toBe(0);
  });
});
