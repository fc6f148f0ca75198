// Figure 3: resolving `models:/<name>@champion` at 32 concurrent callers, on the SQL registry (embedded SQLite and
// PostgreSQL) and through CachedModelRegistry over each, with the Redis read-through cache alone (a Redis round trip
// per hit) and with its near cache (hits served in process, kept coherent by Redis). The contenders alternate in
// rounds, their order rotated each round, so the shared machine's changing load hits them alike.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ModelRegistry } from '@mlplane/core';
import { SqliteMetadataStore } from '@mlplane/defaults';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { CachedModelRegistry, RedisCache, registryCacheKeys } from '@mlplane/plugin-redis';
import { SqlModelRegistry } from '@mlplane/sql';
import { figure, type Measured, percentile, rotated } from './lib.js';

export interface AliasSizes {
  readonly callers: number;
  /** Sequential resolves per caller per round. */
  readonly callsPerCaller: number;
  readonly rounds: number;
}

const GOAL_P99_MS = 2;
const MODEL = 'bench-fraud-detector';
const URI = `models:/${MODEL}@champion`;

interface Contender {
  readonly label: string;
  /** One timed call; resolves to the version number it found (undefined for the reference). */
  readonly call: () => Promise<number | undefined>;
  readonly samples: number[];
  /** What a cached contender is compared with: the uncached one on the same store, or Redis alone for the near cache. */
  readonly baseline?: Contender;
  readonly baselineIs?: string;
  /** A reference, not mlplane code: reported without a goal. */
  readonly reference?: boolean;
  /** Judged against the p99 goal: the cache as the Redis cache plugin ships it (near cache on). */
  readonly judged?: boolean;
}

function resolving(registry: ModelRegistry) {
  return async () => (await registry.resolve(URI)).version;
}

async function prepare(registry: SqlModelRegistry): Promise<void> {
  await registry.createModel({ name: MODEL, description: 'alias resolution benchmark' });
  for (let v = 1; v <= 3; v++) {
    await registry.createVersion({ name: MODEL, source: `file:///models/${MODEL}/${v}`, description: `v${v}` });
  }
  await registry.setAlias({ name: MODEL, alias: 'champion', version: 2, reason: 'benchmark' });
}

async function round(c: Contender, sizes: AliasSizes): Promise<void> {
  await Promise.all(
    Array.from({ length: sizes.callers }, async () => {
      for (let i = 0; i < sizes.callsPerCaller; i++) {
        const t = performance.now();
        const version = await c.call();
        c.samples.push(performance.now() - t);
        if (!c.reference && version !== 2) throw new Error(`${c.label}: ${URI} resolved to version ${version}`);
      }
    }),
  );
}

export async function aliasBench(
  sizes: AliasSizes,
  pgUrl: string | undefined,
  redisUrl: string | undefined,
): Promise<Measured[]> {
  console.log(
    `\n## alias: resolve('${URI}') at ${sizes.callers} concurrent callers, ${sizes.rounds} alternating rounds of ${sizes.callers * sizes.callsPerCaller} calls per contender`,
  );
  const closers: (() => Promise<void>)[] = [];
  const contenders: Contender[] = [];
  const figures: Measured[] = [];
  try {
    const runTag = Date.now().toString(36);
    const add = async (label: string, registry: SqlModelRegistry, store: string) => {
      const uncached: Contender = { label, call: resolving(registry), samples: [] };
      contenders.push(uncached);
      if (!redisUrl) return;
      const cached = async (near: boolean) => {
        // A key prefix per store and per kind: the same model name lives in both stores.
        const cache = await RedisCache.connect(redisUrl, {
          keyPrefix: `mlplane:bench:${runTag}:${store}${near ? '-near' : ''}:`,
          ...(near ? { nearCache: {} } : {}),
        });
        closers.push(async () => {
          await cache.invalidateTags([registryCacheKeys.model(MODEL)]);
          await cache.close();
        });
        return new CachedModelRegistry({ registry, cache });
      };
      const redisOnly: Contender = {
        label: `${label} + Redis cache`,
        call: resolving(await cached(false)),
        samples: [],
        baseline: uncached,
        baselineIs: `${label} without the cache`,
      };
      contenders.push(redisOnly, {
        label: `${label} + Redis + near cache`,
        call: resolving(await cached(true)),
        samples: [],
        baseline: redisOnly,
        baselineIs: `${label} with the Redis cache alone`,
        judged: true,
      });
    };

    if (redisUrl) {
      // A reference for this machine's latency at this load: each of the same 32 callers makes one Redis round
      // trip per call. The cache can beat it, since concurrent callers of one key share a read (single flight).
      const cache = await RedisCache.connect(redisUrl, { keyPrefix: `mlplane:bench:${runTag}:reference:` });
      closers.push(() => cache.close());
      contenders.push({
        label: 'one Redis GET per call (no mlplane code)',
        call: async () => {
          await cache.get('absent');
          return undefined;
        },
        samples: [],
        reference: true,
      });
    }

    const dir = await mkdtemp(join(tmpdir(), 'mlplane-bench-alias-'));
    const sqlite = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
    closers.push(async () => {
      await sqlite.close();
      await rm(dir, { recursive: true, force: true });
    });
    const embedded = await SqlModelRegistry.open({ store: sqlite });
    await prepare(embedded);
    await add('embedded SQLite', embedded, 'sqlite');

    if (pgUrl) {
      const schema = `mlplane_bench_alias_${Date.now().toString(36)}`;
      // A pool at least as large as the callers, so that no caller waits for a connection.
      const pg = await PostgresMetadataStore.connect({
        connectionString: pgUrl,
        schema,
        maxConnections: sizes.callers,
      });
      closers.push(async () => {
        await pg.db().schema.dropSchema(schema).cascade().execute();
        await pg.close();
      });
      const postgres = await SqlModelRegistry.open({ store: pg });
      await prepare(postgres);
      await add('PostgreSQL', postgres, 'pg');
    }

    // Warm-up (connections, plans, the cache fill), untimed.
    for (const c of contenders) await round(c, { ...sizes, callsPerCaller: 5 });
    for (const c of contenders) c.samples.length = 0;
    // The order rotates each round, so that no contender always runs first (after the warm-up) or last.
    for (let r = 0; r < sizes.rounds; r++) for (const c of rotated(contenders, r)) await round(c, sizes);

    for (const c of contenders) {
      const p50 = percentile(c.samples, 0.5);
      const p99 = percentile(c.samples, 0.99);
      console.log(
        `  ${c.label.padEnd(40)} p50 ${p50.toFixed(2).padStart(7)} ms  p99 ${p99.toFixed(2).padStart(7)} ms  (${c.samples.length} calls)`,
      );
      const base = c.baseline;
      const peer = (q: number) => (base ? percentile(base.samples, q) : null);
      const peerIs = c.baselineIs ? { peerIs: c.baselineIs } : {};
      figures.push(
        figure(
          `${c.reference ? 'alias reference' : 'alias resolve'} p50 at ${sizes.callers} callers, ${c.label}`,
          'ms',
          p50,
          peer(0.5),
          'lower-is-better',
          peerIs,
        ),
        figure(
          `${c.reference ? 'alias reference' : 'alias resolve'} p99 at ${sizes.callers} callers, ${c.label}`,
          'ms',
          p99,
          peer(0.99),
          'lower-is-better',
          {
            ...peerIs,
            // The goal is the hot path's as shipped (Redis cache with its near cache); the uncached registry and Redis
            // alone are reported as what it is built on, not judged: every Redis-only hit is a network round trip,
            // whose p99 alone (the reference row) is at or above the goal on this machine under load.
            ...(c.judged ? { goal: { text: `≤ ${GOAL_P99_MS} ms`, met: p99 <= GOAL_P99_MS } } : {}),
          },
        ),
      );
    }
  } finally {
    for (const close of closers.reverse()) await close();
  }
  return figures;
}
