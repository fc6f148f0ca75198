import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MetadataStore } from '@mlplane/core';
import { type AuditEntry, auditEntryHash, canonicalJson, ValidationError } from '@mlplane/core';
import { auditLogConformance } from '@mlplane/core/testing';
import { SqliteMetadataStore } from '@mlplane/defaults';
import { describe, expect, it } from 'vitest';
import { auditEventHandler, auditFromEvent } from '../src/audit/from-event.js';
import { AUDIT_FIELD_LENGTH, SqlAuditLog } from '../src/audit/sql-audit-log.js';

auditLogConformance('SqlAuditLog on SQLite (temp dir)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-audit-'));
  const path = join(dir, 'metadata.sqlite');
  const store = await SqliteMetadataStore.open({ path });
  const stores: MetadataStore[] = [store];
  const log = await SqlAuditLog.open({ store });
  return {
    log,
    openAnother: async () => {
      const other = await SqliteMetadataStore.open({ path });
      stores.push(other);
      return SqlAuditLog.open({ store: other });
    },
    tamper: {
      edit: async (seq, change) => {
        await store
          .db()
          .updateTable('audit_log')
          .set({
            ...(change.details !== undefined ? { details: JSON.stringify(change.details) } : {}),
            ...(change.actor !== undefined ? { actor: change.actor } : {}),
          })
          .where('seq', '=', seq)
          .execute();
      },
      remove: async (seq) => {
        await store.db().deleteFrom('audit_log').where('seq', '=', seq).execute();
      },
    },
    appendEvent: (event) => log.appendEvent(event),
    cleanup: async () => {
      for (const s of stores) await s.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
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
    const dir = await mkdtemp(join(tmpdir(), 'mlplane-audit-'));
    const store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
    try {
      const log = await SqlAuditLog.open({ store, defaultProject: 'ml' });
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
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('SqlAuditLog against an editor who also rewrites hashes', () => {
  it('reports the next entry for a re-hashed middle entry and the head for a re-hashed last one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mlplane-audit-'));
    const store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
    try {
      const log = await SqlAuditLog.open({ store });
      const entries: AuditEntry[] = [];
      for (let i = 0; i < 4; i++) {
        entries.push(
          await log.append({
            actor: 'a',
            action: 'x.y',
            resource: 'r:1',
            project: 'p',
            outcome: 'allowed',
            details: { i },
          }),
        );
      }
      const rewrite = async (seq: number) => {
        const entry = entries[seq - 1]!;
        const details = { i: 99 };
        const hash = auditEntryHash(entry.prevHash, { ...entry, details });
        await store
          .db()
          .updateTable('audit_log')
          .set({ details: canonicalJson(details), hash })
          .where('seq', '=', seq)
          .execute();
      };
      await rewrite(4);
      expect(await log.verify()).toMatchObject({
        ok: false,
        firstBrokenSeq: 4,
        reason: expect.stringContaining("head's"),
      });
      await rewrite(2);
      expect(await log.verify()).toMatchObject({
        ok: false,
        firstBrokenSeq: 3,
        reason: expect.stringContaining("entry 3's prevHash"),
      });
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('SqlAuditLog validation', () => {
  const ok = { actor: 'a', action: 'x.y', resource: 'r:1', project: 'p', outcome: 'allowed' as const, details: {} };
  const bad = (value: unknown) => value as never;

  it('refuses every malformed input with ValidationError naming the field', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'mlplane-audit-'));
    const store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
    try {
      const log = await SqlAuditLog.open({ store });
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
    } finally {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
