import { randomBytes } from 'node:crypto';
import {
  auditLogRef,
  type DomainEvent,
  eventBusRef,
  experimentTrackerRef,
  metadataStoreRef,
  modelRegistryRef,
} from '@mlplane/core';
import { startTestPlatform } from '@mlplane/defaults/testing';
import { kafkaPlugin } from '@mlplane/plugin-kafka';
import { postgresPlugin } from '@mlplane/plugin-postgres';
import { redisCachePlugin, redisStreamsPlugin } from '@mlplane/plugin-redis';
import { describe, expect, it } from 'vitest';

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run scripts/peers up, then eval "$(scripts/peers env)"`);
  return value;
}

/** The same user code as on the embedded defaults, on PostgreSQL plus Kafka or Redis Streams plus the Redis cache. */
describe.each([
  ['kafka', () => kafkaPlugin({ brokers: [env('MLPLANE_KAFKA_BROKERS')] })],
  ['redis-streams', () => redisStreamsPlugin({ url: env('MLPLANE_REDIS_URL') })],
])('production composition: PostgreSQL + %s + Redis cache', (busName, bus) => {
  it('tracks, registers, promotes through the cache, relays and audits', { timeout: 180_000 }, async () => {
    const tag = randomBytes(4).toString('hex');
    await using platform = await startTestPlatform({
      plugins: [
        postgresPlugin({ connectionString: env('MLPLANE_PG_URL'), schema: `prod_${busName.replace('-', '_')}_${tag}` }),
        bus(),
        redisCachePlugin({ url: env('MLPLANE_REDIS_URL'), keyPrefix: `test:${tag}:` }),
      ],
      config:
        busName === 'kafka'
          ? { kafka: { topic: `prod-${tag}`, partitions: 2, sessionTimeoutMs: 10_000 } }
          : { 'redis-streams': { stream: `prod:${tag}` } },
    });
    expect((await platform.get(metadataStoreRef)).dialect).toBe('postgres');
    const events = await platform.get(eventBusRef);
    const seen: DomainEvent[] = [];
    await events.subscribe({ group: `observer-${tag}`, handler: async (e) => void seen.push(e) });

    const tracker = await platform.get(experimentTrackerRef);
    const experiment = await tracker.createExperiment({ name: `exp-${tag}` });
    const run = await tracker.createRun({ experimentId: experiment.id });
    const registry = await platform.get(modelRegistryRef);
    await registry.createModel({ name: `m-${tag}` });
    const v1 = await registry.createVersion({
      name: `m-${tag}`,
      source: `${run.info.artifactUri}/model`,
      runId: run.info.id,
    });
    await registry.setAlias({ name: `m-${tag}`, alias: 'champion', version: v1.version });
    expect((await registry.resolve(`models:/m-${tag}@champion`)).version).toBe(1);
    const v2 = await registry.createVersion({ name: `m-${tag}`, source: `${run.info.artifactUri}/model2` });
    await registry.setAlias({ name: `m-${tag}`, alias: 'champion', version: v2.version });
    // A cached alias must follow the move at once.
    expect((await registry.resolve(`models:/m-${tag}@champion`)).version).toBe(2);

    await expect
      .poll(() => seen.map((e) => e.type), { timeout: 60_000, interval: 200 })
      .toEqual(
        expect.arrayContaining(['experiment.created', 'run.created', 'model.version.created', 'model.alias.set']),
      );
    const audit = await platform.get(auditLogRef);
    await expect
      .poll(async () => (await audit.list({ action: 'model.*' })).items.length, { timeout: 60_000, interval: 200 })
      .toBeGreaterThanOrEqual(4);
    expect(await audit.verify()).toMatchObject({ ok: true });
  });
});
