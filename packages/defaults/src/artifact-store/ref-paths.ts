/**
 * Maps artifact keys to ref file paths under `<root>/refs` and back.
 *
 * Each key segment becomes one directory level, so listing a prefix reads one subtree. Names
 * are escaped so that every key maps to a distinct path on any local filesystem:
 * - bytes outside `[a-z0-9._-]` become `%XX` (uppercase hex), so names differing only in case
 *   stay distinct on case-insensitive filesystems and no name contains a separator;
 * - the ref file of a key is `<last segment>.json`; a segment whose escaped form would itself
 *   end in `.json` gets that dot escaped, so a directory never looks like a ref file;
 * - escaped segments longer than CHUNK characters are split into nested directories whose
 *   names end in `+` (meaning "continues without a slash"), keeping every name under the
 *   255-byte limit while keys may be 1024 bytes long.
 */
import { join } from 'node:path';

const CHUNK = 200;
export const REF_SUFFIX = '.json';
const CONTINUES = '+';

function isRawByte(b: number): boolean {
  return (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39) || b === 0x5f || b === 0x2d || b === 0x2e;
}

/** Escapes one segment into tokens (a raw character or a `%XX` triple) so chunks never split a triple. */
function escapeSegment(segment: string): string[] {
  const tokens: string[] = [];
  for (const b of Buffer.from(segment, 'utf8')) {
    tokens.push(isRawByte(b) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`);
  }
  const n = tokens.length;
  if (n >= 5 && tokens.slice(n - 5).join('') === REF_SUFFIX) tokens[n - 5] = '%2E';
  return tokens;
}

/** Splits a segment into path names: all but the last carry the continuation mark. */
function segmentNames(segment: string): string[] {
  const tokens = escapeSegment(segment);
  const names: string[] = [];
  let current = '';
  for (const token of tokens) {
    if (current.length + token.length > CHUNK) {
      names.push(current);
      current = '';
    }
    current += token;
  }
  names.push(current);
  // A chunk `.` or `..` would be read by the filesystem as a relative path; escaping keeps it a plain name.
  return names.map((name, i) => {
    const safe = name === '.' || name === '..' ? name.replaceAll('.', '%2E') : name;
    return i < names.length - 1 ? safe + CONTINUES : safe;
  });
}

/** Path of the ref file for a validated key. */
export function refPathOf(refsRoot: string, key: string): string {
  const segments = key.split('/');
  const last = segments.pop()!;
  const names = segments.flatMap(segmentNames);
  const lastNames = segmentNames(last);
  lastNames[lastNames.length - 1] += REF_SUFFIX;
  return join(refsRoot, ...names, ...lastNames);
}

/**
 * Directory holding every key that starts with `dirPrefix` (which ends in '/' or is empty).
 * Undefined when no key can live there (an empty, '.' or '..' segment).
 */
export function dirPathOf(refsRoot: string, dirPrefix: string): string | undefined {
  if (dirPrefix === '') return refsRoot;
  const segments = dirPrefix.slice(0, -1).split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..' || s.includes('\0') || s.includes('\\'))) {
    return undefined;
  }
  return join(refsRoot, ...segments.flatMap(segmentNames));
}

export type RefName =
  | { readonly kind: 'ref'; readonly bytes: Buffer }
  | { readonly kind: 'segment'; readonly bytes: Buffer }
  | { readonly kind: 'continuation'; readonly bytes: Buffer };

function unescapeName(name: string): Buffer | undefined {
  const out: number[] = [];
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c === 0x25) {
      const hex = name.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined;
      out.push(Number.parseInt(hex, 16));
      i += 2;
    } else if (isRawByte(c)) {
      out.push(c);
    } else {
      return undefined;
    }
  }
  return Buffer.from(out);
}

/**
 * Decodes one directory entry into the key bytes it contributes; undefined for names this
 * store never writes (stray files are ignored rather than misread as keys).
 */
export function parseRefName(name: string, isDirectory: boolean): RefName | undefined {
  if (!isDirectory) {
    if (!name.endsWith(REF_SUFFIX)) return undefined;
    const bytes = unescapeName(name.slice(0, -REF_SUFFIX.length));
    return bytes && bytes.length > 0 ? { kind: 'ref', bytes } : undefined;
  }
  if (name.endsWith(CONTINUES)) {
    const bytes = unescapeName(name.slice(0, -CONTINUES.length));
    return bytes && bytes.length > 0 ? { kind: 'continuation', bytes } : undefined;
  }
  const bytes = unescapeName(name);
  return bytes && bytes.length > 0 ? { kind: 'segment', bytes: Buffer.concat([bytes, Buffer.from('/')]) } : undefined;
}
