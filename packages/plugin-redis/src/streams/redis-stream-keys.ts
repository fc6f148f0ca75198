/**
 * Key layout of the Redis Streams event bus. Everything hangs off the event stream's key, so two
 * buses with different streams never share state.
 */
export interface StreamKeys {
  /** The event stream every group reads. */
  readonly events: string;
  /** Dead letters redelivered to one group, read by that group next to the event stream. */
  retry(group: string): string;
  /** Dead letters of one group, oldest first. */
  deadLetters(group: string): string;
  /** Marks an event id as handled (or dead) by a group, for `dedupeTtlMs`. */
  done(group: string, eventId: string): string;
  /** The lease naming the one process that reads for a group. */
  lease(group: string): string;
}

export function streamKeys(stream: string): StreamKeys {
  return {
    events: stream,
    retry: (group) => `${stream}:retry:${group}`,
    deadLetters: (group) => `${stream}:dlq:${group}`,
    done: (group, eventId) => `${stream}:done:${group}:${eventId}`,
    lease: (group) => `${stream}:lease:${group}`,
  };
}

/** Takes the lease when free, extends it when this consumer holds it; 1 when held afterwards. */
export const CLAIM_LEASE = `
local holder = redis.call('GET', KEYS[1])
if holder == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
elseif holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`;

/** Gives the lease up only when this consumer still holds it. */
export const RELEASE_LEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

/**
 * Moves one dead letter to its group's retry stream in one step, so it is never in both or neither;
 * 0 when another caller moved it first.
 */
export const REDELIVER = `
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'event', ARGV[2], 'redelivery', '1')
return 1`;

/** A stream entry as Redis returns it (RESP2): id and flat field/value list, null fields for a deleted entry. */
export type RawEntry = [id: string, fields: string[] | null];

/** Reads the value of `name` from a flat field/value list. */
export function field(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] === name) return fields[i + 1];
  }
  return undefined;
}
