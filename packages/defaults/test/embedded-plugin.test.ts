import { createHash, randomUUID } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type ArtifactStore,
  artifactStoreRef,
  ConflictError,
  type DomainEvent,
  definePlugin,
  eventBusRef,
  secretStoreRef,
  telemetryRef,
  ValidationError,
} from '@mlplane/core';
import { LocalArtifactStore } from '@mlplane/defaults';
import { startTestPlatform } from '@mlplane/defaults/testing';
import { describe, expect, it } from 'vitest';

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
