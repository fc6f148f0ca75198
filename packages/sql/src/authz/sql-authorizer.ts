import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AuditLog, AuditRecord, Logger, MetadataStore } from '@mlplane/core';
import {
  ALL_PROJECTS,
  AUTHORIZER_LIMITS,
  type Authorizer,
  BUILT_IN_ROLES,
  type BuiltInRole,
  ConflictError,
  type CreatedToken,
  type CreateTokenInput,
  DEFAULT_MAX_TOKEN_LIFETIME_MS,
  type Decision,
  isPermission,
  NotFoundError,
  normalizeName,
  type Permission,
  PermissionDeniedError,
  PROJECT_PATTERN,
  type Principal,
  permits,
  quoteValue,
  RESOURCE_ACTIONS,
  type ResourceRef,
  ROLE_NAME_PATTERN,
  type RoleDefinition,
  TOKEN_SECRET_PREFIX,
  type TokenInfo,
  ValidationError,
  type VerifyTokenContext,
  validateNoControlCharacters,
  validateText,
} from '@mlplane/core';
import type { Kysely, Transaction } from 'kysely';
import { domainEvent, OUTBOX_MIGRATIONS, OUTBOX_OWNER, recordEvent } from '../outbox/outbox.js';
import { FailedCheckAudit, type FailedCheckAuditOptions, type FailedCheckReason } from './failed-checks.js';
import { AUTHZ_MIGRATIONS, AUTHZ_OWNER, type AuthzDatabase, type RoleRow, type TokenRow } from './schema.js';

export interface SqlAuthorizerOptions {
  readonly store: MetadataStore;
  /** Where `require` records denied decisions (and allowed ones with `auditAllowed`), and failed token checks. */
  readonly audit?: AuditLog;
  /** Also record allowed `require` decisions; default false (every request would write an entry). */
  readonly auditAllowed?: boolean;
  /** Receives audit append failures, which never turn a decision around. */
  readonly logger?: Logger;
  /** Longest lifetime `createToken` grants; default DEFAULT_MAX_TOKEN_LIFETIME_MS (365 days). */
  readonly maxTokenLifetimeMs?: number;
  /** Where the limit is configured, named in the error that refuses a longer expiry; default `maxTokenLifetimeMs`. */
  readonly maxTokenLifetimeSetting?: string;
  /** How failed token checks are coalesced in the audit log (window, groups kept). */
  readonly failedChecks?: FailedCheckAuditOptions;
  /**
   * How long a verified token is answered from memory without reading its row again; default
   * DEFAULT_TOKEN_CACHE_TTL_MS (5 s), 0 turns the cache off. Revocations, grant and role changes made through this
   * authorizer empty it at once; those made by another process reach it through `invalidate`/`forgetToken`
   * (the management plugin calls them on the `authz.*` events it receives), and the TTL bounds how long a lost
   * event could leave a revoked token working here. An expired token is never answered from it.
   */
  readonly tokenCacheTtlMs?: number;
  /** Most verified tokens kept in memory (the oldest is dropped first); default 10,000. */
  readonly tokenCacheSize?: number;
}

export { PROJECT_PATTERN } from '@mlplane/core';
/** Longest principal id, token name and verification source accepted. */
export const PRINCIPAL_ID_LENGTH = AUTHORIZER_LIMITS.principalIdLength;
/** Longest custom role description accepted. */
export const ROLE_DESCRIPTION_LENGTH = AUTHORIZER_LIMITS.roleDescriptionLength;
/** A token's last-use time is written at most this often, so busy tokens do not turn every check into a write. */
export const TOKEN_LAST_USED_RESOLUTION_MS = 60_000;
/** How long a verified token is trusted without reading its row again (see SqlAuthorizerOptions.tokenCacheTtlMs). */
export const DEFAULT_TOKEN_CACHE_TTL_MS = 5_000;
/** Last-use times noted by cached verifications are written together, at most this long after the use. */
const LAST_USED_FLUSH_MS = 1_000;

/** A verified token as the cache keeps it: its principal, and the row's times that still decide each check. */
interface VerifiedToken {
  readonly tokenId: string;
  readonly principal: Principal;
  readonly expiresAt: number;
  /** After this instant the row is read again. */
  readonly cachedUntil: number;
  lastUsedAt: number;
}

const BUILT_IN_ORDER = Object.keys(BUILT_IN_ROLES) as BuiltInRole[];
/** `mlp_<16 hex id>_<43 base64url chars>`: the id finds the row, the whole string is hashed. */
const TOKEN_SECRET = new RegExp(`^${TOKEN_SECRET_PREFIX}([0-9a-f]{16})_[A-Za-z0-9_-]{43}$`);
/** Compared against when no token row exists, so unknown ids cost the same as wrong secrets. */
const DUMMY_HASH = Buffer.alloc(32);
const INVALID_TOKEN = 'the API token is invalid, expired or revoked';
const DAY_MS = 86_400_000;

type Db = Kysely<AuthzDatabase>;
type Trx = Transaction<AuthzDatabase>;

/**
 * Role-based access control on a MetadataStore: custom roles, grants per principal and project, and API tokens
 * kept as sha256 hashes. Built-in roles come from BUILT_IN_ROLES. Changes record domain events in the outbox.
 */
export class SqlAuthorizer implements Authorizer {
  readonly #store: MetadataStore;
  readonly #audit: AuditLog | undefined;
  readonly #auditAllowed: boolean;
  readonly #logger: Logger | undefined;
  /** Row locks exist on Postgres; SQLite's write transactions already exclude each other. */
  readonly #postgres: boolean;
  readonly #maxTokenLifetimeMs: number;
  readonly #maxTokenLifetimeSetting: string;
  readonly #failedChecks: FailedCheckAudit;
  readonly #tokenCacheTtlMs: number;
  readonly #tokenCacheSize: number;
  /** Verified tokens by the sha256 (hex) of their secret, so no secret stays in memory. */
  readonly #verified = new Map<string, VerifiedToken>();
  /**
   * Bumped by every invalidation: a verification that read the row before an invalidation does not cache what it
   * read, since the revocation may have committed after its read.
   */
  #cacheEpoch = 0;
  /** Last-use times to write, by token id, from verifications answered by the cache. */
  readonly #pendingLastUsed = new Map<string, number>();
  #lastUsedTimer: NodeJS.Timeout | undefined;
  #lastUsedFlush: Promise<void> = Promise.resolve();

  constructor(options: SqlAuthorizerOptions) {
    this.#store = options.store;
    this.#audit = options.audit;
    this.#auditAllowed = options.auditAllowed ?? false;
    this.#logger = options.logger;
    this.#postgres = options.store.dialect === 'postgres';
    this.#maxTokenLifetimeMs = options.maxTokenLifetimeMs ?? DEFAULT_MAX_TOKEN_LIFETIME_MS;
    if (!Number.isSafeInteger(this.#maxTokenLifetimeMs) || this.#maxTokenLifetimeMs <= 0) {
      throw new ValidationError(`maxTokenLifetimeMs must be a positive integer, got ${options.maxTokenLifetimeMs}`, {
        field: 'maxTokenLifetimeMs',
      });
    }
    this.#maxTokenLifetimeSetting = options.maxTokenLifetimeSetting ?? 'maxTokenLifetimeMs';
    this.#failedChecks = new FailedCheckAudit((record) => this.#record(record), options.failedChecks);
    this.#tokenCacheTtlMs = options.tokenCacheTtlMs ?? DEFAULT_TOKEN_CACHE_TTL_MS;
    this.#tokenCacheSize = options.tokenCacheSize ?? 10_000;
    for (const [name, value] of [
      ['tokenCacheTtlMs', this.#tokenCacheTtlMs],
      ['tokenCacheSize', this.#tokenCacheSize],
    ] as const) {
      if (!Number.isSafeInteger(value) || value < 0) {
        throw new ValidationError(`${name} must be a non-negative integer, got ${value}`, { field: name });
      }
    }
  }

  /**
   * Writes the failed-check counts still coalescing and the last-use times noted by cached verifications; call it
   * at shutdown (the plugin does).
   */
  async close(): Promise<void> {
    clearTimeout(this.#lastUsedTimer);
    this.#lastUsedTimer = undefined;
    await this.#flushLastUsed();
    await this.#failedChecks.flush();
  }

  /** Drops a token from the verified-token cache: called on `authz.token.revoked` events from other processes. */
  forgetToken(tokenId: string): void {
    this.#cacheEpoch++;
    for (const [hash, entry] of this.#verified) if (entry.tokenId === tokenId) this.#verified.delete(hash);
  }

  /** Empties the verified-token cache: called on grant and role changes, which can narrow any token's roles. */
  invalidate(): void {
    this.#cacheEpoch++;
    this.#verified.clear();
  }

  /** Applies the outbox and authorizer migrations, then returns a ready authorizer. */
  static async open(options: SqlAuthorizerOptions): Promise<SqlAuthorizer> {
    await options.store.migrate(OUTBOX_OWNER, OUTBOX_MIGRATIONS);
    await options.store.migrate(AUTHZ_OWNER, AUTHZ_MIGRATIONS);
    return new SqlAuthorizer(options);
  }

  get #db(): Db {
    return this.#store.db<AuthzDatabase>();
  }

  #transaction<T>(fn: (trx: Trx) => Promise<T>): Promise<T> {
    return this.#store.transaction<T, AuthzDatabase>(fn);
  }

  // ---------------------------------------------------------------- decisions

  async authorize(principal: Principal, permission: Permission, resource: ResourceRef): Promise<Decision> {
    validatePrincipal(principal);
    validatePermission(permission, 'permission');
    validateResource(resource);
    const scopes = resource.project === ALL_PROJECTS ? [ALL_PROJECTS] : [resource.project, ALL_PROJECTS];
    const held = scopes.flatMap((scope) => rolesIn(principal.roles, scope).map((role) => ({ scope, role })));
    const definitions = await this.#permissionsOf(
      this.#db,
      held.map((h) => h.role),
    );
    for (const { scope, role } of held) {
      const granted = definitions.get(role);
      if (granted && permits(granted, permission)) {
        const where = scope === ALL_PROJECTS ? 'in all projects' : `in project '${scope}'`;
        return { allowed: true, reason: `role '${role}' ${where} grants ${permission}` };
      }
    }
    const names = [...new Set(held.map((h) => h.role))];
    return {
      allowed: false,
      reason: `${principal.id} has no role granting ${permission} in project '${resource.project}' (${
        names.length > 0 ? `roles there: ${names.join(', ')}` : 'no roles there'
      })`,
    };
  }

  async require(principal: Principal, permission: Permission, resource: ResourceRef): Promise<void> {
    const decision = await this.authorize(principal, permission, resource);
    const target = `${resource.kind}:${resource.id ?? '*'}`;
    if (decision.allowed) {
      if (this.#auditAllowed) await this.#record(decisionRecord(principal, permission, resource, 'allowed', decision));
      return;
    }
    await this.#record(decisionRecord(principal, permission, resource, 'denied', decision));
    throw new PermissionDeniedError(
      `${permission} on ${target} in project '${resource.project}' denied: ${decision.reason}`,
    );
  }

  async getPrincipal(id: string, kind: Principal['kind'] = 'user'): Promise<Principal> {
    validatePrincipalId(id, 'id');
    if (kind !== 'user' && kind !== 'token' && kind !== 'service') {
      throw new ValidationError(`kind must be user, token or service, got ${quoteValue(kind)}`, { field: 'kind' });
    }
    if (kind === 'token') {
      const row = await this.#db.selectFrom('authz_tokens').selectAll().where('token_id', '=', id).executeTakeFirst();
      if (!row || row.revoked_at !== null || Number(row.expires_at) <= Date.now()) return { id, kind, roles: {} };
      return this.#tokenPrincipal(row);
    }
    return { id, kind, roles: await grantsOf(this.#db, id) };
  }

  // ---------------------------------------------------------------- tokens

  async createToken(input: CreateTokenInput): Promise<CreatedToken> {
    validatePrincipal(input?.principal);
    const name = normalizeName(input.name, { field: 'name', what: 'token name', maxLength: PRINCIPAL_ID_LENGTH });
    const projects = validateList(input.projects, 'projects', validateProject, 'projectsPerToken');
    const roles = validateList(
      input.roles,
      'roles',
      (role, field) => {
        if (typeof role !== 'string' || role.length > AUTHORIZER_LIMITS.roleNameLength) {
          throw new ValidationError(
            `${field} must be a role name of at most ${AUTHORIZER_LIMITS.roleNameLength} chars`,
            {
              field,
            },
          );
        }
      },
      'rolesPerToken',
    );
    if (!(input.expiresAt instanceof Date) || Number.isNaN(input.expiresAt.getTime())) {
      throw new ValidationError('expiresAt must be a valid Date: tokens always expire', { field: 'expiresAt' });
    }
    const now = Date.now();
    if (input.expiresAt.getTime() <= now) {
      throw new ValidationError(`expiresAt (${input.expiresAt.toISOString()}) must be in the future`, {
        field: 'expiresAt',
      });
    }
    if (input.expiresAt.getTime() - now > this.#maxTokenLifetimeMs) {
      throw new ValidationError(
        `expiresAt (${input.expiresAt.toISOString()}) is beyond the maximum token lifetime of ${describeDuration(
          this.#maxTokenLifetimeMs,
        )} (${this.#maxTokenLifetimeSetting}); choose an expiry before ${new Date(
          now + this.#maxTokenLifetimeMs,
        ).toISOString()}`,
        { field: 'expiresAt' },
      );
    }
    const definitions = await this.#permissionsOf(this.#db, roles);
    const unknown = roles.filter((r) => !definitions.has(r));
    if (unknown.length > 0) {
      throw new ValidationError(
        `unknown role${unknown.length > 1 ? 's' : ''} ${unknown.map((r) => `'${r}'`).join(', ')}`,
        {
          field: 'roles',
        },
      );
    }
    // A token never holds more than its creator does in each of its projects.
    const principal = input.principal;
    for (const project of projects) {
      const scopes = project === ALL_PROJECTS ? [ALL_PROJECTS] : [project, ALL_PROJECTS];
      const heldRoles = scopes.flatMap((s) => rolesIn(principal.roles, s));
      const heldDefs = await this.#permissionsOf(this.#db, heldRoles);
      const held = [...heldDefs.values()].flat();
      for (const role of roles) {
        const missing = definitions.get(role)!.filter((p) => !permits(held, p));
        if (missing.length > 0) {
          throw new PermissionDeniedError(
            `role '${role}' exceeds what ${principal.id} holds in project '${project}' (missing ${missing.join(', ')})`,
          );
        }
      }
    }
    const id = randomBytes(8).toString('hex');
    const secret = `${TOKEN_SECRET_PREFIX}${id}_${randomBytes(32).toString('base64url')}`;
    const custom = roles.filter((r) => !Object.hasOwn(BUILT_IN_ROLES, r));
    const row = await this.#transaction(async (trx) => {
      // A token made by a token is bounded by it: never expires later, and is revoked with it. The share lock makes
      // a concurrent revokeToken of the parent wait for this insert (and then revoke the new token too), or run
      // first (and then this check sees the parent revoked).
      const parent = principal.kind === 'token' ? await this.#liveParent(trx, principal.id, now) : undefined;
      if (custom.length > 0) {
        // Share-lock the custom roles so a concurrent deleteRole either sees this token or ran first.
        let q = trx.selectFrom('authz_roles').select('name').where('name', 'in', custom);
        if (this.#postgres) q = q.forShare();
        const present = new Set((await q.execute()).map((r) => r.name));
        const gone = custom.filter((r) => !present.has(r));
        if (gone.length > 0)
          throw new ValidationError(`unknown role ${gone.map((r) => `'${r}'`).join(', ')}`, { field: 'roles' });
      }
      const row: TokenRow = {
        token_id: id,
        name,
        owner_id: parent ? parent.owner_id : principal.id,
        secret_hash: sha256Hex(secret),
        projects: JSON.stringify(projects),
        roles: JSON.stringify(roles),
        created_at: now,
        expires_at: parent ? Math.min(input.expiresAt.getTime(), Number(parent.expires_at)) : input.expiresAt.getTime(),
        last_used_at: null,
        revoked_at: null,
        parent_token_id: parent ? parent.token_id : null,
      };
      await trx.insertInto('authz_tokens').values(row).execute();
      await recordEvent(
        trx,
        domainEvent(
          'authz.token.created',
          tokenSubject(id),
          {
            tokenId: id,
            name,
            ownerId: row.owner_id,
            projects,
            roles,
            expiresAt: new Date(row.expires_at).toISOString(),
            ...(parent ? { parentTokenId: parent.token_id } : {}),
          },
          { actor: principal.id },
        ),
      );
      return row;
    });
    return { id, secret, info: toTokenInfo(row) };
  }

  /** The token acting as `principal`, share-locked; PermissionDeniedError when it is unknown, revoked or expired. */
  async #liveParent(trx: Trx, tokenId: string, now: number): Promise<TokenRow> {
    let q = trx.selectFrom('authz_tokens').selectAll().where('token_id', '=', tokenId);
    if (this.#postgres) q = q.forShare();
    const parent = await q.executeTakeFirst();
    if (!parent || parent.revoked_at !== null || Number(parent.expires_at) <= now) {
      throw new PermissionDeniedError(`API token '${tokenId}' cannot create tokens: it is unknown, revoked or expired`);
    }
    return parent;
  }

  async verifyToken(secret: string, context: VerifyTokenContext = {}): Promise<Principal> {
    const source = validateVerifySource(context);
    const match = typeof secret === 'string' ? TOKEN_SECRET.exec(secret) : null;
    const id = match?.[1];
    const presented = createHash('sha256')
      .update(typeof secret === 'string' ? secret : '')
      .digest();
    const key = id === undefined || this.#tokenCacheTtlMs === 0 ? undefined : presented.toString('hex');
    const now = Date.now();
    if (key !== undefined) {
      const hit = this.#verified.get(key);
      // Only a secret whose hash matched its row was cached, so finding its hash is the same proof; an expired
      // token or a stale entry goes to the row again (and is refused and audited there).
      if (hit !== undefined) {
        if (hit.expiresAt > now && hit.cachedUntil > now) {
          if (now - hit.lastUsedAt >= TOKEN_LAST_USED_RESOLUTION_MS) this.#noteLastUsed(hit, now);
          return hit.principal;
        }
        this.#verified.delete(key);
      }
    }
    const epoch = this.#cacheEpoch;
    // One primary-key read is the whole check: revocation cascades to descendants when it happens, and a child's
    // expiry was capped at its parent's when it was created, so no ancestor needs reading here.
    const row =
      id === undefined
        ? undefined
        : await this.#db.selectFrom('authz_tokens').selectAll().where('token_id', '=', id).executeTakeFirst();
    const stored = row ? Buffer.from(row.secret_hash, 'hex') : DUMMY_HASH;
    const matches = stored.length === presented.length && timingSafeEqual(stored, presented);
    const why: FailedCheckReason | undefined = !row
      ? id === undefined
        ? 'malformed'
        : 'unknown'
      : !matches
        ? 'wrong secret'
        : row.revoked_at !== null
          ? 'revoked'
          : Number(row.expires_at) <= now
            ? 'expired'
            : undefined;
    if (why !== undefined || !row) {
      if (this.#audit) {
        await this.#failedChecks.record({
          reason: why ?? 'unknown',
          ...(row ? { tokenId: row.token_id } : {}),
          ...(source !== undefined ? { source } : {}),
        });
      }
      // One message for every failure, so a caller cannot probe which ids exist.
      throw new PermissionDeniedError(INVALID_TOKEN);
    }
    if (row.last_used_at === null || now - Number(row.last_used_at) >= TOKEN_LAST_USED_RESOLUTION_MS) {
      await this.#db
        .updateTable('authz_tokens')
        .set({ last_used_at: now })
        .where('token_id', '=', row.token_id)
        .execute();
    }
    const principal = await this.#tokenPrincipal(row);
    if (key !== undefined && epoch === this.#cacheEpoch) {
      if (this.#verified.size >= this.#tokenCacheSize) {
        const oldest = this.#verified.keys().next();
        if (!oldest.done) this.#verified.delete(oldest.value);
      }
      if (this.#tokenCacheSize > 0) {
        this.#verified.set(key, {
          tokenId: row.token_id,
          principal,
          expiresAt: Number(row.expires_at),
          cachedUntil: now + this.#tokenCacheTtlMs,
          lastUsedAt: Math.max(now, Number(row.last_used_at ?? 0)),
        });
      }
    }
    return principal;
  }

  /** Notes a cached token's use; the times are written together shortly after, in one statement. */
  #noteLastUsed(entry: VerifiedToken, now: number): void {
    entry.lastUsedAt = now;
    this.#pendingLastUsed.set(entry.tokenId, now);
    if (this.#lastUsedTimer !== undefined) return;
    this.#lastUsedTimer = setTimeout(() => {
      this.#lastUsedTimer = undefined;
      void this.#flushLastUsed();
    }, LAST_USED_FLUSH_MS);
    this.#lastUsedTimer.unref();
  }

  #flushLastUsed(): Promise<void> {
    this.#lastUsedFlush = this.#lastUsedFlush.then(async () => {
      if (this.#pendingLastUsed.size === 0) return;
      const ids = [...this.#pendingLastUsed.keys()];
      const at = Math.max(...this.#pendingLastUsed.values());
      this.#pendingLastUsed.clear();
      try {
        await this.#db.updateTable('authz_tokens').set({ last_used_at: at }).where('token_id', 'in', ids).execute();
      } catch (err) {
        // A last-use time is bookkeeping: losing one never turns a check around.
        this.#logger?.warn({ err, tokens: ids.length }, "writing tokens' last-use times failed");
      }
    });
    return this.#lastUsedFlush;
  }

  async revokeToken(id: string): Promise<void> {
    if (typeof id !== 'string' || id === '')
      throw new ValidationError('token id must be a non-empty string', { field: 'id' });
    // Emptied whatever the outcome (a commit whose answer was lost still happened): cached principals may
    // carry what this changed.
    try {
      await this.#transaction(async (trx) => {
        // The row lock waits for any createToken holding this token as parent, so its child is seen below.
        // Also locked so that two revocations racing each other record one event, not two.
        let q = trx.selectFrom('authz_tokens').selectAll().where('token_id', '=', id);
        if (this.#postgres) q = q.forUpdate();
        const row = await q.executeTakeFirst();
        if (!row) throw new NotFoundError(`API token '${id}' does not exist`);
        // Already revoked: its descendants were revoked in that transaction and none can have been created since.
        if (row.revoked_at !== null) return;
        const now = Date.now();
        await trx.updateTable('authz_tokens').set({ revoked_at: now }).where('token_id', '=', id).execute();
        await recordEvent(
          trx,
          domainEvent('authz.token.revoked', tokenSubject(id), { tokenId: id, name: row.name, ownerId: row.owner_id }),
        );
        // Each round reads afresh: on Postgres a grandchild committed while this transaction waited for a child's lock
        // appears in the next round. Each round revokes at least one token, so the loop ends.
        for (;;) {
          const live = await liveDescendants(trx, id);
          if (live.length === 0) break;
          await trx
            .updateTable('authz_tokens')
            .set({ revoked_at: now })
            .where(
              'token_id',
              'in',
              live.map((t) => t.token_id),
            )
            .where('revoked_at', 'is', null)
            .execute();
          for (const t of live) {
            await recordEvent(
              trx,
              domainEvent('authz.token.revoked', tokenSubject(t.token_id), {
                tokenId: t.token_id,
                name: t.name,
                ownerId: t.owner_id,
                revokedWith: id,
              }),
            );
          }
        }
      });
    } finally {
      this.invalidate();
    }
  }

  async listTokens(
    filter: { readonly ownerId?: string; readonly includeRevoked?: boolean } = {},
  ): Promise<readonly TokenInfo[]> {
    if (filter.ownerId !== undefined) validatePrincipalId(filter.ownerId, 'ownerId');
    let q = this.#db.selectFrom('authz_tokens').selectAll();
    if (filter.ownerId !== undefined) q = q.where('owner_id', '=', filter.ownerId);
    if (!filter.includeRevoked) q = q.where('revoked_at', 'is', null);
    const rows = await q.orderBy('created_at', 'desc').orderBy('token_id', 'desc').execute();
    return rows.map(toTokenInfo);
  }

  // ---------------------------------------------------------------- roles and grants

  async defineRole(role: {
    readonly name: string;
    readonly permissions: readonly Permission[];
    readonly description?: string;
  }): Promise<RoleDefinition> {
    validateRoleName(role?.name);
    if (Object.hasOwn(BUILT_IN_ROLES, role.name)) {
      throw new ConflictError(`'${role.name}' is a built-in role and cannot be redefined; pick another name`);
    }
    const permissions = validateList<Permission>(
      role.permissions,
      'permissions',
      validatePermission,
      'permissionsPerRole',
    ).sort();
    if (role.description !== undefined && typeof role.description !== 'string') {
      throw new ValidationError('description must be a string', { field: 'description' });
    }
    if (role.description !== undefined && role.description.length > ROLE_DESCRIPTION_LENGTH) {
      throw new ValidationError(
        `description has ${role.description.length} chars; the roleDescriptionLength limit is ${ROLE_DESCRIPTION_LENGTH}`,
        { field: 'description' },
      );
    }
    if (role.description !== undefined) validateText(role.description, 'description', 'role description');
    const now = Date.now();
    // Cached token principals carry the roles this may change.
    try {
      await this.#transaction(async (trx) => {
        const existing = await trx
          .selectFrom('authz_roles')
          .select('name')
          .where('name', '=', role.name)
          .executeTakeFirst();
        const values = {
          description: role.description ?? null,
          permissions: JSON.stringify(permissions),
          updated_at: now,
        };
        // An upsert, so two first definitions racing both succeed and the last one stands.
        await trx
          .insertInto('authz_roles')
          .values({ name: role.name, created_at: now, ...values })
          .onConflict((oc) => oc.column('name').doUpdateSet(values))
          .execute();
        await recordEvent(
          trx,
          domainEvent('authz.role.defined', roleSubject(role.name), {
            name: role.name,
            permissions,
            replaced: existing !== undefined,
          }),
        );
      });
    } finally {
      this.invalidate();
    }
    return {
      name: role.name,
      permissions,
      ...(role.description !== undefined ? { description: role.description } : {}),
      builtIn: false,
    };
  }

  async deleteRole(name: string): Promise<void> {
    validateRoleName(name);
    if (Object.hasOwn(BUILT_IN_ROLES, name))
      throw new ConflictError(`'${name}' is a built-in role and cannot be deleted`);
    // Cached token principals carry the roles this may change.
    try {
      await this.#transaction(async (trx) => {
        let q = trx.selectFrom('authz_roles').select('name').where('name', '=', name);
        if (this.#postgres) q = q.forUpdate();
        const row = await q.executeTakeFirst();
        if (!row) throw new NotFoundError(`role '${name}' does not exist`);
        const grants = await trx
          .selectFrom('authz_grants')
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('role', '=', name)
          .executeTakeFirstOrThrow();
        const tokens = (
          await trx
            .selectFrom('authz_tokens')
            .select('roles')
            .where('revoked_at', 'is', null)
            .where('expires_at', '>', Date.now())
            .execute()
        ).filter((t) => (JSON.parse(t.roles) as string[]).includes(name)).length;
        if (Number(grants.n) > 0 || tokens > 0) {
          throw new ConflictError(
            `role '${name}' is still granted (${Number(grants.n)} grant(s), ${tokens} active token(s)); revoke those first`,
          );
        }
        await trx.deleteFrom('authz_roles').where('name', '=', name).execute();
        await recordEvent(trx, domainEvent('authz.role.deleted', roleSubject(name), { name }));
      });
    } finally {
      this.invalidate();
    }
  }

  async listRoles(): Promise<readonly RoleDefinition[]> {
    const custom = await this.#db.selectFrom('authz_roles').selectAll().orderBy('name').execute();
    return [
      ...BUILT_IN_ORDER.map((name) => ({ name, permissions: [...BUILT_IN_ROLES[name]], builtIn: true })),
      ...custom.map(toRoleDefinition),
    ];
  }

  async grant(principalId: string, project: string, role: string): Promise<void> {
    validatePrincipalId(principalId, 'principalId');
    validateProject(project, 'project');
    validateRoleReference(role);
    // Cached token principals carry the roles this may change.
    try {
      await this.#transaction(async (trx) => {
        if (!Object.hasOwn(BUILT_IN_ROLES, role)) {
          // A share lock on the role row: a concurrent deleteRole waits, then sees this grant and refuses.
          let q = trx.selectFrom('authz_roles').select('name').where('name', '=', role);
          if (this.#postgres) q = q.forShare();
          if (!(await q.executeTakeFirst())) throw new NotFoundError(`role '${role}' does not exist`);
        }
        const inserted = await trx
          .insertInto('authz_grants')
          .values({ principal_id: principalId, project, role, created_at: Date.now() })
          .onConflict((oc) => oc.columns(['principal_id', 'project', 'role']).doNothing())
          .executeTakeFirst();
        if (Number(inserted.numInsertedOrUpdatedRows ?? 0n) === 0) return;
        await recordEvent(
          trx,
          domainEvent(
            'authz.grant.added',
            principalSubject(principalId),
            { principalId, project, role },
            { ...(project !== ALL_PROJECTS ? { project } : {}) },
          ),
        );
      });
    } finally {
      this.invalidate();
    }
  }

  async revoke(principalId: string, project: string, role: string): Promise<void> {
    validatePrincipalId(principalId, 'principalId');
    validateProject(project, 'project');
    validateRoleReference(role);
    // Cached token principals carry the roles this may change.
    try {
      await this.#transaction(async (trx) => {
        const deleted = await trx
          .deleteFrom('authz_grants')
          .where('principal_id', '=', principalId)
          .where('project', '=', project)
          .where('role', '=', role)
          .executeTakeFirst();
        if (Number(deleted.numDeletedRows) === 0) return;
        await recordEvent(
          trx,
          domainEvent(
            'authz.grant.revoked',
            principalSubject(principalId),
            { principalId, project, role },
            { ...(project !== ALL_PROJECTS ? { project } : {}) },
          ),
        );
      });
    } finally {
      this.invalidate();
    }
  }

  // ---------------------------------------------------------------- internals

  /** Permissions of each known role among `roles` (built-in or custom); unknown names are absent. */
  async #permissionsOf(db: Db, roles: readonly string[]): Promise<Map<string, readonly Permission[]>> {
    const out = new Map<string, readonly Permission[]>();
    const custom: string[] = [];
    for (const role of new Set(roles)) {
      if (Object.hasOwn(BUILT_IN_ROLES, role)) out.set(role, BUILT_IN_ROLES[role as BuiltInRole]);
      else custom.push(role);
    }
    if (custom.length > 0) {
      const rows = await db.selectFrom('authz_roles').selectAll().where('name', 'in', custom).execute();
      for (const row of rows) out.set(row.name, toRoleDefinition(row).permissions);
    }
    return out;
  }

  /**
   * A token acts in its projects with its roles, less any role whose permissions its owner no longer holds there:
   * revoking a person's grant also narrows the tokens they made.
   */
  async #tokenPrincipal(row: TokenRow): Promise<Principal> {
    const projects = JSON.parse(row.projects) as string[];
    const tokenRoles = JSON.parse(row.roles) as string[];
    const ownerGrants = await grantsOf(this.#db, row.owner_id);
    const ownerRoleNames = Object.values(ownerGrants).flat();
    const definitions = await this.#permissionsOf(this.#db, [...tokenRoles, ...ownerRoleNames]);
    const roles = new Map<string, readonly string[]>();
    for (const project of projects) {
      const scopes = project === ALL_PROJECTS ? [ALL_PROJECTS] : [project, ALL_PROJECTS];
      const held = scopes.flatMap((s) => rolesIn(ownerGrants, s).flatMap((r) => definitions.get(r) ?? []));
      const kept = tokenRoles.filter((r) => {
        const needed = definitions.get(r);
        return needed?.every((p) => permits(held, p)) ?? false;
      });
      if (kept.length > 0) roles.set(project, kept);
    }
    return {
      id: row.token_id,
      kind: 'token',
      displayName: row.name,
      roles: Object.fromEntries(roles),
      ownerId: row.owner_id,
    };
  }

  async #record(record: AuditRecord): Promise<void> {
    if (!this.#audit) return;
    try {
      await this.#audit.append(record);
    } catch (err) {
      this.#logger?.error({ err, action: record.action }, 'could not write an access decision to the audit log');
    }
  }
}

// ---------------------------------------------------------------- helpers

const tokenSubject = (id: string) => `token:${id}`;
const roleSubject = (name: string) => `role:${name}`;
const principalSubject = (id: string) => `principal:${id}`;

/** The roles a principal holds in `scope`; only own properties count, so `constructor` is just a project name. */
function rolesIn(roles: Readonly<Record<string, readonly string[]>>, scope: string): readonly string[] {
  return Object.hasOwn(roles, scope) ? (roles[scope] ?? []) : [];
}

/** Every token descending from `tokenId` (children, their children...) that is not revoked yet, in one query. */
async function liveDescendants(trx: Trx, tokenId: string): Promise<TokenRow[]> {
  return trx
    .withRecursive('lineage(token_id)', (db) =>
      db
        .selectFrom('authz_tokens')
        .select('token_id')
        .where('parent_token_id', '=', tokenId)
        // UNION, not UNION ALL: it drops rows already found, so even a corrupted cycle would end the recursion.
        .union(
          db
            .selectFrom('authz_tokens as child')
            .innerJoin('lineage', 'lineage.token_id', 'child.parent_token_id')
            .select('child.token_id'),
        ),
    )
    .selectFrom('authz_tokens')
    .innerJoin('lineage', 'lineage.token_id', 'authz_tokens.token_id')
    .selectAll('authz_tokens')
    .where('authz_tokens.revoked_at', 'is', null)
    .orderBy('authz_tokens.created_at')
    .orderBy('authz_tokens.token_id')
    .execute();
}

/** `365 days`, `12 hours`, `90 minutes`: the largest unit that divides the duration. */
function describeDuration(ms: number): string {
  for (const [unit, size] of [
    ['day', DAY_MS],
    ['hour', 3_600_000],
    ['minute', 60_000],
    ['second', 1000],
  ] as const) {
    if (ms % size === 0) return `${ms / size} ${unit}${ms / size === 1 ? '' : 's'}`;
  }
  return `${ms} ms`;
}

function validateVerifySource(context: unknown): string | undefined {
  if (typeof context !== 'object' || context === null) {
    throw new ValidationError('context must be an object', { field: 'context' });
  }
  const source = (context as VerifyTokenContext).source;
  if (source === undefined) return undefined;
  if (typeof source !== 'string' || source === '' || source.length > PRINCIPAL_ID_LENGTH) {
    throw new ValidationError(`context.source must be a non-empty string of at most ${PRINCIPAL_ID_LENGTH} chars`, {
      field: 'context.source',
    });
  }
  validateNoControlCharacters(source, 'context.source', 'context.source');
  return source;
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

async function grantsOf(db: Db, principalId: string): Promise<Record<string, readonly string[]>> {
  const rows = await db
    .selectFrom('authz_grants')
    .select(['project', 'role'])
    .where('principal_id', '=', principalId)
    .orderBy('project')
    .orderBy('role')
    .execute();
  // A Map, then own properties: project names such as `constructor` must not meet Object.prototype.
  const roles = new Map<string, string[]>();
  for (const r of rows) roles.set(r.project, [...(roles.get(r.project) ?? []), r.role]);
  return Object.fromEntries(roles);
}

function decisionRecord(
  principal: Principal,
  permission: Permission,
  resource: ResourceRef,
  outcome: 'allowed' | 'denied',
  decision: Decision,
): AuditRecord {
  return {
    actor: principal.id,
    action: permission,
    resource: `${resource.kind}:${resource.id ?? '*'}`,
    project: resource.project,
    outcome,
    details: {
      reason: decision.reason,
      principalKind: principal.kind,
      ...(principal.ownerId !== undefined ? { ownerId: principal.ownerId } : {}),
    },
  };
}

function toTokenInfo(row: TokenRow): TokenInfo {
  return {
    id: row.token_id,
    name: row.name,
    ownerId: row.owner_id,
    projects: JSON.parse(row.projects) as string[],
    roles: JSON.parse(row.roles) as string[],
    createdAt: new Date(Number(row.created_at)),
    expiresAt: new Date(Number(row.expires_at)),
    ...(row.last_used_at !== null ? { lastUsedAt: new Date(Number(row.last_used_at)) } : {}),
    ...(row.revoked_at !== null ? { revokedAt: new Date(Number(row.revoked_at)) } : {}),
    ...(row.parent_token_id !== null ? { parentTokenId: row.parent_token_id } : {}),
  };
}

function toRoleDefinition(row: RoleRow): RoleDefinition {
  return {
    name: row.name,
    permissions: JSON.parse(row.permissions) as Permission[],
    ...(row.description !== null ? { description: row.description } : {}),
    builtIn: false,
  };
}

function validatePrincipalId(id: unknown, field: string): asserts id is string {
  if (typeof id !== 'string' || id.trim() === '' || id.length > PRINCIPAL_ID_LENGTH) {
    throw new ValidationError(`${field} must be a non-empty string of at most ${PRINCIPAL_ID_LENGTH} chars`, { field });
  }
  // Principal ids land in audit entries and error messages; an escape sequence there would reach terminals.
  validateNoControlCharacters(id, field, field);
}

function validatePrincipal(principal: unknown): asserts principal is Principal {
  const p = principal as Principal | null | undefined;
  if (typeof p !== 'object' || p === null)
    throw new ValidationError('principal must be an object', { field: 'principal' });
  validatePrincipalId(p.id, 'principal.id');
  const roles = p.roles as unknown;
  const valid =
    typeof roles === 'object' &&
    roles !== null &&
    !Array.isArray(roles) &&
    Object.values(roles).every((names) => Array.isArray(names) && names.every((n) => typeof n === 'string'));
  if (!valid) {
    throw new ValidationError('principal.roles must map projects to arrays of role names', {
      field: 'principal.roles',
    });
  }
}

function validateProject(project: unknown, field: string): asserts project is string {
  if (project === ALL_PROJECTS) return;
  if (typeof project !== 'string' || !PROJECT_PATTERN.test(project)) {
    throw new ValidationError(
      `${field} ${quoteValue(project)} is not a project name: use letters, digits, '.', '_', '-' (up to 128 chars) or '${ALL_PROJECTS}'`,
      { field },
    );
  }
}

function validateResource(resource: unknown): asserts resource is ResourceRef {
  const r = resource as ResourceRef | null | undefined;
  if (typeof r !== 'object' || r === null)
    throw new ValidationError('resource must be an object', { field: 'resource' });
  validateProject(r.project, 'resource.project');
  if (typeof r.kind !== 'string' || !Object.hasOwn(RESOURCE_ACTIONS, r.kind)) {
    throw new ValidationError(
      `resource.kind must be one of ${Object.keys(RESOURCE_ACTIONS).join(', ')}, got ${quoteValue(r.kind)}`,
      { field: 'resource.kind' },
    );
  }
  if (r.id !== undefined && (typeof r.id !== 'string' || r.id.length > AUTHORIZER_LIMITS.resourceIdLength)) {
    throw new ValidationError(`resource.id must be a string of at most ${AUTHORIZER_LIMITS.resourceIdLength} chars`, {
      field: 'resource.id',
    });
  }
}

function validatePermission(permission: unknown, field: string): asserts permission is Permission {
  if (typeof permission !== 'string' || !isPermission(permission)) {
    throw new ValidationError(
      `${quoteValue(permission)} is not a permission: use <resource>.<action> from RESOURCE_ACTIONS, or 'admin'`,
      { field },
    );
  }
}

/** A role named by a grant: any string within roleNameLength (whether it exists is checked against the store). */
function validateRoleReference(role: unknown): asserts role is string {
  if (typeof role !== 'string' || role === '' || role.length > AUTHORIZER_LIMITS.roleNameLength) {
    throw new ValidationError(`role must be a role name of 1 to ${AUTHORIZER_LIMITS.roleNameLength} chars`, {
      field: 'role',
    });
  }
}

function validateRoleName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !ROLE_NAME_PATTERN.test(name)) {
    throw new ValidationError(
      `role name ${quoteValue(name)} is invalid: use lowercase letters, digits, '-' and '_', starting with a letter (up to 64 chars)`,
      { field: 'name' },
    );
  }
}

/** A non-empty array within the AUTHORIZER_LIMITS entry `limit` whose items pass `check`, without duplicates. */
function validateList<T extends string>(
  items: unknown,
  field: string,
  check: (item: unknown, field: string) => void,
  limit: 'projectsPerToken' | 'rolesPerToken' | 'permissionsPerRole',
): T[] {
  if (!Array.isArray(items) || items.length === 0) {
    throw new ValidationError(`${field} must be a non-empty array`, { field });
  }
  if (items.length > AUTHORIZER_LIMITS[limit]) {
    throw new ValidationError(
      `${field} holds ${items.length} items; the ${limit} limit is ${AUTHORIZER_LIMITS[limit]}`,
      { field },
    );
  }
  items.forEach((item, i) => {
    check(item, `${field}[${i}]`);
  });
  return [...new Set(items as T[])];
}
