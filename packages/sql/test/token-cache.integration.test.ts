import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ALL_PROJECTS, authorizerRef, PermissionDeniedError } from '@mlplane/core';
import { startTestPlatform } from '@mlplane/defaults/testing';
import { postgresPlugin } from '@mlplane/plugin-postgres';
import { redisStreamsPlugin } from '@mlplane/plugin-redis';
import { describe, expect, it } from 'vitest';

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run scripts/peers up, then eval "$(scripts/peers env)"`);
  return value;
}

// Two platform instances, as two API processes of one deployment: the same PostgreSQL schema and the same Redis
// stream. A token verified (so cached) by one and revoked through the other is refused by the first once the
// revocation's event arrives, long before the first's 5-minute cache TTL.
describe('verified-token cache across platform instances (PostgreSQL + Redis Streams)', () => {
  it("refuses a token in one instance once another instance's revocation event arrives", {
    timeout: 120_000,
  }, async () => {
    const tag = randomBytes(4).toString('hex');
    const plugins = () => [
      postgresPlugin({ connectionString: env('MLPLANE_PG_URL'), schema: `token_cache_${tag}` }),
      redisStreamsPlugin({ url: env('MLPLANE_REDIS_URL') }),
    ];
    // One secret store (the audit chain key) for both, as one deployment's processes share theirs.
    const dataDir = await mkdtemp(join(tmpdir(), 'mlplane-token-cache-'));
    const secrets = { masterKey: randomBytes(32).toString('base64') };
    const config = (name: string) => ({
      embedded: { dataDir: join(dataDir, name), secrets: { ...secrets, file: join(dataDir, 'secrets.enc') } },
      'redis-streams': { stream: `token-cache:${tag}` },
      management: { tokens: { cacheTtlMs: 300_000 } },
    });
    await using cleanup = { [Symbol.asyncDispose]: () => rm(dataDir, { recursive: true, force: true }) };
    await using first = await startTestPlatform({ plugins: plugins(), config: config('first') });
    await using second = await startTestPlatform({ plugins: plugins(), config: config('second') });
    void cleanup;
    const here = await first.get(authorizerRef);
    const there = await second.get(authorizerRef);

    await here.grant('dana', ALL_PROJECTS, 'admin');
    const token = await here.createToken({
      principal: await here.getPrincipal('dana'),
      name: 'dana-token',
      projects: [ALL_PROJECTS],
      roles: ['viewer'],
      expiresAt: new Date(Date.now() + 3_600_000),
    });
    expect((await here.verifyToken(token.secret)).id).toBe(token.id);

    await there.revokeToken(token.id);
    await expect(there.verifyToken(token.secret)).rejects.toBeInstanceOf(PermissionDeniedError);
    await expect
      .poll(
        () =>
          here.verifyToken(token.secret).then(
            () => 'accepted',
            (err) => (err instanceof PermissionDeniedError ? 'refused' : String(err)),
          ),
        { timeout: 30_000, interval: 100 },
      )
      .toBe('refused');
  });
});
