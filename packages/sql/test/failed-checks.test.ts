import type { AuditRecord } from '@mlplane/core';
import { describe, expect, it, vi } from 'vitest';
import { FailedCheckAudit } from '../src/authz/failed-checks.js';

function collector() {
  const written: AuditRecord[] = [];
  return { written, write: async (record: AuditRecord) => void written.push(record) };
}

const countOf = (records: readonly AuditRecord[]) => records.reduce((n, r) => n + Number(r.details.count), 0);

describe('FailedCheckAudit', () => {
  it('writes the first failure of a group at once and the rest as one entry when the window has passed', async () => {
    let now = 1_000_000;
    const { written, write } = collector();
    const audit = new FailedCheckAudit(write, { windowMs: 60_000, now: () => now });
    for (let i = 0; i < 3; i++) await audit.record({ reason: 'revoked', tokenId: 'abc', source: '10.0.0.1' });
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({
      actor: 'token:abc',
      action: 'token.verify',
      resource: 'token:abc',
      outcome: 'denied',
      details: { reason: 'revoked', count: 1, source: '10.0.0.1' },
    });
    now += 60_000;
    // The next failure closes the old window (its summary first) and opens a new one.
    await audit.record({ reason: 'revoked', tokenId: 'abc', source: '10.0.0.1' });
    expect(written.map((r) => [r.details.count, r.details.coalesced ?? false])).toEqual([
      [1, false],
      [2, true],
      [1, false],
    ]);
    expect(written[1]!.details).toMatchObject({
      firstAt: new Date(1_000_000).toISOString(),
      lastAt: new Date(1_000_000).toISOString(),
      windowMs: 60_000,
    });
    await audit.flush();
    expect(written).toHaveLength(3);
    expect(countOf(written)).toBe(4);
  });

  it('keeps groups apart by source, reason and token; unknown token ids are not part of a group', async () => {
    const { written, write } = collector();
    const audit = new FailedCheckAudit(write, { now: () => 0 });
    await audit.record({ reason: 'unknown', source: 'a' });
    await audit.record({ reason: 'unknown', source: 'a' });
    await audit.record({ reason: 'unknown', source: 'b' });
    await audit.record({ reason: 'malformed', source: 'a' });
    await audit.record({ reason: 'wrong secret', tokenId: 't1', source: 'a' });
    await audit.record({ reason: 'wrong secret', tokenId: 't2', source: 'a' });
    expect(written.map((r) => [r.actor, r.resource, r.details.reason, r.details.source])).toEqual([
      ['anonymous', 'token:unknown', 'unknown', 'a'],
      ['anonymous', 'token:unknown', 'unknown', 'b'],
      ['anonymous', 'token:unknown', 'malformed', 'a'],
      ['token:t1', 'token:t1', 'wrong secret', 'a'],
      ['token:t2', 'token:t2', 'wrong secret', 'a'],
    ]);
    await audit.flush();
    expect(written).toHaveLength(6);
    expect(countOf(written)).toBe(6);
  });

  it('counts failures past maxGroups per reason, so entries stay bounded however many sources flood', async () => {
    const { written, write } = collector();
    const audit = new FailedCheckAudit(write, { maxGroups: 3, now: () => 0 });
    await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        audit.record({ reason: i % 2 ? 'unknown' : 'malformed', source: `s${i}` }),
      ),
    );
    // Three groups of their own, then one overflow group per reason.
    expect(written).toHaveLength(5);
    expect(written.filter((r) => r.details.overflow === true).map((r) => [r.resource, r.details.reason])).toEqual([
      ['token:*', 'unknown'],
      ['token:*', 'malformed'],
    ]);
    await audit.flush();
    expect(written).toHaveLength(7);
    expect(countOf(written)).toBe(1000);
    expect(countOf(written.filter((r) => r.details.reason === 'unknown'))).toBe(500);
  });

  it('writes a window’s counts when it closes, without waiting for another failure', async () => {
    const { written, write } = collector();
    const audit = new FailedCheckAudit(write, { windowMs: 30 });
    for (let i = 0; i < 5; i++) await audit.record({ reason: 'expired', tokenId: 'x' });
    expect(written).toHaveLength(1);
    await vi.waitFor(() => expect(written).toHaveLength(2), { timeout: 2000, interval: 10 });
    expect(written[1]!.details).toMatchObject({ count: 4, coalesced: true });
  });

  it('refuses a window or group bound that is not a positive integer', () => {
    const { write } = collector();
    expect(() => new FailedCheckAudit(write, { windowMs: 0 })).toThrow('windowMs must be a positive integer');
    expect(() => new FailedCheckAudit(write, { maxGroups: -1 })).toThrow('maxGroups must be a non-negative integer');
  });
});
