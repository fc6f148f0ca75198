import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConflictError, ValidationError, withLease } from '@mlplane/core';
import { SqliteMetadataStore } from '@mlplane/defaults';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqlLeaseManager } from '../../src/leases/sql-lease.js';

let dir: string;
let stores: SqliteMetadataStore[];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mlplane-lease-'));
  stores = [];
});

afterEach(async () => {
  for (const s of stores) await s.close();
  await rm(dir, { recursive: true, force: true });
});

/** Two managers on separate connections to one file, like two processes. */
async function twoManagers(): Promise<[SqlLeaseManager, SqlLeaseManager]> {
  const path = join(dir, 'meta.sqlite');
  stores.push(await SqliteMetadataStore.open({ path }), await SqliteMetadataStore.open({ path }));
  return [await SqlLeaseManager.open(stores[0]!), await SqlLeaseManager.open(stores[1]!)];
}

describe('SqlLeaseManager on SQLite', () => {
  it('grants a lease to one holder at a time, with growing fencing tokens', async () => {
    const [a, b] = await twoManagers();
    const held = await a.tryAcquire('job', 5_000);
    expect(held?.fencingToken).toBe(1);
    expect(await b.tryAcquire('job', 5_000)).toBeUndefined();
    expect(await a.tryAcquire('job', 5_000)).toBeUndefined();
    expect(await b.release(held!)).toBe(true);
    const next = await b.tryAcquire('job', 5_000);
    expect(next?.fencingToken).toBe(2);
  });

  it('lets another holder take an expired lease; the old holder can then neither renew nor release', async () => {
    const [a, b] = await twoManagers();
    const old = await a.tryAcquire('job', 50);
    await new Promise((r) => setTimeout(r, 80));
    const taken = await b.tryAcquire('job', 5_000);
    expect(taken?.fencingToken).toBe(2);
    expect(await a.renew(old!, 5_000)).toBe(false);
    expect(await a.release(old!)).toBe(false);
    expect(await a.tryAcquire('job', 5_000)).toBeUndefined();
    expect(await b.renew(taken!, 5_000)).toBe(true);
  });

  it('withLease runs fn under the lease, releases it after, and refuses a held lease with ConflictError', async () => {
    const [a, b] = await twoManagers();
    const result = await withLease(a, 'cron', 1_000, async ({ lease, signal }) => {
      await expect(withLease(b, 'cron', 1_000, async () => 'no')).rejects.toThrow(ConflictError);
      await expect(withLease(b, 'cron', 1_000, async () => 'no')).rejects.toThrow(
        "lease 'cron' is held by another worker",
      );
      // Longer than the TTL: renewals keep it.
      await new Promise((r) => setTimeout(r, 1_300));
      expect(signal.aborted).toBe(false);
      return lease.fencingToken;
    });
    expect(result).toBe(1);
    expect(await withLease(b, 'cron', 1_000, async ({ lease }) => lease.fencingToken)).toBe(2);
  });

  it('withLease waits up to waitMs for a held lease', async () => {
    const [a, b] = await twoManagers();
    const held = await a.tryAcquire('batch', 5_000);
    setTimeout(() => void a.release(held!), 100);
    expect(await withLease(b, 'batch', 1_000, async () => 'ran', { waitMs: 3_000, retryMs: 20 })).toBe('ran');
  });

  it('withLease aborts the signal when the lease is lost', async () => {
    const [a, b] = await twoManagers();
    const aborted = await withLease(a, 'steal', 300, async ({ lease, signal }) => {
      // Someone frees and re-takes the lease behind the holder's back (an operator, or expiry during a stall).
      await b.release(lease);
      await b.tryAcquire('steal', 5_000);
      await new Promise((r) => setTimeout(r, 400));
      return signal.aborted;
    });
    expect(aborted).toBe(true);
  });

  it('validates names and TTLs', async () => {
    const [a] = await twoManagers();
    await expect(a.tryAcquire('bad name', 1000)).rejects.toThrow(ValidationError);
    await expect(a.tryAcquire('bad name', 1000)).rejects.toThrow(
      `lease name "bad name" must be 1 to 200 of letters, digits, '.', '_', ':', '/', '-'`,
    );
    await expect(a.tryAcquire('ok', 0)).rejects.toThrow(ValidationError);
    await expect(a.tryAcquire('ok', 0)).rejects.toThrow('lease ttlMs must be an integer from 10 to 86400000, got 0');
    const held = await a.tryAcquire('ok', 1000);
    await expect(a.renew(held!, 5)).rejects.toThrow('lease ttlMs must be an integer from 10 to 86400000, got 5');
    await expect(withLease(a, '', 1000, async () => 1)).rejects.toThrow(ValidationError);
  });
});
