import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ArtifactStore,
  AUDIT_GENESIS_HASH,
  type AuditEntry,
  AuditIntegrityError,
  type AuditRecord,
  auditEntryHash,
  auditKeys,
  ConflictError,
  canonicalJson,
  type Logger,
  NotFoundError,
  type SecretStore,
  ValidationError,
} from '@mlplane/core';
import { readAll } from '@mlplane/core/testing';
import { SqliteMetadataStore } from '@mlplane/defaults';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_CHECKPOINT_PREFIX } from '../src/audit/checkpoints.js';
import { AUDIT_MIGRATIONS, AUDIT_OWNER } from '../src/audit/schema.js';
import {
  AUDIT_CHAIN_KEYED,
  AUDIT_LOSS_ACCEPTED,
  DEFAULT_AUDIT_KEY_SECRET,
  SqlAuditLog,
} from '../src/audit/sql-audit-log.js';
import {
  type AuditSurroundings,
  auditSurroundings,
  meetingSecretStores,
  sqlAuditTamper,
  stalledSecretStore,
} from './audit-fixture.js';

const record = (i: number): AuditRecord => ({
  actor: 'alice',
  action: 'model.promote',
  resource: 'model:fraud/3',
  project: 'risk',
  outcome: 'allowed',
  details: { i },
});

async function appendMany(log: SqlAuditLog, n: number): Promise<AuditEntry[]> {
  const out: AuditEntry[] = [];
  for (let i = 0; i < n; i++) out.push(await log.append(record(i)));
  return out;
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

let dir: string;
let path: string;
let env: AuditSurroundings;
const stores: SqliteMetadataStore[] = [];
const logs: SqlAuditLog[] = [];

async function openStore(): Promise<SqliteMetadataStore> {
  const store = await SqliteMetadataStore.open({ path });
  stores.push(store);
  return store;
}

async function openLog(
  store: SqliteMetadataStore,
  options: Parameters<AuditSurroundings['open']>[1] = {},
): Promise<SqlAuditLog> {
  const log = await env.open(store, options);
  logs.push(log);
  return log;
}

const checkpointKey = (keyId: string, name: string) => `${DEFAULT_CHECKPOINT_PREFIX}/${keyId}/${name}`;
const numbered = (keyId: string, n: number) => checkpointKey(keyId, `${String(n).padStart(12, '0')}.json`);

async function readCheckpoint(key: string): Promise<Record<string, unknown>> {
  const { body } = await env.artifacts.get(key);
  return JSON.parse((await readAll(body)).toString('utf8')) as Record<string, unknown>;
}

/** Cuts entries `from`.. off the database and moves the head back, as restoring an older backup would. */
async function cutFrom(store: SqliteMetadataStore, from: number, entries: AuditEntry[]): Promise<void> {
  await store.db().deleteFrom('audit_log').where('seq', '>=', from).execute();
  const last = entries[from - 2];
  await sqlAuditTamper(store).setHead!({ seq: from - 1, hash: last?.hash ?? AUDIT_GENESIS_HASH });
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mlplane-audit-anchor-db-'));
  path = join(dir, 'metadata.sqlite');
  env = await auditSurroundings();
});

afterEach(async () => {
  for (const log of logs.splice(0)) await log.close().catch(() => undefined);
  for (const store of stores.splice(0)) await store.close();
  await env.remove();
  await rm(dir, { recursive: true, force: true });
});

describe('the chain key', () => {
  it('is created on first use in a writable SecretStore, once for processes opening together', async () => {
    env = await auditSurroundings({ withKey: false });
    const { stores: secrets, stats } = meetingSecretStores(env, 2);
    const [a, b] = await Promise.all(secrets.map(async (s) => openLog(await openStore(), { secrets: s })));
    // Both found it missing; the first under the head lock created it, the second found it there and kept it.
    expect(stats).toEqual({ missing: 3, created: 1 });
    expect(a!.keyId).toBe(b!.keyId);
    const secret = await env.secrets.get(DEFAULT_AUDIT_KEY_SECRET);
    expect(auditKeys(secret).keyId).toBe(a!.keyId);
    await a!.append(record(1));
    await b!.append(record(2));
    expect(await a!.verify()).toEqual({ ok: true, checkedEntries: 2 });
  });

  it('found missing by a process that stalls while another creates it: the stalled one takes the new key', async () => {
    env = await auditSurroundings({ withKey: false });
    const stalled = stalledSecretStore(env);
    const late = openLog(await openStore(), { secrets: stalled.store });
    const first = await openLog(await openStore());
    stalled.release();
    const second = await late;
    expect(second.keyId).toBe(first.keyId);
  });

  it('missing from a read-only SecretStore: NotFoundError naming the secret, nothing recorded', async () => {
    env = await auditSurroundings({ withKey: false });
    const readOnly: SecretStore = {
      capabilities: { writable: false },
      get: (name) => env.secrets.get(name),
      list: () => env.secrets.list(),
    };
    const store = await openStore();
    const err = await rejection(openLog(store, { secrets: readOnly, keySecret: 'platform/audit-key' }));
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toContain("secret 'platform/audit-key'");
    expect((err as Error).message).toContain('read-only');
    expect(await env.secrets.list()).toEqual([]);
    const head = await store.db().selectFrom('audit_head').select('key_id').executeTakeFirstOrThrow();
    expect(head.key_id).toBeNull();
  });

  it('is never replaced: a log written with one key refuses another, or none', async () => {
    const store = await openStore();
    const log = await openLog(store);
    await appendMany(log, 2);
    await log.close();
    const original = await env.secrets.get(DEFAULT_AUDIT_KEY_SECRET);
    await env.secrets.set(DEFAULT_AUDIT_KEY_SECRET, 'another-secret-of-at-least-32-characters!');
    const wrong = await rejection(openLog(store));
    expect(wrong).toBeInstanceOf(AuditIntegrityError);
    expect(wrong).toMatchObject({ problem: 'wrong-key' });
    expect((wrong as Error).message).toContain(log.keyId);
    await env.secrets.delete(DEFAULT_AUDIT_KEY_SECRET);
    const gone = await rejection(openLog(store));
    expect(gone).toBeInstanceOf(AuditIntegrityError);
    expect((gone as Error).message).toContain('restore that secret');
    // Refusing created nothing: the original key still opens the log.
    expect(await env.secrets.list()).toEqual([]);
    await env.secrets.set(DEFAULT_AUDIT_KEY_SECRET, original);
    expect(await (await openLog(store)).verify()).toEqual({ ok: true, checkedEntries: 2 });
  });

  it('refuses a secret too short to be a key', async () => {
    await env.secrets.set(DEFAULT_AUDIT_KEY_SECRET, 'password');
    const err = await rejection(openLog(await openStore()));
    expect(err).toBeInstanceOf(ValidationError);
    expect(err).toMatchObject({ field: 'keySecret' });
    expect((err as Error).message).not.toContain('password');
  });
});

describe('a log written before the chain was keyed', () => {
  /** Writes entries as the previous release did: the first migration only, unkeyed sha256 chain. */
  async function writeUnkeyed(store: SqliteMetadataStore, n: number): Promise<AuditEntry[]> {
    const [first] = Object.keys(AUDIT_MIGRATIONS).sort();
    await store.migrate(AUDIT_OWNER, { [first!]: AUDIT_MIGRATIONS[first!]! });
    const entries: AuditEntry[] = [];
    let prev = AUDIT_GENESIS_HASH;
    for (let seq = 1; seq <= n; seq++) {
      const fields = { ...record(seq), seq, id: crypto.randomUUID(), at: `2025-03-0${seq}T12:00:00.000Z` };
      const hash = auditEntryHash(prev, fields);
      await store
        .db()
        .insertInto('audit_log')
        .values({
          ...fields,
          at_ms: Date.parse(fields.at),
          details: canonicalJson(fields.details),
          prev_hash: prev,
          hash,
          event_id: null,
        })
        .execute();
      entries.push({ ...fields, prevHash: prev, hash });
      prev = hash;
    }
    await store.db().updateTable('audit_head').set({ seq: n, hash: prev }).where('id', '=', 1).execute();
    return entries;
  }

  it('is checked whole, re-chained under the key with its contents unchanged, and says so in a new entry', async () => {
    const store = await openStore();
    const before = await writeUnkeyed(store, 3);
    const log = await openLog(store);
    const after = (await log.list({ order: 'asc' })).items;
    expect(after.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    const strip = ({ prevHash: _p, hash: _h, ...rest }: AuditEntry) => rest;
    expect(after.slice(0, 3).map(strip)).toEqual(before.map(strip));
    const { chainKey } = auditKeys(env.secret);
    for (const e of after) expect(e.hash).toBe(auditEntryHash(e.prevHash, e, chainKey));
    expect(after[3]).toMatchObject({
      action: AUDIT_CHAIN_KEYED,
      actor: 'system',
      details: { entries: 3, keyId: log.keyId, unkeyedHeadHash: before[2]!.hash },
    });
    expect(await log.verify()).toEqual({ ok: true, checkedEntries: 4 });
    // Anchored at once: the first checkpoint holds the re-chained head.
    expect(await readCheckpoint(checkpointKey(log.keyId, 'latest.json'))).toMatchObject({ n: 1, seq: 4 });
  });

  it('is not mistaken for a keyed log whose key id was cleared and chain recomputed without the key', async () => {
    const store = await openStore();
    const log = await openLog(store);
    const entries = await appendMany(log, 3);
    await log.close(); // checkpoints the head under the key
    // A database writer forges an "old, unkeyed" log: new details, the public sha256 chain, no key id.
    let prev = AUDIT_GENESIS_HASH;
    for (const e of entries) {
      const details = { i: 99 };
      const hash = auditEntryHash(prev, { ...e, details });
      await sqlAuditTamper(store).edit(e.seq, { details, prevHash: prev, hash });
      prev = hash;
    }
    await store.db().updateTable('audit_head').set({ hash: prev, key_id: null }).execute();
    const err = await rejection(openLog(store));
    expect(err).toBeInstanceOf(AuditIntegrityError);
    expect(err).toMatchObject({ problem: 'wrong-key' });
    expect((err as Error).message).toContain('key id was cleared');
    expect((await store.db().selectFrom('audit_log').select('action').execute()).length).toBe(3);
  });

  it('refuses to key a chain that is already broken, changing nothing', async () => {
    const store = await openStore();
    const before = await writeUnkeyed(store, 3);
    await sqlAuditTamper(store).edit(2, { actor: 'mallory' });
    const err = await rejection(openLog(store));
    expect(err).toBeInstanceOf(AuditIntegrityError);
    expect(err).toMatchObject({ problem: 'broken-chain', firstBrokenSeq: 2 });
    const rows = await store.db().selectFrom('audit_log').select(['seq', 'hash']).orderBy('seq').execute();
    expect(rows.map((r) => r.hash)).toEqual(before.map((e) => e.hash));
  });
});

describe('checkpoints of the head', () => {
  it('are written signed on open, every interval while the head moves, and on close', async () => {
    const store = await openStore();
    const log = await openLog(store, { intervalMs: 40 });
    const latest = checkpointKey(log.keyId, 'latest.json');
    // An empty log anchors nothing.
    expect(await env.artifacts.exists(latest)).toBe(false);
    const entries = await appendMany(log, 2);
    await expect
      .poll(async () => (await env.artifacts.exists(latest)) && readCheckpoint(latest))
      .toMatchObject({
        n: 1,
        seq: 2,
        hash: entries[1]!.hash,
      });
    // A head that did not move is not checkpointed again.
    await new Promise((r) => setTimeout(r, 200));
    expect((await readCheckpoint(latest)).n).toBe(1);
    const third = await log.append(record(3));
    await expect.poll(async () => (await readCheckpoint(latest)).seq).toBe(3);
    const doc = await readCheckpoint(numbered(log.keyId, 2));
    expect(doc).toMatchObject({ format: 'mlplane-audit-checkpoint', keyId: log.keyId, n: 2, seq: 3, hash: third.hash });
    expect(doc.signature).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(doc)).not.toContain(env.secret);
    const last = await log.append(record(4));
    await log.close();
    expect(await readCheckpoint(latest)).toMatchObject({ seq: 4, hash: last.hash });
  });

  it('a checkpoint not signed with the key stops the log from opening', async () => {
    const store = await openStore();
    const log = await openLog(store);
    await appendMany(log, 3);
    await log.checkpoint();
    const latest = checkpointKey(log.keyId, 'latest.json');
    const doc = await readCheckpoint(latest);
    // Whoever writes the ArtifactStore moves the checkpoint back, to hide a cut; the signature gives it away.
    await env.artifacts.put(latest, JSON.stringify({ ...doc, seq: 1 }));
    const err = await rejection(openLog(store));
    expect(err).toBeInstanceOf(AuditIntegrityError);
    expect(err).toMatchObject({ problem: 'bad-checkpoint' });
    expect((err as Error).message).toContain(latest);
  });

  it('the newest is found past a stale latest.json, and without one', async () => {
    const store = await openStore();
    const log = await openLog(store);
    const entries: AuditEntry[] = [];
    for (let n = 1; n <= 5; n++) {
      entries.push(await log.append(record(n)));
      await log.checkpoint();
    }
    await log.close();
    const latest = checkpointKey(log.keyId, 'latest.json');
    // A replayed older checkpoint (genuine, signed) as latest.json, then entries cut back below the newest.
    const second = await readCheckpoint(numbered(log.keyId, 2));
    await env.artifacts.put(latest, JSON.stringify(second));
    await cutFrom(store, 4, entries);
    const stale = await rejection(openLog(store));
    expect(stale).toMatchObject({ problem: 'lost-entries', lost: { fromSeq: 4, toSeq: 5 } });
    await env.artifacts.delete(latest);
    const none = await rejection(openLog(store));
    expect(none).toMatchObject({ problem: 'lost-entries', lost: { fromSeq: 4, toSeq: 5 } });
  });

  it('written by two processes at once are numbered without gaps or overwrites', async () => {
    let conflicts = 0;
    const artifacts: ArtifactStore = {
      capabilities: env.artifacts.capabilities,
      put: (key, body, options) =>
        env.artifacts.put(key, body, options).catch((err: unknown) => {
          if (err instanceof ConflictError) conflicts++;
          throw err;
        }),
      get: (key, options) => env.artifacts.get(key, options),
      head: (key) => env.artifacts.head(key),
      exists: (key) => env.artifacts.exists(key),
      list: (options) => env.artifacts.list(options),
      delete: (key) => env.artifacts.delete(key),
      copy: (from, to) => env.artifacts.copy(from, to),
      deleteMany: (keys) => env.artifacts.deleteMany(keys),
      uri: (key) => env.artifacts.uri(key),
    };
    const a = await openLog(await openStore(), { checkpoints: { artifacts, intervalMs: 0 } });
    const b = await openLog(await openStore(), { checkpoints: { artifacts, intervalMs: 0 } });
    for (let i = 0; i < 10; i++) {
      await a.append(record(i));
      const [x, y] = await Promise.all([a.checkpoint(), b.checkpoint()]);
      expect(x).toMatchObject({ seq: i + 1 });
      expect(y).toMatchObject({ seq: i + 1 });
    }
    // Both numbered the same checkpoint at once; the loser read the winner's and found the head already anchored.
    expect(conflicts).toBeGreaterThan(0);
    const { items } = await env.artifacts.list({ prefix: `${DEFAULT_CHECKPOINT_PREFIX}/${a.keyId}/` });
    const numberedKeys = items.map((i) => i.key).filter((k) => !k.endsWith('latest.json'));
    expect(numberedKeys).toEqual(Array.from({ length: 10 }, (_, n) => numbered(a.keyId, n + 1)));
    expect(await readCheckpoint(checkpointKey(a.keyId, 'latest.json'))).toMatchObject({ n: 10, seq: 10 });
  });

  it('refuse to vouch for an entry edited since the last one; appends stop, and the failure is logged', async () => {
    const errors: unknown[] = [];
    const logger = {
      error: (obj: unknown) => void errors.push(obj),
      warn: () => undefined,
      info: () => undefined,
      debug: () => undefined,
      child: () => logger,
    } as unknown as Logger;
    const store = await openStore();
    const log = await openLog(store, { intervalMs: 40, logger });
    await appendMany(log, 4);
    await log.checkpoint();
    await appendMany(log, 2);
    await sqlAuditTamper(store).edit(5, { actor: 'mallory' });
    await expect.poll(() => errors.length).toBeGreaterThan(0);
    const err = await rejection(log.checkpoint());
    expect(err).toBeInstanceOf(AuditIntegrityError);
    expect(err).toMatchObject({ problem: 'broken-chain', firstBrokenSeq: 5 });
    expect(await rejection(log.append(record(7)))).toBe(err);
    expect((await readCheckpoint(checkpointKey(log.keyId, 'latest.json'))).seq).toBe(4);
    const reopened = await rejection(openLog(store));
    expect(reopened).toMatchObject({ problem: 'broken-chain', firstBrokenSeq: 5 });
  });
});

describe('entries lost from the database', () => {
  it('refuse the start, naming the range; acceptLoss for exactly that range opens and records the loss', async () => {
    const store = await openStore();
    const log = await openLog(store);
    const entries = await appendMany(log, 6);
    await log.close();
    await cutFrom(store, 5, entries);
    const refused = await rejection(openLog(store));
    expect(refused).toBeInstanceOf(AuditIntegrityError);
    expect(refused).toMatchObject({ code: 'INTEGRITY', problem: 'lost-entries', lost: { fromSeq: 5, toSeq: 6 } });
    expect((refused as Error).message).toContain('entries 5 to 6');
    expect((refused as Error).message).toContain('acceptLoss { fromSeq: 5, toSeq: 6 }');
    // Any other range still refuses.
    await rejection(openLog(store, { acceptLoss: { fromSeq: 4, toSeq: 6 } }));
    const accepted = await openLog(store, { acceptLoss: { fromSeq: 5, toSeq: 6 } });
    const [mark] = (await accepted.list({ action: AUDIT_LOSS_ACCEPTED })).items;
    expect(mark).toMatchObject({
      seq: 5,
      actor: 'system',
      details: { fromSeq: 5, toSeq: 6, checkpoint: { n: 1, seq: 6, hash: entries[5]!.hash } },
    });
    expect(await accepted.verify()).toEqual({ ok: true, checkedEntries: 5 });
    await accepted.close();
    // Anchored past the loss: later starts need no option.
    const later = await openLog(store);
    expect((await later.append(record(7))).seq).toBe(6);
    expect(await later.verify()).toEqual({ ok: true, checkedEntries: 6 });
  });

  it('an accepted loss whose new checkpoint was never written still opens, even once the log grew past it', async () => {
    const store = await openStore();
    const log = await openLog(store);
    const entries = await appendMany(log, 6);
    await log.close();
    await cutFrom(store, 4, entries);
    const accepted = await openLog(store, { acceptLoss: { fromSeq: 4, toSeq: 6 }, intervalMs: 0 });
    await appendMany(accepted, 4); // seq 5..8: past the old checkpoint's seq 6, with other hashes
    await accepted.close();
    // As if the process died between recording the acceptance and checkpointing it: only checkpoint 1 remains.
    const first = await readCheckpoint(numbered(accepted.keyId, 1));
    for (let n = 2; await env.artifacts.exists(numbered(accepted.keyId, n)); n++) {
      await env.artifacts.delete(numbered(accepted.keyId, n));
    }
    await env.artifacts.put(checkpointKey(accepted.keyId, 'latest.json'), JSON.stringify(first));
    const reopened = await openLog(store);
    expect(await reopened.verify()).toEqual({ ok: true, checkedEntries: 8 });
  });

  it('entries left past a head moved back: a log without checkpoints refuses to append, typed', async () => {
    const store = await openStore();
    const log = await openLog(store);
    const entries = await appendMany(log, 3);
    await sqlAuditTamper(store).setHead!({ seq: 2, hash: entries[1]!.hash });
    const plain = await SqlAuditLog.open({ store, secrets: env.secrets });
    logs.push(plain);
    const err = await rejection(plain.append(record(4)));
    expect(err).toBeInstanceOf(AuditIntegrityError);
    expect(err).toMatchObject({ problem: 'broken-chain', firstBrokenSeq: 3 });
    expect((err as Error).message).toContain('past the head');
    expect(await plain.verify()).toMatchObject({ ok: false, firstBrokenSeq: 3 });
  });
});
