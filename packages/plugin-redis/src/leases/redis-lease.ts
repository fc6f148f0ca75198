import { randomUUID } from 'node:crypto';
import { type HeldLease, type LeaseManager, UnavailableError, validateLeaseName, validateTtl } from '@mlplane/core';
import type { Redis } from 'ioredis';

export interface RedisLeaseManagerOptions {
  /** A connected ioredis client; the caller owns it and closes it. */
  readonly redis: Redis;
  /** Prefix of every key (default `mlplane:lease:`): the lease is `<prefix><name>`, its counter `<prefix><name>:fence`. */
  readonly keyPrefix?: string;
}

// SET NX PX and the fencing INCR happen in one script, so a token is only ever issued with the lease.
const ACQUIRE = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return false`;

// Renew and release compare the token first, so a holder whose lease expired cannot touch its successor's.
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`;

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

interface LeaseCommands {
  mlplaneLeaseAcquire(key: string, fenceKey: string, token: string, ttlMs: number): Promise<number | null>;
  mlplaneLeaseRenew(key: string, token: string, ttlMs: number): Promise<number>;
  mlplaneLeaseRelease(key: string, token: string): Promise<number>;
}

/**
 * Leases on Redis (single instance or a primary with replicas): `SET key token NX PX ttl` to take one, Lua
 * scripts comparing the token to renew or release it, and a per-name `INCR` counter as fencing token. A
 * failover that loses the primary's last writes can hand a lease out twice; fencing tokens are what protect
 * the guarded resource then.
 */
export class RedisLeaseManager implements LeaseManager {
  readonly #redis: Redis & LeaseCommands;
  readonly #prefix: string;

  constructor(options: RedisLeaseManagerOptions) {
    this.#prefix = options.keyPrefix ?? 'mlplane:lease:';
    const redis = options.redis as Redis & Partial<LeaseCommands>;
    if (typeof redis.mlplaneLeaseAcquire !== 'function') {
      redis.defineCommand('mlplaneLeaseAcquire', { numberOfKeys: 2, lua: ACQUIRE });
      redis.defineCommand('mlplaneLeaseRenew', { numberOfKeys: 1, lua: RENEW });
      redis.defineCommand('mlplaneLeaseRelease', { numberOfKeys: 1, lua: RELEASE });
    }
    this.#redis = redis as Redis & LeaseCommands;
  }

  async tryAcquire(name: string, ttlMs: number): Promise<HeldLease | undefined> {
    validateLeaseName(name);
    validateTtl(ttlMs);
    const token = randomUUID();
    const key = this.#prefix + name;
    const fencing = await this.#call(name, () => this.#redis.mlplaneLeaseAcquire(key, `${key}:fence`, token, ttlMs));
    return fencing === null ? undefined : { name, token, fencingToken: Number(fencing) };
  }

  async renew(lease: HeldLease, ttlMs: number): Promise<boolean> {
    validateTtl(ttlMs);
    const key = this.#prefix + lease.name;
    return (await this.#call(lease.name, () => this.#redis.mlplaneLeaseRenew(key, lease.token, ttlMs))) === 1;
  }

  async release(lease: HeldLease): Promise<boolean> {
    const key = this.#prefix + lease.name;
    return (await this.#call(lease.name, () => this.#redis.mlplaneLeaseRelease(key, lease.token))) === 1;
  }

  async #call<T>(name: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (cause) {
      throw new UnavailableError(`Redis could not serve lease '${name}': ${(cause as Error).message}`, { cause });
    }
  }
}
