import { setTimeout as delay } from 'node:timers/promises';
import { ConflictError, ValidationError } from '../../ports/errors.js';

/** A lease this process holds until it expires or is released. */
export interface HeldLease {
  readonly name: string;
  /** Random per acquisition; only its holder can renew or release the lease. */
  readonly token: string;
  /**
   * Grows with every acquisition of `name`, never reused: a resource that remembers the highest token it saw
   * can refuse writes from a holder whose lease expired while it stalled.
   */
  readonly fencingToken: number;
}

/**
 * Time-bounded mutual exclusion by name. A lease that is not renewed expires after its TTL, so a crashed
 * holder never blocks the others for longer than that.
 */
export interface LeaseManager {
  /** Takes the lease when it is free or expired; undefined when someone else holds it. */
  tryAcquire(name: string, ttlMs: number): Promise<HeldLease | undefined>;
  /** Extends the lease by `ttlMs` from now; false when it is no longer this holder's. */
  renew(lease: HeldLease, ttlMs: number): Promise<boolean>;
  /** Frees the lease at once; false when it was no longer this holder's (then nothing changes). */
  release(lease: HeldLease): Promise<boolean>;
}

/** Lease names: what the exclusive work is, e.g. `outbox-relay` or `scheduler:cron`. */
export const LEASE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}$/;

export function validateLeaseName(name: string): void {
  if (typeof name !== 'string' || !LEASE_NAME_PATTERN.test(name)) {
    throw new ValidationError(
      `lease name ${JSON.stringify(name)} must be 1 to 200 of letters, digits, '.', '_', ':', '/', '-'`,
      { field: 'name' },
    );
  }
}

export function validateTtl(ttlMs: number): void {
  if (!Number.isInteger(ttlMs) || ttlMs < 10 || ttlMs > 86_400_000) {
    throw new ValidationError(`lease ttlMs must be an integer from 10 to 86400000, got ${ttlMs}`, { field: 'ttlMs' });
  }
}

export interface WithLeaseOptions {
  /** How long to keep trying when the lease is held by someone else (default 0: fail at once). */
  readonly waitMs?: number;
  /** Pause between tries while waiting (default 100 ms). */
  readonly retryMs?: number;
}

/** What `fn` receives: the lease, and a signal that aborts when the lease was lost while `fn` ran. */
export interface LeaseContext {
  readonly lease: HeldLease;
  readonly signal: AbortSignal;
}

/**
 * Runs `fn` while holding the lease `name`: renews it every third of `ttlMs`, aborts `context.signal` when a
 * renewal finds it lost (or cannot reach the backend before it would expire), and releases it when `fn`
 * settles. ConflictError when the lease stays held by someone else for `waitMs`.
 */
export async function withLease<T>(
  leases: LeaseManager,
  name: string,
  ttlMs: number,
  fn: (context: LeaseContext) => Promise<T>,
  options: WithLeaseOptions = {},
): Promise<T> {
  validateLeaseName(name);
  validateTtl(ttlMs);
  const deadline = performance.now() + (options.waitMs ?? 0);
  let lease = await leases.tryAcquire(name, ttlMs);
  while (!lease && performance.now() < deadline) {
    await delay(Math.min(options.retryMs ?? 100, Math.max(1, deadline - performance.now())));
    lease = await leases.tryAcquire(name, ttlMs);
  }
  if (!lease) {
    throw new ConflictError(`lease '${name}' is held by another worker; try again after it expires or is released`);
  }
  const held = lease;
  const lost = new AbortController();
  let validUntil = performance.now() + ttlMs;
  let renewing: Promise<void> | undefined;
  const timer = setInterval(
    () => {
      if (renewing || lost.signal.aborted) return;
      const startedAt = performance.now();
      renewing = leases
        .renew(held, ttlMs)
        .then(
          (ok) => {
            if (ok) validUntil = startedAt + ttlMs;
            else lost.abort(new ConflictError(`lease '${name}' was lost: another worker holds it now`));
          },
          (cause) => {
            // An unreachable backend is only fatal once the lease may have expired there.
            if (performance.now() >= validUntil) {
              lost.abort(new ConflictError(`lease '${name}' could not be renewed before it expired`, { cause }));
            }
          },
        )
        .finally(() => {
          renewing = undefined;
        });
    },
    Math.max(5, Math.floor(ttlMs / 3)),
  );
  timer.unref();
  try {
    return await fn({ lease: held, signal: lost.signal });
  } finally {
    clearInterval(timer);
    await renewing;
    await leases.release(held).catch(() => false);
  }
}
