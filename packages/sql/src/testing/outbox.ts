import { type MetadataStore, withTraceContext } from '@mlplane/core';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  countUnrelayed,
  domainEvent,
  markRelayed,
  OUTBOX_MIGRATIONS,
  OUTBOX_OWNER,
  readOutbox,
  recordEvent,
} from '../outbox/outbox.js';

/**
 * The transactional outbox on a MetadataStore: events are written inside the caller's transaction, roll back with
 * it, and keep their order. Run it beside `metadataStoreConformance` for every store the SQL layer runs on.
 */
export function outboxConformance(
  name: string,
  factory: () => Promise<{ store: MetadataStore; cleanup?: () => Promise<void> }>,
): void {
  describe(`Outbox conformance: ${name}`, () => {
    let store: MetadataStore;
    let cleanup: (() => Promise<void>) | undefined;
    const tag = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`;
    const t = (base: string) => `${base}_${tag}`;
    beforeEach(async () => {
      ({ store, cleanup } = await factory());
    });
    afterEach(async () => {
      await store?.close();
      await cleanup?.();
    });
    async function appliedLog(s: MetadataStore, table: string): Promise<string[]> {
      const rows = await s.db().selectFrom(table).select('name').execute();
      return rows.map((r) => r.name as string).sort();
    }

    describe('outbox', () => {
      beforeEach(async () => {
        await store.migrate(OUTBOX_OWNER, OUTBOX_MIGRATIONS);
        await store
          .db()
          .schema.createTable(t('state'))
          .addColumn('name', 'text', (c) => c.primaryKey())
          .execute();
      });
      afterEach(async () => {
        await store.db().schema.dropTable(t('state')).ifExists().execute();
      });

      async function eventsFor(subject: string) {
        return (await readOutbox(store.db(), { limit: 100_000 })).filter((e) => e.event.subject === subject);
      }

      it('writes the event in the caller transaction and reads it back unchanged', async () => {
        const subject = `thing:${tag}`;
        const event = domainEvent(
          'thing.created',
          subject,
          { name: 'x', n: 1, nested: { ok: true } },
          { actor: 'user-1', project: 'p' },
        );
        await store.transaction(async (trx) => {
          await trx.insertInto(t('state')).values({ name: 'x' }).execute();
          await recordEvent(trx, event);
        });
        const entries = await eventsFor(subject);
        expect(entries).toHaveLength(1);
        expect(entries[0]?.event).toEqual(event);
        expect(entries[0]?.relayedAt).toBeUndefined();
      });

      it('keeps the trace context of the work that recorded an event, and none for untraced work', async () => {
        const subject = `thing:${tag}`;
        const traceContext = {
          traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
          tracestate: 'vendor=opaque',
        };
        const traced = withTraceContext(traceContext, () => domainEvent('thing.traced', subject, {}));
        const plain = domainEvent('thing.untraced', subject, {});
        expect(traced.traceContext).toEqual(traceContext);
        expect(plain.traceContext).toBeUndefined();
        await store.transaction((trx) => recordEvent(trx, [traced, plain]));
        const entries = await eventsFor(subject);
        expect(entries.map((e) => e.event)).toEqual([traced, plain]);
      });

      it('counts the events waiting for the relay', async () => {
        const subject = `thing:${tag}`;
        const before = await countUnrelayed(store.db());
        await store.transaction((trx) =>
          recordEvent(
            trx,
            [1, 2, 3].map((n) => domainEvent('thing.counted', subject, { n })),
          ),
        );
        expect(await countUnrelayed(store.db())).toBe(before + 3);
        const [first] = await eventsFor(subject);
        await markRelayed(store.db(), [first!.seq]);
        expect(await countUnrelayed(store.db())).toBe(before + 2);
      });

      it('rolls the event back with the change it describes', async () => {
        const subject = `thing:${tag}`;
        await expect(
          store.transaction(async (trx) => {
            await trx.insertInto(t('state')).values({ name: 'x' }).execute();
            await recordEvent(trx, domainEvent('thing.created', subject, {}));
            throw new Error('change failed');
          }),
        ).rejects.toThrow('change failed');
        expect(await eventsFor(subject)).toEqual([]);
        expect(await appliedLog(store, t('state'))).toEqual([]);
      });

      it('gives every event a distinct seq that keeps the order within a transaction', async () => {
        const subject = `thing:${tag}`;
        await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            store.transaction((trx) =>
              recordEvent(trx, [domainEvent('thing.a', subject, { i }), domainEvent('thing.b', subject, { i })]),
            ),
          ),
        );
        const entries = await eventsFor(subject);
        expect(entries).toHaveLength(20);
        const seqs = entries.map((e) => e.seq);
        expect(new Set(seqs).size).toBe(20);
        expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
        // Within one transaction events keep their order; across concurrent transactions seq values may
        // interleave (and commit order may differ from seq order), so relays must not use seq as a high-water mark.
        for (let i = 0; i < 10; i++) {
          const a = entries.find((e) => e.event.type === 'thing.a' && (e.event.payload as { i: number }).i === i);
          const b = entries.find((e) => e.event.type === 'thing.b' && (e.event.payload as { i: number }).i === i);
          expect(a!.seq).toBeLessThan(b!.seq);
        }
      });
    });
  });
}
