import { NotFoundError } from '@mlplane/core';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropSchema, freshSchema, pgUrl } from '../../../test-support/pg-env.js';
import { readOutbox } from '../src/outbox/outbox.js';
import { SqlModelRegistry } from '../src/registry/sql-model-registry.js';
import { raceWithTransaction } from './pg-race.js';

// A model deleted by one request while another changes it: on PostgreSQL (READ COMMITTED) the second one used to
// fail with kysely's untyped NoResultError or the driver's foreign-key error, or commit an event for a change that
// never happened. Each case holds a deleting transaction open, starts the change, checks that the change waits for
// the delete, commits the delete, and expects NotFoundError with no event recorded.
const schema = freshSchema('mlplane_registry_race');
let store: PostgresMetadataStore;
let registry: SqlModelRegistry;
let seq = 0;

beforeAll(async () => {
  store = await PostgresMetadataStore.connect({ connectionString: pgUrl(), schema });
  registry = await SqlModelRegistry.open({ store });
});

afterAll(async () => {
  await store?.close();
  await dropSchema(schema);
});

/** Runs `change` while another transaction deletes model `name`, and returns how `change` ended. */
function raceWithDelete(name: string, change: () => Promise<unknown>): Promise<unknown> {
  return raceWithTransaction(schema, { sql: 'DELETE FROM registered_models WHERE name = $1', params: [name] }, change);
}

async function eventsAbout(name: string): Promise<string[]> {
  const events = await readOutbox(store.db(), { limit: 1_000_000 });
  const subjects = [`model:${name}`, `model:${name}-renamed`];
  return events.filter((e) => subjects.includes(e.event.subject)).map((e) => e.event.type);
}

describe('SqlModelRegistry on PostgreSQL: a change racing a delete of its model', () => {
  const cases: [string, boolean, (name: string) => Promise<unknown>][] = [
    ['createVersion', false, (name) => registry.createVersion({ name, source: 's3://bucket/model' })],
    ['updateModel', false, (name) => registry.updateModel(name, { description: 'changed' })],
    ['renameModel', false, (name) => registry.renameModel(name, `${name}-renamed`)],
    ['deleteModel', false, (name) => registry.deleteModel(name)],
    ['setModelTag', false, (name) => registry.setModelTag(name, 'team', 'risk')],
    ['deleteModelTag', false, (name) => registry.deleteModelTag(name, 'owner')],
    ['updateVersion', true, (name) => registry.updateVersion(name, 1, { description: 'changed' })],
    ['setVersionTag', true, (name) => registry.setVersionTag(name, 1, 'reviewed', 'yes')],
    ['deleteVersionTag', true, (name) => registry.deleteVersionTag(name, 1, 'owner')],
  ];
  for (const [op, needsVersion, change] of cases) {
    it(`${op}: NotFoundError, and no event for a change that did not happen`, async () => {
      const name = `race-${op.toLowerCase()}-${++seq}`;
      await registry.createModel({ name, tags: { owner: 'ana' } });
      if (needsVersion) await registry.createVersion({ name, source: 's3://bucket/model', tags: { owner: 'ana' } });
      const before = await eventsAbout(name);
      const outcome = await raceWithDelete(name, () => change(name));
      expect(outcome, op).toBeInstanceOf(NotFoundError);
      expect((outcome as Error).message).toContain(name);
      expect(await eventsAbout(name)).toEqual(before);
    });
  }
});
