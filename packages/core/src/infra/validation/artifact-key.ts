import { ARTIFACT_KEY_MAX_BYTES, ValidationError } from '../../ports/artifact-store.js';

/** Quotes a key for an error message, shortened so a 1 KiB key does not flood the log line. */
export function quoteKey(key: string): string {
  return JSON.stringify(key.length > 80 ? `${key.slice(0, 77)}...` : key);
}

/**
 * Enforces the key rules every ArtifactStore shares, so a key accepted here is accepted by
 * every backend. Each rule has its own message naming what to fix.
 */
export function validateArtifactKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') {
    throw new ValidationError(`artifact key must be a string, got ${typeof key}`, { field: 'key' });
  }
  if (key.length === 0) {
    throw new ValidationError('artifact key must not be empty', { field: 'key' });
  }
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > ARTIFACT_KEY_MAX_BYTES) {
    throw new ValidationError(
      `artifact key ${quoteKey(key)} is ${bytes} bytes in UTF-8; the limit is ${ARTIFACT_KEY_MAX_BYTES} bytes`,
      { field: 'key' },
    );
  }
  // Lone surrogates have no UTF-8 form: two different such keys would collapse into one stored name.
  if (Buffer.from(key, 'utf8').toString('utf8') !== key) {
    throw new ValidationError(`artifact key ${quoteKey(key)} is not valid Unicode (it contains a lone surrogate)`, {
      field: 'key',
    });
  }
  if (key.startsWith('/')) {
    throw new ValidationError(
      `artifact key ${quoteKey(key)} must not start with '/': keys are relative, e.g. 'models/fraud/3/model.onnx'`,
      { field: 'key' },
    );
  }
  if (key.includes('\0') || key.includes('\\')) {
    throw new ValidationError(
      `artifact key ${quoteKey(key)} must not contain NUL or backslash characters; separate segments with '/'`,
      { field: 'key' },
    );
  }
  for (const segment of key.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') {
      throw new ValidationError(
        `artifact key ${quoteKey(key)} must not contain empty, '.' or '..' segments (look for '//', a trailing '/' or a relative part)`,
        { field: 'key' },
      );
    }
  }
}

/** Byte order of the UTF-8 encodings, the order S3 and the list contract use (not UTF-16 code unit order). */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
