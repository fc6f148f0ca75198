import { ALL_PROJECTS, authorizerRef, eventBusRef, metadataStoreRef } from '@mlplane/core';
import { startTestPlatform } from '@mlplane/defaults/testing';
import { readOutbox, SqlAuthorizer } from '@mlplane/sql';
import { describe, expect, it } from 'vitest';
import { createApi, v1Routes } from '../src/index.js';
import { startTestApi } from './support.js';

const idOf = (secret: string) => secret.split('_')[1]!;

// The SqlAuthorizer answers verified tokens from memory (management.tokens.cacheTtlMs); revocation must still end a
// token's next request, whichever process revoked it.
describe('revocation with the verified-token cache', () => {
  it('answers 401 to the request right after the token is revoked through the API', async () => {
    await using t = await startTestApi();
    const token = await t.token('alice', ['p'], ['editor']);
    expect((await t.call('GET', '/api/v1/me', { token })).status).toBe(200);
    expect((await t.call('GET', '/api/v1/me', { token })).status).toBe(200);
    expect((await t.call('DELETE', `/api/v1/tokens/${idOf(token)}`)).status).toBe(204);
    const after = await t.call('GET', '/api/v1/me', { token });
    expect(after.status).toBe(401);
  });

  it("answers 403 right after the owner's grant is revoked through the API", async () => {
    await using t = await startTestApi();
    const token = await t.token('bob', ['p'], ['editor']);
    expect((await t.call('GET', '/api/v1/projects/p/experiments', { token })).status).toBe(200);
    expect((await t.call('DELETE', '/api/v1/projects/p/grants/bob/roles/editor')).status).toBe(204);
    expect((await t.call('GET', '/api/v1/projects/p/experiments', { token })).status).toBe(403);
  });

  it("answers 401 once another instance's revocation event arrives, well within the cache's TTL", async () => {
    // The relay is off so that the event reaches this platform's bus only when the test publishes it, as another
    // instance's relay would on a shared bus; the TTL (5 min) is far longer than the test.
    await using platform = await startTestPlatform({
      config: { management: { relay: { enabled: false }, tokens: { cacheTtlMs: 300_000 } } },
    });
    const api = await createApi(v1Routes, { platform, rateLimit: false });
    const authorizer = await platform.get(authorizerRef);
    await authorizer.grant('carol', ALL_PROJECTS, 'admin');
    const { id, secret } = await authorizer.createToken({
      principal: await authorizer.getPrincipal('carol'),
      name: 'carol-token',
      projects: [ALL_PROJECTS],
      roles: ['viewer'],
      expiresAt: new Date(Date.now() + 3_600_000),
    });
    const me = async () =>
      (
        await api.fetch(
          new Request('http://mlplane.test/api/v1/me', { headers: { authorization: `Bearer ${secret}` } }),
        )
      ).status;
    expect(await me()).toBe(200);

    // Another instance: its own authorizer on the same database revokes the token.
    const store = await platform.get(metadataStoreRef);
    const other = new SqlAuthorizer({ store });
    await other.revokeToken(id);
    // Not yet heard of here: still answered from this instance's cache.
    expect(await me()).toBe(200);

    const events = (await readOutbox(store.db(), { limit: 1_000 })).map((e) => e.event);
    const revokedEvent = events.find((e) => e.type === 'authz.token.revoked');
    expect(revokedEvent?.payload).toMatchObject({ tokenId: id });
    await (await platform.get(eventBusRef)).publish(revokedEvent!);
    await expect.poll(me, { timeout: 5_000, interval: 20 }).toBe(401);
  });
});
