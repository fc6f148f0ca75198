import { AUDIT_GENESIS_HASH, type AuditEntry, AuditIntegrityError, auditKeys } from '@mlplane/core';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dropSchema, freshSchema, pgUrl } from '../../../test-support/pg-env.js';
import { AUDIT_MIGRATIONS, AUDIT_OWNER } from '../src/audit/schema.js';
import { AUDIT_LOSS_ACCEPTED, DEFAULT_AUDIT_KEY_SECRET, type SqlAuditLog } from '../src/audit/sql-audit-log.js';
import { type AuditSurroundings, auditSurroundings, meetingSecretStores, sqlAuditTamper } from './audit-fixture.js';

// The key and checkpoint behaviour of SqlAuditLog on PostgreSQL, where appenders and openers are separate connections
// serialized by row locks rather than by SQLite's single writer.
let schema: string;
let env: AuditSurroundings;
const stores: PostgresMetadataStore[] = [];
const logs: SqlAuditLog[] = [];

async function openStore(): Promise<PostgresMetadataStore> {
  const store = await PostgresMetadataStore.connect({ connectionString: pgUrl(), schema });
  stores.push(store);
  return store;
}

async function openLog(store: PostgresMetadataStore, options: Parameters<AuditSurroundings['open']>[1] = {}) {
  const log = await env.open(store, options);
  logs.push(log);
  return log;
}

beforeEach(async () => {
  schema = freshSchema('mlplane_audit_anchor');
  env = await auditSurroundings({ withKey: false });
});

afterEach(async () => {
  for (const log of logs.splice(0)) await log.close().catch(() => undefined);
  for (const store of stores.splice(0)) await store.close();
  await env.remove();
  await dropSchema(schema);
});

describe('SqlAuditLog on PostgreSQL (peer): key and checkpoints', () => {
  it('four connections opening a new log together create one chain key', async () => {
    const { stores: secrets, stats } = meetingSecretStores(env, 4);
    // The migrations first, so that the four opens meet at the key, not at the migration lock.
    await (await openStore()).migrate(AUDIT_OWNER, AUDIT_MIGRATIONS);
    const opened = await Promise.all(secrets.map(async (s) => openLog(await openStore(), { secrets: s })));
    // Four first looks and the creator's second look under the head lock missed; the other three found its key.
    expect(stats).toEqual({ missing: 5, created: 1 });
    expect(new Set(opened.map((l) => l.keyId)).size).toBe(1);
    expect(auditKeys(await env.secrets.get(DEFAULT_AUDIT_KEY_SECRET)).keyId).toBe(opened[0]!.keyId);
    await Promise.all(opened.map((l, i) => l.append({ ...record, details: { i } })));
    expect(await opened[0]!.verify()).toEqual({ ok: true, checkedEntries: 4 });
  });

  it('a restore that lost checkpointed entries refuses to open, and acceptLoss records the loss', async () => {
    const store = await openStore();
    const log = await openLog(store);
    const entries: AuditEntry[] = [];
    for (let i = 0; i < 5; i++) entries.push(await log.append({ ...record, details: { i } }));
    await log.close();
    await store.db().deleteFrom('audit_log').where('seq', '>=', 4).execute();
    await sqlAuditTamper(store).setHead!({ seq: 3, hash: entries[2]?.hash ?? AUDIT_GENESIS_HASH });
    const err = await openLog(await openStore()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AuditIntegrityError);
    expect(err).toMatchObject({ problem: 'lost-entries', lost: { fromSeq: 4, toSeq: 5 } });
    const accepted = await openLog(await openStore(), { acceptLoss: { fromSeq: 4, toSeq: 5 } });
    expect((await accepted.list({ action: AUDIT_LOSS_ACCEPTED })).items.map((e) => e.seq)).toEqual([4]);
    expect(await accepted.verify()).toEqual({ ok: true, checkedEntries: 4 });
  });
});

const record = {
  actor: 'alice',
  action: 'model.promote',
  resource: 'model:fraud/3',
  project: 'risk',
  outcome: 'allowed' as const,
  details: {},
};
