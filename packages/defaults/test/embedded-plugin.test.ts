import { createHash, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import {
  type ArtifactStore,
  artifactStoreRef,
  ConfigError,
  ConflictError,
  type DomainEvent,
  definePlugin,
  eventBusRef,
  metadataStoreRef,
  PluginFailedError,
  secretStoreRef,
  telemetryRef,
  ValidationError,
} from '@mlplane/core';
import { createPlatform, LocalArtifactStore } from '@mlplane/defaults';
import { startTestPlatform } from '@mlplane/defaults/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

describe('embedded defaults on a started platform', () => {
  it('provides every embedded port, working together', async () => {
    await using platform = await startTestPlatform();
    const store = await platform.get(artifactStoreRef);
    const info = await store.put('models/fraud/3/model.onnx', 'weights');
    expect(info.sha256).toBe(createHash('sha256').update('weights').digest('hex'));
    expect(info.size).toBe(7);

    const bus = await platform.get(eventBusRef);
    const seen: DomainEvent[] = [];
    await bus.subscribe({ group: 'test', handler: async (e) => void seen.push(e) });
    const event: DomainEvent = {
      id: randomUUID(),
      type: 'model.version.promoted',
      version: 1,
      occurredAt: new Date().toISOString(),
      subject: 'model:fraud/3',
      payload: { to: 'Production' },
    };
    await bus.publish(event);
    await expect.poll(() => seen.map((e) => e.id)).toEqual([event.id]);

    const secrets = await platform.get(secretStoreRef);
    await secrets.set!('db-password', 'hunter2-hunter2');
    expect(await secrets.get('db-password')).toBe('hunter2-hunter2');
    // The encrypted file never holds the plaintext.
    const file = await readFile(join(platform.dataDir, 'secrets.enc'));
    expect(file.includes(Buffer.from('hunter2'))).toBe(false);

    const telemetry = await platform.get(telemetryRef);
    const puts = telemetry.metrics.counter({ name: 'test_puts_total', help: 'puts', labelNames: ['store'] });
    puts.inc({ store: 'local' }, 2);
    expect(await telemetry.metrics.metricsText()).toContain('test_puts_total{store="local"} 2');
  });

  it('generates the master key once, owner-only, when none is configured', async () => {
    await using platform = await startTestPlatform({ config: { embedded: { secrets: { masterKey: undefined } } } });
    const secrets = await platform.get(secretStoreRef);
    await secrets.set!('k', 'value-1234');
    const keyFile = join(platform.dataDir, 'master.key');
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    expect(Buffer.from((await readFile(keyFile, 'utf8')).trim(), 'base64')).toHaveLength(32);
  });

  it('gives way to a plugin that provides the same port', async () => {
    let custom: ArtifactStore | undefined;
    const mine = definePlugin({
      id: 'my-store',
      register(env) {
        env.provide(artifactStoreRef, {
          factory: () => {
            custom = new LocalArtifactStore({
              root: join(process.env.TMPDIR ?? '/tmp', `mlplane-custom-${randomUUID()}`),
            });
            return custom;
          },
        });
      },
    })();
    await using platform = await startTestPlatform({ plugins: [mine] });
    // Consumers get the plugin's store behind the kernel's guard (so artifact.beforePut fires): writes land in it.
    await (await platform.get(artifactStoreRef)).put('given-way.txt', 'x');
    expect(await custom!.exists('given-way.txt')).toBe(true);
  });

  it('marks the ports that keep data on this machine as local, which platform.strict refuses unless chosen', async () => {
    const err = await startTestPlatform({ config: { platform: { strict: true } } }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toEqual([
      "core.artifactStore would fall back to 'embedded', which keeps its data on this machine",
      "core.computeBackend would fall back to 'embedded', which keeps its data on this machine",
      "core.eventBus would fall back to 'embedded', which keeps its data on this machine",
      "core.metadataStore would fall back to 'embedded', which keeps its data on this machine",
      "core.secretStore would fall back to 'embedded', which keeps its data on this machine",
    ]);
    // Choosing them in config is the explicit acknowledgement strict mode asks for; telemetry is not local.
    const providers = Object.fromEntries(
      ['core.artifactStore', 'core.computeBackend', 'core.eventBus', 'core.metadataStore', 'core.secretStore'].map(
        (id) => [id, 'embedded'],
      ),
    );
    await using platform = await startTestPlatform({ config: { platform: { strict: true, providers } } });
    expect(platform.platformConfig?.strict).toBe(true);
  });
});

describe('the data dir on disk', () => {
  let parent: string;
  beforeEach(async () => {
    parent = await mkdtemp(join(tmpdir(), 'mlplane-datadir-'));
  });
  afterEach(async () => {
    await rm(parent, { recursive: true, force: true });
  });

  const platformOn = (dataDir: string, secrets: Record<string, unknown> = {}) =>
    createPlatform({
      plugins: [],
      config: { platform: { signals: [] }, embedded: { dataDir, secrets } },
      log: { level: 'silent' },
    });

  it('creates a fresh data dir owner-only: directories 0700, files 0600, blobs 0400', async () => {
    const dataDir = join(parent, 'fresh', '.mlplane');
    const platform = platformOn(dataDir);
    await platform.start();
    try {
      await (await platform.get(artifactStoreRef)).put('models/m/1/model.onnx', 'weights');
      await (await platform.get(secretStoreRef)).set!('db-password', 'hunter2-hunter2');
      // The management plugin migrated the database at start, so it is open with its WAL files.
      expect((await platform.get(metadataStoreRef)).dialect).toBe('sqlite');
      const modes: Record<string, string> = {};
      for (const entry of await readdir(dataDir, { withFileTypes: true, recursive: true })) {
        const path = join(entry.parentPath, entry.name);
        modes[relative(dataDir, path)] = ((await stat(path)).mode & 0o777).toString(8);
      }
      expect((await stat(dataDir)).mode & 0o777).toBe(0o700);
      const loose = Object.entries(modes).filter(([path, mode]) =>
        path.startsWith('artifacts/blobs/sha256/') && !path.endsWith('/') && path.split('/').length === 5
          ? mode !== '400'
          : !['700', '600'].includes(mode),
      );
      expect(loose).toEqual([]);
      for (const file of [
        'metadata.db',
        'metadata.db-wal',
        'metadata.db-shm',
        'secrets.enc',
        'master.key',
        'artifacts/owner.lock',
      ]) {
        expect(modes[file], file).toBe('600');
      }
    } finally {
      await platform.stop();
    }
  });

  it('lets one platform own a data dir: a second one fails to start naming the owner, and starts once it stops', async () => {
    const dataDir = join(parent, 'shared');
    const first = platformOn(dataDir);
    await first.start();
    const second = platformOn(dataDir);
    let err: unknown;
    try {
      await (await first.get(artifactStoreRef)).put('models/a', 'shared content');
      err = await second.start().catch((e: unknown) => e);
    } finally {
      await first.stop();
    }
    expect(err).toBeInstanceOf(PluginFailedError);
    expect((err as Error).message).toContain(
      `plugin 'embedded' failed to create 'core.metadataStore': data dir ${dataDir} is in use by process ` +
        `${process.pid} on host`,
    );
    const third = platformOn(dataDir);
    await third.start();
    try {
      const store = await third.get(artifactStoreRef);
      await store.put('models/b', 'shared content');
      await store.delete('models/b');
      expect((await store.head('models/a')).size).toBe(14);
    } finally {
      await third.stop();
    }
  });

  it('reads and creates the master key at masterKeyFile, away from the secrets it decrypts', async () => {
    const dataDir = join(parent, 'data');
    const keyFile = join(parent, 'keys', 'mlplane.key');
    const platform = platformOn(dataDir, { masterKeyFile: keyFile });
    await platform.start();
    try {
      await (await platform.get(secretStoreRef)).set!('db-password', 'hunter2-hunter2');
    } finally {
      await platform.stop();
    }
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600);
    expect((await stat(join(parent, 'keys'))).mode & 0o777).toBe(0o700);
    expect(await readdir(dataDir)).not.toContain('master.key');
    // The same key file opens the secrets again.
    const again = platformOn(dataDir, { masterKeyFile: keyFile });
    await again.start();
    try {
      expect(await (await again.get(secretStoreRef)).get('db-password')).toBe('hunter2-hunter2');
    } finally {
      await again.stop();
    }
  });
});

describe('embedded telemetry', () => {
  it('returns one handle per metric and rejects conflicting or invalid declarations', async () => {
    await using platform = await startTestPlatform();
    const { metrics, tracer } = await platform.get(telemetryRef);
    const a = metrics.histogram({ name: 'test_latency_seconds', help: 'x', labelNames: ['op'] });
    const b = metrics.histogram({ name: 'test_latency_seconds', help: 'x', labelNames: ['op'] });
    expect(a).toBe(b);
    expect(() => metrics.counter({ name: 'test_latency_seconds', help: 'x' })).toThrow(ConflictError);
    expect(() => metrics.counter({ name: 'bad name', help: 'x' })).toThrow(ValidationError);
    const c = metrics.counter({ name: 'test_c_total', help: 'x' });
    expect(() => c.inc(-1)).toThrow('counter test_c_total cannot be decreased (inc by -1)');
    const stop = a.startTimer({ op: 'put' });
    expect(stop()).toBeGreaterThanOrEqual(0);
    expect(await metrics.metricsText()).toContain('test_latency_seconds_count{op="put"} 1');

    const outer = await tracer.withSpan('outer', async (span) => {
      const inner = tracer.startSpan('inner');
      inner.end();
      expect(inner.context.traceId).toBe(span.context.traceId);
      return span.context;
    });
    expect(outer.traceId).toMatch(/^[0-9a-f]{32}$/);
    await expect(
      tracer.withSpan('fails', async () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
  });
});
