import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AuditLog } from '../../ports/audit-log.js';
import {
  ALL_PROJECTS,
  AUTHORIZER_LIMITS,
  type Authorizer,
  authorizerInputs,
  BUILT_IN_ROLES,
  type Permission,
  type Principal,
  type ResourceRef,
  TOKEN_SECRET_PREFIX,
} from '../../ports/authorizer.js';
import { ConflictError, NotFoundError, PermissionDeniedError, ValidationError } from '../../ports/errors.js';
import type { DomainEvent } from '../../ports/event-bus.js';
import { validatePortInputs } from '../../ports/port-inputs.js';
import { delay, rejects, uniqueTag } from './support.js';

export interface AuthorizerFixture {
  readonly authorizer: Authorizer;
  /** The audit log the authorizer records denied decisions in, where it has one; audit cases need it. */
  readonly audit?: AuditLog;
  /** The domain events the authorizer recorded (its outbox), oldest first; event cases need it. */
  readonly events?: () => Promise<readonly DomainEvent[]>;
  /** Writes failed-check counts the authorizer is still coalescing to the audit log; coalescing cases need it. */
  readonly flushAudit?: () => Promise<void>;
  /** Releases what the fixture created; runs after each test. */
  readonly cleanup?: () => Promise<void>;
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/**
 * The contract every Authorizer meets: default deny, built-in and custom roles granted per project, API tokens that
 * are shown once, expire, can be revoked and never exceed their creator. Principals, projects and roles carry a
 * random tag so that a shared backend works.
 */
export function authorizerConformance(name: string, factory: () => Promise<AuthorizerFixture>): void {
  describe(`Authorizer conformance: ${name}`, async () => {
    const probe = await factory();
    const hasAudit = probe.audit !== undefined;
    const hasEvents = probe.events !== undefined;
    const canFlushAudit = hasAudit && probe.flushAudit !== undefined;
    await probe.cleanup?.();

    let fixture: AuthorizerFixture;
    let authz: Authorizer;
    let tag: string;

    beforeEach(async () => {
      fixture = await factory();
      authz = fixture.authorizer;
      tag = uniqueTag();
    });
    afterEach(async () => {
      await fixture?.cleanup?.();
    });

    const id = (base: string) => `${base}-${tag}`;
    const project = (base = 'proj') => `${base}-${tag}`;
    const model = (p: string, modelId = 'fraud'): ResourceRef => ({ project: p, kind: 'model', id: modelId });

    async function allowed(principal: Principal, permission: Permission, resource: ResourceRef): Promise<boolean> {
      return (await authz.authorize(principal, permission, resource)).allowed;
    }

    /** A viewer token on `p` for an hour; the caller sets the principal. */
    function grandchildInput(p: string) {
      return { name: 't', projects: [p], roles: ['viewer'], expiresAt: new Date(Date.now() + HOUR) };
    }

    async function userWith(base: string, grants: readonly [string, string][]): Promise<Principal> {
      for (const [p, role] of grants) await authz.grant(id(base), p, role);
      return authz.getPrincipal(id(base));
    }

    // ------------------------------------------------------------------ decisions
    describe('decisions', () => {
      it('denies by default: an unknown principal holds nothing', async () => {
        const nobody = await authz.getPrincipal(id('nobody'));
        expect(nobody).toEqual({ id: id('nobody'), kind: 'user', roles: {} });
        const decision = await authz.authorize(nobody, 'model.read', model(project()));
        expect(decision.allowed).toBe(false);
        expect(decision.reason).toContain('model.read');
        expect(decision.reason).toContain('no roles there');
      });

      it('grants what the built-in roles hold, and nothing more', async () => {
        const p = project();
        const viewer = await userWith('viewer', [[p, 'viewer']]);
        const editor = await userWith('editor', [[p, 'editor']]);
        const admin = await userWith('admin', [[p, 'admin']]);
        const secret: ResourceRef = { project: p, kind: 'secret', id: 'db-password' };
        const audit: ResourceRef = { project: p, kind: 'audit' };
        expect(await allowed(viewer, 'model.read', model(p))).toBe(true);
        expect(await allowed(viewer, 'model.write', model(p))).toBe(false);
        expect(await allowed(editor, 'model.promote', model(p))).toBe(true);
        expect(await allowed(editor, 'secret.read', secret)).toBe(false);
        expect(await allowed(editor, 'audit.read', audit)).toBe(false);
        expect(await allowed(editor, 'role.write', { project: p, kind: 'role' })).toBe(false);
        expect(await allowed(admin, 'secret.write', secret)).toBe(true);
        expect(await allowed(admin, 'admin', audit)).toBe(true);
        const yes = await authz.authorize(editor, 'model.promote', model(p));
        expect(yes.reason).toContain(`role 'editor'`);
        expect(yes.reason).toContain(`'${p}'`);
        const no = await authz.authorize(viewer, 'model.write', model(p));
        expect(no.reason).toContain('roles there: viewer');
      });

      it('scopes grants to their project; ALL_PROJECTS grants apply everywhere', async () => {
        const a = project('a');
        const b = project('b');
        const alice = await userWith('alice', [[a, 'editor']]);
        expect(await allowed(alice, 'model.write', model(a))).toBe(true);
        expect(await allowed(alice, 'model.write', model(b))).toBe(false);
        expect(await allowed(alice, 'model.read', model(ALL_PROJECTS))).toBe(false);
        const ops = await userWith('ops', [[ALL_PROJECTS, 'viewer']]);
        expect(await allowed(ops, 'model.read', model(a))).toBe(true);
        expect(await allowed(ops, 'model.read', model(ALL_PROJECTS))).toBe(true);
        expect((await authz.authorize(ops, 'model.read', model(b))).reason).toContain('all projects');
        expect(await allowed(ops, 'model.write', model(a))).toBe(false);
      });

      it('grants and revokes idempotently; revoking takes effect for the next principal read', async () => {
        const p = project();
        await Promise.all(Array.from({ length: 5 }, () => authz.grant(id('bob'), p, 'editor')));
        await authz.grant(id('bob'), p, 'viewer');
        expect((await authz.getPrincipal(id('bob'))).roles).toEqual({ [p]: ['editor', 'viewer'] });
        await authz.revoke(id('bob'), p, 'editor');
        await authz.revoke(id('bob'), p, 'editor');
        const bob = await authz.getPrincipal(id('bob'), 'service');
        expect(bob).toEqual({ id: id('bob'), kind: 'service', roles: { [p]: ['viewer'] } });
        expect(await allowed(bob, 'model.write', model(p))).toBe(false);
        await rejects(authz.grant(id('bob'), p, id('nope')), NotFoundError, `role '${id('nope')}' does not exist`);
        await rejects(authz.grant(id('bob'), 'bad project!', 'viewer'), ValidationError, 'is not a project name');
        await rejects(authz.grant('', p, 'viewer'), ValidationError, 'principalId');
      });

      it('require resolves when allowed and throws PermissionDeniedError naming the permission and resource', async () => {
        const p = project();
        const viewer = await userWith('carol', [[p, 'viewer']]);
        await authz.require(viewer, 'model.read', model(p));
        const err = await rejects(
          authz.require(viewer, 'model.promote', model(p, 'churn')),
          PermissionDeniedError,
          'model.promote',
        );
        expect(err.message).toContain('model:churn');
        expect(err.message).toContain(p);
        expect(err.message).toContain('roles there: viewer');
      });

      it('validates permissions, resources and principals', async () => {
        const p = project();
        const someone = await authz.getPrincipal(id('dan'));
        await rejects(
          authz.authorize(someone, 'model.fly' as never, model(p)),
          ValidationError,
          "'model.fly' is not a permission",
        );
        await rejects(
          authz.authorize(someone, 'model.read', { project: p, kind: 'planet' as never }),
          ValidationError,
          'resource.kind must be one of',
        );
        await rejects(
          authz.authorize(someone, 'model.read', { project: '', kind: 'model' }),
          ValidationError,
          'project',
        );
        await rejects(
          authz.authorize({ id: 'x', kind: 'user', roles: { [p]: 'admin' as never } }, 'model.read', model(p)),
          ValidationError,
          'principal.roles',
        );
      });

      it('treats names like constructor as plain data', async () => {
        const nobody = await authz.getPrincipal(id('oscar'));
        expect(await allowed(nobody, 'model.read', model('constructor'))).toBe(false);
        const oscar = await userWith('oscar', [['constructor', 'viewer']]);
        expect(oscar.roles).toEqual({ constructor: ['viewer'] });
        expect(await allowed(oscar, 'model.read', model('constructor'))).toBe(true);
        const role = await authz.defineRole({ name: 'constructor', permissions: ['model.read'] });
        expect(role.builtIn).toBe(false);
        await authz.deleteRole('constructor');
      });

      it.runIf(hasAudit)('records denied require decisions in the audit log, with who, what and why', async () => {
        const p = project();
        const viewer = await userWith('erin', [[p, 'viewer']]);
        await authz.require(viewer, 'model.read', model(p));
        await rejects(authz.require(viewer, 'model.delete', model(p, 'churn')), PermissionDeniedError, 'model.delete');
        const entries = (await fixture.audit!.list({ actor: id('erin') })).items;
        expect(entries).toHaveLength(1);
        expect(entries[0]).toMatchObject({
          action: 'model.delete',
          resource: 'model:churn',
          project: p,
          outcome: 'denied',
        });
        expect(String(entries[0]!.details.reason)).toContain('roles there: viewer');
      });
    });

    // ------------------------------------------------------------------ port boundary
    describe('inputs at the port boundary (validatePortInputs, as the kernel wraps every provider)', () => {
      it('refuses mistyped principals, permissions and resources, and lists beyond AUTHORIZER_LIMITS', async () => {
        const boundary = validatePortInputs(authz, authorizerInputs);
        const p = project();
        const someone = await authz.getPrincipal(id('eve'));
        const cases: [() => Promise<unknown>, string, string][] = [
          [() => boundary.authorize(null as never, 'model.read', model(p)), 'principal', 'must be a principal'],
          [() => boundary.authorize(someone, 7 as never, model(p)), 'permission', 'is not a permission'],
          [
            () => boundary.authorize(someone, 'model.read', { project: p, kind: 'model', id: 3 as never }),
            'resource.id',
            'must be a string',
          ],
          [() => boundary.grant(id('eve'), p, null as never), 'role', 'must be a non-empty string'],
          [
            () =>
              boundary.defineRole({
                name: id('many'),
                permissions: Array.from({ length: AUTHORIZER_LIMITS.permissionsPerRole + 1 }, () => 'model.read'),
              }),
            'permissions',
            'permissionsPerRole',
          ],
          [
            () =>
              boundary.createToken({
                principal: someone,
                name: 'ci',
                projects: Array.from({ length: AUTHORIZER_LIMITS.projectsPerToken + 1 }, (_, i) => `${p}-${i}`),
                roles: ['viewer'],
                expiresAt: new Date(Date.now() + 60_000),
              }),
            'projects',
            'projectsPerToken',
          ],
        ];
        for (const [call, field, message] of cases) {
          const err = await rejects(call(), ValidationError, message);
          expect(err.field).toBe(field);
        }
        expect((await authz.listRoles()).map((r) => r.name)).not.toContain(id('many'));
        expect(await authz.listTokens({ ownerId: someone.id })).toEqual([]);
      });
    });

    // ------------------------------------------------------------------ roles
    describe('roles', () => {
      it('lists built-in roles first, then custom ones by name', async () => {
        await authz.defineRole({ name: id('zeta'), permissions: ['model.read'] });
        await authz.defineRole({ name: id('alpha'), permissions: ['model.read'], description: 'reads models' });
        const roles = await authz.listRoles();
        expect(roles.slice(0, 3).map((r) => [r.name, r.builtIn])).toEqual([
          ['viewer', true],
          ['editor', true],
          ['admin', true],
        ]);
        expect(roles[0]?.permissions).toEqual([...BUILT_IN_ROLES.viewer]);
        const mine = roles.filter((r) => r.name.endsWith(tag));
        expect(mine.map((r) => r.name)).toEqual([id('alpha'), id('zeta')]);
        expect(mine[0]).toEqual({
          name: id('alpha'),
          permissions: ['model.read'],
          description: 'reads models',
          builtIn: false,
        });
        const names = roles.slice(3).map((r) => r.name);
        expect(names).toEqual([...names].sort());
      });

      it('grants what a custom role holds; redefining it changes every grant at once', async () => {
        const p = project();
        const role = id('reviewer');
        const defined = await authz.defineRole({
          name: role,
          permissions: ['model.promote', 'model.read', 'model.read'],
        });
        expect(defined).toEqual({ name: role, permissions: ['model.promote', 'model.read'], builtIn: false });
        const frank = await userWith('frank', [[p, role]]);
        expect(await allowed(frank, 'model.promote', model(p))).toBe(true);
        expect(await allowed(frank, 'model.write', model(p))).toBe(false);
        await authz.defineRole({ name: role, permissions: ['model.read'] });
        expect(await allowed(frank, 'model.promote', model(p))).toBe(false);
        expect((await authz.authorize(frank, 'model.read', model(p))).reason).toContain(`role '${role}'`);
      });

      it('validates role definitions and protects built-in and granted roles', async () => {
        await rejects(authz.defineRole({ name: 'editor', permissions: ['model.read'] }), ConflictError, 'built-in');
        const bad = await rejects(
          authz.defineRole({ name: 'Bad Name', permissions: ['model.read'] }),
          ValidationError,
          'role name',
        );
        expect(bad.field).toBe('name');
        const perm = await rejects(
          authz.defineRole({ name: id('r'), permissions: ['model.read', 'model.fly' as never] }),
          ValidationError,
          "'model.fly' is not a permission",
        );
        expect(perm.field).toBe('permissions[1]');
        await rejects(authz.defineRole({ name: id('r'), permissions: [] }), ValidationError, 'non-empty array');
        await rejects(authz.deleteRole('admin'), ConflictError, 'built-in');
        await rejects(authz.deleteRole(id('ghost')), NotFoundError, 'does not exist');
        const role = id('temp');
        await authz.defineRole({ name: role, permissions: ['model.read'] });
        await authz.grant(id('gina'), project(), role);
        await rejects(authz.deleteRole(role), ConflictError, 'still granted');
        await authz.revoke(id('gina'), project(), role);
        await authz.deleteRole(role);
        await rejects(authz.grant(id('gina'), project(), role), NotFoundError, 'does not exist');
        expect((await authz.listRoles()).some((r) => r.name === role)).toBe(false);
      });
    });

    describe('roles under concurrency', () => {
      it('never leaves a grant of a deleted role when grant and deleteRole race', async () => {
        for (let round = 0; round < 5; round++) {
          const role = id(`race${round}`);
          await authz.defineRole({ name: role, permissions: ['model.read'] });
          const [granted, deleted] = await Promise.allSettled([
            authz.grant(id('pat'), project(), role),
            authz.deleteRole(role),
          ]);
          const held = (await authz.getPrincipal(id('pat'))).roles[project()] ?? [];
          const exists = (await authz.listRoles()).some((r) => r.name === role);
          if (deleted.status === 'fulfilled') {
            expect(granted.status).toBe('rejected');
            expect((granted as PromiseRejectedResult).reason).toBeInstanceOf(NotFoundError);
            expect(held).not.toContain(role);
            expect(exists).toBe(false);
          } else {
            expect(deleted.reason).toBeInstanceOf(ConflictError);
            expect(granted.status).toBe('fulfilled');
            expect(held).toContain(role);
            expect(exists).toBe(true);
          }
        }
      });
    });

    describe('tokens under concurrency', () => {
      it('never leaves a live token whose parent was revoked when createToken and revokeToken race', async () => {
        const p = project();
        const owner = await userWith('wade', [[p, 'editor']]);
        for (let round = 0; round < 5; round++) {
          const parent = await authz.createToken({ ...grandchildInput(p), principal: owner, name: `p${round}` });
          const asParent = await authz.verifyToken(parent.secret);
          const [created] = await Promise.allSettled([
            authz.createToken({ ...grandchildInput(p), principal: asParent, name: `c${round}` }),
            authz.revokeToken(parent.id),
          ]);
          if (created.status === 'fulfilled') {
            await rejects(authz.verifyToken(created.value.secret), PermissionDeniedError, /./);
          } else {
            expect(created.reason).toBeInstanceOf(PermissionDeniedError);
          }
        }
        expect(await authz.listTokens({ ownerId: id('wade') })).toEqual([]);
      });
    });

    // ------------------------------------------------------------------ tokens
    describe('API tokens', () => {
      it('issues a token shown once and verifies it to a principal limited to its projects and roles', async () => {
        const p = project();
        const other = project('other');
        const owner = await userWith('hank', [
          [p, 'editor'],
          [other, 'editor'],
        ]);
        const before = Date.now();
        const created = await authz.createToken({
          principal: owner,
          name: 'ci',
          projects: [p],
          roles: ['viewer'],
          expiresAt: new Date(Date.now() + HOUR),
        });
        expect(created.secret.startsWith(TOKEN_SECRET_PREFIX)).toBe(true);
        expect(created.info).toMatchObject({
          id: created.id,
          name: 'ci',
          ownerId: id('hank'),
          projects: [p],
          roles: ['viewer'],
        });
        expect(created.info.createdAt.getTime()).toBeGreaterThanOrEqual(before - 1000);
        expect(JSON.stringify(created.info)).not.toContain(created.secret);
        const principal = await authz.verifyToken(created.secret);
        expect(principal).toMatchObject({
          id: created.id,
          kind: 'token',
          ownerId: id('hank'),
          roles: { [p]: ['viewer'] },
        });
        expect(await allowed(principal, 'model.read', model(p))).toBe(true);
        expect(await allowed(principal, 'model.write', model(p))).toBe(false);
        expect(await allowed(principal, 'model.read', model(other))).toBe(false);
        expect(await authz.getPrincipal(created.id, 'token')).toEqual(principal);
        const listed = await authz.listTokens({ ownerId: id('hank') });
        expect(listed.map((t) => t.id)).toEqual([created.id]);
        expect(listed[0]?.lastUsedAt).toBeInstanceOf(Date);
        expect(JSON.stringify(listed)).not.toContain(created.secret.slice(TOKEN_SECRET_PREFIX.length + 17));
      });

      it('refuses tokens that exceed their creator, unknown roles, past expiry and empty scopes', async () => {
        const p = project();
        const viewer = await userWith('ivan', [[p, 'viewer']]);
        const input = {
          principal: viewer,
          name: 't',
          projects: [p],
          roles: ['viewer'],
          expiresAt: new Date(Date.now() + HOUR),
        };
        const over = await rejects(
          authz.createToken({ ...input, roles: ['editor'] }),
          PermissionDeniedError,
          "role 'editor' exceeds",
        );
        expect(over.message).toContain('model.write');
        await rejects(
          authz.createToken({ ...input, projects: [project('elsewhere')] }),
          PermissionDeniedError,
          'exceeds',
        );
        await rejects(authz.createToken({ ...input, projects: [ALL_PROJECTS] }), PermissionDeniedError, 'exceeds');
        await rejects(authz.createToken({ ...input, roles: [id('ghost')] }), ValidationError, 'unknown role');
        await rejects(
          authz.createToken({ ...input, expiresAt: new Date(Date.now() - 1000) }),
          ValidationError,
          'in the future',
        );
        await rejects(authz.createToken({ ...input, expiresAt: undefined as never }), ValidationError, 'always expire');
        await rejects(
          authz.createToken({ ...input, projects: [] }),
          ValidationError,
          'projects must be a non-empty array',
        );
        await rejects(authz.createToken({ ...input, roles: [] }), ValidationError, 'roles must be a non-empty array');
        await rejects(authz.createToken({ ...input, name: '' }), ValidationError, 'token name');
        expect(await authz.listTokens({ ownerId: id('ivan') })).toEqual([]);
        // An ALL_PROJECTS admin may issue anything anywhere.
        const root = await userWith('root', [[ALL_PROJECTS, 'admin']]);
        const token = await authz.createToken({
          ...input,
          principal: root,
          roles: ['admin'],
          projects: [ALL_PROJECTS],
        });
        expect(
          await allowed(await authz.verifyToken(token.secret), 'secret.write', { project: p, kind: 'secret' }),
        ).toBe(true);
      });

      it('refuses unknown, malformed, tampered, revoked and expired secrets alike', async () => {
        const p = project();
        const owner = await userWith('jane', [[p, 'editor']]);
        const input = {
          principal: owner,
          name: 't',
          projects: [p],
          roles: ['viewer'],
          expiresAt: new Date(Date.now() + HOUR),
        };
        const token = await authz.createToken(input);
        const last = token.secret.at(-1) === 'A' ? 'B' : 'A';
        const tampered = `${token.secret.slice(0, -1)}${last}`;
        const messages: string[] = [];
        for (const secret of ['', 'garbage', `${TOKEN_SECRET_PREFIX}0000000000000000_${'x'.repeat(43)}`, tampered]) {
          messages.push((await rejects(authz.verifyToken(secret), PermissionDeniedError, /./)).message);
        }
        await authz.revokeToken(token.id);
        await authz.revokeToken(token.id);
        messages.push((await rejects(authz.verifyToken(token.secret), PermissionDeniedError, /./)).message);
        const short = await authz.createToken({ ...input, expiresAt: new Date(Date.now() + 1500) });
        await authz.verifyToken(short.secret);
        await delay(1600);
        messages.push((await rejects(authz.verifyToken(short.secret), PermissionDeniedError, /./)).message);
        // One message for every failure, so callers cannot probe which tokens exist.
        expect(new Set(messages).size).toBe(1);
        expect(messages[0]).not.toContain(token.id);
        expect(await authz.getPrincipal(token.id, 'token')).toEqual({ id: token.id, kind: 'token', roles: {} });
        await rejects(authz.revokeToken('0000000000000000'), NotFoundError, 'does not exist');
      });

      it('lists tokens newest first, revoked ones only on request', async () => {
        const p = project();
        const owner = await userWith('kate', [[p, 'editor']]);
        const make = (name: string) =>
          authz.createToken({
            principal: owner,
            name,
            projects: [p],
            roles: ['viewer'],
            expiresAt: new Date(Date.now() + HOUR),
          });
        const a = await make('a');
        await delay(5);
        const b = await make('b');
        await delay(5);
        const c = await make('c');
        await authz.revokeToken(b.id);
        expect((await authz.listTokens({ ownerId: id('kate') })).map((t) => t.name)).toEqual(['c', 'a']);
        const all = await authz.listTokens({ ownerId: id('kate'), includeRevoked: true });
        expect(all.map((t) => t.name)).toEqual(['c', 'b', 'a']);
        expect(all[1]?.revokedAt).toBeInstanceOf(Date);
        expect(all.map((t) => t.id)).toEqual([c.id, b.id, a.id]);
      });

      it('never lets a token exceed what its owner holds now', async () => {
        const p = project();
        const owner = await userWith('leo', [
          [p, 'editor'],
          [p, 'viewer'],
        ]);
        const token = await authz.createToken({
          principal: owner,
          name: 'deploy',
          projects: [p],
          roles: ['editor', 'viewer'],
          expiresAt: new Date(Date.now() + HOUR),
        });
        expect((await authz.verifyToken(token.secret)).roles).toEqual({ [p]: ['editor', 'viewer'] });
        await authz.revoke(id('leo'), p, 'editor');
        const narrowed = await authz.verifyToken(token.secret);
        expect(narrowed.roles).toEqual({ [p]: ['viewer'] });
        expect(await allowed(narrowed, 'model.write', model(p))).toBe(false);
      });

      it('bounds a token made through a token by it: expiry capped at the parent, revoked with it', async () => {
        const p = project();
        const owner = await userWith('quinn', [[p, 'editor']]);
        const parent = await authz.createToken({
          principal: owner,
          name: 'session',
          projects: [p],
          roles: ['editor'],
          expiresAt: new Date(Date.now() + 60_000),
        });
        const asParent = await authz.verifyToken(parent.secret);
        const child = await authz.createToken({
          principal: asParent,
          name: 'ci',
          projects: [p],
          roles: ['editor'],
          expiresAt: new Date(Date.now() + 300 * DAY),
        });
        expect(child.info.expiresAt.getTime()).toBe(parent.info.expiresAt.getTime());
        expect(child.info.parentTokenId).toBe(parent.id);
        expect(child.info.ownerId).toBe(id('quinn'));
        const asChild = await authz.verifyToken(child.secret);
        const grandchild = await authz.createToken({
          principal: asChild,
          name: 'nightly',
          projects: [p],
          roles: ['viewer'],
          expiresAt: new Date(Date.now() + 30_000),
        });
        expect(grandchild.info.expiresAt.getTime()).toBeLessThan(parent.info.expiresAt.getTime());
        expect(grandchild.info.parentTokenId).toBe(child.id);
        await authz.verifyToken(grandchild.secret);

        await authz.revokeToken(parent.id);
        for (const token of [parent, child, grandchild]) {
          await rejects(authz.verifyToken(token.secret), PermissionDeniedError, /./);
          expect(await authz.getPrincipal(token.id, 'token')).toEqual({ id: token.id, kind: 'token', roles: {} });
        }
        expect(await authz.listTokens({ ownerId: id('quinn') })).toEqual([]);
        const listed = await authz.listTokens({ ownerId: id('quinn'), includeRevoked: true });
        expect(listed.map((t) => [t.name, t.revokedAt instanceof Date])).toEqual([
          ['nightly', true],
          ['ci', true],
          ['session', true],
        ]);
        // A principal read before the revocation cannot mint a way back in.
        await rejects(
          authz.createToken({ ...grandchildInput(p), principal: asChild }),
          PermissionDeniedError,
          'revoked or expired',
        );
      });

      it('revokes only the descendants of the token revoked', async () => {
        const p = project();
        const owner = await userWith('rosa', [[p, 'editor']]);
        const root = await authz.createToken({ ...grandchildInput(p), principal: owner, name: 'root' });
        const asRoot = await authz.verifyToken(root.secret);
        const left = await authz.createToken({ ...grandchildInput(p), principal: asRoot, name: 'left' });
        const right = await authz.createToken({ ...grandchildInput(p), principal: asRoot, name: 'right' });
        const below = await authz.createToken({
          ...grandchildInput(p),
          principal: await authz.verifyToken(left.secret),
          name: 'below-left',
        });
        await authz.revokeToken(left.id);
        await rejects(authz.verifyToken(left.secret), PermissionDeniedError, /./);
        await rejects(authz.verifyToken(below.secret), PermissionDeniedError, /./);
        await authz.verifyToken(root.secret);
        await authz.verifyToken(right.secret);
        expect((await authz.listTokens({ ownerId: id('rosa') })).map((t) => t.name).sort()).toEqual(['right', 'root']);
      });

      it('refuses an expiry beyond the maximum token lifetime, naming the limit', async () => {
        const p = project();
        const owner = await userWith('sam', [[p, 'editor']]);
        for (const expiresAt of [new Date(8.64e15), new Date(Date.now() + 10 * 366 * DAY)]) {
          const err = await rejects(
            authz.createToken({ ...grandchildInput(p), principal: owner, expiresAt }),
            ValidationError,
            'maximum token lifetime',
          );
          expect(err.field).toBe('expiresAt');
        }
        expect(await authz.listTokens({ ownerId: id('sam'), includeRevoked: true })).toEqual([]);
      });

      it('validates token names and principal ids: no control or bidi characters; names NFC', async () => {
        const p = project();
        const owner = await userWith('tess', [[p, 'editor']]);
        for (const name of ['ci\u0007', 'ci\nbuild', 'ci\u202Eetad', 'ci\u0085']) {
          const err = await rejects(
            authz.createToken({ ...grandchildInput(p), principal: owner, name }),
            ValidationError,
            /control/,
          );
          expect(err.field).toBe('name');
        }
        const created = await authz.createToken({ ...grandchildInput(p), principal: owner, name: 'cafe\u0301' });
        expect(created.info.name).toBe('caf\u00e9');
        await rejects(authz.grant(`${id('ursula')}\u001b[2J`, p, 'viewer'), ValidationError, 'control character');
        await rejects(authz.getPrincipal(`${id('ursula')}\r\n`), ValidationError, 'control character');
        await rejects(
          authz.verifyToken(created.secret, { source: '10.0.0.1\r\nX-Forwarded-For: 1.2.3.4' }),
          ValidationError,
          'context.source',
        );
        await authz.verifyToken(created.secret, { source: '10.0.0.1' });
      });

      it.runIf(hasAudit)('records failed token checks in the audit log', async () => {
        const p = project();
        const owner = await userWith('mia', [[p, 'editor']]);
        const token = await authz.createToken({
          principal: owner,
          name: 't',
          projects: [p],
          roles: ['viewer'],
          expiresAt: new Date(Date.now() + HOUR),
        });
        await authz.revokeToken(token.id);
        await rejects(authz.verifyToken(token.secret), PermissionDeniedError, /./);
        const entries = (await fixture.audit!.list({ actor: `token:${token.id}` })).items;
        expect(entries.map((e) => [e.action, e.outcome, e.details.reason])).toEqual([
          ['token.verify', 'denied', 'revoked'],
        ]);
      });

      it.runIf(hasAudit)(
        'coalesces repeated failed checks: the first is written at once, the rest counted',
        async () => {
          const p = project();
          const owner = await userWith('vera', [[p, 'editor']]);
          const token = await authz.createToken({ ...grandchildInput(p), principal: owner });
          await authz.revokeToken(token.id);
          const source = `10.9.${tag}`;
          for (let i = 0; i < 50; i++) {
            await rejects(authz.verifyToken(token.secret, { source }), PermissionDeniedError, /./);
          }
          const now = (await fixture.audit!.list({ actor: `token:${token.id}` })).items;
          expect(now.map((e) => [e.details.reason, e.details.count, e.details.source])).toEqual([
            ['revoked', 1, source],
          ]);
          if (!canFlushAudit) return;
          await fixture.flushAudit!();
          const entries = (await fixture.audit!.list({ actor: `token:${token.id}`, order: 'asc' })).items;
          expect(entries).toHaveLength(2);
          expect(entries[1]!.details).toMatchObject({ reason: 'revoked', count: 49, coalesced: true, source });
          expect(entries.reduce((n, e) => n + Number(e.details.count), 0)).toBe(50);
        },
      );
    });

    // ------------------------------------------------------------------ events
    describe.runIf(hasEvents)('domain events (outbox)', () => {
      it('records grants, roles and token lifecycles, never a secret or its hash', async () => {
        const p = project();
        const role = id('auditor');
        await authz.defineRole({ name: role, permissions: ['audit.read'] });
        await authz.grant(id('nora'), p, 'editor');
        await authz.grant(id('nora'), p, 'editor');
        const owner = await authz.getPrincipal(id('nora'));
        const token = await authz.createToken({
          principal: owner,
          name: 't',
          projects: [p],
          roles: ['viewer'],
          expiresAt: new Date(Date.now() + HOUR),
        });
        await authz.revokeToken(token.id);
        await authz.revoke(id('nora'), p, 'editor');
        await authz.revoke(id('nora'), p, 'editor');
        await authz.deleteRole(role);
        const mine = [...(await fixture.events!())].filter(
          (e) => JSON.stringify(e).includes(tag) || e.subject.includes(token.id),
        );
        expect(mine.map((e) => e.type)).toEqual([
          'authz.role.defined',
          'authz.grant.added',
          'authz.token.created',
          'authz.token.revoked',
          'authz.grant.revoked',
          'authz.role.deleted',
        ]);
        expect(mine[1]).toMatchObject({ project: p, payload: { principalId: id('nora'), project: p, role: 'editor' } });
        const text = JSON.stringify(mine);
        expect(text).not.toContain(token.secret);
        expect(text).not.toContain(token.secret.slice(-20));
      });

      it('records the revocation of every token revoked with its parent, naming the parent', async () => {
        const p = project();
        const owner = await userWith('xena', [[p, 'editor']]);
        const parent = await authz.createToken({ ...grandchildInput(p), principal: owner, name: 'parent' });
        const child = await authz.createToken({
          ...grandchildInput(p),
          principal: await authz.verifyToken(parent.secret),
          name: 'child',
        });
        await authz.revokeToken(parent.id);
        await authz.revokeToken(parent.id);
        await authz.revokeToken(child.id);
        const about = (tokenId: string) => (e: DomainEvent) => e.subject === `token:${tokenId}`;
        const events = await fixture.events!();
        expect(events.filter(about(child.id)).map((e) => [e.type, e.payload])).toEqual([
          ['authz.token.created', expect.objectContaining({ tokenId: child.id, parentTokenId: parent.id })],
          ['authz.token.revoked', expect.objectContaining({ tokenId: child.id, revokedWith: parent.id })],
        ]);
        expect(events.filter(about(parent.id)).map((e) => e.type)).toEqual([
          'authz.token.created',
          'authz.token.revoked',
        ]);
      });
    });
  });
}
