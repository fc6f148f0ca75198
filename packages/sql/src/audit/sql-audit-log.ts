import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { ArtifactStore, DomainEvent, Logger, MetadataStore, SecretStore } from '@mlplane/core';
import {
  AUDIT_GENESIS_HASH,
  AUDIT_LIMITS,
  AUDIT_LIST_PAGE,
  AUDIT_OUTCOMES,
  AUDIT_TIME_PATTERN,
  type AuditEntry,
  type AuditEntryFields,
  AuditIntegrityError,
  type AuditKeys,
  type AuditLog,
  type AuditOutcome,
  type AuditQuery,
  type AuditRecord,
  type AuditVerification,
  auditDetailsJson,
  auditEntryHash,
  auditKeys,
  ConflictError,
  decodePageToken,
  encodePageToken,
  foreignPageToken,
  type JsonValue,
  malformedPageToken,
  NotFoundError,
  type Page,
  quoteValue,
  resolveMaxResults,
  SECRET_NAME_PATTERN,
  unlessNotFound,
  ValidationError,
} from '@mlplane/core';
import type { Insertable, Kysely, Transaction } from 'kysely';
import { type SqlDialect, sqlDialect } from '../dialect/dialect.js';
import { type AuditCheckpoint, AuditCheckpoints } from './checkpoints.js';
import { auditFromEvent } from './from-event.js';
import { AUDIT_MIGRATIONS, AUDIT_OWNER, type AuditDatabase, type AuditLogRow, type AuditLogTable } from './schema.js';

type AuditRow = Insertable<AuditLogTable>;

export interface SqlAuditLogOptions {
  readonly store: MetadataStore;
  /**
   * Holds the secret the chain is keyed with (`keySecret`). When it is missing and the store is writable, a random
   * one is created there on first use; a read-only store without it refuses to open.
   */
  readonly secrets: SecretStore;
  /** Name of that secret; default `audit/chain-key`. */
  readonly keySecret?: string;
  /** Project recorded for events that carry none (see `auditFromEvent`); default `default`. */
  readonly defaultProject?: string;
  /**
   * Where signed checkpoints of the head are kept, outside the database. Without them nothing outside the database
   * remembers how far the log reached, so a restored backup or a deleted tail goes unnoticed after a restart.
   */
  readonly checkpoints?: {
    readonly artifacts: ArtifactStore;
    /** Key prefix in the ArtifactStore; default `audit/checkpoints`. */
    readonly prefix?: string;
    /**
     * How often the head is checkpointed when it moved, in ms (default 60 000); 0 writes checkpoints only on
     * `checkpoint()` and `close()`. Entries appended since the last checkpoint can be lost or truncated unnoticed.
     */
    readonly intervalMs?: number;
  };
  /**
   * Accepts that exactly these entries are gone: when opening finds the database behind the newest checkpoint by
   * this range, it records an `audit.loss.accepted` entry naming it and the checkpoint, and opens. Any other loss
   * still refuses.
   */
  readonly acceptLoss?: { readonly fromSeq: number; readonly toSeq: number };
  /** Receives periodic checkpoint failures. */
  readonly logger?: Logger;
}

export { AUDIT_OUTCOMES } from '@mlplane/core';
export const DEFAULT_AUDIT_KEY_SECRET = 'audit/chain-key';
export const DEFAULT_CHECKPOINT_INTERVAL_MS = 60_000;
/** Action of the entry that records an accepted loss. */
export const AUDIT_LOSS_ACCEPTED = 'audit.loss.accepted';
/** Action of the entry that records an unkeyed log being re-chained under a key. */
export const AUDIT_CHAIN_KEYED = 'audit.chain.keyed';
/** Longest actor, action, resource and project accepted, so one entry cannot bloat every scan. */
export const AUDIT_FIELD_LENGTH = AUDIT_LIMITS.fieldLength;
/** Entries read per round trip while verifying. */
const VERIFY_BATCH = 1000;
/** Times a checkpoint is retried when other processes keep writing the same number first. */
const CHECKPOINT_ATTEMPTS = 5;

type Trx = Transaction<AuditDatabase>;
type Db = Kysely<AuditDatabase>;
type Queryable = Db | Trx;

interface Head {
  readonly seq: number;
  readonly hash: string;
}

/** A head known to have been reached, and who knows it (for messages). */
interface Anchor extends Head {
  readonly source: string;
}

/** One thing verify found wrong, at the first seq it concerns. */
interface Problem {
  readonly seq: number;
  readonly reason: string;
}

interface WalkResult {
  readonly checked: number;
  /** Hash of the last entry checked (the starting hash when none was). */
  readonly lastHash: string;
  readonly problem?: Problem;
}

/**
 * The AuditLog on a MetadataStore (SQLite or PostgreSQL): one row per entry plus a head row. Appends lock the head
 * row (Postgres `SELECT ... FOR UPDATE`; SQLite's write transactions are already exclusive), so seq is gap-free and
 * the chain never forks even with many appending processes.
 *
 * The chain is keyed (HMAC-SHA256 under a key derived from a SecretStore secret), so someone who can write the
 * database but not read the secret cannot re-hash what they change. What the key cannot show, entries cut from the
 * end with the head moved back, the checkpoints show: signed copies of the head in an ArtifactStore, written
 * periodically and on close, that opening, appending and verifying compare the database with.
 */
export class SqlAuditLog implements AuditLog {
  readonly #store: MetadataStore;
  readonly #dialect: SqlDialect;
  readonly #defaultProject: string | undefined;
  readonly #keys: AuditKeys;
  readonly #keySecret: string;
  readonly #checkpoints: AuditCheckpoints | undefined;
  readonly #logger: Logger | undefined;
  /** The furthest head this instance appended, read through a check, or anchored: the head never moves behind it. */
  #known: Anchor = { seq: 0, hash: AUDIT_GENESIS_HASH, source: 'nothing yet' };
  /** Set when a checkpoint found the chain broken: appends refuse until the database is restored and reopened. */
  #failure: AuditIntegrityError | undefined;
  #loggedFailure: AuditIntegrityError | undefined;
  #checkpointing: Promise<unknown> = Promise.resolve();
  /** Events waiting for the next chain append: all those delivered while one runs go into the next, together. */
  readonly #pendingEvents: PendingEvent[] = [];
  #eventsDraining: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;

  private constructor(options: SqlAuditLogOptions, keys: AuditKeys, keySecret: string) {
    this.#store = options.store;
    this.#dialect = sqlDialect(options.store.dialect);
    this.#defaultProject = options.defaultProject;
    this.#keys = keys;
    this.#keySecret = keySecret;
    this.#logger = options.logger;
    this.#checkpoints = options.checkpoints
      ? new AuditCheckpoints({ artifacts: options.checkpoints.artifacts, keys, prefix: options.checkpoints.prefix })
      : undefined;
  }

  /**
   * Applies the audit migrations, gets (or creates) the chain key, and checks the database against the newest
   * checkpoint, then returns a ready log that checkpoints its head every `checkpoints.intervalMs`.
   * AuditIntegrityError when the database lost entries a checkpoint knows of (`lost-entries`, with the range and how
   * to proceed), when its chain after that checkpoint is broken, when the head record is missing, or when the key is
   * not the log's. NotFoundError when the key secret is missing from a read-only SecretStore.
   */
  static async open(options: SqlAuditLogOptions): Promise<SqlAuditLog> {
    const keySecret = validateOptions(options);
    await options.store.migrate(AUDIT_OWNER, AUDIT_MIGRATIONS);
    const keys = await resolveKeys(options.store, options.secrets, keySecret);
    const log = new SqlAuditLog(options, keys, keySecret);
    // Checkpoints under this key mean the log was keyed before, so a head without a key id is not an old log.
    await log.#bindKey((await log.#checkpoints?.newest()) !== undefined);
    await log.#checkOnOpen(options.acceptLoss);
    const intervalMs = options.checkpoints?.intervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS;
    if (log.#checkpoints && intervalMs > 0) {
      log.#timer = setInterval(() => log.#periodicCheckpoint(), intervalMs);
      log.#timer.unref();
    }
    return log;
  }

  get #db(): Db {
    return this.#store.db<AuditDatabase>();
  }

  /** The id of the key the chain is written with (safe to show: it reveals nothing of the key). */
  get keyId(): string {
    return this.#keys.keyId;
  }

  async append(record: AuditRecord): Promise<AuditEntry> {
    const prepared = prepare(record);
    const { entry, head } = await this.#store.transaction((trx: Trx) => this.#appendLocked(trx, prepared, null));
    this.#remember({ ...head, source: 'an append by this process' });
    return entry;
  }

  /**
   * Appends the entry `auditFromEvent` makes of a domain event, once per event id: a redelivered event returns the
   * entry already recorded, so an at-least-once relay can feed the log directly.
   *
   * Events delivered while an append transaction runs (a consumer handles up to 16 subjects at once) wait for it,
   * then go into the chain together, in arrival order, in one transaction (at most EVENTS_PER_APPEND): one head lock,
   * one tail check, one insert and one head update for all of them instead of each. Every entry is chained and keyed
   * exactly as one appended alone; each call resolves once its entry is committed, and a failed transaction fails
   * every call in it (the bus delivers those events again).
   */
  appendEvent(event: DomainEvent): Promise<AuditEntry> {
    if (typeof event?.id !== 'string' || event.id === '') {
      return Promise.reject(new ValidationError('event id must be a non-empty string', { field: 'id' }));
    }
    let prepared: Prepared;
    try {
      prepared = prepare(auditFromEvent(event, { defaultProject: this.#defaultProject }));
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<AuditEntry>((resolve, reject) => {
      this.#pendingEvents.push({ eventId: event.id, record: prepared, resolve, reject });
      this.#eventsDraining ??= this.#drainEvents();
    });
  }

  async #drainEvents(): Promise<void> {
    // Lets the events delivered in the same turn join the first transaction.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.#pendingEvents.length > 0) {
      const batch = this.#pendingEvents.splice(0, EVENTS_PER_APPEND);
      try {
        const { entries, head } = await this.#store.transaction((trx: Trx) => this.#appendEventsLocked(trx, batch));
        this.#remember({ ...head, source: 'an append by this process' });
        for (const [i, pending] of batch.entries()) pending.resolve(entries[i]!);
      } catch (err) {
        for (const pending of batch) pending.reject(err);
      }
    }
    this.#eventsDraining = undefined;
  }

  /** `batch`'s entries, in order: new ones chained after the head, those of events already recorded as they are. */
  async #appendEventsLocked(trx: Trx, batch: readonly PendingEvent[]): Promise<{ entries: AuditEntry[]; head: Head }> {
    if (this.#failure) throw this.#failure;
    let head: Head = await this.#lockHead(trx);
    await this.#checkTail(trx, head);
    const ids = [...new Set(batch.map((p) => p.eventId))];
    const recorded = new Map<string, AuditEntry>();
    for (const row of await trx.selectFrom('audit_log').selectAll().where('event_id', 'in', ids).execute()) {
      recorded.set(row.event_id!, toEntry(row));
    }
    const rows: AuditRow[] = [];
    const entries = batch.map((pending) => {
      const known = recorded.get(pending.eventId);
      if (known) return known;
      const { row, entry } = this.#chained(head, pending.record, pending.eventId);
      rows.push(row);
      recorded.set(pending.eventId, entry);
      head = entry;
      return entry;
    });
    if (rows.length > 0) {
      await trx.insertInto('audit_log').values(rows).execute();
      await trx.updateTable('audit_head').set({ seq: head.seq, hash: head.hash }).where('id', '=', 1).execute();
    }
    return { entries, head };
  }

  async #appendLocked(trx: Trx, record: Prepared, eventId: string | null): Promise<{ entry: AuditEntry; head: Head }> {
    if (this.#failure) throw this.#failure;
    const head = await this.#lockHead(trx);
    await this.#checkTail(trx, head);
    if (eventId !== null) {
      const seen = await trx.selectFrom('audit_log').selectAll().where('event_id', '=', eventId).executeTakeFirst();
      if (seen) return { entry: toEntry(seen), head };
    }
    const entry = await this.#insertAfter(trx, head, record, eventId);
    return { entry, head: entry };
  }

  async #insertAfter(trx: Trx, head: Head, record: Prepared, eventId: string | null): Promise<AuditEntry> {
    const { row, entry } = this.#chained(head, record, eventId);
    await trx.insertInto('audit_log').values(row).execute();
    await trx.updateTable('audit_head').set({ seq: entry.seq, hash: entry.hash }).where('id', '=', 1).execute();
    return entry;
  }

  /** The entry that extends the chain at `head` with `record`, and its row. */
  #chained(head: Head, record: Prepared, eventId: string | null): { row: AuditRow; entry: AuditEntry } {
    const { detailsJson, ...base } = record;
    const fields: AuditEntryFields = { ...base, seq: head.seq + 1, id: randomUUID() };
    const hash = auditEntryHash(head.hash, fields, this.#keys.chainKey);
    return {
      row: {
        seq: fields.seq,
        id: fields.id,
        at: fields.at,
        at_ms: Date.parse(fields.at),
        actor: fields.actor,
        action: fields.action,
        resource: fields.resource,
        project: fields.project,
        outcome: fields.outcome,
        details: detailsJson,
        prev_hash: head.hash,
        hash,
        event_id: eventId,
      },
      entry: { ...fields, prevHash: head.hash, hash },
    };
  }

  /**
   * Reads the head inside the transaction, holding its row lock on Postgres until commit. AuditIntegrityError when
   * the head record is gone, or behind a head this process already knows.
   */
  async #lockHead(trx: Trx): Promise<Head & { keyId: string | null }> {
    let q = trx.selectFrom('audit_head').select(['seq', 'hash', 'key_id']).where('id', '=', 1);
    if (this.#dialect.name === 'postgres') q = q.forUpdate();
    const row = await q.executeTakeFirst();
    if (!row) throw this.#missingHead();
    const head = { seq: Number(row.seq), hash: row.hash, keyId: row.key_id };
    this.#checkNotBehind(head);
    return head;
  }

  /** Appending extends the entry the head names: it must be there, unchanged, with nothing past it. */
  async #checkTail(db: Queryable, head: Head): Promise<void> {
    const rows = await db
      .selectFrom('audit_log')
      .select(['seq', 'hash'])
      .where('seq', '>=', head.seq)
      .orderBy('seq')
      .limit(2)
      .execute();
    const problem = tailProblem(head, rows);
    if (problem) {
      throw new AuditIntegrityError('broken-chain', `${problem.reason}. ${this.#howToRecover()}`, {
        firstBrokenSeq: problem.seq,
      });
    }
  }

  #checkNotBehind(head: Head): void {
    const known = this.#known;
    if (head.seq < known.seq) {
      throw this.#lostEntries({ fromSeq: head.seq + 1, toSeq: known.seq }, known.source, head.seq);
    }
    if (head.seq === known.seq && head.hash !== known.hash) {
      throw new AuditIntegrityError(
        'broken-chain',
        `the audit head at entry ${head.seq} does not match ${known.source}, which recorded that entry with another ` +
          `hash: the log was rolled back and rewritten. ${this.#howToRecover()}`,
        { firstBrokenSeq: head.seq },
      );
    }
  }

  #remember(anchor: Anchor): void {
    if (anchor.seq > this.#known.seq) this.#known = anchor;
  }

  #missingHead(): AuditIntegrityError {
    return new AuditIntegrityError(
      'missing-head',
      "the audit log's head record (table audit_head, row id 1) is missing: it was deleted outside the log, so " +
        'nothing shows whether entries were removed from its end. Run verify() to see the extent, then restore the ' +
        `database from a backup${this.#checkpoints ? ` (the newest checkpoint under ${this.#checkpoints.location} names the head it must reach)` : ''}`,
    );
  }

  #lostEntries(lost: { fromSeq: number; toSeq: number }, source: string, headSeq: number): AuditIntegrityError {
    const range = lost.fromSeq === lost.toSeq ? `entry ${lost.fromSeq}` : `entries ${lost.fromSeq} to ${lost.toSeq}`;
    return new AuditIntegrityError(
      'lost-entries',
      `the database lost audit ${range}: ${source} records the log at entry ${lost.toSeq}, but the database's head ` +
        `is at ${headSeq}. It was restored from an older backup, lost its write-ahead log in a crash, or its newest ` +
        `entries were deleted and the head moved back. Restore the database from a backup that holds entry ${lost.toSeq} ` +
        'and start again; or, to accept that these entries are gone, open the log once with ' +
        `acceptLoss { fromSeq: ${lost.fromSeq}, toSeq: ${lost.toSeq} } (config management.audit.acceptLoss), which ` +
        'records the loss in the log',
      { lost },
    );
  }

  #howToRecover(): string {
    return (
      'Run verify() to see the extent, and restore the database from a backup taken before the damage; ' +
      'the log refuses to extend a chain it cannot vouch for'
    );
  }

  // ------------------------------------------------------------------ opening

  /**
   * Records the key id on a new log, re-chains an unkeyed one under the key, refuses a log written with another key.
   * `anchored`: checkpoints of this key exist, so the log was keyed before.
   */
  async #bindKey(anchored: boolean): Promise<void> {
    const keyed = await this.#store.transaction(async (trx: Trx) => {
      const head = await this.#lockHead(trx);
      if (head.keyId === this.#keys.keyId) return undefined;
      if (head.keyId !== null) {
        throw new AuditIntegrityError(
          'wrong-key',
          `the audit log was written with key id ${head.keyId}, but secret '${this.#keySecret}' holds key id ` +
            `${this.#keys.keyId}: point the SecretStore at the one holding the log's key, or restore that secret. A ` +
            'log cannot be verified or extended under another key',
        );
      }
      if (head.seq === 0) {
        await trx.updateTable('audit_head').set({ key_id: this.#keys.keyId }).where('id', '=', 1).execute();
        return undefined;
      }
      if (anchored) {
        // Re-chaining would vouch for whatever unkeyed chain the database now holds.
        throw new AuditIntegrityError(
          'wrong-key',
          'the audit head no longer names the key its chain was written with, though checkpoints of that key exist ' +
            `under ${this.#checkpoints?.location}: the key id was cleared outside the log, as someone passing off an ` +
            'unkeyed chain would. Run verify() to see the extent and restore the database from a backup',
        );
      }
      return this.#keyUnkeyedChain(trx, head);
    });
    if (keyed) this.#remember({ ...keyed, source: 're-chaining the log under its key' });
  }

  /**
   * A log written before the chain was keyed: checks its unkeyed chain whole, then rewrites every entry's hashes
   * under the key (content, seq and ids unchanged) and records that in an `audit.chain.keyed` entry.
   */
  async #keyUnkeyedChain(trx: Trx, head: Head): Promise<Head> {
    const unkeyed = await walk(trx, { from: 1, to: head.seq, prev: AUDIT_GENESIS_HASH });
    const rows = await trx
      .selectFrom('audit_log')
      .select(['seq', 'hash'])
      .where('seq', '>=', head.seq)
      .orderBy('seq')
      .limit(2)
      .execute();
    const problem = unkeyed.problem ?? tailProblem(head, rows);
    if (problem) {
      throw new AuditIntegrityError(
        'broken-chain',
        `the audit log was written before its chain was keyed, and its unkeyed chain is already broken at entry ` +
          `${problem.seq} (${problem.reason}), so it cannot be keyed without vouching for the damage. Restore the ` +
          'database from a backup taken before the damage',
        { firstBrokenSeq: problem.seq },
      );
    }
    let prev = AUDIT_GENESIS_HASH;
    for (let after = 0; after < head.seq; ) {
      const batch = await trx
        .selectFrom('audit_log')
        .selectAll()
        .where('seq', '>', after)
        .where('seq', '<=', head.seq)
        .orderBy('seq')
        .limit(VERIFY_BATCH)
        .execute();
      // Cannot happen after the walk above found 1..head.seq whole; guards the loop all the same.
      if (batch.length === 0) break;
      for (const row of batch) {
        const hash = auditEntryHash(prev, toEntry(row), this.#keys.chainKey);
        await trx.updateTable('audit_log').set({ prev_hash: prev, hash }).where('seq', '=', row.seq).execute();
        prev = hash;
        after = Number(row.seq);
      }
    }
    const rechained = { seq: head.seq, hash: prev };
    await trx.updateTable('audit_head').set({ hash: prev, key_id: this.#keys.keyId }).where('id', '=', 1).execute();
    return this.#insertAfter(
      trx,
      rechained,
      prepare({
        actor: 'system',
        action: AUDIT_CHAIN_KEYED,
        resource: 'audit:chain',
        project: this.#defaultProject ?? 'default',
        outcome: 'succeeded',
        details: { keyId: this.#keys.keyId, entries: head.seq, unkeyedHeadHash: head.hash },
      }),
      null,
    );
  }

  /**
   * Compares the database with the newest checkpoint: the head must have reached it, the entry it names must still
   * carry its hash, and every entry after it must chain. With no checkpoint yet, the whole chain is checked once.
   * Then anchors the head found with a new checkpoint.
   */
  async #checkOnOpen(acceptLoss: SqlAuditLogOptions['acceptLoss']): Promise<void> {
    const checkpoints = this.#checkpoints;
    const snapshot = await this.#snapshot(this.#db);
    if (!snapshot.head) throw this.#missingHead();
    const head = snapshot.head;
    if (!checkpoints) {
      this.#remember({ ...head, source: 'the head found on opening' });
      return;
    }
    const newest = await checkpoints.newest();
    if (newest && newest.seq > head.seq && snapshot.maxSeq <= head.seq && !(await this.#lossAcceptanceOf(newest))) {
      const lost = { fromSeq: head.seq + 1, toSeq: newest.seq };
      if (acceptLoss?.fromSeq !== lost.fromSeq || acceptLoss.toSeq !== lost.toSeq) {
        throw this.#lostEntries(lost, describeCheckpoint(newest), head.seq);
      }
      await this.#acceptLoss(newest, lost);
    } else {
      const problem = await this.#checkExtends(newest, { head, maxSeq: snapshot.maxSeq });
      if (problem) {
        throw new AuditIntegrityError(
          'broken-chain',
          `the audit log does not extend ${newest ? describeCheckpoint(newest) : 'its first entry'}: ${problem.reason}. ` +
            this.#howToRecover(),
          { firstBrokenSeq: problem.seq },
        );
      }
      this.#remember({ ...head, source: 'the head checked on opening' });
      await this.#queueCheckpoint({ ...head, newestN: newest?.n });
      return;
    }
    await this.checkpoint();
  }

  /**
   * Whether the database extends `base` (a checkpoint; the start of the chain when undefined) up to the snapshot's
   * head: the checkpointed entry still carries its hash, every later entry chains to it, the head names the last
   * entry and nothing lies past it. Returns the first problem.
   */
  async #checkExtends(
    base: AuditCheckpoint | undefined,
    snapshot: { readonly head: Head; readonly maxSeq: number },
  ): Promise<Problem | undefined> {
    const head = snapshot.head;
    if (snapshot.maxSeq > head.seq) {
      return {
        seq: head.seq + 1,
        reason: `entry ${head.seq + 1} lies past the head (${head.seq}): it was not appended through the log, or the head was moved back`,
      };
    }
    let from: Head = { seq: 0, hash: AUDIT_GENESIS_HASH };
    if (base && base.seq > 0) {
      const row =
        base.seq <= head.seq
          ? await this.#db.selectFrom('audit_log').select('hash').where('seq', '=', base.seq).executeTakeFirst()
          : undefined;
      if (row?.hash === base.hash) {
        from = base;
      } else {
        // A checkpoint superseded by an accepted loss: the chain resumes at the acceptance entry.
        const accepted = await this.#lossAcceptanceOf(base);
        if (accepted) from = { seq: accepted.seq - 1, hash: accepted.prevHash };
        else if (base.seq > head.seq) {
          return {
            seq: head.seq + 1,
            reason: `entries ${head.seq + 1} to ${base.seq} are missing: the head is at ${head.seq}`,
          };
        } else {
          return {
            seq: base.seq,
            reason: `entry ${base.seq} ${row ? 'carries another hash than' : 'is missing, though it is recorded by'} the checkpoint: the log was rolled back and rewritten, or edited`,
          };
        }
      }
    }
    const walked = await walk(this.#db, {
      from: from.seq + 1,
      to: head.seq,
      prev: from.hash,
      key: this.#keys.chainKey,
    });
    if (walked.problem) return walked.problem;
    if (walked.lastHash !== head.hash) {
      return {
        seq: head.seq,
        reason: `entry ${head.seq}'s hash does not match the head's: the last entry was replaced`,
      };
    }
    return undefined;
  }

  /** The `audit.loss.accepted` entry that names checkpoint `cp`, when one was appended and carries a valid hash. */
  async #lossAcceptanceOf(cp: AuditCheckpoint): Promise<{ seq: number; prevHash: string } | undefined> {
    const rows = await this.#db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', AUDIT_LOSS_ACCEPTED)
      .orderBy('seq', 'desc')
      .limit(10)
      .execute();
    for (const row of rows) {
      let entry: AuditEntry;
      try {
        entry = toEntry(row);
      } catch {
        continue;
      }
      const named = entry.details.checkpoint as { n?: unknown; seq?: unknown; hash?: unknown } | undefined;
      if (named?.n !== cp.n || named.seq !== cp.seq || named.hash !== cp.hash) continue;
      if (auditEntryHash(entry.prevHash, entry, this.#keys.chainKey) !== row.hash) continue;
      return { seq: entry.seq, prevHash: entry.prevHash };
    }
    return undefined;
  }

  async #acceptLoss(cp: AuditCheckpoint, lost: { fromSeq: number; toSeq: number }): Promise<void> {
    const entry = await this.#store.transaction(async (trx: Trx) => {
      const head = await this.#lockHead(trx);
      await this.#checkTail(trx, head);
      return this.#insertAfter(
        trx,
        head,
        prepare({
          actor: 'system',
          action: AUDIT_LOSS_ACCEPTED,
          resource: 'audit:chain',
          project: this.#defaultProject ?? 'default',
          outcome: 'succeeded',
          details: {
            fromSeq: lost.fromSeq,
            toSeq: lost.toSeq,
            checkpoint: { n: cp.n, seq: cp.seq, hash: cp.hash, at: cp.at, key: cp.key },
          },
        }),
        null,
      );
    });
    this.#logger?.warn(
      { lost, checkpoint: cp.key, entry: entry.seq },
      'audit entries lost from the database were accepted as gone; the loss is recorded in the log',
    );
    this.#remember({ ...entry, source: 'the loss acceptance' });
  }

  /** Head and highest stored seq from one statement (one snapshot), so a concurrent append cannot look like an entry past the head. */
  async #snapshot(db: Queryable): Promise<{ head: Head | undefined; maxSeq: number }> {
    const row = await db
      .selectFrom('audit_head')
      .select([
        'seq',
        'hash',
        (eb) =>
          eb
            .selectFrom('audit_log')
            .select((e) => e.fn.max('seq').as('m'))
            .as('max_seq'),
      ])
      .where('id', '=', 1)
      .executeTakeFirst();
    if (row) return { head: { seq: Number(row.seq), hash: row.hash }, maxSeq: Number(row.max_seq ?? 0) };
    const max = await db
      .selectFrom('audit_log')
      .select((e) => e.fn.max('seq').as('m'))
      .executeTakeFirst();
    return { head: undefined, maxSeq: Number(max?.m ?? 0) };
  }

  // ------------------------------------------------------------------ checkpoints

  /**
   * Writes a signed checkpoint of the head to the ArtifactStore after checking that the database extends the newest
   * one (so a checkpoint never vouches for a rolled-back or edited tail); returns the newest checkpoint, or undefined
   * without an ArtifactStore or while the log is empty. AuditIntegrityError when the check fails; appends refuse from
   * then on. Calls run one at a time.
   */
  checkpoint(): Promise<AuditCheckpoint | undefined> {
    return this.#queueCheckpoint();
  }

  #queueCheckpoint(verified?: Head & { readonly newestN: number | undefined }): Promise<AuditCheckpoint | undefined> {
    const run = this.#checkpointing.then(() => this.#checkpointOnce(verified));
    this.#checkpointing = run.catch(() => undefined);
    return run;
  }

  /**
   * `verified`: a head whose chain from checkpoint `newestN` was just checked (on opening); when the newest checkpoint
   * and the head are still those, the check is not repeated.
   */
  async #checkpointOnce(
    verified?: Head & { readonly newestN: number | undefined },
  ): Promise<AuditCheckpoint | undefined> {
    const checkpoints = this.#checkpoints;
    if (!checkpoints) return undefined;
    if (this.#failure) throw this.#failure;
    for (let attempt = 1; ; attempt++) {
      const newest = await checkpoints.newest();
      const snapshot = await this.#snapshot(this.#db);
      try {
        if (!snapshot.head) throw this.#missingHead();
        const head = snapshot.head;
        this.#checkNotBehind(head);
        if (newest && newest.seq === head.seq && newest.hash === head.hash) {
          this.#remember({ ...head, source: describeCheckpoint(newest) });
          return newest;
        }
        if (!newest && head.seq === 0) return undefined;
        const unchanged =
          verified !== undefined &&
          verified.newestN === newest?.n &&
          verified.seq === head.seq &&
          verified.hash === head.hash &&
          snapshot.maxSeq <= head.seq;
        const problem = unchanged ? undefined : await this.#checkExtends(newest, { head, maxSeq: snapshot.maxSeq });
        if (problem) {
          throw new AuditIntegrityError(
            'broken-chain',
            `the audit log no longer extends ${newest ? describeCheckpoint(newest) : 'its first entry'}: ` +
              `${problem.reason}. ${this.#howToRecover()}`,
            { firstBrokenSeq: problem.seq },
          );
        }
        const written = await checkpoints.write((newest?.n ?? 0) + 1, head);
        this.#remember({ ...head, source: describeCheckpoint(written) });
        return written;
      } catch (err) {
        if (err instanceof ConflictError && attempt < CHECKPOINT_ATTEMPTS) continue;
        if (err instanceof AuditIntegrityError) this.#failure = err;
        throw err;
      }
    }
  }

  #periodicCheckpoint(): void {
    this.checkpoint().catch((err: unknown) => {
      if (err instanceof AuditIntegrityError) {
        // Once per failure, not once per interval: it stays until the database is restored.
        if (err === this.#loggedFailure) return;
        this.#loggedFailure = err;
        this.#logger?.error({ err }, 'the audit log failed its checkpoint check; appends are refused');
      } else {
        this.#logger?.warn({ err }, 'could not checkpoint the audit head; retrying at the next interval');
      }
    });
  }

  /**
   * Stops the periodic checkpoints and writes a last one, so a clean stop leaves the head anchored. Idempotent.
   * Does not close the MetadataStore.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#timer);
      this.#timer = undefined;
      if (this.#failure) return;
      await this.checkpoint();
    })();
    return this.#closing;
  }

  // ------------------------------------------------------------------ reading
  async list(query: AuditQuery = {}): Promise<Page<AuditEntry>> {
    const maxResults = resolveMaxResults(query.maxResults, AUDIT_LIST_PAGE);
    const order = query.order ?? 'desc';
    if (order !== 'asc' && order !== 'desc') {
      throw new ValidationError(`order must be 'asc' or 'desc', got ${quoteValue(order)}`, { field: 'order' });
    }
    for (const field of ['actor', 'action', 'resource', 'project'] as const) {
      const value = query[field];
      if (value !== undefined && (typeof value !== 'string' || value === '')) {
        throw new ValidationError(`${field} must be a non-empty string`, { field });
      }
      if (value !== undefined && value.length > AUDIT_FIELD_LENGTH) {
        throw new ValidationError(
          `${field} has ${value.length} chars; the fieldLength limit is ${AUDIT_FIELD_LENGTH}`,
          { field },
        );
      }
    }
    if (query.outcome !== undefined && !AUDIT_OUTCOMES.includes(query.outcome)) {
      throw new ValidationError(
        `outcome must be one of ${AUDIT_OUTCOMES.join(', ')}, got ${quoteValue(query.outcome)}`,
        {
          field: 'outcome',
        },
      );
    }
    for (const field of ['from', 'to'] as const) {
      const value = query[field];
      if (value !== undefined && (!(value instanceof Date) || Number.isNaN(value.getTime()))) {
        throw new ValidationError(`${field} must be a valid Date`, { field });
      }
    }
    const scope = queryHash([
      query.actor,
      query.action,
      query.resource,
      query.project,
      query.outcome,
      query.from?.getTime(),
      query.to?.getTime(),
      order,
    ]);
    let after: number | undefined;
    if (query.pageToken !== undefined) {
      const state = decodePageToken<{ s?: unknown; q?: unknown }>(query.pageToken);
      if (!state || typeof state !== 'object' || !Number.isSafeInteger(state.s)) {
        throw malformedPageToken();
      }
      if (state.q !== scope) {
        throw foreignPageToken('filters and order');
      }
      after = state.s as number;
    }
    let q = this.#db.selectFrom('audit_log').selectAll();
    if (query.actor !== undefined) q = q.where('actor', '=', query.actor);
    if (query.resource !== undefined) q = q.where('resource', '=', query.resource);
    if (query.project !== undefined) q = q.where('project', '=', query.project);
    if (query.outcome !== undefined) q = q.where('outcome', '=', query.outcome);
    if (query.action !== undefined) {
      const action = query.action;
      q = action.endsWith('.*')
        ? q.where((eb) => this.#dialect.like(eb.ref('action'), `${escapeLike(action.slice(0, -1))}%`))
        : q.where('action', '=', action);
    }
    if (query.from !== undefined) q = q.where('at_ms', '>=', query.from.getTime());
    if (query.to !== undefined) q = q.where('at_ms', '<', query.to.getTime());
    if (after !== undefined) q = q.where('seq', order === 'asc' ? '>' : '<', after);
    const rows = await q
      .orderBy('seq', order)
      .limit(maxResults + 1)
      .execute();
    const page = rows.slice(0, maxResults);
    const items = page.map(toEntry);
    const last = page.at(-1);
    return rows.length > maxResults && last
      ? { items, nextPageToken: encodePageToken({ s: Number(last.seq), q: scope }) }
      : { items };
  }

  async head(): Promise<{ readonly seq: number; readonly hash: string } | undefined> {
    const row = await this.#db.selectFrom('audit_head').select(['seq', 'hash']).where('id', '=', 1).executeTakeFirst();
    if (!row) throw this.#missingHead();
    const head = { seq: Number(row.seq), hash: row.hash };
    this.#checkNotBehind(head);
    return head.seq === 0 ? undefined : head;
  }

  async verify(range: { readonly fromSeq?: number; readonly toSeq?: number } = {}): Promise<AuditVerification> {
    for (const field of ['fromSeq', 'toSeq'] as const) {
      const value = range[field];
      if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) {
        throw new ValidationError(`${field} must be a positive integer, got ${String(value)}`, { field });
      }
    }
    // Anchors are read before the snapshot: heads only move forward, so an honest database has reached them.
    const anchors: Anchor[] = [this.#known];
    const newest = await this.#checkpoints?.newest();
    if (newest) anchors.push({ seq: newest.seq, hash: newest.hash, source: describeCheckpoint(newest) });
    const db = this.#db;
    const { head, maxSeq } = await this.#snapshot(db);
    const problems: Problem[] = [];
    const lastKnown = Math.max(head?.seq ?? 0, ...anchors.map((a) => a.seq));
    const end = Math.max(lastKnown, maxSeq);
    const from = range.fromSeq ?? 1;
    const to = Math.min(range.toSeq ?? end, end);
    let checked = 0;
    let lastHash: string | undefined;
    if (from <= to) {
      let prev: string | undefined = AUDIT_GENESIS_HASH;
      if (from > 1) {
        const before = await db
          .selectFrom('audit_log')
          .select('hash')
          .where('seq', '=', from - 1)
          .executeTakeFirst();
        prev = before?.hash;
        if (prev === undefined) {
          problems.push({
            seq: from - 1,
            reason: `entry ${from - 1} is missing, so entry ${from} cannot be linked to it`,
          });
        }
      }
      if (prev !== undefined) {
        const walked = await walk(db, { from, to, prev, key: this.#keys.chainKey });
        checked = walked.checked;
        if (walked.problem) problems.push(walked.problem);
        else lastHash = walked.lastHash;
      }
    }
    const coversTail = range.toSeq === undefined || range.toSeq >= end;
    if (!head) {
      problems.push({
        seq: lastKnown + 1,
        reason:
          'the head record (table audit_head, row id 1) is missing: nothing shows whether entries after ' +
          `${lastKnown} were removed`,
      });
    } else if (coversTail) {
      if (maxSeq > head.seq) {
        problems.push({
          seq: head.seq + 1,
          reason: `entry ${head.seq + 1} lies past the head (${head.seq}): it was not appended through the log, or the head was moved back`,
        });
      } else if (head.seq > 0 && lastHash !== undefined && to === head.seq && lastHash !== head.hash) {
        problems.push({
          seq: head.seq,
          reason: `entry ${head.seq}'s hash does not match the head's: the last entry was replaced`,
        });
      }
    }
    for (const anchor of anchors) {
      if (anchor.seq === 0 || anchor.seq < from || anchor.seq > (range.toSeq ?? Number.POSITIVE_INFINITY)) continue;
      if (head && head.seq < anchor.seq) {
        problems.push({
          seq: head.seq + 1,
          reason: `the head is at ${head.seq}, behind ${anchor.source}, which records the log at entry ${anchor.seq}: entries were lost or cut off`,
        });
        continue;
      }
      const row = await db.selectFrom('audit_log').select('hash').where('seq', '=', anchor.seq).executeTakeFirst();
      if (row && row.hash !== anchor.hash) {
        problems.push({
          seq: anchor.seq,
          reason: `entry ${anchor.seq} does not match ${anchor.source}: the log was rewritten at or before entry ${anchor.seq}`,
        });
      }
    }
    if (problems.length === 0) return { ok: true, checkedEntries: checked };
    const reasons = [...new Map(problems.sort((a, b) => a.seq - b.seq).map((p) => [p.reason, p])).values()];
    return {
      ok: false,
      checkedEntries: checked,
      firstBrokenSeq: reasons[0]!.seq,
      reason: reasons.map((p) => p.reason).join('; '),
    };
  }
}

/** Checks the chain over [from, to] from the hash `prev`; stops at the first problem. */
async function walk(
  db: Queryable,
  range: { readonly from: number; readonly to: number; readonly prev: string; readonly key?: Uint8Array },
): Promise<WalkResult> {
  const { from, to, key } = range;
  let expectedPrev = range.prev;
  let expectedSeq = from;
  let checked = 0;
  const broken = (seq: number, reason: string): WalkResult => ({
    checked,
    lastHash: expectedPrev,
    problem: { seq, reason },
  });
  if (from > to) return { checked, lastHash: expectedPrev };
  for (;;) {
    const rows = await db
      .selectFrom('audit_log')
      .selectAll()
      .where('seq', '>=', expectedSeq)
      .where('seq', '<=', to)
      .orderBy('seq')
      .limit(VERIFY_BATCH)
      .execute();
    for (const row of rows) {
      const seq = Number(row.seq);
      if (seq !== expectedSeq) {
        return broken(
          expectedSeq,
          `entry ${expectedSeq} is missing: the chain jumps from ${expectedSeq - 1} to ${seq}`,
        );
      }
      if (row.prev_hash !== expectedPrev) {
        return broken(
          seq,
          seq === 1
            ? 'entry 1 does not start from the genesis hash'
            : `entry ${seq}'s prevHash does not match the hash of entry ${seq - 1}`,
        );
      }
      let entry: AuditEntry;
      try {
        entry = toEntry(row);
      } catch {
        return broken(seq, `entry ${seq}'s details are not valid JSON`);
      }
      if (auditEntryHash(entry.prevHash, entry, key) !== row.hash) {
        return broken(seq, `entry ${seq}'s hash does not match its contents: it was changed after it was written`);
      }
      expectedPrev = row.hash;
      expectedSeq = seq + 1;
      checked++;
    }
    if (rows.length < VERIFY_BATCH) break;
  }
  if (expectedSeq <= to) {
    return broken(
      expectedSeq,
      `entry ${expectedSeq} is missing: the log ends at ${expectedSeq - 1} but entries up to ${to} were written`,
    );
  }
  return { checked, lastHash: expectedPrev };
}

/** What is wrong with the entries at and after the head (`rows`: the first two with seq >= head.seq), if anything. */
function tailProblem(head: Head, rows: readonly { seq: number; hash: string }[]): Problem | undefined {
  let rest = rows;
  if (head.seq > 0) {
    const [last] = rows;
    if (!last || Number(last.seq) !== head.seq) {
      return { seq: head.seq, reason: `entry ${head.seq}, which the head names as the last, is missing` };
    }
    if (last.hash !== head.hash) {
      return {
        seq: head.seq,
        reason: `entry ${head.seq}'s hash does not match the head's: the last entry was replaced`,
      };
    }
    rest = rows.slice(1);
  }
  if (rest.length > 0) {
    return {
      seq: head.seq + 1,
      reason: `entry ${Number(rest[0]!.seq)} lies past the head (${head.seq}): it was not appended through the log, or the head was moved back`,
    };
  }
  return undefined;
}

function describeCheckpoint(cp: AuditCheckpoint): string {
  return `checkpoint ${cp.n} (${cp.key}, written ${cp.at})`;
}

function validateOptions(options: SqlAuditLogOptions): string {
  if (typeof options !== 'object' || options === null) throw new ValidationError('SqlAuditLog needs options');
  if (!options.secrets || typeof options.secrets.get !== 'function') {
    throw new ValidationError('SqlAuditLog needs a SecretStore to hold the key its chain is written with', {
      field: 'secrets',
    });
  }
  const keySecret = options.keySecret ?? DEFAULT_AUDIT_KEY_SECRET;
  if (typeof keySecret !== 'string' || !SECRET_NAME_PATTERN.test(keySecret)) {
    throw new ValidationError(`keySecret '${String(keySecret)}' is not a valid secret name`, { field: 'keySecret' });
  }
  const intervalMs = options.checkpoints?.intervalMs;
  if (intervalMs !== undefined && (!Number.isSafeInteger(intervalMs) || intervalMs < 0)) {
    throw new ValidationError(`checkpoints.intervalMs must be a non-negative integer, got ${String(intervalMs)}`, {
      field: 'checkpoints.intervalMs',
    });
  }
  const accept = options.acceptLoss;
  if (accept !== undefined) {
    if (
      !Number.isSafeInteger(accept?.fromSeq) ||
      !Number.isSafeInteger(accept.toSeq) ||
      accept.fromSeq < 1 ||
      accept.toSeq < accept.fromSeq
    ) {
      throw new ValidationError('acceptLoss needs integers 1 <= fromSeq <= toSeq', { field: 'acceptLoss' });
    }
  }
  return keySecret;
}

/**
 * The chain key from the SecretStore. A missing secret is created (32 random bytes, base64) when the store is
 * writable and the log has not been keyed yet; the creation runs under the head lock, so processes opening the log
 * together agree on one key.
 */
async function resolveKeys(store: MetadataStore, secrets: SecretStore, name: string): Promise<AuditKeys> {
  const existing = await readSecret(secrets, name);
  if (existing !== undefined) return keysOf(existing, name);
  // Decided under the head lock: another process may be creating the key and binding the log to it right now.
  return store.transaction<AuditKeys, AuditDatabase>(async (trx) => {
    let q = trx.selectFrom('audit_head').select(['seq', 'key_id']).where('id', '=', 1);
    if (sqlDialect(store.dialect).name === 'postgres') q = q.forUpdate();
    const head = await q.executeTakeFirst();
    const created = await readSecret(secrets, name);
    if (created !== undefined) return keysOf(created, name);
    if (head?.key_id) {
      throw new AuditIntegrityError(
        'wrong-key',
        `the audit chain key (secret '${name}') is missing from the SecretStore, but the log was written with key id ` +
          `${head.key_id} (${Number(head.seq)} entries): restore that secret, or point the SecretStore at the one ` +
          'holding it. A new key would leave the log unverifiable and its checkpoints unread, so none is created',
      );
    }
    const set = secrets.set?.bind(secrets);
    if (!secrets.capabilities.writable || !set) {
      throw new NotFoundError(
        `the audit chain key (secret '${name}') does not exist and the SecretStore is read-only, so it cannot be ` +
          'created: store 32 random bytes there under that name (for example `openssl rand -base64 32`) and start again',
      );
    }
    const value = randomBytes(32).toString('base64');
    await set(name, value);
    return keysOf(value, name);
  });
}

function readSecret(secrets: SecretStore, name: string): Promise<string | undefined> {
  return unlessNotFound(secrets.get(name));
}

function keysOf(secret: string, name: string): AuditKeys {
  try {
    return auditKeys(secret);
  } catch (cause) {
    throw new ValidationError(`the audit chain key in secret '${name}' is too short: ${(cause as Error).message}`, {
      field: 'keySecret',
      cause,
    });
  }
}

/** Most events chained in one append transaction (13 parameters a row, within every driver's limit). */
const EVENTS_PER_APPEND = 200;

interface PendingEvent {
  readonly eventId: string;
  readonly record: Prepared;
  readonly resolve: (entry: AuditEntry) => void;
  readonly reject: (err: unknown) => void;
}

interface Prepared extends Required<AuditRecord> {
  readonly detailsJson: string;
}

function requireText(value: unknown, field: string): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new ValidationError(`${field} must be a non-empty string`, { field });
  }
  if (value.length > AUDIT_FIELD_LENGTH) {
    throw new ValidationError(`${field} has ${value.length} chars; the fieldLength limit is ${AUDIT_FIELD_LENGTH}`, {
      field,
    });
  }
  return value;
}

/** Validates a record and fixes `at` and the canonical details text that the hash and the row will share. */
function prepare(record: AuditRecord): Prepared {
  if (typeof record !== 'object' || record === null) throw new ValidationError('record must be an object');
  const actor = requireText(record.actor, 'actor');
  const action = requireText(record.action, 'action');
  const resource = requireText(record.resource, 'resource');
  const project = requireText(record.project, 'project');
  if (!AUDIT_OUTCOMES.includes(record.outcome)) {
    throw new ValidationError(
      `outcome must be one of ${AUDIT_OUTCOMES.join(', ')}, got ${quoteValue(record.outcome)}`,
      {
        field: 'outcome',
      },
    );
  }
  const at = record.at ?? new Date().toISOString();
  if (
    typeof at !== 'string' ||
    !AUDIT_TIME_PATTERN.test(at) ||
    Number.isNaN(Date.parse(at)) ||
    new Date(at).toISOString() !== at
  ) {
    throw new ValidationError(
      `at must be ISO-8601 UTC with milliseconds (2025-03-01T12:00:00.000Z), got ${quoteValue(at)}`,
      {
        field: 'at',
      },
    );
  }
  if (typeof record.details !== 'object' || record.details === null || Array.isArray(record.details)) {
    throw new ValidationError('details must be a JSON object', { field: 'details' });
  }
  const detailsJson = auditDetailsJson(record.details);
  // Stored and hashed in the form it reads back as, so verify() recomputes the same hash.
  const details = JSON.parse(detailsJson) as Record<string, JsonValue>;
  return { actor, action, resource, project, outcome: record.outcome, at, details, detailsJson };
}

function toEntry(row: AuditLogRow): AuditEntry {
  return {
    seq: Number(row.seq),
    id: row.id,
    at: row.at,
    actor: row.actor,
    action: row.action,
    resource: row.resource,
    project: row.project,
    outcome: row.outcome as AuditOutcome,
    details: JSON.parse(row.details) as Record<string, JsonValue>,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

function queryHash(parts: unknown): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('base64url').slice(0, 16);
}
