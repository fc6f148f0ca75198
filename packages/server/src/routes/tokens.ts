import type { TokenInfo } from '@mlplane/core';
import { z } from 'zod';
import { defineRoute } from '../http/route.js';
import { iso, isoDate } from './wire.js';

const tokenSchema = z.object({
  id: z.string(),
  name: z.string(),
  ownerId: z.string(),
  projects: z.array(z.string()),
  roles: z.array(z.string()),
  createdAt: isoDate,
  expiresAt: isoDate,
  lastUsedAt: isoDate.optional(),
  revokedAt: isoDate.optional(),
  parentTokenId: z.string().optional(),
});
const tokenWire = (t: TokenInfo): z.infer<typeof tokenSchema> => ({
  id: t.id,
  name: t.name,
  ownerId: t.ownerId,
  projects: [...t.projects],
  roles: [...t.roles],
  createdAt: iso(t.createdAt),
  expiresAt: iso(t.expiresAt),
  ...(t.lastUsedAt ? { lastUsedAt: iso(t.lastUsedAt) } : {}),
  ...(t.revokedAt ? { revokedAt: iso(t.revokedAt) } : {}),
  ...(t.parentTokenId ? { parentTokenId: t.parentTokenId } : {}),
});

const DAY_MS = 86_400_000;

export const tokenRoutes = [
  defineRoute({
    operationId: 'whoami',
    method: 'GET',
    path: '/me',
    summary: 'The calling principal and its roles per project',
    tag: 'tokens',
    permission: 'authenticated',
    scope: 'platform',
    response: z.object({
      id: z.string(),
      kind: z.enum(['user', 'token', 'service']),
      ownerId: z.string().optional(),
      displayName: z.string().optional(),
      roles: z.record(z.string(), z.array(z.string())),
    }),
    async handle({ principal }) {
      return {
        id: principal.id,
        kind: principal.kind,
        ...(principal.ownerId ? { ownerId: principal.ownerId } : {}),
        ...(principal.displayName ? { displayName: principal.displayName } : {}),
        roles: Object.fromEntries(Object.entries(principal.roles).map(([p, r]) => [p, [...r]])),
      };
    },
  }),
  defineRoute({
    operationId: 'createToken',
    method: 'POST',
    path: '/tokens',
    summary: "Issue an API token acting for the caller, with at most the caller's roles in each project",
    tag: 'tokens',
    permission: 'token.write',
    // Issuing a token for projects A and B needs token.write in both.
    scope: ({ body }) => body.projects,
    body: z
      .object({
        name: z.string(),
        projects: z.array(z.string()).min(1).max(100),
        roles: z.array(z.string()).min(1).max(100),
        /** Default: 90 days from now. */
        expiresAt: isoDate.optional(),
      })
      .strict(),
    response: z.object({ secret: z.string(), token: tokenSchema }),
    status: 201,
    async handle({ body, principal, services }) {
      const created = await services.authorizer.createToken({
        principal,
        name: body.name,
        projects: body.projects,
        roles: body.roles,
        expiresAt: body.expiresAt ? new Date(body.expiresAt) : new Date(Date.now() + 90 * DAY_MS),
      });
      return { secret: created.secret, token: tokenWire(created.info) };
    },
  }),
  defineRoute({
    operationId: 'listTokens',
    method: 'GET',
    path: '/tokens',
    summary: 'List tokens (never their secrets), newest first',
    tag: 'tokens',
    permission: 'token.read',
    scope: 'platform',
    query: z.object({
      ownerId: z.string().optional(),
      includeRevoked: z.enum(['true', 'false']).optional(),
    }),
    response: z.object({ items: z.array(tokenSchema) }),
    async handle({ query, services }) {
      const tokens = await services.authorizer.listTokens({
        ...(query.ownerId ? { ownerId: query.ownerId } : {}),
        includeRevoked: query.includeRevoked === 'true',
      });
      return { items: tokens.map(tokenWire) };
    },
  }),
  defineRoute({
    operationId: 'revokeToken',
    method: 'DELETE',
    path: '/tokens/{tokenId}',
    summary: 'Revoke a token and every token created through it',
    tag: 'tokens',
    permission: 'token.write',
    scope: 'platform',
    params: z.object({ tokenId: z.string().min(1).max(255) }),
    response: 'empty',
    async handle({ params, services }) {
      await services.authorizer.revokeToken(params.tokenId);
      return undefined;
    },
  }),
];
