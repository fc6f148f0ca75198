import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type AuditEntry,
  AuditIntegrityError,
  auditEntryHash,
  auditKeys,
  canonicalJson,
  ValidationError,
} from '@mlplane/core';
import { auditLogConformance } from '@mlplane/core/testing';
import { SqliteMetadataStore } from '@mlplane/defaults';
import { describe, expect, it, vi } from 'vitest';
import { auditEventHandler, auditFromEvent } from '../src/audit/from-event.js';
import { AUDIT_FIELD_LENGTH, type SqlAuditLog } from '../src/audit/sql-audit-log.js';
import { type AuditSurroundings, auditSurroundings, sqlAuditFixture } from './audit-fixture.js';

/** A SqlAuditLog on a fresh SQLite file with its own SecretStore and ArtifactStore, removed afterwards. */
async function withLog(
  fn: (ctx: { log: SqlAuditLog; store: SqliteMetadataStore; env: AuditSurroundings; path: string }) => Promise<void>,
  options: { defaultProject?: string } = {},
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-audit-'));
  const path = join(dir, 'metadata.sqlite');
  const store = await SqliteMetadataStore.open({ path });
  const env = await auditSurroundings();
  try {
    const log = await env.open(store, options);
    try {
      await fn({ log, store, env, path });
    } finally {
      await log.close().catch(() => undefined);
    }
  } finally {
    await store.close();
    await env.remove();
    await rm(dir, { recursive: true, force: true });
  }
}

const entry = (i: number) => ({
  actor: 'a',
  action: 'x.y',
  resource: 'r:1',
  project: 'p',
  outcome: 'allowed' as const,
  details: { i },
});

auditLogConformance('SqlAuditLog on SQLite (temp dir)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-audit-'));
  const path = join(dir, 'metadata.sqlite');
  return sqlAuditFixture({
    store: await SqliteMetadataStore.open({ path }),
    openStore: () => SqliteMetadataStore.open({ path }),
    dropDatabase: () => rm(dir, { recursive: true, force: true }),
  });
});

describe('auditFromEvent and auditEventHandler', () => {
  const event = {
    id: '0b6f3c1e-7a3e-4c1e-9d0a-6f5e4d3c2b1a',
    type: 'run.created',
    version: 1,
    occurredAt: '2025-03-01T12:00:00Z',
    subject: 'run:abc',
    payload: { runId: 'abc', when: new Date('2025-03-01T00:00:00.000Z'), nan: Number.NaN },
  };

  it('maps an event to a record a log accepts', () => {
    expect(auditFromEvent(event, { defaultProject: 'ml' })).toEqual({
      actor: 'system',
      action: 'run.created',
      resource: 'run:abc',
      project: 'ml',
      outcome: 'succeeded',
      at: '2025-03-01T12:00:00.000Z',
      details: {
        eventId: event.id,
        eventVersion: 1,
        subject: 'run:abc',
        payload: { runId: 'abc', when: '2025-03-01T00:00:00.000Z', nan: null },
      },
    });
  });

  it('feeds a log from an event handler, once per event id on a SqlAuditLog', async () => {
    await withLog(
      async ({ log }) => {
        const handler = auditEventHandler(log);
        await handler(event);
        await handler(event);
        const items = (await log.list()).items;
        expect(items.map((e) => [e.seq, e.action, e.project])).toEqual([[1, 'run.created', 'ml']]);
        // Any other AuditLog gets one append per delivery.
        const appended: string[] = [];
        const plain = { append: async (r: { action: string }) => appended.push(r.action) } as never;
        await auditEventHandler(plain)(event);
        expect(appended).toEqual(['run.created']);
      },
      { defaultProject: 'ml' },
    );
  });
});

describe('SqlAuditLog group commit of events', () => {
  const eventNo = (i: number) => ({
    id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    type: 'run.updated',
    version: 1,
    occurredAt: '2025-03-01T12:00:00Z',
    subject: `run:${i}`,
    payload: { i },
  });

  it('chains events handed over at once in shared transactions, each once, and the chain verifies', async () => {
    await withLog(async ({ log, store }) => {
      const transactions = vi.spyOn(store, 'transaction');
      const events = Array.from({ length: 20 }, (_, i) => eventNo(i));
      // Event 3 is delivered twice at once, as an at-least-once relay may.
      const entries = await Promise.all([...events, events[3]!].map((e) => log.appendEvent(e)));
      expect(transactions.mock.calls.length).toBeLessThan(events.length);
      expect(entries[20]).toEqual(entries[3]);
      const listed = (await log.list({ order: 'asc', maxResults: 100 })).items;
      expect(listed.map((e) => e.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      expect(listed.map((e) => (e.details as { eventId: string }).eventId)).toEqual(events.map((e) => e.id));
      expect(await log.verify()).toEqual({ ok: true, checkedEntries: 20 });
    });
  });
});

describe('SqlAuditLog against the issue-1 tampering: head deleted, a row edited, another deleted', () => {
  it('never verifies ok, for the whole log or {fromSeq: 1, toSeq: 6}, and append throws a typed error', async () => {
    await withLog(async ({ log, store, env }) => {
      for (let i = 0; i < 6; i++) await log.append(entry(i));
      await store.db().deleteFrom('audit_head').execute();
      await store.db().updateTable('audit_log').set({ details: '{"i":99}' }).where('seq', '=', 3).execute();
      await store.db().deleteFrom('audit_log').where('seq', '=', 5).execute();
      for (const range of [undefined, { fromSeq: 1, toSeq: 6 }]) {
        const result = await log.verify(range);
        expect(result).toMatchObject({ ok: false, firstBrokenSeq: 3, checkedEntries: 2 });
        expect(result.reason).toContain('head record');
      }
      const err = await log.append(entry(7)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AuditIntegrityError);
      expect(err).toMatchObject({ code: 'INTEGRITY', problem: 'missing-head' });
      // A fresh process on that database does not start either.
      const again = await env.open(store).catch((e: unknown) => e);
      expect(again).toBeInstanceOf(AuditIntegrityError);
    });
  });
});

describe('SqlAuditLog against an editor who also rewrites hashes', () => {
  it('catches a re-hashed entry at once when the editor lacks the key', async () => {
    await withLog(async ({ log, store }) => {
      const entries: AuditEntry[] = [];
      for (let i = 0; i < 4; i++) entries.push(await log.append(entry(i)));
      // sha256 is the chain rule's public, unkeyed form; without the key it forges nothing.
      const target = entries[1]!;
      const details = { i: 99 };
      const hash = auditEntryHash(target.prevHash, { ...target, details });
      await store
        .db()
        .updateTable('audit_log')
        .set({ details: canonicalJson(details), hash })
        .where('seq', '=', 2)
        .execute();
      expect(await log.verify()).toMatchObject({
        ok: false,
        firstBrokenSeq: 2,
        reason: expect.stringContaining("entry 2's hash does not match its contents"),
      });
    });
  });

  /** Rewrites entries `from`.. of `entries` under the real key (entry `from` gets new details) and moves the head. */
  async function rewriteWithKey(store: SqliteMetadataStore, secret: string, entries: AuditEntry[], from: number) {
    const { chainKey } = auditKeys(secret);
    let prev = entries[from - 1]!.prevHash;
    for (const e of entries.slice(from - 1)) {
      const details = e.seq === from ? { i: 99 } : e.details;
      const hash = auditEntryHash(prev, { ...e, details }, chainKey);
      await store
        .db()
        .updateTable('audit_log')
        .set({ details: canonicalJson(details), prev_hash: prev, hash })
        .where('seq', '=', e.seq)
        .execute();
      prev = hash;
    }
    await store.db().updateTable('audit_head').set({ hash: prev }).where('id', '=', 1).execute();
  }

  it('with the key, is caught at or below the newest checkpoint', async () => {
    await withLog(async ({ log, store, env }) => {
      const entries: AuditEntry[] = [];
      for (let i = 0; i < 6; i++) entries.push(await log.append(entry(i)));
      await log.checkpoint(); // anchors entry 6
      for (let i = 6; i < 8; i++) entries.push(await log.append(entry(i)));
      await rewriteWithKey(store, env.secret, entries, 5);
      const result = await log.verify();
      // The chain itself is valid; the checkpoint (entry 6) and this process's own appends (entry 8) disagree.
      expect(result).toMatchObject({ ok: false, firstBrokenSeq: 6, checkedEntries: 8 });
      expect(result.reason).toContain('checkpoint 1');
      const err = await env.open(store).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AuditIntegrityError);
      expect(err).toMatchObject({ problem: 'broken-chain', firstBrokenSeq: 6 });
    });
  });

  it('with the key, escapes a fresh process above the newest checkpoint (what the interval bounds)', async () => {
    await withLog(async ({ log, store, env }) => {
      const entries: AuditEntry[] = [];
      for (let i = 0; i < 6; i++) entries.push(await log.append(entry(i)));
      await log.checkpoint();
      for (let i = 6; i < 8; i++) entries.push(await log.append(entry(i)));
      await rewriteWithKey(store, env.secret, entries, 7);
      const fresh = await env.open(store);
      expect(await fresh.verify()).toEqual({ ok: true, checkedEntries: 8 });
      await fresh.close();
      // The process that appended entry 8 still knows its hash.
      expect(await log.verify()).toMatchObject({ ok: false, firstBrokenSeq: 8 });
    });
  });
});

describe('SqlAuditLog validation', () => {
  const ok = { actor: 'a', action: 'x.y', resource: 'r:1', project: 'p', outcome: 'allowed' as const, details: {} };
  const bad = (value: unknown) => value as never;

  it('refuses every malformed input with ValidationError naming the field', async () => {
    await withLog(async ({ log }) => {
      const cases: [string, () => Promise<unknown>, string | undefined, string][] = [
        ['record not an object', () => log.append(bad(null)), undefined, 'record must be an object'],
        [
          'actor too long',
          () => log.append({ ...ok, actor: 'a'.repeat(AUDIT_FIELD_LENGTH + 1) }),
          'actor',
          'the fieldLength limit is 1024',
        ],
        ['event without id', () => log.appendEvent(bad({ type: 'x' })), 'id', 'event id must be a non-empty string'],
        ['empty actor filter', () => log.list({ actor: '' }), 'actor', 'non-empty string'],
        ['to not a Date', () => log.list({ to: bad('2025-01-01') }), 'to', 'to must be a valid Date'],
        ['toSeq', () => log.verify({ toSeq: 0 }), 'toSeq', 'toSeq must be a positive integer'],
        ['malformed token', () => log.list({ pageToken: 'e30' }), 'pageToken', 'malformed'],
      ];
      for (const [label, call, field, message] of cases) {
        const err = await call().then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err, label).toBeInstanceOf(ValidationError);
        expect((err as ValidationError).field, label).toBe(field);
        expect((err as Error).message, label).toContain(message);
      }
      expect(await log.head()).toBeUndefined();
    });
  });

  it('refuses bad options before touching the database', async () => {
    await withLog(async ({ store, env }) => {
      const cases: [string, Parameters<AuditSurroundings['open']>[1], string][] = [
        ['keySecret', { keySecret: '../key' }, 'not a valid secret name'],
        ['checkpoints.intervalMs', { intervalMs: -1 }, 'non-negative integer'],
        ['acceptLoss', { acceptLoss: { fromSeq: 5, toSeq: 4 } }, 'fromSeq <= toSeq'],
        ['secrets', { secrets: undefined as never }, 'needs a SecretStore'],
      ];
      for (const [field, options, message] of cases) {
        const err = await env.open(store, options).catch((e: unknown) => e);
        expect(err, field).toBeInstanceOf(ValidationError);
        expect((err as ValidationError).field, field).toBe(field);
        expect((err as Error).message, field).toContain(message);
      }
    });
  });
});
