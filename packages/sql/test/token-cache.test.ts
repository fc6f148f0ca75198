import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PermissionDeniedError } from '@mlplane/core';
import { SqliteMetadataStore } from '@mlplane/defaults';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuthzDatabase } from '../src/authz/schema.js';
import { SqlAuthorizer } from '../src/authz/sql-authorizer.js';

// The verified-token cache: each test first shows a check answered from memory (the row changed behind the
// authorizer's back, as another process would, and the check still passes), then what ends that.
describe('SqlAuthorizer verified-token cache', () => {
  let dir: string;
  let store: SqliteMetadataStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mlplane-token-cache-'));
    store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
  });
  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function tokenOf(authz: SqlAuthorizer, expiresInMs = 60_000) {
    await authz.grant('owner', 'p', 'editor');
    return authz.createToken({
      principal: await authz.getPrincipal('owner'),
      name: 'ci',
      projects: ['p'],
      roles: ['editor'],
      expiresAt: new Date(Date.now() + expiresInMs),
    });
  }
  /** Revokes the row directly, as another process's revokeToken would, without telling this authorizer. */
  async function revokeBehindItsBack(tokenId: string) {
    await store
      .db<AuthzDatabase>()
      .updateTable('authz_tokens')
      .set({ revoked_at: Date.now() })
      .where('token_id', '=', tokenId)
      .execute();
  }

  it('answers from memory until forgetToken (the revocation event of another process)', async () => {
    const authz = await SqlAuthorizer.open({ store, tokenCacheTtlMs: 300_000 });
    const token = await tokenOf(authz);
    expect((await authz.verifyToken(token.secret)).id).toBe(token.id);
    await revokeBehindItsBack(token.id);
    expect((await authz.verifyToken(token.secret)).id).toBe(token.id);
    authz.forgetToken(token.id);
    await expect(authz.verifyToken(token.secret)).rejects.toBeInstanceOf(PermissionDeniedError);
  });

  it('refuses a token revoked through this authorizer at once, with its descendants', async () => {
    const authz = await SqlAuthorizer.open({ store, tokenCacheTtlMs: 300_000 });
    const parent = await tokenOf(authz);
    const child = await authz.createToken({
      principal: await authz.verifyToken(parent.secret),
      name: 'child',
      projects: ['p'],
      roles: ['viewer'],
      expiresAt: new Date(Date.now() + 60_000),
    });
    await authz.verifyToken(child.secret);
    await authz.revokeToken(parent.id);
    await expect(authz.verifyToken(parent.secret)).rejects.toBeInstanceOf(PermissionDeniedError);
    await expect(authz.verifyToken(child.secret)).rejects.toBeInstanceOf(PermissionDeniedError);
  });

  it("narrows a cached token at once when its owner's grant is revoked", async () => {
    const authz = await SqlAuthorizer.open({ store, tokenCacheTtlMs: 300_000 });
    const token = await tokenOf(authz);
    expect((await authz.verifyToken(token.secret)).roles).toEqual({ p: ['editor'] });
    await authz.revoke('owner', 'p', 'editor');
    expect((await authz.verifyToken(token.secret)).roles).toEqual({});
  });

  it('reads the row again once the TTL has passed', async () => {
    const authz = await SqlAuthorizer.open({ store, tokenCacheTtlMs: 50 });
    const token = await tokenOf(authz);
    await authz.verifyToken(token.secret);
    await revokeBehindItsBack(token.id);
    await new Promise((resolve) => setTimeout(resolve, 80));
    await expect(authz.verifyToken(token.secret)).rejects.toBeInstanceOf(PermissionDeniedError);
  });

  it('never answers an expired token from memory', async () => {
    const authz = await SqlAuthorizer.open({ store, tokenCacheTtlMs: 300_000 });
    const token = await tokenOf(authz, 300);
    await authz.verifyToken(token.secret);
    await new Promise((resolve) => setTimeout(resolve, 350));
    await expect(authz.verifyToken(token.secret)).rejects.toBeInstanceOf(PermissionDeniedError);
  });

  it('writes the last-use time of tokens answered from memory later, in one statement (and at close)', async () => {
    const authz = await SqlAuthorizer.open({ store, tokenCacheTtlMs: 300_000 });
    const token = await tokenOf(authz, 3_600_000);
    await authz.verifyToken(token.secret);
    const lastUsed = () =>
      store
        .db<AuthzDatabase>()
        .selectFrom('authz_tokens')
        .select('last_used_at')
        .where('token_id', '=', token.id)
        .executeTakeFirstOrThrow();
    expect(Number((await lastUsed()).last_used_at)).toBeGreaterThan(0);
    await store
      .db<AuthzDatabase>()
      .updateTable('authz_tokens')
      .set({ last_used_at: 1 })
      .where('token_id', '=', token.id)
      .execute();
    const realNow = Date.now;
    const later = realNow() + 61_000;
    try {
      // Past the last-use resolution: the cached check notes a use without writing it then.
      Date.now = () => later;
      await authz.verifyToken(token.secret);
      expect(Number((await lastUsed()).last_used_at)).toBe(1);
    } finally {
      Date.now = realNow;
    }
    await authz.close();
    expect(Number((await lastUsed()).last_used_at)).toBe(later);
  });

  it('reads the row on every check with tokenCacheTtlMs 0', async () => {
    const authz = await SqlAuthorizer.open({ store, tokenCacheTtlMs: 0 });
    const token = await tokenOf(authz);
    await authz.verifyToken(token.secret);
    await revokeBehindItsBack(token.id);
    await expect(authz.verifyToken(token.secret)).rejects.toBeInstanceOf(PermissionDeniedError);
  });
});
