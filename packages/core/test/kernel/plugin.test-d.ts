import { describe, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import {
  type ArtifactStore,
  artifactStoreRef,
  createServiceRef,
  definePlugin,
  type SecretStore,
  secretStoreRef,
} from '../../src/index.js';

const schema = z.object({ bucket: z.string(), partSizeMiB: z.number().default(16) });

describe('definePlugin types', () => {
  it('hands init its deps with the types of their refs, and the typed config', () => {
    definePlugin({
      id: 'typed',
      configSchema: schema,
      register(env) {
        env.registerInit({
          deps: { store: artifactStoreRef, secrets: secretStoreRef },
          init: ({ store, secrets, config }) => {
            expectTypeOf(store).toEqualTypeOf<ArtifactStore>();
            expectTypeOf(secrets).toEqualTypeOf<SecretStore>();
            expectTypeOf(config).toEqualTypeOf<{ bucket: string; partSizeMiB: number }>();
            // @ts-expect-error a dep typed ArtifactStore is not a SecretStore
            const wrong: SecretStore = store;
            // @ts-expect-error partSizeMiB is a number
            config.partSizeMiB.toUpperCase();
            void wrong;
          },
        });
      },
    });
  });

  it('checks that a factory returns what the ref promises', () => {
    const numberRef = createServiceRef<{ value: number }>({ id: 'typed.number' });
    definePlugin({
      id: 'factory',
      register(env) {
        env.provide(numberRef, { factory: () => ({ value: 1 }) });
        // @ts-expect-error value must be a number
        env.provide(numberRef, { factory: () => ({ value: 'one' }) });
      },
    });
  });

  it('types inline config from the schema input', () => {
    const plugin = definePlugin({ id: 'inline', configSchema: schema, register: () => undefined });
    plugin({ bucket: 'b' });
    plugin({ partSizeMiB: 8 });
    // @ts-expect-error partSizeMiB takes a number
    plugin({ partSizeMiB: 'eight' });
    // @ts-expect-error unknown key
    plugin({ buckett: 'typo' });
  });
});
