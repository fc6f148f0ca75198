// CachedModelRegistry over the SQL registry (SQLite) with the Redis peer: the ModelRegistry conformance suite,
// cache hits, and invalidation by local writes and by events from another process's writes.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ModelRegistry } from '@mlplane/core';
import { modelRegistryConformance } from '@mlplane/core/testing';
import { InProcessEventBus, LocalArtifactStore, SqliteMetadataStore } from '@mlplane/defaults';
import { OutboxRelay, readOutbox, SqlExperimentTracker, SqlModelRegistry } from '@mlplane/sql';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { redisUrl, uniqueName } from '../../../../test-support/peers-env.js';
import { waitFor } from '../../../../test-support/wait.js';
import { subscribeCacheInvalidation } from '../../src/cache/cache-invalidation.js';
import { CachedModelRegistry, modelRegistryInvalidation } from '../../src/cache/cached-model-registry.js';
import { RedisCache, type RedisCacheOptions } from '../../src/cache/redis-cache.js';
import { observed, untilNearHit } from './near-support.js';

// Created at load time because the conformance suite builds a fixture while collecting; it connects on first use.
const redis = new Redis(redisUrl(), { lazyConnect: true });
const prefixes: string[] = [];

afterAll(async () => {
  for (const prefix of prefixes) {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  redis.disconnect();
});

/** A cache no other fixture shares, since every fixture has its own database. */
function freshCache(options: Pick<RedisCacheOptions, 'nearCache'> = {}): RedisCache {
  const keyPrefix = `${uniqueName('mlplane:it:registry')}:`;
  prefixes.push(keyPrefix);
  return new RedisCache({ redis, keyPrefix, ...options });
}

for (const near of [false, true]) {
  modelRegistryConformance(
    `CachedModelRegistry over SqlModelRegistry on SQLite, Redis peer${near ? ', near cache' : ''}`,
    async () => {
      const dir = await mkdtemp(join(tmpdir(), 'mlplane-cached-registry-'));
      const store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
      const tracker = await SqlExperimentTracker.open({
        store,
        artifacts: new LocalArtifactStore({ root: join(dir, 'artifacts') }),
      });
      const sql = await SqlModelRegistry.open({ store, tracker });
      const cache = freshCache(near ? { nearCache: {} } : {});
      return {
        registry: new CachedModelRegistry({ registry: sql, cache }),
        tracker,
        events: async () => (await readOutbox(store.db(), { limit: 1_000_000 })).map((e) => e.event),
        aliasHistory: (name) => sql.getAliasHistory(name),
        cleanup: async () => {
          await cache.close();
          await store.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    },
  );
}

/** Counts the calls that reach the wrapped registry. */
function counted(inner: ModelRegistry): { registry: ModelRegistry; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const registry = new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.set(String(prop), (calls.get(String(prop)) ?? 0) + 1);
        return value.apply(target, args);
      };
    },
  });
  return { registry, calls };
}

describe('CachedModelRegistry hot reads', () => {
  let dir: string;
  const closers: (() => Promise<void>)[] = [];

  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
    await rm(dir, { recursive: true, force: true });
  });

  async function openSql(path: string) {
    const store = await SqliteMetadataStore.open({ path });
    closers.push(() => store.close());
    const registry = await SqlModelRegistry.open({ store });
    return { store, registry };
  }

  it('serves alias, version and models:/ URI resolution from the cache and invalidates on local writes', async () => {
    dir = await mkdtemp(join(tmpdir(), 'mlplane-cached-'));
    const { registry: sql } = await openSql(join(dir, 'meta.sqlite'));
    const { registry: inner, calls } = counted(sql);
    const cached = new CachedModelRegistry({ registry: inner, cache: freshCache() });
    await cached.createModel({ name: 'fraud' });
    await cached.createVersion({ name: 'fraud', source: 's3://models/fraud/1' });
    await cached.createVersion({ name: 'fraud', source: 's3://models/fraud/2' });
    await cached.setAlias({ name: 'fraud', alias: 'champion', version: 1 });

    for (let i = 0; i < 5; i++) {
      const v = await cached.getVersionByAlias('fraud', 'champion');
      expect(v.source).toBe('s3://models/fraud/1');
      expect(v.createdAt).toBeInstanceOf(Date);
      expect((await cached.resolve('models:/fraud@champion')).version).toBe(1);
      expect((await cached.resolve('models:/fraud/latest')).version).toBe(2);
      expect((await cached.resolve('models:/fraud/2')).source).toBe('s3://models/fraud/2');
    }
    expect(calls.get('getVersionByAlias')).toBe(1);
    expect(calls.get('resolve')).toBe(1);
    expect(calls.get('getVersion')).toBe(1);

    await cached.setAlias({ name: 'fraud', alias: 'champion', version: 2 });
    const moved = await cached.getVersionByAlias('fraud', 'champion');
    expect(moved.version).toBe(2);
    expect(moved.aliases).toEqual(['champion']);
    expect((await cached.getVersion('fraud', 1)).aliases).toEqual([]);
    await cached.transitionStage({ name: 'fraud', version: 2, to: 'Production' });
    expect((await cached.resolve('models:/fraud/Production')).version).toBe(2);
    expect((await cached.getVersion('fraud', 2)).stage).toBe('Production');
    await cached.deleteVersion('fraud', 2);
    await expect(cached.getVersionByAlias('fraud', 'champion')).rejects.toThrow(/champion/);
  });

  it('drops entries when another process changes the registry (outbox -> relay -> bus -> invalidation)', async () => {
    dir = await mkdtemp(join(tmpdir(), 'mlplane-cached-'));
    const path = join(dir, 'meta.sqlite');
    const a = await openSql(path);
    const b = await openSql(path);
    const cache = freshCache();
    const cachedA = new CachedModelRegistry({ registry: a.registry, cache });
    const bus = new InProcessEventBus();
    closers.push(() => bus.close());
    const sub = await subscribeCacheInvalidation({ bus, cache, rule: modelRegistryInvalidation, types: ['model.*'] });
    closers.push(() => sub.close());
    const relay = await OutboxRelay.open({ store: b.store, bus, pollIntervalMs: 20 });
    closers.push(() => relay.stop());
    relay.start();

    await b.registry.createModel({ name: 'churn' });
    await b.registry.createVersion({ name: 'churn', source: 's3://churn/1' });
    await b.registry.createVersion({ name: 'churn', source: 's3://churn/2' });
    await b.registry.setAlias({ name: 'churn', alias: 'champion', version: 1 });
    expect((await cachedA.getVersionByAlias('churn', 'champion')).version).toBe(1);

    // Process B moves the alias without going through A's cache.
    await b.registry.setAlias({ name: 'churn', alias: 'champion', version: 2 });
    relay.notify();
    await waitFor(
      'the alias.set event to invalidate A',
      async () => (await cachedA.getVersionByAlias('churn', 'champion')).version === 2,
      10_000,
    );
    await b.registry.setVersionTag('churn', 2, 'reviewed', 'yes');
    relay.notify();
    await waitFor(
      'the tag event to invalidate A',
      async () => (await cachedA.resolve('models:/churn@champion')).tags.reviewed === 'yes',
      10_000,
    );
  });

  it("with near caches, another process's alias move reaches this process without events or TTLs", async () => {
    dir = await mkdtemp(join(tmpdir(), 'mlplane-cached-'));
    const path = join(dir, 'meta.sqlite');
    const a = await openSql(path);
    const b = await openSql(path);
    const keyPrefix = `${uniqueName('mlplane:it:registry-near')}:`;
    prefixes.push(keyPrefix);
    // Two processes: each its own connections and near tier, one Redis and one database between them.
    const seenA = observed();
    const cacheA = await RedisCache.connect(redisUrl(), { keyPrefix, nearCache: {}, telemetry: seenA.telemetry });
    closers.push(() => cacheA.close());
    const cacheB = await RedisCache.connect(redisUrl(), { keyPrefix, nearCache: {} });
    closers.push(() => cacheB.close());
    const processA = new CachedModelRegistry({ registry: a.registry, cache: cacheA });
    const processB = new CachedModelRegistry({ registry: b.registry, cache: cacheB });

    await processB.createModel({ name: 'ranker' });
    await processB.createVersion({ name: 'ranker', source: 's3://ranker/1' });
    await processB.createVersion({ name: 'ranker', source: 's3://ranker/2' });
    await processB.setAlias({ name: 'ranker', alias: 'champion', version: 1 });
    await untilNearHit(seenA, async () => expect((await processA.resolve('models:/ranker@champion')).version).toBe(1));

    await processB.setAlias({ name: 'ranker', alias: 'champion', version: 2 });
    await waitFor(
      "B's alias move to reach A's near tier",
      async () => (await processA.resolve('models:/ranker@champion')).version === 2,
      1_000,
    );
    expect((await processA.resolve('models:/ranker@champion')).source).toBe('s3://ranker/2');
  });
});
