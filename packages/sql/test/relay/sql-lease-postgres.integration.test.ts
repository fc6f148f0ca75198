// SqlLeaseManager on the PostgreSQL peer: two pools stand for two processes.

import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropSchema, freshSchema, pgUrl } from '../../../../test-support/pg-env.js';
import { SqlLeaseManager } from '../../src/leases/sql-lease.js';

const schema = freshSchema('mlplane_leases');
let store: PostgresMetadataStore;
let other: PostgresMetadataStore;

beforeAll(async () => {
  store = await PostgresMetadataStore.connect({ connectionString: pgUrl(), schema });
  other = await PostgresMetadataStore.connect({ connectionString: pgUrl(), schema });
});

afterAll(async () => {
  await store?.close();
  await other?.close();
  await dropSchema(schema);
});

describe('SqlLeaseManager on the PostgreSQL peer', () => {
  it('excludes a second connection pool and lets it take over after expiry', async () => {
    const a = await SqlLeaseManager.open(store);
    const b = await SqlLeaseManager.open(other);
    const held = await a.tryAcquire('pg-lease', 200);
    expect(held).toBeDefined();
    expect(await b.tryAcquire('pg-lease', 5_000)).toBeUndefined();
    expect(await a.renew(held!, 200)).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    const taken = await b.tryAcquire('pg-lease', 5_000);
    expect(taken?.fencingToken).toBe(held!.fencingToken + 1);
    expect(await a.renew(held!, 5_000)).toBe(false);
    expect(await a.release(held!)).toBe(false);
    expect(await b.release(taken!)).toBe(true);
    // 20 concurrent contenders on two pools: exactly one wins.
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).tryAcquire('pg-race', 5_000)),
    );
    expect(results.filter((r) => r !== undefined)).toHaveLength(1);
  });
});
