// Connection settings of the peers the event-bus integration tests talk to (`scripts/peers up kafka redis`).
import { randomBytes } from 'node:crypto';

function requireEnv(name: string, peer: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run scripts/peers up ${peer}, then eval "$(scripts/peers env)"`);
  }
  return value;
}

export function kafkaBrokers(): string[] {
  return requireEnv('MLPLANE_KAFKA_BROKERS', 'kafka').split(',');
}

export function redisUrl(): string {
  return requireEnv('MLPLANE_REDIS_URL', 'redis');
}

/** A name no other test run uses, so runs against one broker never share a topic or stream. */
export function uniqueName(prefix: string): string {
  return `${prefix}.${Date.now().toString(36)}.${randomBytes(3).toString('hex')}`;
}
