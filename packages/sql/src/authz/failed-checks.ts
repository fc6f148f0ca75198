import { ALL_PROJECTS, type AuditRecord, type JsonValue } from '@mlplane/core';

/** Why a presented token secret was refused; the audit log records it, the caller never learns it. */
export type FailedCheckReason = 'malformed' | 'unknown' | 'wrong secret' | 'revoked' | 'expired';

export interface FailedCheck {
  readonly reason: FailedCheckReason;
  /** The token the secret named, only when that token exists: ids of unknown tokens are the caller's invention. */
  readonly tokenId?: string;
  /** Where the secret came from (VerifyTokenContext.source). */
  readonly source?: string;
}

export interface FailedCheckAuditOptions {
  /** Length of a coalescing window; default FAILED_CHECK_WINDOW_MS. */
  readonly windowMs?: number;
  /**
   * Distinct (source, reason, token) groups kept per window; default FAILED_CHECK_MAX_GROUPS. Failures beyond them are
   * counted per reason alone, so memory and entries stay bounded however many sources or ids a flood uses.
   */
  readonly maxGroups?: number;
  /** Epoch milliseconds; tests pass their own clock. */
  readonly now?: () => number;
}

export const FAILED_CHECK_WINDOW_MS = 60_000;
export const FAILED_CHECK_MAX_GROUPS = 1000;

interface Group {
  readonly reason: FailedCheckReason;
  readonly tokenId: string | undefined;
  readonly source: string | undefined;
  /** Set for the per-reason groups that take failures once `maxGroups` is reached. */
  readonly overflow: boolean;
  /** Failures after the first, written together when the window closes. */
  pending: number;
  firstPendingAt: number;
  lastPendingAt: number;
}

interface Window {
  readonly end: number;
  readonly groups: Map<string, Group>;
}

/**
 * Writes failed token checks to the audit log without letting a flood of bad secrets flood the disk. Failures are
 * grouped by source, reason and token per window: the first failure of a group is written at once (`count` 1), so
 * a single failed check is visible immediately; the group's later failures in the window are counted and written
 * as one entry (`count` n, `coalesced: true`, the first and last time) when the window closes, on the next failure
 * after it, or on `flush`. At most `maxGroups` groups exist per window, plus one per reason for the rest, so a
 * window writes at most 2 × (maxGroups + 5) entries and the counts of its entries add up to its failures.
 * Counts still pending when the process dies are lost; `flush` at shutdown writes them.
 */
export class FailedCheckAudit {
  readonly #write: (record: AuditRecord) => Promise<void>;
  readonly #windowMs: number;
  readonly #maxGroups: number;
  readonly #now: () => number;
  #window: Window | undefined;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();

  /** `write` appends one record; it must not throw (the authorizer logs append failures). */
  constructor(write: (record: AuditRecord) => Promise<void>, options: FailedCheckAuditOptions = {}) {
    this.#write = write;
    this.#windowMs = options.windowMs ?? FAILED_CHECK_WINDOW_MS;
    this.#maxGroups = options.maxGroups ?? FAILED_CHECK_MAX_GROUPS;
    this.#now = options.now ?? Date.now;
    if (!Number.isSafeInteger(this.#windowMs) || this.#windowMs <= 0) {
      throw new RangeError(`windowMs must be a positive integer, got ${this.#windowMs}`);
    }
    if (!Number.isSafeInteger(this.#maxGroups) || this.#maxGroups < 0) {
      throw new RangeError(`maxGroups must be a non-negative integer, got ${this.#maxGroups}`);
    }
  }

  /** Records one failed check; resolves once what it writes at once (if anything) is written. */
  async record(check: FailedCheck): Promise<void> {
    const now = this.#now();
    // All bookkeeping happens before the first await, so concurrent failures never both count as a group's first.
    const ended = this.#window !== undefined && now >= this.#window.end ? this.#takeWindow() : undefined;
    this.#window ??= { end: now + this.#windowMs, groups: new Map() };
    const window = this.#window;
    let key = groupKey(check.source, check.reason, check.tokenId);
    let group = window.groups.get(key);
    if (!group && window.groups.size >= this.#maxGroups) {
      key = `overflow\u0000${check.reason}`;
      group = window.groups.get(key);
      if (!group) {
        group = newGroup(check.reason, undefined, undefined, true);
        window.groups.set(key, group);
        return this.#afterWrites(ended, firstRecord(group));
      }
    }
    if (!group) {
      group = newGroup(check.reason, check.tokenId, check.source, false);
      window.groups.set(key, group);
      return this.#afterWrites(ended, firstRecord(group));
    }
    if (group.pending === 0) group.firstPendingAt = now;
    group.pending++;
    group.lastPendingAt = now;
    this.#timer ??= setTimeout(() => void this.flush(), Math.max(0, window.end - now)).unref();
    if (ended) await this.#writeSummaries(ended);
  }

  /** Writes the counts of the current window now and starts a new one; call it at shutdown. */
  async flush(): Promise<void> {
    const window = this.#takeWindow();
    if (window) await this.#writeSummaries(window);
    await this.#flushing;
  }

  #takeWindow(): Window | undefined {
    const window = this.#window;
    this.#window = undefined;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    return window;
  }

  async #afterWrites(ended: Window | undefined, first: AuditRecord): Promise<void> {
    if (ended) await this.#writeSummaries(ended);
    await this.#write(first);
  }

  /** Summaries are written one window after another, so entries of one group stay in time order. */
  #writeSummaries(window: Window): Promise<void> {
    // `write` does not throw; the catch only keeps one odd failure from stopping every later summary.
    const run = this.#flushing
      .catch(() => undefined)
      .then(async () => {
        for (const group of window.groups.values()) {
          if (group.pending > 0) await this.#write(summaryRecord(group, this.#windowMs));
        }
      });
    this.#flushing = run;
    return run;
  }
}

function groupKey(source: string | undefined, reason: string, tokenId: string | undefined): string {
  return `${source ?? ''}\u0000${reason}\u0000${tokenId ?? ''}`;
}

function newGroup(
  reason: FailedCheckReason,
  tokenId: string | undefined,
  source: string | undefined,
  overflow: boolean,
): Group {
  return { reason, tokenId, source, overflow, pending: 0, firstPendingAt: 0, lastPendingAt: 0 };
}

/** The log stamps `at` when it writes the entry; a summary's span is in `firstAt` and `lastAt`. */
function baseRecord(group: Group, details: Record<string, JsonValue>): AuditRecord {
  return {
    actor: group.tokenId !== undefined ? `token:${group.tokenId}` : 'anonymous',
    action: 'token.verify',
    resource: `token:${group.tokenId ?? (group.overflow ? '*' : 'unknown')}`,
    project: ALL_PROJECTS,
    outcome: 'denied',
    details: {
      reason: group.reason,
      ...(group.source !== undefined ? { source: group.source } : {}),
      // Past maxGroups, failures from every source and token are counted together under their reason.
      ...(group.overflow ? { overflow: true } : {}),
      ...details,
    },
  };
}

function firstRecord(group: Group): AuditRecord {
  return baseRecord(group, { count: 1 });
}

function summaryRecord(group: Group, windowMs: number): AuditRecord {
  return baseRecord(group, {
    count: group.pending,
    coalesced: true,
    firstAt: new Date(group.firstPendingAt).toISOString(),
    lastAt: new Date(group.lastPendingAt).toISOString(),
    windowMs,
  });
}
