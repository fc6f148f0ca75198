import { computeBackendRef, definePlugin, eventBusRef, metadataStoreRef, ValidationError } from '@mlplane/core';
import { platformHooksConformance } from '@mlplane/core/testing';
import { startTestPlatform } from '@mlplane/defaults/testing';
import { describe, expect, it } from 'vitest';
import { readOutbox } from '../../src/outbox/outbox.js';
import { schedulerPlugin } from '../../src/scheduler/scheduler-plugin.js';
import { RecordingBackend } from './recording-backend.js';

/** Provides a RecordingBackend that ends every job 10 ms after it starts. */
function recordingBackendPlugin(backend = new RecordingBackend()) {
  backend.autoCompleteMs = () => 10;
  return definePlugin({
    id: 'recording-backend',
    register(env) {
      env.provide(computeBackendRef, { factory: () => backend });
    },
  })();
}

const scheduler = () => schedulerPlugin({ pollIntervalMs: 20, followIntervalMs: 50, queues: [{ name: 'default' }] });

platformHooksConformance('scheduler plugin over a recording backend, embedded SQLite', async () => ({
  platform: await startTestPlatform({ plugins: [recordingBackendPlugin(), scheduler()] }),
  job: (name) => ({ name, project: 'hooks', replicaGroups: [{ role: 'main', command: ['true'] }] }),
}));

describe('schedulerPlugin', () => {
  it('puts the scheduler in front of the chosen backend, dispatching and publishing job events', async () => {
    const backend = new RecordingBackend();
    await using platform = await startTestPlatform({ plugins: [recordingBackendPlugin(backend), scheduler()] });
    const compute = await platform.get(computeBackendRef);
    expect(compute.capabilities).toMatchObject({ scheduler: 'mlplane-scheduler/recording', queues: true });
    await expect(
      compute.submit({ name: 'x', project: 'p', queue: 'nope', replicaGroups: [{ role: 'main', command: ['true'] }] }),
    ).rejects.toBeInstanceOf(ValidationError);
    const seen: string[] = [];
    const bus = await platform.get(eventBusRef);
    const subscription = await bus.subscribe({
      group: 'scheduler-test',
      types: ['job.*'],
      handler: async (event) => {
        seen.push(event.type);
      },
    });
    const job = await compute.submit({
      name: 'train',
      project: 'p',
      replicaGroups: [{ role: 'main', command: ['true'] }],
    });
    expect(job.phase).toBe('Queued');
    const deadline = Date.now() + 10_000;
    while ((await compute.get(job.id)).phase !== 'Succeeded' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await compute.get(job.id)).phase).toBe('Succeeded');
    expect(backend.created.size).toBe(1);
    const store = await platform.get(metadataStoreRef);
    const types = (await readOutbox(store.db())).map((e) => e.event.type).filter((t) => t.startsWith('job.'));
    expect(types).toEqual(['job.queued', 'job.started', 'job.finished']);
    while (seen.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(seen).toEqual(['job.queued', 'job.started', 'job.finished']);
    await subscription.close();
  });
});
