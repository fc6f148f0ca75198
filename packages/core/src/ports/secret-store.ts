import { createServiceRef } from '../kernel/service-ref.js';

export { NotFoundError, UnavailableError, ValidationError } from './errors.js';

export interface SecretStoreCapabilities {
  /** `set` and `delete` are supported. */
  readonly writable: boolean;
}

/** Secret names: letters, digits, `.`, `_`, `-`, `/`; 1 to 256 characters. */
export const SECRET_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._\-/]{0,255}$/;

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
