import type { Migration } from '@mlplane/core';
import type { Insertable, Selectable } from 'kysely';
import * as createAuditLog from './migrations/20261127T090000_create_audit_log.js';
import * as auditChainKey from './migrations/20261201T090000_audit_chain_key.js';

/** Owner of the audit log's tables and migrations. */
export const AUDIT_OWNER = 'audit';

export const AUDIT_MIGRATIONS: Readonly<Record<string, Migration>> = Object.freeze({
  '20261127T090000_create_audit_log': createAuditLog,
  '20261201T090000_audit_chain_key': auditChainKey,
});

export interface AuditLogTable {
  seq: number;
  id: string;
  /** ISO-8601 UTC with milliseconds, as hashed. */
  at: string;
  /** `at` as epoch milliseconds, for range queries. */
  at_ms: number;
  actor: string;
  action: string;
  resource: string;
  project: string;
  outcome: string;
  /** Canonical JSON. */
  details: string;
  prev_hash: string;
  hash: string;
  event_id: string | null;
}

/** A single row (id 1): the last entry's seq and hash, 0 and the genesis hash while the log is empty. */
export interface AuditHeadTable {
  id: number;
  seq: number;
  hash: string;
  /** Id of the key the chain is written with (`auditKeys(secret).keyId`); null until first opened with a key. */
  key_id: string | null;
}

export interface AuditDatabase {
  audit_log: AuditLogTable;
  audit_head: AuditHeadTable;
}

export type AuditLogRow = Selectable<AuditLogTable>;
export type NewAuditLogRow = Insertable<AuditLogTable>;
