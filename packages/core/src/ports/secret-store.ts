import { createServiceRef } from '../kernel/service-ref.js';

export { NotFoundError, UnavailableError, ValidationError } from './errors.js';

export interface SecretStoreCapabilities {
  /** `set` and `delete` are supported. */
  readonly writable: boolean;
}

/** Secret names: letters, digits, `.`, `_`, `-`, `/`; 1 to 256 characters. */
export const SECRET_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._\-/]{0,255}$/;

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
