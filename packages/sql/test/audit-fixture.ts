import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { auditKeys, type MetadataStore, NotFoundError, type SecretStore } from '@mlplane/core';
import type { AuditLogFixture } from '@mlplane/core/testing';
import { EnvFileSecretStore, LocalArtifactStore } from '@mlplane/defaults';
import { DEFAULT_AUDIT_KEY_SECRET, SqlAuditLog, type SqlAuditLogOptions } from '../src/audit/sql-audit-log.js';

/** What a SqlAuditLog needs beside its database: a SecretStore for the chain key, an ArtifactStore for checkpoints. */
export interface AuditSurroundings {
  readonly dir: string;
  /** Master key of `secrets`, to open another instance on the same file as another process would. */
  readonly masterKey: string;
  readonly secrets: EnvFileSecretStore;
  readonly artifacts: LocalArtifactStore;
  /** The chain key's secret, stored in `secrets` under DEFAULT_AUDIT_KEY_SECRET unless `withKey` was false. */
  readonly secret: string;
  /** Opens a log on `store` with these surroundings (no checkpoint timer unless `intervalMs` is given). */
  open(store: MetadataStore, options?: Partial<SqlAuditLogOptions> & { intervalMs?: number }): Promise<SqlAuditLog>;
  remove(): Promise<void>;
}

export async function auditSurroundings(options: { readonly withKey?: boolean } = {}): Promise<AuditSurroundings> {
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-audit-anchor-'));
  // env: {} so that no MLPLANE_SECRET_* variable of the machine running the tests leaks in.
  const masterKey = randomBytes(32).toString('base64');
  const secrets = new EnvFileSecretStore({ path: join(dir, 'secrets.enc'), masterKey, env: {} });
  const secret = randomBytes(32).toString('base64');
  if (options.withKey !== false) await secrets.set(DEFAULT_AUDIT_KEY_SECRET, secret);
  const artifacts = new LocalArtifactStore({ root: join(dir, 'artifacts') });
  return {
    dir,
    masterKey,
    secrets,
    artifacts,
    secret,
    open: (store, { intervalMs = 0, ...rest } = {}) =>
      SqlAuditLog.open({ store, secrets, checkpoints: { artifacts, intervalMs }, ...rest }),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Raw SQL edits of the audit tables, as someone with write access to the database could make. */
export function sqlAuditTamper(store: MetadataStore): NonNullable<AuditLogFixture['tamper']> {
  return {
    edit: async (seq, change) => {
      await store
        .db()
        .updateTable('audit_log')
        .set({
          ...(change.details !== undefined ? { details: JSON.stringify(change.details) } : {}),
          ...(change.actor !== undefined ? { actor: change.actor } : {}),
          ...(change.hash !== undefined ? { hash: change.hash } : {}),
          ...(change.prevHash !== undefined ? { prev_hash: change.prevHash } : {}),
        })
        .where('seq', '=', seq)
        .execute();
    },
    remove: async (seq) => {
      await store.db().deleteFrom('audit_log').where('seq', '=', seq).execute();
    },
    setHead: async (head) => {
      if (head === undefined) await store.db().deleteFrom('audit_head').execute();
      else await store.db().updateTable('audit_head').set(head).where('id', '=', 1).execute();
    },
  };
}

/**
 * The conformance fixture of a SqlAuditLog on `store`: a keyed chain, checkpoints in a local ArtifactStore, and raw
 * SQL tampering. `openStore` opens another store on the same database; `dropDatabase` removes it after the test.
 */
export async function sqlAuditFixture(options: {
  readonly store: MetadataStore;
  readonly openStore: () => Promise<MetadataStore>;
  readonly dropDatabase: () => Promise<void>;
}): Promise<AuditLogFixture> {
  const surroundings = await auditSurroundings();
  const stores: MetadataStore[] = [options.store];
  const logs: SqlAuditLog[] = [];
  const log = await surroundings.open(options.store);
  logs.push(log);
  return {
    log,
    chainKey: auditKeys(surroundings.secret).chainKey,
    openAnother: async () => {
      const store = await options.openStore();
      stores.push(store);
      const other = await surroundings.open(store);
      logs.push(other);
      return other;
    },
    tamper: sqlAuditTamper(options.store),
    checkpoint: async () => {
      await log.checkpoint();
    },
    appendEvent: (event) => log.appendEvent(event),
    cleanup: async () => {
      // A tampered log refuses its last checkpoint; that is what the tampering cases expect.
      for (const l of logs) await l.close().catch(() => undefined);
      for (const s of stores) await s.close();
      await options.dropDatabase();
      await surroundings.remove();
    },
  };
}

/**
 * `count` SecretStores on the secrets file of `env`, as separate processes would hold, whose first look for any
 * secret waits until all of them have looked: opened together, every log finds the key missing before any creates it.
 * `stats` counts the looks that found nothing and the secrets written.
 */
export function meetingSecretStores(
  env: AuditSurroundings,
  count: number,
): { stores: SecretStore[]; stats: { missing: number; created: number } } {
  const stats = { missing: 0, created: 0 };
  let looked = 0;
  let allLooked!: () => void;
  const barrier = new Promise<void>((resolve) => {
    allLooked = resolve;
  });
  const stores = Array.from({ length: count }, (): SecretStore => {
    const store = new EnvFileSecretStore({ path: join(env.dir, 'secrets.enc'), masterKey: env.masterKey, env: {} });
    let first = true;
    return {
      capabilities: store.capabilities,
      get: async (name) => {
        try {
          return await store.get(name);
        } catch (err) {
          if (err instanceof NotFoundError) stats.missing++;
          throw err;
        } finally {
          if (first) {
            first = false;
            if (++looked === count) allLooked();
            await barrier;
          }
        }
      },
      list: () => store.list(),
      set: async (name, value) => {
        stats.created++;
        await store.set(name, value);
      },
    };
  });
  return { stores, stats };
}

/**
 * A SecretStore on the secrets file of `env` whose first look is answered as the file stood then, but only once
 * `release()` is called: a process that found no key and then stalled while another created the key and bound the log.
 */
export function stalledSecretStore(env: AuditSurroundings): { store: SecretStore; release: () => void } {
  const store = new EnvFileSecretStore({ path: join(env.dir, 'secrets.enc'), masterKey: env.masterKey, env: {} });
  let release!: () => void;
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let first = true;
  return {
    release,
    store: {
      capabilities: store.capabilities,
      get: async (name) => {
        const answer = store.get(name).then(
          (value) => ({ value }),
          (err: unknown) => ({ err }),
        );
        if (first) {
          first = false;
          await released;
        }
        const settled = await answer;
        if ('err' in settled) throw settled.err;
        return settled.value;
      },
      list: () => store.list(),
      set: (name, value) => store.set(name, value),
    },
  };
}
