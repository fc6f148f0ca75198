import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CreatePlatformOptions, Platform, Plugin } from '@mlplane/core';
import { deepMerge, type RawConfig } from '@mlplane/core';
import { createPlatform } from '../create-platform.js';

export interface StartTestPlatformOptions {
  readonly plugins?: readonly Plugin<any>[];
  /** Merged over the test defaults (a temp data dir, a random master key, no signal handlers). */
  readonly config?: RawConfig;
  /** Install the embedded defaults (default true). */
  readonly defaults?: boolean;
  /** Where log lines go, to read them in a test; default silent unless MLPLANE_TEST_LOG names a level. */
  readonly log?: CreatePlatformOptions['log'];
}

export interface TestPlatform extends Platform {
  /** The temp directory holding the embedded defaults' data; removed by `stop()`. */
  readonly dataDir: string;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Boots a real platform for a test: embedded defaults in a fresh temp dir, logs silenced unless
 * MLPLANE_TEST_LOG is set, signal handlers off. `await using p = await startTestPlatform(...)` stops it.
 */
export async function startTestPlatform(options: StartTestPlatformOptions = {}): Promise<TestPlatform> {
  const dataDir = await mkdtemp(join(tmpdir(), 'mlplane-test-'));
  const defaults = options.defaults ?? true;
  const base: RawConfig = {
    platform: { signals: [], shutdownDeadlineMs: 5_000 },
    ...(defaults ? { embedded: { dataDir, secrets: { masterKey: randomBytes(32).toString('base64') } } } : {}),
  };
  const platform = createPlatform({
    plugins: options.plugins ?? [],
    defaults,
    config: deepMerge(base, options.config ?? {}),
    log: options.log ?? { level: process.env.MLPLANE_TEST_LOG ?? 'silent' },
  });
  const cleanup = () => rm(dataDir, { recursive: true, force: true });
  try {
    await platform.start();
  } catch (err) {
    await cleanup();
    throw err;
  }
  const stop = async () => {
    try {
      await platform.stop();
    } finally {
      await cleanup();
    }
  };
  return {
    dataDir,
    hooks: platform.hooks,
    get state() {
      return platform.state;
    },
    get logger() {
      return platform.logger;
    },
    get pluginIds() {
      return platform.pluginIds;
    },
    get platformConfig() {
      return platform.platformConfig;
    },
    start: () => platform.start(),
    stop,
    get: (ref) => platform.get(ref),
    [Symbol.asyncDispose]: stop,
  };
}
