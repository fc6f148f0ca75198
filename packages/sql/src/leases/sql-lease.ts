import { randomUUID } from 'node:crypto';
import type { MetadataStore, Migration } from '@mlplane/core';
import { type HeldLease, type LeaseManager, validateLeaseName, validateTtl } from '@mlplane/core';
import { type Kysely, type RawBuilder, sql } from 'kysely';
import * as createLeases from './migrations/20261127T100000_create_leases.js';

/** Owner of the `mlplane_leases` table's migrations. */
export const LEASES_OWNER = 'leases';

export const LEASES_MIGRATIONS: Readonly<Record<string, Migration>> = Object.freeze({
  '20261127T100000_create_leases': createLeases,
});

interface LeaseTable {
  name: string;
  token: string;
  fencing_token: number;
  /** Epoch milliseconds by the database's clock. */
  expires_at: number;
}

interface LeaseDatabase {
  mlplane_leases: LeaseTable;
}

/**
 * Leases as rows of the MetadataStore (PostgreSQL or SQLite), for single-writer work where no Redis is
 * deployed. Expiry is measured by the database's clock, so clock skew between application hosts does not
 * matter; taking an expired lease and bumping its fencing token is one atomic upsert.
 */
export class SqlLeaseManager implements LeaseManager {
  readonly #store: MetadataStore;
  readonly #now: RawBuilder<number>;

  private constructor(store: MetadataStore) {
    this.#store = store;
    this.#now =
      store.dialect === 'postgres'
        ? sql<number>`(extract(epoch from clock_timestamp()) * 1000)::bigint`
        : sql<number>`CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)`;
  }

  /** Applies the leases migrations, then returns a ready manager. */
  static async open(store: MetadataStore): Promise<SqlLeaseManager> {
    await store.migrate(LEASES_OWNER, LEASES_MIGRATIONS);
    return new SqlLeaseManager(store);
  }

  get #db(): Kysely<LeaseDatabase> {
    return this.#store.db<LeaseDatabase>();
  }

  async tryAcquire(name: string, ttlMs: number): Promise<HeldLease | undefined> {
    validateLeaseName(name);
    validateTtl(ttlMs);
    const token = randomUUID();
    const expiresAt = sql<number>`${this.#now} + ${ttlMs}`;
    const row = await this.#db
      .insertInto('mlplane_leases')
      .values({ name, token, fencing_token: 1, expires_at: expiresAt })
      .onConflict((oc) =>
        oc
          .column('name')
          .doUpdateSet({
            token: (eb) => eb.ref('excluded.token'),
            fencing_token: sql<number>`mlplane_leases.fencing_token + 1`,
            expires_at: (eb) => eb.ref('excluded.expires_at'),
          })
          .where('mlplane_leases.expires_at', '<=', this.#now),
      )
      .returning('fencing_token')
      .executeTakeFirst();
    return row ? { name, token, fencingToken: Number(row.fencing_token) } : undefined;
  }

  async renew(lease: HeldLease, ttlMs: number): Promise<boolean> {
    validateTtl(ttlMs);
    // An expired lease nobody took is still this holder's: no one else can have acted under it.
    const result = await this.#db
      .updateTable('mlplane_leases')
      .set({ expires_at: sql<number>`${this.#now} + ${ttlMs}` })
      .where('name', '=', lease.name)
      .where('token', '=', lease.token)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async release(lease: HeldLease): Promise<boolean> {
    const result = await this.#db
      .updateTable('mlplane_leases')
      .set({ expires_at: 0 })
      .where('name', '=', lease.name)
      .where('token', '=', lease.token)
      .where('expires_at', '>', 0)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }
}
