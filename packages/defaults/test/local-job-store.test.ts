import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JobSpec, JobStatus } from '@mlplane/core';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LocalJobStore } from '../src/compute/job-store.js';
import { SqliteMetadataStore } from '../src/metadata-store/sqlite-metadata-store.js';

const spec = (name: string): JobSpec => ({
  name,
  project: 'p',
  replicaGroups: [{ role: 'main', command: ['true'] }],
});

const status = (id: string, phase: JobStatus['phase']): JobStatus => ({
  id,
  name: id,
  project: 'p',
  phase,
  retriesUsed: 0,
  labels: {},
  submittedAt: new Date('2026-12-02T00:00:00Z'),
  replicas: [{ role: 'main', index: 0, phase: 'Pending', attempt: 0 }],
});

describe('LocalJobStore group commit', () => {
  let dir: string;
  let store: SqliteMetadataStore;
  let jobs: LocalJobStore;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mlplane-jobstore-'));
    store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.db') });
    jobs = await LocalJobStore.open(store, 'host-a');
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('commits writes asked for at once in shared transactions, in the order asked, each caller after its commit', async () => {
    const transactions = vi.spyOn(store, 'transaction');
    const ids = Array.from({ length: 10 }, (_, i) => `job-${i}`);
    expect(await Promise.all(ids.map((id) => jobs.insert(spec(id), status(id, 'Pending'), { processes: [] })))).toEqual(
      ids.map(() => true),
    );
    // Two updates of one job in one group: the later one wins, as it was asked for later.
    await Promise.all([
      jobs.update(status('job-0', 'Queued'), { processes: [] }),
      jobs.update(status('job-0', 'Running'), { processes: [] }),
      ...ids.slice(1).map((id) => jobs.update(status(id, 'Queued'), { processes: [] })),
    ]);
    expect(transactions.mock.calls.length).toBeLessThan(ids.length);
    expect((await jobs.get('job-0'))?.status.phase).toBe('Running');
    expect((await jobs.list({ phases: ['Queued'] })).items.map((s) => s.id).sort()).toEqual(ids.slice(1).sort());
  });

  it('answers a taken idempotency key with false inside a group, without failing the other writes', async () => {
    const keyed = (name: string) => ({ ...spec(name), idempotencyKey: 'k' });
    const transactions = vi.spyOn(store, 'transaction');
    const answers = await Promise.all([
      jobs.insert(keyed('first'), status('first', 'Pending'), { processes: [] }),
      jobs.insert(keyed('second'), status('second', 'Pending'), { processes: [] }),
      jobs.insert(spec('plain'), status('plain', 'Pending'), { processes: [] }),
    ]);
    expect(transactions).toHaveBeenCalledTimes(1);
    expect(answers).toEqual([true, false, true]);
    expect((await jobs.byIdempotencyKey('p', 'k'))?.status.id).toBe('first');
    expect(await jobs.get('second')).toBeUndefined();
    expect(await jobs.get('plain')).toBeDefined();
  });

  it('retries a failed group one write at a time, so each caller gets its own answer', async () => {
    await Promise.all(['a', 'b', 'c'].map((id) => jobs.insert(spec(id), status(id, 'Pending'), { processes: [] })));
    let failed = 0;
    vi.spyOn(store, 'transaction').mockImplementation(() => {
      failed += 1;
      return Promise.reject(new Error('disk full'));
    });
    await Promise.all(['a', 'b', 'c'].map((id) => jobs.update(status(id, 'Queued'), { processes: [] })));
    expect(failed).toBe(1);
    expect((await jobs.list({ phases: ['Queued'] })).items).toHaveLength(3);
  });
});
