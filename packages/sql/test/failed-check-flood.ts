// Shared by authz.test.ts (SQLite) and authz.integration.test.ts (PostgreSQL): a flood of failed token checks.
import type { AuditEntry, AuditLog, MetadataStore } from '@mlplane/core';
import { PermissionDeniedError, TOKEN_SECRET_PREFIX } from '@mlplane/core';
import { expect } from 'vitest';
import { SqlAuthorizer } from '../src/authz/sql-authorizer.js';
import { auditSurroundings } from './audit-fixture.js';

export const FLOOD_SIZE = 10_000;
export const FLOOD_MAX_GROUPS = 50;

/**
 * Sends FLOOD_SIZE bad secrets from 200 sources (malformed, unknown ids, a wrong secret for a real token, a revoked
 * token's secret; 50 at a time) to an authorizer opened with `failedChecks.maxGroups` FLOOD_MAX_GROUPS, then checks
 * that the audit log holds a bounded number of entries whose counts add up to the flood, reason by reason.
 * Runs on `store` with an audit log and an authorizer of its own, and verifies the audit chain after the flood.
 */
export async function floodFailedChecksOn(store: MetadataStore): Promise<void> {
  const surroundings = await auditSurroundings();
  try {
    const audit = await surroundings.open(store);
    try {
      const authz = await SqlAuthorizer.open({ store, audit, failedChecks: { maxGroups: FLOOD_MAX_GROUPS } });
      await flood(authz, audit);
      expect((await audit.verify()).ok).toBe(true);
    } finally {
      await audit.close();
    }
  } finally {
    await surroundings.remove();
  }
}

async function flood(authz: SqlAuthorizer, audit: AuditLog): Promise<void> {
  await authz.grant('flood-owner', 'flood', 'editor');
  const owner = await authz.getPrincipal('flood-owner');
  const input = { principal: owner, name: 't', projects: ['flood'], roles: ['viewer'] };
  const live = await authz.createToken({ ...input, expiresAt: new Date(Date.now() + 3_600_000) });
  const revoked = await authz.createToken({ ...input, expiresAt: new Date(Date.now() + 3_600_000) });
  await authz.revokeToken(revoked.id);
  const wrong = `${live.secret.slice(0, -1)}${live.secret.endsWith('A') ? 'B' : 'A'}`;
  const secretFor = (i: number): string => {
    switch (i % 4) {
      case 0:
        return `garbage-${i}`;
      case 1:
        return `${TOKEN_SECRET_PREFIX}${i.toString(16).padStart(16, '0')}_${'x'.repeat(43)}`;
      case 2:
        return wrong;
      default:
        return revoked.secret;
    }
  };
  for (let start = 0; start < FLOOD_SIZE; start += 50) {
    await Promise.all(
      Array.from({ length: 50 }, async (_, j) => {
        const i = start + j;
        const err = await authz.verifyToken(secretFor(i), { source: `10.0.${i % 200}` }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(PermissionDeniedError);
      }),
    );
  }
  const bound = FLOOD_MAX_GROUPS + 4;
  const before = await verifyEntries(audit);
  // Until the window closes only each group's first failure is written.
  expect(before.length).toBeLessThanOrEqual(bound);
  await authz.close();
  const entries = await verifyEntries(audit);
  expect(entries.length).toBeGreaterThan(before.length);
  expect(entries.length).toBeLessThanOrEqual(2 * bound);
  const count = (reason?: string) =>
    entries
      .filter((e) => reason === undefined || e.details.reason === reason)
      .reduce((n, e) => n + Number(e.details.count), 0);
  expect(count()).toBe(FLOOD_SIZE);
  for (const reason of ['malformed', 'unknown', 'wrong secret', 'revoked']) expect(count(reason)).toBe(FLOOD_SIZE / 4);
  expect(entries.some((e) => e.details.overflow === true)).toBe(true);
}

async function verifyEntries(audit: AuditLog): Promise<AuditEntry[]> {
  const page = await audit.list({ action: 'token.verify', maxResults: 1000 });
  expect(page.nextPageToken).toBeUndefined();
  return [...page.items];
}
