import { ARTIFACT_KEY_MAX_BYTES } from './artifact-limits.js';
import { ValidationError } from './errors.js';

/** Quotes a key for an error message, shortened so a 1 KiB key does not flood the log line. */
export function quoteArtifactKey(key: string): string {
  return JSON.stringify(key.length > 80 ? `${key.slice(0, 77)}...` : key);
}

/**
 * Enforces the key rules every ArtifactStore shares, so a key accepted here is accepted by
 * every backend; every adapter calls it before any I/O. Each rule has its own message naming what to fix.
 * `maxBytes` is the store's `capabilities.maxKeyBytes` where a backend prefix takes part of the 1024 bytes.
 */
export function validateArtifactKey(key: unknown, maxBytes = ARTIFACT_KEY_MAX_BYTES): asserts key is string {
  if (typeof key !== 'string') {
    throw new ValidationError(`artifact key must be a string, got ${typeof key}`, { field: 'key' });
  }
  if (key.length === 0) {
    throw new ValidationError('artifact key must not be empty', { field: 'key' });
  }
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > maxBytes) {
    const limit =
      maxBytes < ARTIFACT_KEY_MAX_BYTES
        ? `${maxBytes} bytes on this store (${ARTIFACT_KEY_MAX_BYTES} less its key prefix)`
        : `${maxBytes} bytes`;
    throw new ValidationError(
      `artifact key ${quoteArtifactKey(key)} is ${bytes} bytes in UTF-8; the limit is ${limit}`,
      {
        field: 'key',
      },
    );
  }
  // Lone surrogates have no UTF-8 form: two different such keys would collapse into one stored name.
  if (Buffer.from(key, 'utf8').toString('utf8') !== key) {
    throw new ValidationError(
      `artifact key ${quoteArtifactKey(key)} is not valid Unicode (it contains a lone surrogate)`,
      {
        field: 'key',
      },
    );
  }
  if (key.startsWith('/')) {
    throw new ValidationError(
      `artifact key ${quoteArtifactKey(key)} must not start with '/': keys are relative, e.g. 'models/fraud/3/model.onnx'`,
      { field: 'key' },
    );
  }
  if (key.includes('\0') || key.includes('\\')) {
    throw new ValidationError(
      `artifact key ${quoteArtifactKey(key)} must not contain NUL or backslash characters; separate segments with '/'`,
      { field: 'key' },
    );
  }
  for (const segment of key.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') {
      throw new ValidationError(
        `artifact key ${quoteArtifactKey(key)} must not contain empty, '.' or '..' segments (look for '//', a trailing '/' or a relative part)`,
        { field: 'key' },
      );
    }
  }
}

/** Byte order of the UTF-8 encodings, the order S3 and the list contract use (not UTF-16 code unit order). */
export function compareArtifactKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
