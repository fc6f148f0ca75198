// Fault scenario shared by the Kafka and Redis tests: restart a private peer while a publisher is in the middle of a
// 500-event batch, then check that the outage met the publishes and that every acknowledged event was handled, once,
// in subject order.
import { randomUUID } from 'node:crypto';
import { type DomainEvent, type EventBus, UnavailableError } from '@mlplane/core';
import { delay, eventually, uniqueTag } from '@mlplane/core/testing';
import { expect } from 'vitest';
import { OutageWatch } from './outage.js';
import type { PeerName, PrivatePeers } from './private-peers.js';

export interface BrokerRestartReport {
  readonly peer: string;
  readonly signal: 'TERM' | 'KILL';
  /** Publish calls that rejected during the outage and were retried by the publisher. */
  readonly publishRetries: number;
  /** Events whose publish (its first call or a retry) was in flight while the peer's port refused connections. */
  readonly publishesMeetingOutage: number;
  /** Seconds the peer's port refused connections. */
  readonly outageSeconds: number;
  /** Distinct events the handler saw. */
  readonly consumed: number;
  /** Handler calls beyond one per event: duplicates that got through. */
  readonly duplicatesDelivered: number;
  /** Duplicate deliveries the bus dropped by event id. */
  readonly duplicatesAbsorbed: number;
  /** Records of the batch in the broker's log after the restart (more than published when a retry duplicated one). */
  readonly logRecords: number;
  /** Acknowledged events absent from the broker's log after the restart. */
  readonly missingFromLog: number;
  /** Acknowledged events never handled. */
  readonly lost: number;
  /** Seconds `scripts/peers restart` took (stop, start, healthy). */
  readonly restartSeconds: number;
  /** Longest wait of one event's publish, retries included: how long publishers stalled. */
  readonly longestPublishSeconds: number;
  /** Seconds from the restart until every acknowledged event was handled. */
  readonly catchUpSeconds: number;
}

export interface BrokerRestartOptions {
  readonly bus: EventBus & { stats(): { duplicatesDropped: number } };
  /** The private peer set (never the shared peers, which other test files use meanwhile) and the peer to restart. */
  readonly peers: PrivatePeers;
  readonly peer: PeerName;
  readonly signal: 'TERM' | 'KILL';
  /** Seconds the peer stays stopped before it starts again (default 0: as long as the restart takes). */
  readonly downSeconds?: number;
  /**
   * The bus gives up on a publish during the outage (short client retries, a publish deadline): at least one
   * publish must have rejected and been retried, or the outage was ridden out where the test meant to meet it.
   */
  readonly expectRejections: boolean;
  readonly total?: number;
  readonly subjects?: number;
  /** The restart starts once this many events were published. */
  readonly restartAfter?: number;
  /** Pause between publishes (default 20 ms), so the batch outlasts even a quick restart. */
  readonly paceMs?: number;
  readonly catchUpTimeoutMs?: number;
  /** Reads the event ids of every record now in the broker's log, to check storage apart from delivery. */
  readonly readLog: () => Promise<readonly string[]>;
}

/**
 * Publishes `total` events one by one over `subjects` subjects, restarting the peer once `restartAfter`
 * are out; a rejected publish is retried as an outbox relay would. Asserts that a publish was in flight while the
 * peer's port refused connections (and, with `expectRejections`, that one rejected), that nothing was lost, no
 * duplicate reached the handler and each subject was handled in publish order, and returns the figures.
 */
export async function publishThroughRestart(options: BrokerRestartOptions): Promise<BrokerRestartReport> {
  const { bus, peers, peer, signal, total = 500, subjects = 10, restartAfter = 150, paceMs = 20 } = options;
  const catchUpTimeoutMs = options.catchUpTimeoutMs ?? 180_000;
  const ns = `fault${uniqueTag()}`;
  const calls = new Map<string, number>();
  const order = new Map<string, number[]>();
  const subscription = await bus.subscribe({
    group: `${ns}-consumer`,
    types: [`${ns}.*`],
    backoff: { initialMs: 10, maxMs: 200 },
    handler: async (event) => {
      calls.set(event.id, (calls.get(event.id) ?? 0) + 1);
      const { seq } = event.payload as { seq: number };
      order.set(event.subject, [...(order.get(event.subject) ?? []), seq]);
    },
  });

  const events: DomainEvent[] = Array.from({ length: total }, (_, seq) => ({
    id: randomUUID(),
    type: `${ns}.item.recorded`,
    version: 1,
    occurredAt: new Date().toISOString(),
    subject: `${ns}:s${seq % subjects}`,
    payload: { seq },
  }));
  const acknowledged: string[] = [];
  let publishRetries = 0;
  let restartStartedAt = 0;
  let restartSeconds = 0;
  let publishesMeetingOutage = 0;
  let longestPublishMs = 0;
  let restart: Promise<void> | undefined;
  const watch = OutageWatch.start(peers.address(peer));
  try {
    for (const [seq, event] of events.entries()) {
      if (seq === restartAfter) {
        restartStartedAt = Date.now();
        restart = peers.restart(peer, signal, { downSeconds: options.downSeconds ?? 0 }).then(() => {
          restartSeconds = (Date.now() - restartStartedAt) / 1000;
        });
      }
      if (paceMs > 0) await delay(paceMs);
      const startedAt = Date.now();
      for (;;) {
        try {
          await bus.publish(event);
          break;
        } catch (err) {
          // The outage is retried, for a while; any other error is a failure of the bus, not of the broker.
          if (!(err instanceof UnavailableError) || Date.now() - startedAt > 240_000) throw err;
          publishRetries++;
          await delay(200);
        }
      }
      if (watch.overlaps(startedAt, Date.now())) publishesMeetingOutage++;
      acknowledged.push(event.id);
      longestPublishMs = Math.max(longestPublishMs, Date.now() - startedAt);
    }
    await restart;
    await eventually(
      () => {
        const missing = acknowledged.filter((id) => !calls.has(id));
        expect(missing, `${missing.length} acknowledged events not handled yet`).toEqual([]);
      },
      catchUpTimeoutMs,
      50,
    );
  } finally {
    await restart?.catch(() => {});
    await watch.stop();
    await subscription.close();
  }
  const caughtUpAt = Date.now();
  // A publish that rejected may still have landed; its retry is then a duplicate the group must drop.
  await delay(1000);

  const log = await options.readLog();
  const inLog = new Set(log);
  const batchRecords = log.filter((id) => calls.has(id) || acknowledged.includes(id)).length;
  const missingFromLog = acknowledged.filter((id) => !inLog.has(id)).length;
  const lost = acknowledged.filter((id) => !calls.has(id)).length;
  const duplicatesDelivered = [...calls.values()].reduce((sum, n) => sum + n - 1, 0);
  const report: BrokerRestartReport = {
    peer,
    signal,
    publishRetries,
    publishesMeetingOutage,
    outageSeconds: watch.downSeconds,
    consumed: calls.size,
    duplicatesDelivered,
    duplicatesAbsorbed: bus.stats().duplicatesDropped,
    logRecords: batchRecords,
    missingFromLog,
    lost,
    restartSeconds,
    longestPublishSeconds: longestPublishMs / 1000,
    catchUpSeconds: (caughtUpAt - restartStartedAt) / 1000,
  };
  console.log(`broker restart figures: ${JSON.stringify(report)}`);

  // The fault was hit: the port was down, a publish was in flight then, and (where the bus gives up) one rejected.
  expect(watch.windows.length, `${peer}'s port never refused a connection: no outage`).toBeGreaterThan(0);
  expect(publishesMeetingOutage, 'no publish was in flight while the peer was down').toBeGreaterThan(0);
  if (options.expectRejections) expect(publishRetries, 'no publish rejected during the outage').toBeGreaterThan(0);
  expect(missingFromLog).toBe(0);
  expect(lost).toBe(0);
  expect(calls.size).toBe(total);
  expect(duplicatesDelivered).toBe(0);
  const expectedOrder = (s: number) => Array.from({ length: total / subjects }, (_, i) => s + i * subjects);
  for (let s = 0; s < subjects; s++) expect(order.get(`${ns}:s${s}`)).toEqual(expectedOrder(s));
  return report;
}
