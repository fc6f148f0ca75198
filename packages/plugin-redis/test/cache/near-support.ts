// Helpers of the near-cache tests: where a read was answered, told by the cache's own request counter.

import { createEmbeddedTelemetry } from '@mlplane/defaults';
import type { Redis } from 'ioredis';
import { captureLogger, waitFor } from '../../../../test-support/wait.js';

export type Observed = ReturnType<typeof observed>;

/** Telemetry for one cache, with its log lines and its `mlplane_cache_requests_total` by result. */
export function observed() {
  const logger = captureLogger();
  const telemetry = createEmbeddedTelemetry({ logger });
  return {
    telemetry,
    logger,
    async count(result: 'near_hit' | 'hit' | 'miss' | 'error'): Promise<number> {
      const text = await telemetry.metrics.metricsText();
      const m = new RegExp(`mlplane_cache_requests_total\\{result="${result}"\\} (\\d+)`).exec(text);
      return m ? Number(m[1]) : 0;
    },
  };
}

/** Reads `read` until one is answered by the near tier (tracking set up, and the value offered to the tier). */
export async function untilNearHit(seen: Observed, read: () => Promise<unknown>, timeoutMs = 5_000): Promise<void> {
  await waitFor(
    'a near-tier hit',
    async () => {
      const before = await seen.count('near_hit');
      await read();
      return (await seen.count('near_hit')) > before;
    },
    timeoutMs,
  );
}

/** Id of the one near-cache invalidation connection on `redis`'s server. */
export async function trackerId(admin: Redis): Promise<string> {
  const lines = ((await admin.client('LIST')) as string)
    .split('\n')
    .filter((l) => l.includes(' name=mlplane-cache-invalidation '));
  if (lines.length !== 1) throw new Error(`expected one invalidation connection, found ${lines.length}`);
  return /^id=(\d+) /.exec(lines[0]!)![1]!;
}
