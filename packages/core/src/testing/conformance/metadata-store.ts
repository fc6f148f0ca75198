import type { Kysely } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConflictError, ValidationError } from '../../ports/errors.js';
import type { MetadataStore, Migration } from '../../ports/metadata-store.js';
import { uniqueTag } from './support.js';

export interface MetadataStoreFixture {
  readonly store: MetadataStore;
  /**
   * Opens a second, independent store on the same database (another pool or file handle), as a second
   * process would; concurrency cases use it. Stores it returns are closed by the suite.
   */
  readonly openAnother: () => Promise<MetadataStore>;
  /** Removes what the fixture created (a temp dir, a schema); runs after each test. */
  readonly cleanup?: () => Promise<void>;
}

/**
 * The contract every MetadataStore meets: transactions, per-owner migrations (ordered, recorded, locked
 * against concurrent starts). The outbox on top of it has its own suite in `@mlplane/sql/testing`. Each test uses owners
 * and tables named with a random tag, so a shared database works.
 */
export function metadataStoreConformance(name: string, factory: () => Promise<MetadataStoreFixture>): void {
  describe(`MetadataStore conformance: ${name}`, () => {
    let fixture: MetadataStoreFixture;
    let store: MetadataStore;
    let tag: string;
    let others: MetadataStore[];

    beforeEach(async () => {
      fixture = await factory();
      store = fixture.store;
      tag = uniqueTag();
      others = [];
    });
    afterEach(async () => {
      for (const other of others) await other.close();
      await store?.close();
      await fixture?.cleanup?.();
    });

    const t = (base: string) => `${base}_${tag}`;
    const owner = (base: string) => `${base}-${tag}`;

    async function another(): Promise<MetadataStore> {
      const other = await fixture.openAnother();
      others.push(other);
      return other;
    }

    async function appliedLog(s: MetadataStore, table: string): Promise<string[]> {
      const rows = await s.db().selectFrom(table).select('name').execute();
      return rows.map((r) => r.name as string).sort();
    }

    function countingInto(table: string): Migration {
      return {
        async up(db) {
          await db.schema
            .createTable(table)
            .addColumn('id', 'integer', (c) => c.primaryKey())
            .execute();
          await db.insertInto(t('log')).values({ name: table }).execute();
        },
      };
    }

    function set(): Record<string, Migration> {
      return {
        '20260101T000000_create_log': {
          async up(db) {
            await db.schema
              .createTable(t('log'))
              .addColumn('name', 'text', (c) => c.notNull())
              .execute();
          },
        },
        '20260102T000000_create_a': countingInto(t('a')),
        '20260103T000000_create_b': countingInto(t('b')),
        '20260104T000000_create_c': countingInto(t('c')),
      };
    }

    it('names its dialect', () => {
      expect(['postgres', 'sqlite']).toContain(store.dialect);
    });

    describe('transactions', () => {
      beforeEach(async () => {
        await store
          .db()
          .schema.createTable(t('items'))
          .addColumn('name', 'text', (c) => c.primaryKey())
          .execute();
      });
      afterEach(async () => {
        await store.db().schema.dropTable(t('items')).ifExists().execute();
      });

      it('commits when the function resolves and returns its value', async () => {
        const result = await store.transaction(async (trx) => {
          await trx.insertInto(t('items')).values({ name: 'one' }).execute();
          return 42;
        });
        expect(result).toBe(42);
        expect(await appliedLog(store, t('items'))).toEqual(['one']);
      });

      it('rolls back everything and rethrows when the function throws', async () => {
        const boom = new Error('boom');
        await expect(
          store.transaction(async (trx) => {
            await trx.insertInto(t('items')).values({ name: 'one' }).execute();
            await trx.insertInto(t('items')).values({ name: 'two' }).execute();
            throw boom;
          }),
        ).rejects.toBe(boom);
        expect(await appliedLog(store, t('items'))).toEqual([]);
      });

      it('keeps concurrent transactions apart: each commits whole', async () => {
        await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            store.transaction(async (trx) => {
              for (let j = 0; j < 5; j++)
                await trx
                  .insertInto(t('items'))
                  .values({ name: `${i}-${j}` })
                  .execute();
            }),
          ),
        );
        expect(await appliedLog(store, t('items'))).toHaveLength(50);
      });

      // Hot reads compile their SQL once and run it with db().executeQuery; a store may run such a read by a faster
      // path, never inside another caller's open transaction.
      it('runs a compiled read outside an open transaction: it never sees the uncommitted writes', async () => {
        const read = store.db().selectFrom(t('items')).select('name').compile();
        let inserted!: () => void;
        const insertedYet = new Promise<void>((resolve) => {
          inserted = resolve;
        });
        let commit!: () => void;
        const committing = new Promise<void>((resolve) => {
          commit = resolve;
        });
        const writing = store.transaction(async (trx) => {
          await trx.insertInto(t('items')).values({ name: 'pending' }).execute();
          inserted();
          await committing;
        });
        await insertedYet;
        const during = store.db().executeQuery(read);
        // A store with one connection queues the read behind the transaction; one with a pool answers at once.
        const early = await Promise.race([
          during.then((r) => r.rows),
          new Promise<'queued'>((resolve) => setTimeout(() => resolve('queued'), 100)),
        ]);
        commit();
        await writing;
        if (early !== 'queued') expect(early).toEqual([]);
        const rows = (await during).rows;
        expect(rows.length === 0 || (rows.length === 1 && rows[0]!.name === 'pending')).toBe(true);
        expect((await store.db().executeQuery(read)).rows).toEqual([{ name: 'pending' }]);
      });

      it('never shows a compiled read part of a transaction, under many concurrent readers and writers', async () => {
        const count = store
          .db()
          .selectFrom(t('items'))
          .select((eb) => eb.fn.countAll().as('n'))
          .compile();
        const seen: number[] = [];
        await Promise.all([
          ...Array.from({ length: 8 }, (_, i) =>
            store.transaction(async (trx) => {
              for (let j = 0; j < 5; j++)
                await trx
                  .insertInto(t('items'))
                  .values({ name: `${i}-${j}` })
                  .execute();
            }),
          ),
          ...Array.from({ length: 32 }, async () => {
            for (let k = 0; k < 10; k++) {
              const { rows } = await store.db().executeQuery(count);
              seen.push(Number((rows[0] as { n: unknown }).n));
            }
          }),
        ]);
        expect(seen).toHaveLength(320);
        expect(seen.filter((n) => n % 5 !== 0)).toEqual([]);
        expect(await appliedLog(store, t('items'))).toHaveLength(40);
      });
    });

    describe('migrations', () => {
      it('applies pending migrations in name order and reports them', async () => {
        const migrations = set();
        // Insertion order differs from name order on purpose.
        const shuffled = Object.fromEntries(Object.entries(migrations).reverse());
        const result = await store.migrate(owner('app'), shuffled);
        expect(result.applied).toEqual(Object.keys(migrations).sort());
        expect(await appliedLog(store, t('log'))).toEqual([t('a'), t('b'), t('c')]);
      });

      it('is a no-op when run twice', async () => {
        await store.migrate(owner('app'), set());
        const again = await store.migrate(owner('app'), set());
        expect(again.applied).toEqual([]);
        expect(await appliedLog(store, t('log'))).toEqual([t('a'), t('b'), t('c')]);
      });

      it('applies only the new migrations of a later release', async () => {
        const all = set();
        const first = Object.fromEntries(Object.entries(all).slice(0, 2));
        expect((await store.migrate(owner('app'), first)).applied).toEqual(Object.keys(first));
        expect((await store.migrate(owner('app'), all)).applied).toEqual([
          '20260103T000000_create_b',
          '20260104T000000_create_c',
        ]);
      });

      it('records migrations per owner: the same names under two owners are independent', async () => {
        const x = {
          '20260101T000000_create_x': {
            up: (db: Kysely<any>) => db.schema.createTable(t('x')).addColumn('id', 'integer').execute(),
          },
        };
        const y = {
          '20260101T000000_create_x': {
            up: (db: Kysely<any>) => db.schema.createTable(t('y')).addColumn('id', 'integer').execute(),
          },
        };
        expect((await store.migrate(owner('one'), x)).applied).toEqual(['20260101T000000_create_x']);
        expect((await store.migrate(owner('two'), y)).applied).toEqual(['20260101T000000_create_x']);
      });

      it('rolls back a failing migration whole, keeps the ones before it, and retries it next time', async () => {
        const migrations = set();
        const failing = {
          ...migrations,
          '20260103T000000_create_b': {
            async up(db: Kysely<any>) {
              await countingInto(t('b')).up(db);
              throw new Error('migration b broke');
            },
          },
        };
        await expect(store.migrate(owner('app'), failing)).rejects.toThrow('migration b broke');
        expect(await appliedLog(store, t('log'))).toEqual([t('a')]);
        const retry = await store.migrate(owner('app'), migrations);
        expect(retry.applied).toEqual(['20260103T000000_create_b', '20260104T000000_create_c']);
        expect(await appliedLog(store, t('log'))).toEqual([t('a'), t('b'), t('c')]);
      });

      it('refuses code older than the schema with ConflictError naming the unknown migration', async () => {
        await store.migrate(owner('app'), set());
        const older = Object.fromEntries(Object.entries(set()).slice(0, 3));
        const err = await store.migrate(owner('app'), older).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(ConflictError);
        expect((err as Error).message).toContain(`'${owner('app')}/20260104T000000_create_c'`);
        expect((err as Error).message).toMatch(/older than the schema/);
      });

      it('validates the owner and migration names with ValidationError', async () => {
        for (const bad of ['', 'Upper', '1starts-with-digit', 'has space', 'x'.repeat(64)]) {
          const err = await store.migrate(bad, {}).catch((e: unknown) => e);
          expect(err, bad).toBeInstanceOf(ValidationError);
          expect((err as ValidationError).field).toBe('owner');
          expect((err as Error).message).toMatch(/migration owner .* is invalid/);
        }
        for (const bad of ['create_runs', '2026-01-01_create', '20260101T000000-create', '20260101T000000_Create']) {
          const err = await store.migrate(owner('app'), { [bad]: { up: async () => {} } }).catch((e: unknown) => e);
          expect(err, bad).toBeInstanceOf(ValidationError);
          expect((err as Error).message).toContain(`migration name '${bad}'`);
        }
        const noUp = await store
          .migrate(owner('app'), { '20260101T000000_x': {} as unknown as Migration })
          .catch((e: unknown) => e);
        expect(noUp).toBeInstanceOf(ValidationError);
        expect((noUp as Error).message).toMatch(/has no up\(\) function/);
      });

      it('applies each migration once when two stores migrate the same database concurrently', async () => {
        const second = await another();
        const [a, b] = await Promise.all([store.migrate(owner('app'), set()), second.migrate(owner('app'), set())]);
        expect([...a.applied, ...b.applied].sort()).toEqual(Object.keys(set()).sort());
        expect(await appliedLog(store, t('log'))).toEqual([t('a'), t('b'), t('c')]);
      });

      it('applies each migration once under many concurrent callers on one store', async () => {
        const results = await Promise.all(Array.from({ length: 5 }, () => store.migrate(owner('app'), set())));
        expect(results.flatMap((r) => r.applied).sort()).toEqual(Object.keys(set()).sort());
        expect(await appliedLog(store, t('log'))).toEqual([t('a'), t('b'), t('c')]);
      });
    });

    it('closes idempotently', async () => {
      await store.close();
      await store.close();
    });
  });
}
