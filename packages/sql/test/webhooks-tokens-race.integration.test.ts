import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NotFoundError } from '@mlplane/core';
import { EnvFileSecretStore } from '@mlplane/defaults';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropSchema, freshSchema, pgUrl } from '../../../test-support/pg-env.js';
import { SqlAuthorizer } from '../src/authz/sql-authorizer.js';
import { readOutbox } from '../src/outbox/outbox.js';
import { WebhookSubscriptions } from '../src/webhooks/webhook-subscriptions.js';
import { raceWithTransaction } from './pg-race.js';

// Changes racing a transaction that deletes (or revokes) the same row, on PostgreSQL's READ COMMITTED: without a row
// lock the change found the row, changed nothing once the other transaction committed, and still recorded an event.
const schema = freshSchema('mlplane_row_race');
let store: PostgresMetadataStore;
let dir: string;
let subscriptions: WebhookSubscriptions;
let authz: SqlAuthorizer;

beforeAll(async () => {
  store = await PostgresMetadataStore.connect({ connectionString: pgUrl(), schema });
  dir = await mkdtemp(join(tmpdir(), 'mlplane-row-race-'));
  const secrets = new EnvFileSecretStore({
    path: join(dir, 'secrets.enc'),
    masterKey: randomBytes(32).toString('base64'),
    env: {},
  });
  subscriptions = await WebhookSubscriptions.open({ store, secrets });
  authz = await SqlAuthorizer.open({ store });
});

afterAll(async () => {
  await store?.close();
  await rm(dir, { recursive: true, force: true });
  await dropSchema(schema);
});

async function eventTypes(subject: string): Promise<string[]> {
  const events = await readOutbox(store.db(), { limit: 1_000_000 });
  return events.filter((e) => e.event.subject === subject).map((e) => e.event.type);
}

describe('on the PostgreSQL peer, a change racing a delete of its row', () => {
  const deleteSubscription = (id: string) => ({ sql: 'DELETE FROM webhook_subscriptions WHERE id = $1', params: [id] });

  it('webhook update: NotFoundError, no event', async () => {
    const { subscription } = await subscriptions.create({ url: 'https://example.test/hook', eventTypes: ['model.*'] });
    const subject = `webhook:${subscription.id}`;
    const before = await eventTypes(subject);
    const outcome = await raceWithTransaction(schema, deleteSubscription(subscription.id), () =>
      subscriptions.update(subscription.id, { description: 'changed' }),
    );
    expect(outcome).toBeInstanceOf(NotFoundError);
    expect(await eventTypes(subject)).toEqual(before);
  });

  it('webhook delete: already gone, so no second deletion event', async () => {
    const { subscription } = await subscriptions.create({ url: 'https://example.test/hook', eventTypes: ['model.*'] });
    const subject = `webhook:${subscription.id}`;
    const before = await eventTypes(subject);
    const outcome = await raceWithTransaction(schema, deleteSubscription(subscription.id), () =>
      subscriptions.delete(subscription.id),
    );
    expect(outcome).toBe('succeeded');
    expect(await eventTypes(subject)).toEqual(before);
  });

  it('token revocation racing another: one revocation, one event', async () => {
    await authz.grant('racer', 'p', 'editor');
    const created = await authz.createToken({
      principal: await authz.getPrincipal('racer'),
      name: 'ci',
      projects: ['p'],
      roles: ['viewer'],
      expiresAt: new Date(Date.now() + 3_600_000),
    });
    const id = created.id;
    const before = await eventTypes(`token:${id}`);
    const outcome = await raceWithTransaction(
      schema,
      { sql: 'UPDATE authz_tokens SET revoked_at = $2 WHERE token_id = $1', params: [id, Date.now()] },
      () => authz.revokeToken(id),
    );
    expect(outcome).toBe('succeeded');
    // The racing transaction stands in for the first revocation (raw SQL, so it recorded no event itself).
    expect(await eventTypes(`token:${id}`)).toEqual(before);
  });
});
