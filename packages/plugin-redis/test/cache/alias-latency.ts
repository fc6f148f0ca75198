// Measures alias resolution (`models:/<name>@champion`) without a cache, with the Redis cache and with its near
// cache, on the SQL registry over SQLite and PostgreSQL, at 1 and at 32 concurrent callers. Prints figures; asserts nothing. Needs the postgres and
// redis peers:  eval "$(scripts/peers env)" && node --conditions=@mlplane/source --import tsx packages/plugin-redis/test/cache/alias-latency.ts
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MetadataStore, ModelRegistry } from '@mlplane/core';
import { SqliteMetadataStore } from '@mlplane/defaults';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { SqlModelRegistry } from '@mlplane/sql';
import { Redis } from 'ioredis';
import { dropSchema, freshSchema, pgUrl } from '../../../../test-support/pg-env.js';
import { CachedModelRegistry } from '../../src/cache/cached-model-registry.js';
import { RedisCache } from '../../src/cache/redis-cache.js';

const CALLS = 10_000;
const MODELS = 50;

async function seed(registry: ModelRegistry): Promise<void> {
  for (let m = 0; m < MODELS; m++) {
    const name = `model-${m}`;
    await registry.createModel({ name });
    for (let v = 1; v <= 3; v++) await registry.createVersion({ name, source: `s3://models/${name}/${v}` });
    await registry.setAlias({ name, alias: 'champion', version: 2 });
  }
}

async function measure(label: string, registry: ModelRegistry, callers: number): Promise<void> {
  // Warm-up: plans, connections and (for the cached registry) every entry.
  for (let m = 0; m < MODELS; m++) await registry.resolve(`models:/model-${m}@champion`);
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (next < CALLS) {
        const i = next++;
        const t0 = performance.now();
        const v = await registry.resolve(`models:/model-${i % MODELS}@champion`);
        latencies.push(performance.now() - t0);
        if (v.version !== 2) throw new Error('wrong version');
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!.toFixed(2);
  console.log(
    `${`${label}, ${callers} caller${callers > 1 ? 's' : ''}`.padEnd(48)} p50 ${q(0.5)} ms  p99 ${q(0.99)} ms  ${Math.round(CALLS / seconds)}/s`,
  );
}

async function run(label: string, store: MetadataStore, redisUrl: string): Promise<void> {
  const registry = await SqlModelRegistry.open({ store });
  await seed(registry);
  const keyPrefix = `mlplane:bench:${Date.now().toString(36)}:`;
  const cache = await RedisCache.connect(redisUrl, { keyPrefix });
  const nearCache = await RedisCache.connect(redisUrl, { keyPrefix: `${keyPrefix}near:`, nearCache: {} });
  try {
    for (const callers of [1, 32]) {
      await measure(`${label}, no cache`, registry, callers);
      await measure(`${label}, Redis cache`, new CachedModelRegistry({ registry, cache }), callers);
      await measure(`${label}, Redis + near cache`, new CachedModelRegistry({ registry, cache: nearCache }), callers);
    }
  } finally {
    await cache.close();
    await nearCache.close();
  }
}

const redisUrl = process.env.MLPLANE_REDIS_URL;
if (!redisUrl) {
  throw new Error(
    'MLPLANE_REDIS_URL is not set: run scripts/peers up postgres redis, then eval "$(scripts/peers env)"',
  );
}
console.log(
  `alias resolution, ${CALLS} calls per line, ${cpus().length} CPUs (${cpus()[0]?.model}), load average ${loadavg()[0]!.toFixed(1)}`,
);
const dir = await mkdtemp(join(tmpdir(), 'mlplane-alias-'));
const sqlite = await SqliteMetadataStore.open({ path: join(dir, 'meta.sqlite') });
const schema = freshSchema('mlplane_alias_bench');
const pg = await PostgresMetadataStore.connect({ connectionString: pgUrl(), schema });
try {
  await run('SQLite', sqlite, redisUrl);
  await run('PostgreSQL', pg, redisUrl);
} finally {
  await sqlite.close();
  await pg.close();
  await dropSchema(schema);
  await rm(dir, { recursive: true, force: true });
  const redis = new Redis(redisUrl);
  const keys = await redis.keys('mlplane:bench:*');
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
}
