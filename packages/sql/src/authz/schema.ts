import type { Migration } from '@mlplane/core';
import type { Selectable } from 'kysely';
import * as createAuthz from './migrations/20261127T090000_create_authz.js';
import * as tokenLineage from './migrations/20261203T090000_token_lineage.js';

/** Owner of the authorizer's tables and migrations. */
export const AUTHZ_OWNER = 'authz';

export const AUTHZ_MIGRATIONS: Readonly<Record<string, Migration>> = Object.freeze({
  '20261127T090000_create_authz': createAuthz,
  '20261203T090000_token_lineage': tokenLineage,
});

/** Times are epoch milliseconds. */
export interface RoleTable {
  name: string;
  description: string | null;
  /** JSON array of Permission. */
  permissions: string;
  created_at: number;
  updated_at: number;
}

export interface GrantTable {
  principal_id: string;
  /** A project name or ALL_PROJECTS (`*`). */
  project: string;
  role: string;
  created_at: number;
}

export interface TokenTable {
  token_id: string;
  name: string;
  owner_id: string;
  /** Hex sha256 of the whole secret. */
  secret_hash: string;
  /** JSON array of project names. */
  projects: string;
  /** JSON array of role names. */
  roles: string;
  created_at: number;
  expires_at: number;
  last_used_at: number | null;
  /** Set by revokeToken on the token and, in the same transaction, on every descendant. */
  revoked_at: number | null;
  /** The token that created this one (its principal was that token); null when a user or service did. */
  parent_token_id: string | null;
}

export interface AuthzDatabase {
  authz_roles: RoleTable;
  authz_grants: GrantTable;
  authz_tokens: TokenTable;
}

export type RoleRow = Selectable<RoleTable>;
export type TokenRow = Selectable<TokenTable>;
