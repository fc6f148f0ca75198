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
 * The shortest secret value a store accepts. The platform's redactor scrubs every resolved secret from logs and
 * errors by matching its text; a shorter value would match ordinary words, so it could be neither matched safely
 * nor left unmatched safely. `set` refuses shorter values and the kernel refuses to resolve them into config.
 */
export const SECRET_VALUE_MIN_LENGTH = 8;

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
  /** ValidationError (field `value`) when the value is not a string of at least SECRET_VALUE_MIN_LENGTH characters. */
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
  set: z
    .tuple([
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
    ])
    .check((ctx) => {
      // Checked beside the name, so the message can say which secret (never the value).
      const [name, value] = ctx.value;
      if (value.length < SECRET_VALUE_MIN_LENGTH) {
        ctx.issues.push({
          code: 'custom',
          input: undefined,
          path: [1],
          message: `of secret '${name}' is ${value.length} characters long; secrets need at least ${SECRET_VALUE_MIN_LENGTH}, because shorter values cannot be told apart from ordinary text when they are scrubbed from logs and errors`,
        });
      }
    }),
  delete: z.tuple([secretName]),
} satisfies PortInputs<SecretStore>;
