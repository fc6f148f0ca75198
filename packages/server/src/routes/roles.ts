import {
  ALL_PROJECTS,
  authorizerInputs,
  type Permission,
  PermissionDeniedError,
  PROJECT_PATTERN,
  type RoleDefinition,
} from '@mlplane/core';
import { z } from 'zod';
import { resourceKindOf } from '../http/auth.js';
import { defineRoute } from '../http/route.js';
import { argumentSchema } from './wire.js';

const roleSchema = z.object({
  name: z.string(),
  permissions: z.array(z.string()),
  description: z.string().optional(),
  builtIn: z.boolean(),
});
const roleWire = (r: RoleDefinition): z.infer<typeof roleSchema> => ({
  name: r.name,
  permissions: [...r.permissions],
  ...(r.description !== undefined ? { description: r.description } : {}),
  builtIn: r.builtIn,
});

const defineInput = argumentSchema(authorizerInputs.defineRole, 0) as unknown as z.ZodObject<{
  name: z.ZodType<string>;
  permissions: z.ZodType<Permission[]>;
  description: z.ZodOptional<z.ZodType<string>>;
}>;
const principalId = argumentSchema(authorizerInputs.grant, 0) as z.ZodType<string>;
const roleName = argumentSchema(authorizerInputs.grant, 2) as z.ZodType<string>;

/** Grants may name a project or every project (`*`); granting in `*` needs role.write in `*`. */
const grantProject = z.string().refine((p) => p === ALL_PROJECTS || PROJECT_PATTERN.test(p), {
  error: `must be a project name (letters, digits, . _ -, up to 128) or '${ALL_PROJECTS}'`,
});
const grantParams = z.object({ project: grantProject, principalId });

export const roleRoutes = [
  defineRoute({
    operationId: 'listRoles',
    method: 'GET',
    path: '/roles',
    summary: 'Every role with its permissions: built-in ones first, then custom ones by name',
    tag: 'roles',
    permission: 'role.read',
    scope: 'platform',
    response: z.object({ items: z.array(roleSchema) }),
    async handle({ services }) {
      return { items: (await services.authorizer.listRoles()).map(roleWire) };
    },
  }),
  defineRoute({
    operationId: 'defineRole',
    method: 'PUT',
    path: '/roles/{name}',
    summary: 'Create or replace a custom role (built-in names are refused with 409)',
    tag: 'roles',
    permission: 'role.write',
    scope: 'platform',
    params: z.object({ name: defineInput.shape.name }),
    body: defineInput.omit({ name: true }).strict(),
    response: roleSchema,
    async handle({ params, body, services }) {
      return roleWire(
        await services.authorizer.defineRole({
          name: params.name,
          permissions: body.permissions,
          ...(body.description !== undefined ? { description: body.description } : {}),
        }),
      );
    },
  }),
  defineRoute({
    operationId: 'deleteRole',
    method: 'DELETE',
    path: '/roles/{name}',
    summary: 'Delete a custom role that nobody holds (409 for built-in roles or roles still granted)',
    tag: 'roles',
    permission: 'role.write',
    scope: 'platform',
    params: z.object({ name: defineInput.shape.name }),
    response: 'empty',
    async handle({ params, services }) {
      await services.authorizer.deleteRole(params.name);
      return undefined;
    },
  }),
  defineRoute({
    operationId: 'getGrants',
    method: 'GET',
    path: '/projects/{project}/grants/{principalId}',
    summary: "The roles a principal holds in the project (and in every project, '*')",
    tag: 'roles',
    permission: 'role.read',
    scope: 'project',
    params: grantParams,
    response: z.object({
      principalId: z.string(),
      project: z.string(),
      roles: z.array(z.string()),
      everyProjectRoles: z.array(z.string()),
    }),
    async handle({ params, services }) {
      const principal = await services.authorizer.getPrincipal(params.principalId);
      return {
        principalId: params.principalId,
        project: params.project,
        roles: [...(principal.roles[params.project] ?? [])],
        everyProjectRoles: params.project === ALL_PROJECTS ? [] : [...(principal.roles[ALL_PROJECTS] ?? [])],
      };
    },
  }),
  defineRoute({
    operationId: 'grantRole',
    method: 'PUT',
    path: '/projects/{project}/grants/{principalId}/roles/{role}',
    summary: 'Grant a role in the project (idempotent); only permissions the caller holds there can be granted',
    tag: 'roles',
    permission: 'role.write',
    scope: 'project',
    params: grantParams.extend({ role: roleName }),
    response: 'empty',
    async handle({ params, principal, services }) {
      // role.write alone must not let a caller hand out more than it holds itself (as a token cannot exceed its
      // creator's roles): every permission of the role is checked in the project.
      const role = (await services.authorizer.listRoles()).find((r) => r.name === params.role);
      for (const permission of role?.permissions ?? []) {
        const decision = await services.authorizer.authorize(principal, permission, {
          project: params.project,
          kind: resourceKindOf(permission),
        });
        if (!decision.allowed) {
          throw new PermissionDeniedError(
            `granting role '${params.role}' needs every permission it holds; the caller lacks ${permission} in '${params.project}'`,
          );
        }
      }
      await services.authorizer.grant(params.principalId, params.project, params.role);
      return undefined;
    },
  }),
  defineRoute({
    operationId: 'revokeRole',
    method: 'DELETE',
    path: '/projects/{project}/grants/{principalId}/roles/{role}',
    summary: 'Revoke a role in the project (idempotent)',
    tag: 'roles',
    permission: 'role.write',
    scope: 'project',
    params: grantParams.extend({ role: roleName }),
    response: 'empty',
    async handle({ params, services }) {
      await services.authorizer.revoke(params.principalId, params.project, params.role);
      return undefined;
    },
  }),
];
