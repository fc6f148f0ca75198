import { artifactKeyProblem, ValidationError } from '../../ports/artifact-store.js';

/** Quotes a key for an error message, shortened so a 1 KiB key does not flood the log line. */
export function quoteKey(key: string): string {
  return JSON.stringify(key.length > 80 ? `${key.slice(0, 77)}...` : key);
}

/**
 * Enforces the key rules every ArtifactStore shares (`artifactKeyProblem`), so a key accepted here is accepted by
 * every backend. Each rule has its own message naming what to fix.
 */
export function validateArtifactKey(key: unknown): asserts key is string {
  if (typeof key !== 'string') {
    throw new ValidationError(`artifact key must be a string, got ${typeof key}`, { field: 'key' });
  }
  const problem = artifactKeyProblem(key);
  if (problem === undefined) return;
  throw new ValidationError(key === '' ? `artifact key ${problem}` : `artifact key ${quoteKey(key)} ${problem}`, {
    field: 'key',
  });
}

/** Byte order of the UTF-8 encodings, the order S3 and the list contract use (not UTF-16 code unit order). */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
