import { prepareQuery, SqlModelRegistry } from '@mlplane/sql';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { dropSchema, freshSchema, pgUrl } from '../../../test-support/pg-env.js';
import { PostgresMetadataStore } from '../src/postgres-metadata-store.js';

// One connection, so that pg_prepared_statements (which lists the asking session's statements) shows the ones the
// store's reads prepared.
async function open(preparedStatements?: boolean) {
  const schema = freshSchema('mlplane_prepared');
  const store = await PostgresMetadataStore.connect({
    connectionString: pgUrl(),
    schema,
    maxConnections: 1,
    ...(preparedStatements === undefined ? {} : { preparedStatements }),
  });
  opened.push({ store, schema });
  return store;
}
const opened: { store: PostgresMetadataStore; schema: string }[] = [];
afterEach(async () => {
  for (const { store, schema } of opened.splice(0)) {
    await store.close();
    await dropSchema(schema);
  }
});

const prepared = async (store: PostgresMetadataStore) =>
  (await sql<{ name: string }>`SELECT name FROM pg_prepared_statements ORDER BY name`.execute(store.db())).rows.map(
    (r) => r.name,
  );

describe('PostgresMetadataStore prepared statements (peer)', () => {
  it('runs SQL marked by prepareQuery as one named statement per connection, and unmarked SQL unnamed', async () => {
    const store = await open();
    const query = prepareQuery(
      'test.sum',
      sql<{ total: number }>`SELECT ${1}::int + ${2}::int AS total`.compile(store.db()),
      [1, 2],
    );
    expect((await store.db().executeQuery(query.bind([20, 22]))).rows).toEqual([{ total: 42 }]);
    expect((await store.db().executeQuery(query.bind([1, 1]))).rows).toEqual([{ total: 2 }]);
    await sql`SELECT ${'unmarked'}::text AS t`.execute(store.db());
    const names = await prepared(store);
    expect(names).toHaveLength(1);
    expect(names[0]).toMatch(/^test\.sum_[0-9a-f]{16}$/);
  });

  it('prepares nothing when preparedStatements is false, with the same answers', async () => {
    const store = await open(false);
    const query = prepareQuery(
      'test.sum',
      sql<{ total: number }>`SELECT ${1}::int + ${2}::int AS total`.compile(store.db()),
      [1, 2],
    );
    expect((await store.db().executeQuery(query.bind([20, 22]))).rows).toEqual([{ total: 42 }]);
    expect(await prepared(store)).toEqual([]);
  });

  it("resolves an alias through the registry's prepared read, and still after a migration adds a column", async () => {
    const store = await open();
    const registry = await SqlModelRegistry.open({ store });
    await registry.createModel({ name: 'fraud' });
    await registry.createVersion({ name: 'fraud', source: 'file:///m/1', tags: { team: 'risk' } });
    await registry.setAlias({ name: 'fraud', alias: 'champion', version: 1 });
    const before = await registry.resolve('models:/fraud@champion');
    expect(before).toMatchObject({ version: 1, tags: { team: 'risk' }, aliases: ['champion'] });
    expect((await prepared(store)).some((n) => n.startsWith('registry.versionByAlias_'))).toBe(true);
    // A later release's migration, on the same connection that holds the prepared statement: a prepared `SELECT *`
    // would now fail with "cached plan must not change result type".
    await sql`ALTER TABLE model_versions ADD COLUMN later_release text`.execute(store.db());
    expect(await registry.resolve('models:/fraud@champion')).toEqual(before);
    expect(await registry.resolve('models:/fraud/1')).toEqual(before);
  });
});
