import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DomainEvent } from '@mlplane/core';
import { SqliteMetadataStore } from '@mlplane/defaults';
import { describe, expect, it } from 'vitest';
import { auditSurroundings } from './audit-fixture.js';

const event = (i: number, id = randomUUID()): DomainEvent => ({
  id,
  type: 'run.metrics.logged',
  version: 1,
  occurredAt: new Date().toISOString(),
  subject: `run:r${i}`,
  project: 'p',
  payload: { runId: `r${i}`, count: i },
});

describe('SqlAuditLog appendEvent, events delivered together', () => {
  it('chains events delivered at once in fewer transactions, each entry as if appended alone', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mlplane-audit-batch-'));
    const store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
    const surroundings = await auditSurroundings();
    try {
      const log = await surroundings.open(store);
      let transactions = 0;
      const transaction = store.transaction.bind(store);
      store.transaction = ((fn: never) => {
        transactions++;
        return transaction(fn);
      }) as typeof store.transaction;

      const events = Array.from({ length: 40 }, (_, i) => event(i));
      // A redelivery in the same burst, and one of an event the log already holds, record nothing new.
      const first = await log.appendEvent(events[0]!);
      transactions = 0;
      const entries = await Promise.all([
        ...events.slice(1).map((e) => log.appendEvent(e)),
        log.appendEvent(events[5]!),
        log.appendEvent(events[0]!),
      ]);
      expect(transactions).toBeLessThan(5);
      expect(entries.slice(0, 39).map((e) => e.seq)).toEqual(Array.from({ length: 39 }, (_, i) => first.seq + 1 + i));
      expect(entries[39]).toEqual(entries[4]);
      expect(entries[40]).toEqual(first);
      const listed = await log.list({ action: 'run.metrics.logged' });
      expect(listed.items).toHaveLength(40);
      expect(await log.verify()).toMatchObject({ ok: true });
      await log.close();
    } finally {
      await store.close();
      await surroundings.remove();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
