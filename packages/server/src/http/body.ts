import { badRequest, HttpError, payloadTooLarge } from './errors.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Deepest nesting of arrays and objects a JSON body may have. JSON.parse itself takes 100,000 levels, but what
 * walks the value afterwards recursively (JSON.stringify in a port's size check, canonical JSON for the audit log)
 * would overflow the stack; every request of the API nests fewer than 10.
 */
export const MAX_JSON_DEPTH = 64;

/** Whether `text` opens more than `max` arrays or objects at once (brackets inside strings do not count). */
function nestedDeeperThan(text: string, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \\ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 /* [ */ || c === 123 /* { */) {
      if (++depth > max) return true;
    } else if (c === 93 /* ] */ || c === 125 /* } */) depth--;
  }
  return false;
}

/**
 * Reads a JSON request body within `limit` bytes: 413 when the declared or actual length exceeds it (the rest is not
 * read), 415 for another content type, 400 for invalid UTF-8, malformed JSON or nesting deeper than MAX_JSON_DEPTH.
 */
export async function readJsonBody(request: Request, limit: number): Promise<unknown> {
  const type = request.headers.get('content-type');
  if (type !== null && !/^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i.test(type)) {
    throw new HttpError(
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      `expected a JSON body (application/json), got '${type.slice(0, 64)}'`,
    );
  }
  const bytes = await readLimited(request, limit);
  if (bytes.byteLength === 0) throw badRequest('expected a JSON body, got an empty one');
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw badRequest('the request body is not valid UTF-8');
  }
  if (nestedDeeperThan(text, MAX_JSON_DEPTH)) {
    throw badRequest(`the JSON body is nested deeper than ${MAX_JSON_DEPTH} levels`, { limit: MAX_JSON_DEPTH });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    if (err instanceof RangeError) throw badRequest('the JSON body is nested too deeply');
    throw badRequest(`the request body is not valid JSON: ${(err as Error).message.slice(0, 120)}`);
  }
}

/** The whole body, refusing it once it passes `limit` bytes. */
export async function readLimited(request: Request, limit: number): Promise<Uint8Array> {
  const declared = request.headers.get('content-length');
  if (declared !== null && Number(declared) > limit) throw payloadTooLarge(limit);
  if (request.body === null) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw payloadTooLarge(limit);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const all = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    all.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return all;
}

/** Query parameters as an object: a repeated key becomes an array. */
export function queryObject(url: URL): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [key, value] of url.searchParams) {
    const seen = out[key];
    out[key] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value];
  }
  return out;
}
