import { z } from 'zod';
import { createServiceRef } from '../kernel/service-ref.js';
import { describeValue, quoteValue } from './errors.js';
import { limitedArray, limitedString, oneOf, textCheck } from './input-schemas.js';
import { type PortInputs, portArg, portInput } from './port-inputs.js';

export { ConflictError, NotFoundError, PermissionDeniedError, UnavailableError, ValidationError } from './errors.js';

/** Actions per resource kind; a Permission is `<resource>.<action>`, plus `admin` which implies every one. */
export const RESOURCE_ACTIONS = Object.freeze({
  project: ['read', 'write'],
  experiment: ['read', 'write', 'delete'],
  model: ['read', 'write', 'delete', 'promote'],
  job: ['read', 'submit', 'cancel'],
  deployment: ['read', 'write', 'rollout', 'delete'],
  feature: ['read', 'write', 'materialize'],
  artifact: ['read', 'write', 'delete'],
  secret: ['read', 'write'],
  audit: ['read'],
  token: ['read', 'write'],
  role: ['read', 'write'],
  /** Operational telemetry (the server's /metrics): granted on `*` to a Prometheus scraper's token. */
  telemetry: ['read'],
} as const);

export type ResourceKind = keyof typeof RESOURCE_ACTIONS;
export type Permission =
  | { [R in ResourceKind]: `${R}.${(typeof RESOURCE_ACTIONS)[R][number]}` }[ResourceKind]
  | 'admin';

export const ALL_PERMISSIONS: readonly Permission[] = Object.freeze([
  ...Object.entries(RESOURCE_ACTIONS).flatMap(([r, actions]) => actions.map((a) => `${r}.${a}` as Permission)),
  'admin' as const,
]);

/** Grants in this project key apply to every project (platform operators). */
export const ALL_PROJECTS = '*';

/** Built-in role names; custom roles may not reuse them. */
export const BUILT_IN_ROLES = Object.freeze({
  /** Reads everything except secrets, tokens and the audit log. */
  viewer: Object.freeze<Permission[]>([
    'project.read',
    'experiment.read',
    'model.read',
    'job.read',
    'deployment.read',
    'feature.read',
    'artifact.read',
  ]),
  /** Does the day-to-day work, promotion and rollout included (policy hooks gate those further); no secrets, roles or audit. */
  editor: Object.freeze<Permission[]>([
    'project.read',
    'experiment.read',
    'experiment.write',
    'experiment.delete',
    'model.read',
    'model.write',
    'model.delete',
    'model.promote',
    'job.read',
    'job.submit',
    'job.cancel',
    'deployment.read',
    'deployment.write',
    'deployment.rollout',
    'deployment.delete',
    'feature.read',
    'feature.write',
    'feature.materialize',
    'artifact.read',
    'artifact.write',
    'artifact.delete',
    'token.read',
    'token.write',
  ]),
  admin: Object.freeze<Permission[]>(['admin']),
});
export type BuiltInRole = keyof typeof BUILT_IN_ROLES;

/** Project names: letters, digits, `.`, `_`, `-`, starting with a letter or digit, up to 128 chars; or ALL_PROJECTS. */
export const PROJECT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** Limits on the Authorizer's inputs. */
export const AUTHORIZER_LIMITS = Object.freeze({
  /** Principal ids (users, services, token owners). */
  principalIdLength: 255,
  tokenNameLength: 255,
  /** Role names as grants and tokens name them (custom roles follow ROLE_NAME_PATTERN). */
  roleNameLength: 64,
  projectsPerToken: 100,
  rolesPerToken: 100,
  permissionsPerRole: 100,
  roleDescriptionLength: 1000,
  /** `ResourceRef.id`. */
  resourceIdLength: 1024,
  /** What `verifyToken` reads; a real secret is 64 chars. */
  tokenSecretLength: 256,
});

/** Role names: lowercase letters, digits, `-`, `_`; 1 to 64 chars. */
export const ROLE_NAME_PATTERN = /^[a-z][a-z0-9_-]{0,63}$/;
/** API token secrets start with this, so scanners can spot leaked ones. */
export const TOKEN_SECRET_PREFIX = 'mlp_';
/** Longest lifetime a token may be given unless an implementation is configured otherwise: 365 days. */
export const DEFAULT_MAX_TOKEN_LIFETIME_MS = 365 * 86_400_000;

/** Who is acting. Roles are resolved per project at authentication time. */
export interface Principal {
  readonly id: string;
  readonly kind: 'user' | 'token' | 'service';
  readonly displayName?: string;
  /** Project (or ALL_PROJECTS) -> role names. */
  readonly roles: Readonly<Record<string, readonly string[]>>;
  /** For tokens: the principal the token acts for. */
  readonly ownerId?: string;
}

/** What an action touches. `project` scopes the check; `id` is for audit and per-object policies. */
export interface ResourceRef {
  readonly project: string;
  readonly kind: ResourceKind;
  readonly id?: string;
}

export interface Decision {
  readonly allowed: boolean;
  /** Why, in words a user can act on: the role that granted it, or what is missing. */
  readonly reason: string;
}

export interface RoleDefinition {
  readonly name: string;
  readonly permissions: readonly Permission[];
  readonly description?: string;
  readonly builtIn: boolean;
}

export interface CreateTokenInput {
  /**
   * Whom the token acts for; its roles cannot exceed this principal's in each project. When it is itself a token
   * (kind `token`), that token becomes the new one's parent: the new token expires no later than its parent and is
   * revoked with it.
   */
  readonly principal: Principal;
  readonly name: string;
  readonly projects: readonly string[];
  readonly roles: readonly string[];
  /**
   * Required: tokens always expire, at most the implementation's maximum lifetime from now
   * (DEFAULT_MAX_TOKEN_LIFETIME_MS unless configured). A later expiry than the parent token's is capped at the
   * parent's; `TokenInfo.expiresAt` tells the expiry granted.
   */
  readonly expiresAt: Date;
}

/** Where a presented secret came from, for the audit log. */
export interface VerifyTokenContext {
  /**
   * The client it came from, as the gateway sees it (an address, or a proxy's forwarded address): failed checks are
   * coalesced per source and reason. At most 255 chars, no control characters.
   */
  readonly source?: string;
}

/** A token as listed: never its secret nor its hash. */
export interface TokenInfo {
  readonly id: string;
  readonly name: string;
  readonly ownerId: string;
  readonly projects: readonly string[];
  readonly roles: readonly string[];
  readonly createdAt: Date;
  readonly expiresAt: Date;
  readonly lastUsedAt?: Date;
  /** Set when the token or one of its ancestors was revoked. */
  readonly revokedAt?: Date;
  /** The token whose principal created this one; revoking it revoked this one too. */
  readonly parentTokenId?: string;
}

export interface CreatedToken {
  readonly id: string;
  /** Shown once, here; only its sha256 hash is stored. */
  readonly secret: string;
  readonly info: TokenInfo;
}

/**
 * Role-based access control: roles are sets of permissions, granted to principals per project.
 * Everything not granted is denied. Decisions are written to the AuditLog by the callers that enforce them.
 */
export interface Authorizer {
  /** Default deny: allowed only when a role of the principal in `resource.project` (or ALL_PROJECTS) grants `permission` or `admin`. */
  authorize(principal: Principal, permission: Permission, resource: ResourceRef): Promise<Decision>;
  /** As `authorize`, but throws PermissionDeniedError carrying the decision's reason when denied. */
  require(principal: Principal, permission: Permission, resource: ResourceRef): Promise<void>;
  /** The principal with its current grants; an unknown id yields a principal without roles (everything denied). */
  getPrincipal(id: string, kind?: Principal['kind']): Promise<Principal>;

  /**
   * Issues an API token. PermissionDeniedError when a role exceeds what `principal` holds in a project, or when
   * `principal` is a token that is unknown, revoked or expired; ValidationError (`field: 'expiresAt'`) for an
   * `expiresAt` in the past or beyond the maximum lifetime (the message names the limit), and for unknown roles.
   * Created by a token, the new token records it as parent and its expiry is capped at the parent's.
   */
  createToken(input: CreateTokenInput): Promise<CreatedToken>;
  /**
   * The token's principal (kind `token`, roles limited to its projects). PermissionDeniedError, without
   * saying which, for an unknown, expired or revoked secret; comparison is constant-time on hashes.
   * Failed checks go to the audit log coalesced: the first of each source and reason in a window at once, the
   * rest as one entry whose `details.count` says how many, so a flood of bad secrets writes a bounded number of
   * entries. ValidationError for a malformed `context.source`.
   */
  verifyToken(secret: string, context?: VerifyTokenContext): Promise<Principal>;
  /**
   * Revokes the token and every token created through it (its descendants), at once: none of them verifies
   * afterwards. Idempotent; NotFoundError for an unknown id.
   */
  revokeToken(id: string): Promise<void>;
  /** Newest first; never secrets. */
  listTokens(filter?: { readonly ownerId?: string; readonly includeRevoked?: boolean }): Promise<readonly TokenInfo[]>;

  /** Creates or replaces a custom role; ConflictError for a built-in name, ValidationError for a bad name or permission. */
  defineRole(role: {
    readonly name: string;
    readonly permissions: readonly Permission[];
    readonly description?: string;
  }): Promise<RoleDefinition>;
  /** ConflictError for built-in roles or roles still granted. */
  deleteRole(name: string): Promise<void>;
  /** Built-in roles first, then custom ones by name. */
  listRoles(): Promise<readonly RoleDefinition[]>;
  /** Idempotent; NotFoundError for an unknown role. */
  grant(principalId: string, project: string, role: string): Promise<void>;
  /** Idempotent. */
  revoke(principalId: string, project: string, role: string): Promise<void>;
}

export const authorizerRef = createServiceRef<Authorizer>({ id: 'core.authorizer' });

/** Whether a set of granted permissions includes `wanted` (`admin` includes everything). */
export function permits(granted: readonly Permission[], wanted: Permission): boolean {
  return granted.includes('admin') || granted.includes(wanted);
}

export function isPermission(value: string): value is Permission {
  return (ALL_PERMISSIONS as readonly string[]).includes(value);
}

// ---------------------------------------------------------------- argument schemas

const principalId = limitedString('principalIdLength', AUTHORIZER_LIMITS.principalIdLength, {
  nonEmpty: true,
  blankIsEmpty: true,
}).check(textCheck('line'));
const project = z
  .string({ error: (issue) => `must be a project name, got ${describeValue(issue.input)}` })
  .refine((p) => p === ALL_PROJECTS || PROJECT_PATTERN.test(p), {
    error: (issue) =>
      `${quoteValue(issue.input)} is not a project name: use letters, digits, '.', '_', '-' (up to 128 chars) or '${ALL_PROJECTS}'`,
  });
const permission = z.custom<Permission>((p) => typeof p === 'string' && isPermission(p), {
  error: (issue) =>
    `${quoteValue(issue.input)} is not a permission: use <resource>.<action> from RESOURCE_ACTIONS, or 'admin'`,
});
const roleName = limitedString('roleNameLength', AUTHORIZER_LIMITS.roleNameLength, { nonEmpty: true });
const customRoleName = z
  .string({ error: (issue) => `must be a role name, got ${describeValue(issue.input)}` })
  .regex(ROLE_NAME_PATTERN, {
    error: (issue) =>
      `${quoteValue(issue.input)} is not a valid role name: use lowercase letters, digits, '-' and '_', starting with a letter (up to 64 chars)`,
  });
const principalKind = oneOf(['user', 'token', 'service']);
const TOKEN_NAME = `must be a non-empty token name of at most ${AUTHORIZER_LIMITS.tokenNameLength} chars`;
const tokenName = z
  .string({ error: (issue) => `${TOKEN_NAME}, got ${describeValue(issue.input)}` })
  .refine((name) => name.trim() !== '' && name.length <= AUTHORIZER_LIMITS.tokenNameLength, {
    error: TOKEN_NAME,
    abort: true,
  })
  .check(textCheck('name'));

/**
 * A Principal's shape. Principals come from `getPrincipal` and `verifyToken`, not from callers' input, so their
 * role lists are checked for type only.
 */
const principal = z.object(
  {
    id: principalId,
    kind: principalKind,
    displayName: z.string().optional(),
    roles: z.record(z.string(), z.array(z.string()), {
      error: (issue) => `must map projects to arrays of role names, got ${describeValue(issue.input)}`,
    }),
    ownerId: z.string().optional(),
  },
  { error: (issue) => `must be a principal { id, kind, roles }, got ${describeValue(issue.input)}` },
);
const resource = z.object(
  {
    project,
    kind: z.custom<ResourceKind>((k) => typeof k === 'string' && Object.hasOwn(RESOURCE_ACTIONS, k), {
      error: (issue) => `must be one of ${Object.keys(RESOURCE_ACTIONS).join(', ')}, got ${quoteValue(issue.input)}`,
    }),
    id: limitedString('resourceIdLength', AUTHORIZER_LIMITS.resourceIdLength).optional(),
  },
  { error: (issue) => `must be a resource { project, kind, id? }, got ${describeValue(issue.input)}` },
);
const nonEmptyList = <T extends z.ZodType>(item: T, limit: keyof typeof AUTHORIZER_LIMITS) =>
  limitedArray(item, limit, AUTHORIZER_LIMITS[limit]).min(1, { error: 'must be a non-empty array' });

const decisionArgs = z.tuple([
  portArg('principal', principal),
  portArg('permission', permission),
  portArg('resource', resource),
]);

/**
 * The arguments of every Authorizer operation; `validatePortInputs(authorizer, authorizerInputs)` applies them at
 * the port's boundary. Whether roles exist, expiry lies ahead and a token fits its creator's grants is left to the
 * implementation.
 */
export const authorizerInputs = {
  authorize: decisionArgs,
  require: decisionArgs,
  getPrincipal: z.tuple([portArg('id', principalId), portArg('kind', principalKind).optional()]),
  createToken: z.tuple([
    portInput(
      'input',
      z.object({
        principal,
        name: tokenName,
        projects: nonEmptyList(project, 'projectsPerToken'),
        roles: nonEmptyList(roleName, 'rolesPerToken'),
        expiresAt: z.date({ error: 'must be a valid Date: tokens always expire' }),
      }),
    ),
  ]),
  verifyToken: z.tuple([
    portArg('secret', limitedString('tokenSecretLength', AUTHORIZER_LIMITS.tokenSecretLength)),
    portArg(
      'context',
      z.object({
        source: limitedString('principalIdLength', AUTHORIZER_LIMITS.principalIdLength, { nonEmpty: true })
          .check(textCheck('line'))
          .optional(),
      }),
    ).optional(),
  ]),
  revokeToken: z.tuple([
    portArg('id', limitedString('principalIdLength', AUTHORIZER_LIMITS.principalIdLength, { nonEmpty: true })),
  ]),
  listTokens: z.tuple([
    portInput(
      'filter',
      z.object({ ownerId: principalId.optional(), includeRevoked: z.boolean().optional() }),
    ).optional(),
  ]),
  defineRole: z.tuple([
    portInput(
      'role',
      z.object({
        name: customRoleName,
        permissions: nonEmptyList(permission, 'permissionsPerRole'),
        description: limitedString('roleDescriptionLength', AUTHORIZER_LIMITS.roleDescriptionLength).optional(),
      }),
    ),
  ]),
  deleteRole: z.tuple([portArg('name', customRoleName)]),
  grant: z.tuple([portArg('principalId', principalId), portArg('project', project), portArg('role', roleName)]),
  revoke: z.tuple([portArg('principalId', principalId), portArg('project', project), portArg('role', roleName)]),
} satisfies PortInputs<Authorizer>;
