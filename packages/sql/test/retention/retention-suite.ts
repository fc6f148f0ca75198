// The retention sweeper's behaviour on one MetadataStore; run on embedded SQLite and on the PostgreSQL peer.

import type { MetadataStore } from '@mlplane/core';
import { ValidationError } from '@mlplane/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqlLeaseManager } from '../../src/leases/sql-lease.js';
import {
  domainEvent,
  markRelayed,
  OUTBOX_MIGRATIONS,
  OUTBOX_OWNER,
  purgeRelayed,
  readOutbox,
  recordEvent,
} from '../../src/outbox/outbox.js';
import { RetentionSweeper } from '../../src/retention/retention-sweeper.js';
import { WEBHOOKS_MIGRATIONS, WEBHOOKS_OWNER } from '../../src/webhooks/schema.js';
import { purgeDeliveries } from '../../src/webhooks/webhook-dispatcher.js';

const NOW = Date.parse('2026-11-26T12:00:00.000Z');
const DAY = 86_400_000;

export function retentionSuite(name: string, open: () => Promise<{ store: MetadataStore; close(): Promise<void> }>) {
  describe(`retention sweeper: ${name}`, () => {
    let store: MetadataStore;
    let close: () => Promise<void>;
    let leases: SqlLeaseManager;

    beforeEach(async () => {
      ({ store, close } = await open());
      await store.migrate(OUTBOX_OWNER, OUTBOX_MIGRATIONS);
      await store.migrate(WEBHOOKS_OWNER, WEBHOOKS_MIGRATIONS);
      leases = await SqlLeaseManager.open(store);
    });
    afterEach(() => close());

    /** `count` events, the first `relayed` of them relayed at `relayedAt`. */
    async function outbox(count: number, relayed: number, relayedAt: number): Promise<number[]> {
      const events = Array.from({ length: count }, (_, i) => domainEvent('model.tag.set', 'model:m', { i }));
      await store.transaction((trx) => recordEvent(trx, events));
      const rows = await readOutbox(store.db(), { unrelayedOnly: true, limit: 10_000 });
      const ids = new Set(events.map((e) => e.id));
      const seqs = rows.filter((r) => ids.has(r.event.id)).map((r) => r.seq);
      await markRelayed(store.db(), seqs.slice(0, relayed));
      await store
        .db()
        .updateTable('outbox')
        .set({ relayed_at: new Date(relayedAt).toISOString() })
        .where('seq', 'in', seqs.slice(0, relayed))
        .execute();
      return seqs;
    }

    async function deliveries(count: number, at: number): Promise<void> {
      await store
        .db()
        .insertInto('webhook_deliveries')
        .values(
          Array.from({ length: count }, (_, i) => ({
            subscription_id: 'sub',
            event_id: `e${at}-${i}`,
            event_type: 'model.tag.set',
            attempt: 1,
            outcome: 'delivered',
            status_code: 204,
            error: null,
            duration_ms: 3,
            delivered_at: at,
          })),
        )
        .execute();
    }

    const sweeper = (options: Partial<ConstructorParameters<typeof RetentionSweeper>[0]> = {}) =>
      new RetentionSweeper({
        store,
        leases,
        batchSize: 3,
        rules: [
          { name: 'outbox', keepMs: DAY, purge: purgeRelayed },
          { name: 'webhook_deliveries', keepMs: 30 * DAY, purge: purgeDeliveries },
        ],
        ...options,
      });

    it('purges rows past their retention in batches and keeps unrelayed events however old', async () => {
      const old = await outbox(9, 7, NOW - 2 * DAY); // 7 relayed two days ago, 2 never relayed
      const recent = await outbox(3, 3, NOW - DAY / 2);
      await deliveries(5, NOW - 31 * DAY);
      await deliveries(2, NOW - DAY);

      expect(await sweeper().sweepOnce(NOW)).toEqual({ outbox: 7, webhook_deliveries: 5 });

      const left = (await readOutbox(store.db(), { limit: 10_000 })).map((r) => r.seq);
      expect(left).toEqual([...old.slice(7), ...recent]);
      const kept = await store.db().selectFrom('webhook_deliveries').select('delivered_at').execute();
      expect(kept.map((r) => Number(r.delivered_at))).toEqual([NOW - DAY, NOW - DAY]);
      // Nothing more to do.
      expect(await sweeper().sweepOnce(NOW)).toEqual({ outbox: 0, webhook_deliveries: 0 });
    });

    it('works a backlog off over several sweeps when it exceeds the batches of one', async () => {
      await outbox(7, 7, NOW - 2 * DAY);
      const bounded = sweeper({ batchSize: 2, maxBatchesPerSweep: 2 });
      expect((await bounded.sweepOnce(NOW))?.outbox).toBe(4);
      expect((await bounded.sweepOnce(NOW))?.outbox).toBe(3);
      expect(await readOutbox(store.db(), { limit: 100 })).toEqual([]);
    });

    it('skips a sweep while another process holds the lease', async () => {
      await outbox(2, 2, NOW - 2 * DAY);
      const held = await leases.tryAcquire('retention-sweeper', 60_000);
      expect(held).toBeDefined();
      expect(await sweeper().sweepOnce(NOW)).toBeUndefined();
      expect(await readOutbox(store.db(), { limit: 100 })).toHaveLength(2);
      await leases.release(held!);
      expect((await sweeper().sweepOnce(NOW))?.outbox).toBe(2);
    });

    it('refuses retention settings that are not positive integers, naming the field', () => {
      const bad = () =>
        new RetentionSweeper({ store, leases, rules: [{ name: 'outbox', keepMs: 0, purge: purgeRelayed }] });
      expect(bad).toThrow(ValidationError);
      expect(bad).toThrow('rules.outbox.keepMs must be a positive integer, got 0');
      expect(() => sweeper({ intervalMs: 1.5 })).toThrow('intervalMs must be a positive integer, got 1.5');
    });
  });
}
