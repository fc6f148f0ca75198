import { AUDIT_LIMITS, AUDIT_LIST_PAGE, type AuditEntry } from '@mlplane/core';
import { z } from 'zod';
import { defineRoute } from '../http/route.js';
import { isoDate, pageSchema, pageWire } from './wire.js';

const outcome = z.enum(['allowed', 'denied', 'failed', 'succeeded']);
const field = z.string().min(1).max(AUDIT_LIMITS.fieldLength);

const entrySchema = z.object({
  seq: z.number().int(),
  id: z.string(),
  at: z.string(),
  actor: z.string(),
  action: z.string(),
  resource: z.string(),
  project: z.string(),
  outcome,
  details: z.record(z.string(), z.unknown()),
  prevHash: z.string(),
  hash: z.string(),
});
const entryWire = (e: AuditEntry): z.infer<typeof entrySchema> => ({
  seq: e.seq,
  id: e.id,
  at: e.at,
  actor: e.actor,
  action: e.action,
  resource: e.resource,
  project: e.project,
  outcome: e.outcome,
  details: { ...e.details },
  prevHash: e.prevHash,
  hash: e.hash,
});

const seq = z.number().int().min(1);

/** The audit log is the platform's: reading it needs audit.read in every project (`*`). */
export const auditRoutes = [
  defineRoute({
    operationId: 'listAuditEntries',
    method: 'GET',
    path: '/audit',
    summary: 'Audit entries, newest first by default, filtered by actor, action (`model.*`), resource, project, time',
    tag: 'audit',
    permission: 'audit.read',
    scope: 'platform',
    query: z.object({
      actor: field.optional(),
      action: field.optional(),
      resource: field.optional(),
      project: field.optional(),
      outcome: outcome.optional(),
      /** Inclusive. */
      from: isoDate.optional(),
      /** Exclusive. */
      to: isoDate.optional(),
      order: z.enum(['asc', 'desc']).optional(),
      maxResults: z.coerce.number().int().min(1).max(AUDIT_LIST_PAGE.max).optional(),
      pageToken: z.string().max(1_048_576).optional(),
    }),
    response: pageSchema(entrySchema),
    async handle({ query, services }) {
      const { from, to, ...rest } = query;
      const page = await services.audit.list({
        ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)),
        ...(from ? { from: new Date(from) } : {}),
        ...(to ? { to: new Date(to) } : {}),
      });
      return pageWire(page, entryWire);
    },
  }),
  defineRoute({
    operationId: 'getAuditHead',
    method: 'GET',
    path: '/audit/head',
    summary: "The latest entry's seq and hash, to anchor the chain elsewhere (null when the log is empty)",
    tag: 'audit',
    permission: 'audit.read',
    scope: 'platform',
    response: z.object({ head: z.object({ seq: z.number().int(), hash: z.string() }).nullable() }),
    async handle({ services }) {
      const head = await services.audit.head();
      return { head: head ? { seq: head.seq, hash: head.hash } : null };
    },
  }),
  defineRoute({
    operationId: 'verifyAudit',
    method: 'POST',
    path: '/audit/verify',
    summary: 'Recompute the hash chain over [fromSeq, toSeq] (the whole log by default) and report the first break',
    tag: 'audit',
    permission: 'audit.read',
    scope: 'platform',
    body: z.object({ fromSeq: seq.optional(), toSeq: seq.optional() }).strict(),
    response: z.object({
      ok: z.boolean(),
      checkedEntries: z.number().int(),
      firstBrokenSeq: z.number().int().optional(),
      reason: z.string().optional(),
    }),
    async handle({ body, services }) {
      const result = await services.audit.verify(body);
      return {
        ok: result.ok,
        checkedEntries: result.checkedEntries,
        ...(result.firstBrokenSeq !== undefined ? { firstBrokenSeq: result.firstBrokenSeq } : {}),
        ...(result.reason !== undefined ? { reason: result.reason } : {}),
      };
    },
  }),
];
