import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NotFoundError, UnavailableError, ValidationError } from '@mlplane/core';
import { secretStoreConformance } from '@mlplane/core/testing';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EnvFileSecretStore, secretEnvName } from '../src/secret-store/file-secret-store.js';

secretStoreConformance('EnvFileSecretStore', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-secrets-'));
  const path = join(dir, 'secrets.enc');
  const masterKey = randomBytes(32).toString('base64');
  return {
    store: new EnvFileSecretStore({ path, masterKey, env: {} }),
    reopen: async () => new EnvFileSecretStore({ path, masterKey, env: {} }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

describe('EnvFileSecretStore specifics', () => {
  let dir: string;
  let path: string;
  const key = randomBytes(32);

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mlplane-secrets-'));
    path = join(dir, 'nested', 'secrets.enc');
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('accepts the master key as base64, base64url or hex, and they decrypt the same file', async () => {
    await new EnvFileSecretStore({ path, masterKey: key.toString('base64'), env: {} }).set('api.key', 'value-one');
    for (const masterKey of [
      key.toString('hex'),
      key.toString('base64url'),
      key.toString('base64').replace(/=+$/, ''),
    ]) {
      expect(await new EnvFileSecretStore({ path, masterKey, env: {} }).get('api.key')).toBe('value-one');
    }
  });

  it('rejects a master key that is not 32 bytes, without echoing it', () => {
    for (const masterKey of [
      'short',
      randomBytes(16).toString('base64'),
      randomBytes(33).toString('hex'),
      'a passphrase that is long enough to be 32',
    ]) {
      let err: unknown;
      try {
        new EnvFileSecretStore({ path, masterKey, env: {} });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as Error).message).toMatch(/32 random bytes/);
      expect((err as Error).message).not.toContain(masterKey);
    }
  });

  it('keeps no plaintext name or value on disk, and writes the file with mode 0600', async () => {
    const store = new EnvFileSecretStore({ path, masterKey: key.toString('hex'), env: {} });
    await store.set('stripe/live-key', 'sk_live_PLAINTEXT_MARKER');
    const raw = await readFile(path, 'utf8');
    expect(raw).not.toContain('sk_live_PLAINTEXT_MARKER');
    expect(raw).not.toContain('stripe/live-key');
    expect(JSON.parse(raw)).toMatchObject({ format: 'mlplane-secrets', version: 1, cipher: 'aes-256-gcm' });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    // No temp file is left next to it, only the lock file.
    expect((await readdir(join(dir, 'nested'))).sort()).toEqual(['secrets.enc', 'secrets.enc.lock']);
  });

  it('uses a fresh IV per write', async () => {
    const store = new EnvFileSecretStore({ path, masterKey: key.toString('hex'), env: {} });
    await store.set('a', 'same-value');
    const first = JSON.parse(await readFile(path, 'utf8')) as { iv: string; data: string };
    await store.set('a', 'same-value');
    const second = JSON.parse(await readFile(path, 'utf8')) as { iv: string; data: string };
    expect(second.iv).not.toBe(first.iv);
    expect(second.data).not.toBe(first.data);
  });

  it('a wrong master key gives UnavailableError naming the file and no secret', async () => {
    await new EnvFileSecretStore({ path, masterKey: key.toString('hex'), env: {} }).set(
      'db.password',
      'hunter2-MARKER',
    );
    const wrong = new EnvFileSecretStore({ path, masterKey: randomBytes(32).toString('hex'), env: {} });
    for (const call of [() => wrong.get('db.password'), () => wrong.list(), () => wrong.set('other', 'other-value')]) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(UnavailableError);
      expect((err as Error).message).toBe(`cannot decrypt secrets file ${path}: wrong master key or corrupted file`);
      const everything = `${(err as Error).message} ${(err as Error).stack} ${String((err as Error).cause)} ${JSON.stringify(err)}`;
      expect(everything).not.toContain('hunter2-MARKER');
      expect(everything).not.toContain('db.password');
    }
    // The failed set left the file untouched.
    expect(await new EnvFileSecretStore({ path, masterKey: key.toString('hex'), env: {} }).get('db.password')).toBe(
      'hunter2-MARKER',
    );
  });

  it('detects a tampered file', async () => {
    const store = new EnvFileSecretStore({ path, masterKey: key.toString('hex'), env: {} });
    await store.set('token', 'abc-token-value');
    const envelope = JSON.parse(await readFile(path, 'utf8')) as { data: string };
    const data = Buffer.from(envelope.data, 'base64');
    data[0]! ^= 1;
    await writeFile(path, JSON.stringify({ ...envelope, data: data.toString('base64') }));
    await expect(store.get('token')).rejects.toThrow(/wrong master key or corrupted file/);
  });

  it('reports a file that is not a secrets file', async () => {
    const store = new EnvFileSecretStore({ path: join(dir, 'plain.txt'), masterKey: key.toString('hex'), env: {} });
    await writeFile(join(dir, 'plain.txt'), 'NOT=encrypted\n');
    await expect(store.get('x')).rejects.toThrow(/is not an mlplane secrets file/);
  });

  it('environment variables win on read, and set/delete only change the file', async () => {
    const env: NodeJS.ProcessEnv = { [secretEnvName('db/password')]: 'from-env' };
    expect(secretEnvName('db/password')).toBe('MLPLANE_SECRET_DB_PASSWORD');
    expect(secretEnvName('svc.api-key')).toBe('MLPLANE_SECRET_SVC_API_KEY');
    const store = new EnvFileSecretStore({ path, masterKey: key.toString('hex'), env });
    expect(await store.get('db/password')).toBe('from-env');
    await store.set('db/password', 'from-file');
    expect(await store.get('db/password')).toBe('from-env');
    delete env[secretEnvName('db/password')];
    expect(await store.get('db/password')).toBe('from-file');
    env[secretEnvName('db/password')] = 'back-in-env';
    await store.delete('db/password');
    expect(await store.get('db/password')).toBe('back-in-env');
  });

  it('lists stored names plus environment-only names, each readable with get', async () => {
    const env: NodeJS.ProcessEnv = {
      MLPLANE_SECRET_OPENAI_KEY: 'sk-env',
      MLPLANE_SECRET_DB_PASSWORD: 'env-db',
      // Not the upper-cased form `get` looks up, so listing it would name a secret nobody can read.
      MLPLANE_SECRET_lower: 'unreachable',
      UNRELATED: 'x',
    };
    const store = new EnvFileSecretStore({ path, masterKey: key.toString('hex'), env });
    await store.set('db/password', 'file-db-value');
    expect(await store.list()).toEqual(['OPENAI_KEY', 'db/password']);
    expect(await store.get('OPENAI_KEY')).toBe('sk-env');
    expect(await store.get('db/password')).toBe('env-db');
  });

  it('a missing secret names the environment variable that would provide it', async () => {
    const store = new EnvFileSecretStore({ path, masterKey: key.toString('hex'), env: {} });
    const err = await store.get('hf/token').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect((err as Error).message).toContain('MLPLANE_SECRET_HF_TOKEN');
  });

  it('serializes writes from concurrent set and delete calls without losing any', async () => {
    const store = new EnvFileSecretStore({ path, masterKey: key.toString('hex'), env: {} });
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.set(`keep-${i}`, `keep-value-${i}`)));
    await Promise.all([
      ...Array.from({ length: 10 }, (_, i) => store.delete(`keep-${i}`)),
      ...Array.from({ length: 10 }, (_, i) => store.set(`new-${i}`, `new-value-${i}`)),
    ]);
    const names = await new EnvFileSecretStore({ path, masterKey: key.toString('hex'), env: {} }).list();
    expect(names).toHaveLength(20);
    expect(names.filter((n) => n.startsWith('keep-'))).toHaveLength(10);
  });

  it('refuses a file whose GCM tag was cut short, however few bytes are left', async () => {
    const store = new EnvFileSecretStore({ path, masterKey: key.toString('hex'), env: {} });
    await store.set('token', 'abc-token-value');
    const envelope = JSON.parse(await readFile(path, 'utf8')) as { tag: string };
    for (const bytes of [4, 8, 12, 15]) {
      const tag = Buffer.from(envelope.tag, 'base64').subarray(0, bytes).toString('base64');
      await writeFile(path, JSON.stringify({ ...envelope, tag }));
      const err = await store.get('token').catch((e: unknown) => e);
      expect(err, `${bytes}-byte tag`).toBeInstanceOf(UnavailableError);
      expect((err as Error).message).toBe(`cannot decrypt secrets file ${path}: wrong master key or corrupted file`);
    }
  });

  it('keeps every concurrent set of two stores on one file (the file is locked from read to rename)', async () => {
    const masterKey = key.toString('hex');
    const stores = [0, 1].map(() => new EnvFileSecretStore({ path, masterKey, env: {} }));
    const names = Array.from({ length: 20 }, (_, i) => `concurrent-${String(i).padStart(2, '0')}`);
    await Promise.all(names.map((name, i) => stores[i % 2]!.set(name, `value-of-${name}`)));
    const reader = new EnvFileSecretStore({ path, masterKey, env: {} });
    expect(await reader.list()).toEqual(names);
    for (const name of names) expect(await reader.get(name)).toBe(`value-of-${name}`);
    // The lock file stays (deleting it would let two writers lock two files) and is private.
    expect((await readdir(join(dir, 'nested'))).sort()).toEqual(['secrets.enc', 'secrets.enc.lock']);
    expect((await stat(`${path}.lock`)).mode & 0o777).toBe(0o600);
  });
});
