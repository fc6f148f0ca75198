import type { IncomingMessage } from 'node:http';
import {
  ALL_PROJECTS,
  type Authorizer,
  type Permission,
  PermissionDeniedError,
  type Principal,
  RESOURCE_ACTIONS,
  type ResourceKind,
} from '@mlplane/core';
import { unauthenticated } from './errors.js';
import type { RouteDefinition } from './route.js';

/**
 * How a host application that authenticates requests itself (a Backstage backend, an SSO proxy) hands the caller
 * in: it answers the Principal for a request, or undefined to let the API look for a Bearer token. `incoming` is
 * the Node request the host's own middleware saw (and may have decorated: Express's `req.user`), absent when the
 * API is called as a fetch handler.
 */
export type AuthenticateRequest = (
  request: Request,
  incoming: IncomingMessage | undefined,
) => Promise<Principal | undefined> | Principal | undefined;

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** The caller: from the host's hook when it answers one, else from the Bearer token; 401 when neither. */
export async function authenticate(
  request: Request,
  authorizer: Authorizer,
  source: string | undefined,
  hostAuthenticate?: AuthenticateRequest,
  incoming?: IncomingMessage,
): Promise<Principal> {
  const fromHost = hostAuthenticate ? await hostAuthenticate(request, incoming) : undefined;
  if (fromHost) return fromHost;
  const header = request.headers.get('authorization');
  if (header === null) throw unauthenticated('this route needs an API token: send Authorization: Bearer <token>');
  const match = BEARER.exec(header);
  if (!match) throw unauthenticated('the Authorization header must be Bearer <token>');
  try {
    return await authorizer.verifyToken(match[1]!, source ? { source } : undefined);
  } catch (err) {
    // An unknown, expired or revoked token: the caller is not authenticated (401), whichever it was.
    if (err instanceof PermissionDeniedError) throw unauthenticated('the API token is unknown, expired or revoked');
    throw err;
  }
}

/** The resource kind a permission is about (`admin` is checked as a project-level grant). */
export function resourceKindOf(permission: Permission): ResourceKind {
  const kind = permission.split('.')[0] as ResourceKind;
  return Object.hasOwn(RESOURCE_ACTIONS, kind) ? kind : 'project';
}

/** The projects a route's permission is checked in for this request. */
export function projectsToCheck(
  route: RouteDefinition,
  input: { params: any; query: any; body: any },
): readonly string[] {
  if (route.scope === 'project') return [input.params.project];
  if (route.scope === 'platform') return [ALL_PROJECTS];
  return route.scope(input);
}

/** Default deny: the route's permission in every project it names, or PermissionDeniedError with the reason. */
export async function authorizeRoute(
  authorizer: Authorizer,
  route: RouteDefinition,
  principal: Principal,
  input: { params: any; query: any; body: any },
): Promise<void> {
  if (route.permission === 'authenticated') return;
  const kind = resourceKindOf(route.permission);
  for (const project of projectsToCheck(route, input)) {
    await authorizer.require(principal, route.permission, { project, kind });
  }
}

/** The actor audit entries and events name: a token's owner, or the principal itself. */
export function actorOf(principal: Principal): string {
  return principal.ownerId ?? principal.id;
}
