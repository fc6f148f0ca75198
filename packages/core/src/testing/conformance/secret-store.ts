import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { validatePortInputs } from '../../ports/port-inputs.js';
import {
  NotFoundError,
  SECRET_VALUE_MAX_BYTES,
  SECRET_VALUE_MIN_LENGTH,
  type SecretStore,
  secretStoreInputs,
  ValidationError,
} from '../../ports/secret-store.js';
import { uniqueTag } from './support.js';

export interface SecretStoreFixture {
  readonly store: SecretStore;
  /** Removes what the store created; runs after each test. */
  readonly cleanup?: () => Promise<void>;
  /**
   * Opens a fresh instance over the same storage (same file, same vault path). When given,
   * the suite checks that values written by `store` survive into the new instance.
   */
  readonly reopen?: () => Promise<SecretStore>;
}

/**
 * The contract every SecretStore meets, run against a fresh store from `factory` per test.
 * Names live under a random prefix per test so a shared backend works too. Writes are only
 * exercised when the store declares `capabilities.writable`.
 */
export function secretStoreConformance(name: string, factory: () => Promise<SecretStoreFixture>): void {
  describe(`SecretStore conformance: ${name}`, async () => {
    // Capabilities and reopen support decide which cases exist, so one store is created at collection time.
    const probe = await factory();
    const caps = probe.store.capabilities;
    const canReopen = probe.reopen !== undefined;
    await probe.cleanup?.();

    let fixture: SecretStoreFixture;
    let store: SecretStore;
    let ns: string;
    const secret = (rest: string) => `${ns}/${rest}`;
    const ours = async (from: SecretStore = store) => (await from.list()).filter((n) => n.startsWith(`${ns}/`));

    beforeEach(async () => {
      fixture = await factory();
      store = fixture.store;
      ns = `conformance-${uniqueTag()}`;
    });
    afterEach(async () => {
      await fixture?.cleanup?.();
    });

    it('get of a missing secret throws NotFoundError naming it', async () => {
      const err = await store.get(secret('missing')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotFoundError);
      expect((err as Error).message).toContain(secret('missing'));
    });

    it('refuses at the port boundary a non-string name and a value beyond SECRET_VALUE_MAX_BYTES, never echoing it', async () => {
      const boundary = validatePortInputs(store, secretStoreInputs);
      const name = await boundary.get(42 as never).catch((e: unknown) => e);
      expect(name).toBeInstanceOf(ValidationError);
      expect((name as ValidationError).field).toBe('name');
      if (!caps.writable) return;
      const value = `s3cr3t-${'x'.repeat(SECRET_VALUE_MAX_BYTES)}`;
      const err = await boundary.set!(secret('big'), value).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as Error).message).toContain('SECRET_VALUE_MAX_BYTES');
      expect((err as Error).message).not.toContain('s3cr3t');
      expect(await ours()).toEqual([]);
    });

    it('rejects invalid names with ValidationError in every operation', async () => {
      const invalid = [
        '',
        '-leading-dash',
        '.leading-dot',
        '/leading-slash',
        'has space',
        'tab\tchar',
        'é',
        'x'.repeat(257),
      ];
      for (const bad of invalid) {
        const calls: (() => Promise<unknown>)[] = [() => store.get(bad)];
        if (caps.writable)
          calls.push(
            () => store.set!(bad, 'v'),
            () => store.delete!(bad),
          );
        for (const call of calls) {
          const err = await call().catch((e: unknown) => e);
          expect(err, `name ${JSON.stringify(bad)}`).toBeInstanceOf(ValidationError);
        }
      }
    });

    it.skipIf(!caps.writable)('sets, gets, overwrites and deletes a secret', async () => {
      await store.set!(secret('db/password'), 'hunter2-hunter2');
      expect(await store.get(secret('db/password'))).toBe('hunter2-hunter2');
      await store.set!(secret('db/password'), 'correct horse battery staple');
      expect(await store.get(secret('db/password'))).toBe('correct horse battery staple');
      await store.delete!(secret('db/password'));
      await expect(store.get(secret('db/password'))).rejects.toBeInstanceOf(NotFoundError);
    });

    it.skipIf(!caps.writable)('delete is idempotent', async () => {
      await store.delete!(secret('never-set'));
      await store.set!(secret('once'), 'value-once');
      await store.delete!(secret('once'));
      await store.delete!(secret('once'));
      expect(await ours()).toEqual([]);
    });

    it.skipIf(!caps.writable)('lists sorted names and never values', async () => {
      const values: Record<string, string> = {
        [secret('b-token')]: 'value-of-b-0b8f',
        [secret('a.key')]: 'value-of-a-71c2',
        [secret('c/nested/name')]: 'value-of-c-9d44',
        [secret('A_upper')]: 'value-of-upper-e5a0',
      };
      for (const [n, v] of Object.entries(values)) await store.set!(n, v);
      const listed = await ours();
      expect(listed).toEqual(Object.keys(values).sort());
      const all = JSON.stringify(await store.list());
      for (const v of Object.values(values)) expect(all).not.toContain(v);
    });

    it.skipIf(!caps.writable)('keeps every one of many concurrent sets', async () => {
      const names = Array.from({ length: 40 }, (_, i) => secret(`concurrent-${String(i).padStart(2, '0')}`));
      await Promise.all(names.map((n, i) => store.set!(n, `concurrent value ${i}`)));
      expect(await ours()).toEqual(names);
      const got = await Promise.all(names.map((n) => store.get(n)));
      expect(got).toEqual(names.map((_, i) => `concurrent value ${i}`));
    });

    it.skipIf(!caps.writable)('round-trips unicode, control characters and a 64 KiB value', async () => {
      const unicode = 'pässwörd 🔑 密码 \u0000\n\t"quotes" \\ backslash';
      const large = Array.from({ length: 64 * 1024 }, (_, i) => String.fromCharCode(33 + (i % 90))).join('');
      await store.set!(secret('unicode'), unicode);
      await store.set!(secret('large'), large);
      expect(await store.get(secret('unicode'))).toBe(unicode);
      expect(await store.get(secret('large'))).toBe(large);
    });

    it.skipIf(!caps.writable)(
      `refuses values shorter than ${SECRET_VALUE_MIN_LENGTH} characters, naming the secret, and keeps the old value`,
      async () => {
        await store.set!(secret('pin'), 'long-enough-value');
        for (const bad of ['', '1234', 'x'.repeat(SECRET_VALUE_MIN_LENGTH - 1)]) {
          const err = await store.set!(secret('pin'), bad).catch((e: unknown) => e);
          expect(err, JSON.stringify(bad)).toBeInstanceOf(ValidationError);
          expect((err as ValidationError).field).toBe('value');
          expect((err as Error).message).toContain(secret('pin'));
          expect((err as Error).message).toContain(`at least ${SECRET_VALUE_MIN_LENGTH}`);
          if (bad) expect((err as Error).message).not.toContain(bad);
        }
        expect(await store.get(secret('pin'))).toBe('long-enough-value');
        await store.set!(secret('pin'), 'x'.repeat(SECRET_VALUE_MIN_LENGTH));
        expect(await store.get(secret('pin'))).toBe('x'.repeat(SECRET_VALUE_MIN_LENGTH));
      },
    );

    it.skipIf(!caps.writable)('never includes a value in a NotFoundError, even of a deleted secret', async () => {
      await store.set!(secret('gone'), 'the-old-value-3f9a');
      await store.delete!(secret('gone'));
      const err = await store.get(secret('gone')).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(NotFoundError);
      expect(String((err as Error).message)).not.toContain('the-old-value-3f9a');
      expect(JSON.stringify(err)).not.toContain('the-old-value-3f9a');
    });

    it.skipIf(!caps.writable || !canReopen)('values survive into a fresh instance', async () => {
      await store.set!(secret('persisted'), 'still here');
      await store.set!(secret('removed'), 'gone soon');
      await store.delete!(secret('removed'));
      const reopened = await fixture.reopen!();
      expect(await reopened.get(secret('persisted'))).toBe('still here');
      await expect(reopened.get(secret('removed'))).rejects.toBeInstanceOf(NotFoundError);
      expect(await ours(reopened)).toEqual([secret('persisted')]);
    });
  });
}
