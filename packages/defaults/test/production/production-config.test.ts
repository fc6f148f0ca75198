import { startTestPlatform } from '@mlplane/defaults/testing';
import { kafkaPlugin } from '@mlplane/plugin-kafka';
import { postgresPlugin } from '@mlplane/plugin-postgres';
import { redisStreamsPlugin } from '@mlplane/plugin-redis';
import { describe, expect, it } from 'vitest';

describe('production plugins: config and wiring errors fail fast, before any connection', () => {
  it('names the bad URL fields', async () => {
    const err = await startTestPlatform({
      plugins: [postgresPlugin({ connectionString: 'mysql://x' }), kafkaPlugin({ brokers: ['no-port'] })],
    }).catch((e: Error) => e);
    expect(String(err)).toContain('postgres.connectionString: must be a postgres:// URL');
    expect(String(err)).toContain('kafka.brokers.0: must be host:port');
  });

  it('asks for a choice when two plugins provide the EventBus', async () => {
    await expect(
      startTestPlatform({
        plugins: [kafkaPlugin({ brokers: ['127.0.0.1:1'] }), redisStreamsPlugin({ url: 'redis://127.0.0.1:1' })],
      }),
    ).rejects.toThrow(
      "port 'core.eventBus' is provided by plugins 'kafka' and 'redis-streams'; choose one with config platform.providers['core.eventBus']",
    );
  });
});
