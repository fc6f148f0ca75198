import { createHmac, timingSafeEqual } from 'node:crypto';
import {
  type ArtifactStore,
  AuditIntegrityError,
  type AuditKeys,
  canonicalJson,
  NotFoundError,
  ValidationError,
  validateArtifactKey,
} from '@mlplane/core';

/** A signed record, kept outside the database, that the audit chain reached `seq` with `hash` at `at`. */
export interface AuditCheckpoint {
  /** 1, 2, 3...: checkpoints are numbered, so the newest is found without listing (a head may move back on an accepted loss). */
  readonly n: number;
  readonly seq: number;
  readonly hash: string;
  /** ISO-8601 UTC: when the checkpoint was written. */
  readonly at: string;
  readonly keyId: string;
  /** The artifact key it was read from or written to. */
  readonly key: string;
}

const FORMAT = 'mlplane-audit-checkpoint' as const;
/** A checkpoint is a few hundred bytes; anything much larger is not one. */
const MAX_CHECKPOINT_BYTES = 16 * 1024;
export const DEFAULT_CHECKPOINT_PREFIX = 'audit/checkpoints';

interface CheckpointDocument {
  readonly format: typeof FORMAT;
  readonly version: 1;
  readonly keyId: string;
  readonly n: number;
  readonly seq: number;
  readonly hash: string;
  readonly at: string;
  /** Hex HMAC-SHA256 under the checkpoint key of the canonical JSON of every other field. */
  readonly signature: string;
}

/**
 * Signed checkpoints of an audit log's head in an ArtifactStore: `<prefix>/<keyId>/<n, 12 digits>.json`, written once
 * each (`ifNotExists`), and `<prefix>/<keyId>/latest.json`, a copy of the newest that saves listing the history.
 * Only the signature is trusted: latest.json is a starting point, the numbered files after it are probed too, so a
 * stale or replayed latest.json finds the newer ones. The key id in the path keeps logs with different keys apart
 * and cannot be steered by whoever writes the database (it is derived from the secret, not read from the database).
 */
export class AuditCheckpoints {
  readonly #artifacts: ArtifactStore;
  readonly #keys: AuditKeys;
  readonly #dir: string;

  constructor(options: { readonly artifacts: ArtifactStore; readonly keys: AuditKeys; readonly prefix?: string }) {
    const prefix = (options.prefix ?? DEFAULT_CHECKPOINT_PREFIX).replace(/\/+$/, '');
    this.#artifacts = options.artifacts;
    this.#keys = options.keys;
    this.#dir = `${prefix}/${options.keys.keyId}`;
    try {
      validateArtifactKey(this.#latestKey);
    } catch (cause) {
      throw new ValidationError(`audit checkpoint prefix '${prefix}' is not a valid artifact key prefix`, {
        field: 'prefix',
        cause,
      });
    }
  }

  /** Where the checkpoints of this key live, for messages. */
  get location(): string {
    return `${this.#dir}/`;
  }

  get #latestKey(): string {
    return `${this.#dir}/latest.json`;
  }

  #keyOf(n: number): string {
    return `${this.#dir}/${String(n).padStart(12, '0')}.json`;
  }

  /** The newest checkpoint, undefined when none was written. AuditIntegrityError (`bad-checkpoint`) for a forged one. */
  async newest(): Promise<AuditCheckpoint | undefined> {
    const latest = await this.#read(this.#latestKey);
    let n = latest?.n ?? 0;
    if (!latest) {
      // latest.json is gone: find the end of the numbered history by galloping then bisecting, O(log n) probes.
      if (!(await this.#artifacts.exists(this.#keyOf(1)))) return undefined;
      let lo = 1;
      let hi = 2;
      while (await this.#artifacts.exists(this.#keyOf(hi))) {
        lo = hi;
        hi *= 2;
      }
      while (hi - lo > 1) {
        const mid = Math.floor((lo + hi) / 2);
        if (await this.#artifacts.exists(this.#keyOf(mid))) lo = mid;
        else hi = mid;
      }
      n = lo;
    }
    while (await this.#artifacts.exists(this.#keyOf(n + 1))) n++;
    if (latest && latest.n === n) return latest;
    const found = await this.#read(this.#keyOf(n));
    if (!found) {
      throw new AuditIntegrityError(
        'bad-checkpoint',
        `audit checkpoint ${this.#keyOf(n)} disappeared while it was being read; start again`,
      );
    }
    return found;
  }

  /**
   * Writes checkpoint `n`; ConflictError (from the ArtifactStore) when another process wrote `n` first, in which
   * case the caller reads the newest again.
   */
  async write(n: number, head: { readonly seq: number; readonly hash: string }): Promise<AuditCheckpoint> {
    const body = {
      format: FORMAT,
      version: 1 as const,
      keyId: this.#keys.keyId,
      n,
      seq: head.seq,
      hash: head.hash,
      at: new Date().toISOString(),
    };
    const document: CheckpointDocument = { ...body, signature: this.#sign(body) };
    const text = `${JSON.stringify(document)}\n`;
    const key = this.#keyOf(n);
    await this.#artifacts.put(key, text, { ifNotExists: true, contentType: 'application/json' });
    await this.#artifacts.put(this.#latestKey, text, { contentType: 'application/json' });
    return { n, seq: head.seq, hash: head.hash, at: document.at, keyId: document.keyId, key };
  }

  #sign(fields: Omit<CheckpointDocument, 'signature'>): string {
    return createHmac('sha256', this.#keys.checkpointKey).update(canonicalJson(fields)).digest('hex');
  }

  async #read(key: string): Promise<AuditCheckpoint | undefined> {
    let text: string;
    try {
      const { body } = await this.#artifacts.get(key);
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of body) {
        size += (chunk as Buffer).byteLength;
        if (size > MAX_CHECKPOINT_BYTES) {
          body.destroy();
          throw forged(key, `it is larger than ${MAX_CHECKPOINT_BYTES} bytes`);
        }
        chunks.push(Buffer.from(chunk as Buffer));
      }
      text = Buffer.concat(chunks).toString('utf8');
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
    let doc: CheckpointDocument;
    try {
      doc = JSON.parse(text) as CheckpointDocument;
    } catch (cause) {
      throw forged(key, 'it is not JSON', cause);
    }
    if (
      typeof doc !== 'object' ||
      doc === null ||
      doc.format !== FORMAT ||
      doc.version !== 1 ||
      !Number.isSafeInteger(doc.n) ||
      doc.n < 1 ||
      !Number.isSafeInteger(doc.seq) ||
      doc.seq < 0 ||
      typeof doc.hash !== 'string' ||
      typeof doc.at !== 'string' ||
      typeof doc.signature !== 'string'
    ) {
      throw forged(key, `it is not an ${FORMAT} document`);
    }
    if (doc.keyId !== this.#keys.keyId) throw forged(key, `it names key id ${String(doc.keyId)}`);
    const { signature, ...fields } = doc;
    const expected = Buffer.from(this.#sign(fields), 'hex');
    const given = Buffer.from(signature, 'hex');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw forged(key, 'its signature does not match its contents');
    }
    return { n: doc.n, seq: doc.seq, hash: doc.hash, at: doc.at, keyId: doc.keyId, key };
  }
}

function forged(key: string, why: string, cause?: unknown): AuditIntegrityError {
  return new AuditIntegrityError(
    'bad-checkpoint',
    `audit checkpoint ${key} was not written by this log with its key (${why}): someone who can write the ArtifactStore ` +
      'changed it. Compare it with your copies of the checkpoints, remove it ' +
      'if it is not genuine, and start again',
    cause === undefined ? {} : { cause },
  );
}
