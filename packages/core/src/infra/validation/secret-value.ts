import { SECRET_VALUE_MIN_LENGTH, ValidationError } from '../../ports/secret-store.js';

/**
 * Enforces the value rule every writable SecretStore shares: a string of at least SECRET_VALUE_MIN_LENGTH
 * characters, so the redactor can keep it out of logs. The message names the secret, never the value.
 */
export function validateSecretValue(name: string, value: unknown): asserts value is string {
  if (typeof value !== 'string') {
    throw new ValidationError(`the value of secret '${name}' must be a string, got ${typeof value}`, {
      field: 'value',
    });
  }
  if (value.length < SECRET_VALUE_MIN_LENGTH) {
    throw new ValidationError(
      `the value of secret '${name}' is ${value.length} characters long; secrets need at least ` +
        `${SECRET_VALUE_MIN_LENGTH}, because shorter values cannot be told apart from ordinary text when they are ` +
        'scrubbed from logs and errors',
      { field: 'value' },
    );
  }
}
