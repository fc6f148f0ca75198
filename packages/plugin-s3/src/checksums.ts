// S3 carries sha256 checksums as base64 of the 32 raw bytes; the port speaks lowercase hex.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';

export function hexToBase64(hex: string): string {
  return Buffer.from(hex, 'hex').toString('base64');
}

/** Hex of a full-object base64 checksum; undefined for a composite one (`<b64>-<parts>`) or anything malformed. */
export function base64ToHex(b64: string | undefined): string | undefined {
  if (b64 === undefined || b64.includes('-')) return undefined;
  const bytes = Buffer.from(b64, 'base64');
  return bytes.length === 32 ? bytes.toString('hex') : undefined;
}

/**
 * A streamed part on its way to the SDK, counted and hashed. A body that fails, or is not the size the request
 * announced (S3 needs the length before the bytes), calls `fail` and ends the stream quietly: the caller aborts the
 * request with that error. The stream itself never errors, because the SDK wraps it in streams of its own that
 * would re-emit the error where nobody listens.
 */
export function checkedPart(
  chunks: AsyncIterable<Uint8Array>,
  size: number,
  fail: (actual: number | Error) => void,
): { stream: Readable; result: { sha256: string | undefined } } {
  const result: { sha256: string | undefined } = { sha256: undefined };
  const hash = createHash('sha256');
  async function* counted() {
    let seen = 0;
    try {
      for await (const chunk of chunks) {
        seen += chunk.byteLength;
        if (seen > size) {
          fail(seen);
          return;
        }
        hash.update(chunk);
        yield chunk;
      }
    } catch (err) {
      fail(err as Error);
      return;
    }
    if (seen !== size) {
      fail(seen);
      return;
    }
    result.sha256 = hash.digest('hex');
  }
  return { stream: Readable.from(counted(), { objectMode: false, highWaterMark: 64 * 1024 }), result };
}
