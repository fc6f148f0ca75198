/** Counters a broker-backed event bus keeps since it was created, for operators and fault tests. */
export interface EventBusStats {
  /** Events accepted by the broker through this bus. */
  published: number;
  /** Events a local subscriber handled successfully. */
  handled: number;
  /** Deliveries dropped because the group had already handled (or dead-lettered) that event id. */
  duplicatesDropped: number;
  /** Events given up on after `maxAttempts` and written to the dead-letter store. */
  deadLettered: number;
  /** Dead letters sent back to their group by `redeliver`. */
  redelivered: number;
}

export function emptyStats(): EventBusStats {
  return { published: 0, handled: 0, duplicatesDropped: 0, deadLettered: 0, redelivered: 0 };
}
