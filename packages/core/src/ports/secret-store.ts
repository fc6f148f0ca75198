import { z } from 'zod';
import { createServiceRef } from '../kernel/service-ref.js';
import { quoteValue } from './errors.js';
import { type PortInputs, portArg } from './port-inputs.js';

export { NotFoundError, UnavailableError, ValidationError } from './errors.js';

export interface SecretStoreCapabilities {
  /** `set` and `delete` are supported. */
  readonly writable: boolean;
}

/** Secret names: letters, digits, `.`, `_`, `-`, `/`; 1 to 256 characters. */
export const SECRET_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._\-/]{0,255}$/;
/** A secret value: 64 KiB in UTF-8, what AWS Secrets Manager stores per secret. */
export const SECRET_VALUE_MAX_BYTES = 65_536;

/**
 * Secret values never appear in logs, errors or API responses; implementations only ever
 * name the secret, never echo its value.
 */
export interface SecretStore {
  readonly capabilities: SecretStoreCapabilities;
  /** NotFoundError when no such secret exists. */
  get(name: string): Promise<string>;
  /** Sorted names, never values. */
  list(): Promise<readonly string[]>;
  set?(name: string, value: string): Promise<void>;
  /** Idempotent. */
  delete?(name: string): Promise<void>;
}

export const secretStoreRef = createServiceRef<SecretStore>({ id: 'core.secretStore' });

const secretName = portArg(
  'name',
  z
    .string()
    .max(256, { error: 'has more than 256 chars; secret names have 1 to 256', abort: true })
    .regex(SECRET_NAME_PATTERN, {
      error: (issue) =>
        `${quoteValue(issue.input)} is not a secret name: use letters, digits, '.', '_', '-', '/', starting with a letter or digit`,
    }),
);

/**
 * The arguments of every SecretStore operation; `validatePortInputs(store, secretStoreInputs)` applies them at the
 * port's boundary. Messages never show a value.
 */
export const secretStoreInputs = {
  get: z.tuple([secretName]),
  set: z.tuple([
    secretName,
    portArg(
      'value',
      z.string().check((ctx) => {
        const bytes = Buffer.byteLength(ctx.value, 'utf8');
        if (bytes > SECRET_VALUE_MAX_BYTES) {
          ctx.issues.push({
            code: 'custom',
            input: undefined,
            message: `is ${bytes} bytes in UTF-8; the SECRET_VALUE_MAX_BYTES limit is ${SECRET_VALUE_MAX_BYTES}`,
          });
        }
      }),
    ),
  ]),
  delete: z.tuple([secretName]),
} satisfies PortInputs<SecretStore>;
