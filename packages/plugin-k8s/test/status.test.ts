import type { V1Job, V1Pod } from '@kubernetes/client-node';
import type { JobSpec } from '@mlplane/core';
import { describe, expect, it } from 'vitest';
import { ANNOTATIONS, jobStatus, type KueueWorkload, LABELS } from '../src/index.js';

const spec: JobSpec = {
  name: 'train',
  project: 'vision',
  runId: 'run-1',
  labels: { team: 'a' },
  replicaGroups: [{ role: 'worker', command: ['true'], replicas: 2 }],
};

const job = (
  extra: { status?: V1Job['status']; suspend?: boolean; annotations?: Record<string, string> } = {},
): V1Job => ({
  metadata: {
    name: 'train-abcde',
    creationTimestamp: new Date('2026-01-01T00:00:00Z'),
    annotations: {
      [ANNOTATIONS.spec]: JSON.stringify(spec),
      [ANNOTATIONS.project]: 'vision',
      [ANNOTATIONS.runId]: 'run-1',
      [ANNOTATIONS.submittedAt]: '2026-01-01T00:00:00.123Z',
      ...extra.annotations,
    },
  },
  spec: { template: {}, ...(extra.suspend ? { suspend: true } : {}) },
  ...(extra.status ? { status: extra.status } : {}),
});

const pod = (index: number, created: string, status: V1Pod['status'], node = 'gpu-node-0'): V1Pod => ({
  metadata: {
    name: `train-abcde-${index}-${created}`,
    creationTimestamp: new Date(`2026-01-01T00:00:${created}Z`),
    labels: { [LABELS.completionIndex]: String(index) },
  },
  spec: { containers: [], nodeName: node },
  status,
});

const running = (at = '2026-01-01T00:00:05Z'): V1Pod['status'] => ({
  phase: 'Running',
  containerStatuses: [
    {
      name: 'main',
      image: 'x',
      imageID: '',
      ready: true,
      restartCount: 0,
      state: { running: { startedAt: new Date(at) } },
    },
  ],
});
const terminated = (exitCode: number, reason: string): V1Pod['status'] => ({
  phase: exitCode === 0 ? 'Succeeded' : 'Failed',
  containerStatuses: [
    {
      name: 'main',
      image: 'x',
      imageID: '',
      ready: false,
      restartCount: 0,
      state: {
        terminated: {
          exitCode,
          reason,
          startedAt: new Date('2026-01-01T00:00:05Z'),
          finishedAt: new Date('2026-01-01T00:00:09Z'),
        },
      },
    },
  ],
});

describe('jobStatus', () => {
  it('a job without pods is Pending, one replica status per index, ids and labels from the annotations', () => {
    const s = jobStatus(job(), []);
    expect(s).toMatchObject({
      id: 'train-abcde',
      name: 'train',
      project: 'vision',
      runId: 'run-1',
      phase: 'Pending',
      retriesUsed: 0,
      labels: { team: 'a' },
      submittedAt: new Date('2026-01-01T00:00:00.123Z'),
    });
    expect(s.replicas.map((r) => [r.role, r.index, r.phase])).toEqual([
      ['worker', 0, 'Pending'],
      ['worker', 1, 'Pending'],
    ]);
  });

  it("an unschedulable pod keeps the job Pending with the scheduler's reason and message", () => {
    const unschedulable = pod(0, '01', {
      phase: 'Pending',
      conditions: [
        {
          type: 'PodScheduled',
          status: 'False',
          reason: 'Unschedulable',
          message: '0/4 nodes are available: 4 Insufficient nvidia.com/gpu.',
        },
      ],
    });
    expect(jobStatus(job(), [unschedulable])).toMatchObject({
      phase: 'Pending',
      reason: 'Unschedulable',
      message: '0/4 nodes are available: 4 Insufficient nvidia.com/gpu.',
    });
  });

  it('a Job that cannot create its pods shows its latest Warning event; a pod condition takes precedence', () => {
    const warning = { reason: 'FailedCreate', message: 'Error creating: pods "x" is forbidden: exceeded quota', at: 1 };
    expect(jobStatus(job(), [], undefined, warning)).toMatchObject({
      phase: 'Pending',
      reason: 'FailedCreate',
      message: warning.message,
    });
    const unschedulable = pod(0, '01', {
      phase: 'Pending',
      conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: 'no node' }],
    });
    expect(jobStatus(job(), [unschedulable], undefined, warning)).toMatchObject({ reason: 'Unschedulable' });
    expect(jobStatus(job(), [pod(0, '01', running())], undefined, warning).reason).toBeUndefined();
  });

  it('stays Running once a replica ran, also between its end and the Job condition', () => {
    const s = jobStatus(job(), [pod(0, '01', running()), pod(1, '01', { phase: 'Pending' })]);
    expect(s.phase).toBe('Running');
    expect(s.startedAt).toEqual(new Date('2026-01-01T00:00:05Z'));
    const ended = jobStatus(job(), [
      pod(0, '01', terminated(0, 'Completed')),
      pod(1, '01', terminated(0, 'Completed')),
    ]);
    expect(ended.phase).toBe('Running');
  });

  it('Complete: Succeeded with exit codes, nodes and times per replica', () => {
    const s = jobStatus(
      job({
        status: {
          completionTime: new Date('2026-01-01T00:00:10Z'),
          conditions: [{ type: 'Complete', status: 'True', reason: '', message: '' }],
        },
      }),
      [pod(0, '01', terminated(0, 'Completed')), pod(1, '01', terminated(0, 'Completed'), 'gpu-node-1')],
    );
    expect(s).toMatchObject({ phase: 'Succeeded', finishedAt: new Date('2026-01-01T00:00:10Z') });
    expect(s.replicas[1]).toMatchObject({
      phase: 'Succeeded',
      exitCode: 0,
      reason: 'Completed',
      node: 'gpu-node-1',
      attempt: 1,
      finishedAt: new Date('2026-01-01T00:00:09Z'),
    });
  });

  it("Failed: the Job condition's reason, retries used, the latest attempt and each failed replica's code", () => {
    const s = jobStatus(
      job({
        status: {
          failed: 2,
          conditions: [
            {
              type: 'Failed',
              status: 'True',
              reason: 'BackoffLimitExceeded',
              message: 'Job has reached the specified backoff limit',
              lastTransitionTime: new Date('2026-01-01T00:00:20Z'),
            },
          ],
        },
      }),
      [pod(0, '01', terminated(3, 'Error')), pod(0, '11', terminated(137, 'OOMKilled')), pod(1, '01', running())],
    );
    expect(s).toMatchObject({ phase: 'Failed', reason: 'BackoffLimitExceeded', retriesUsed: 2 });
    expect(s.replicas[0]).toMatchObject({ phase: 'Failed', exitCode: 137, reason: 'OOMKilled', attempt: 2 });
    // A replica still running when the job failed is reported stopped.
    expect(s.replicas[1]).toMatchObject({ phase: 'Failed', reason: 'BackoffLimitExceeded' });
    expect(s.message).toBe(
      'Job has reached the specified backoff limit; replica worker-0 attempt 2 exited with code 137 (OOMKilled)',
    );
  });

  it('a FailJob rule: reason PodFailurePolicy, and the pod it matched is no retry used', () => {
    const failJob = (failed: number) =>
      jobStatus(
        job({
          status: {
            failed,
            conditions: [
              {
                type: 'Failed',
                status: 'True',
                reason: 'PodFailurePolicy',
                message: 'Container main for pod ns/p-0 failed with exit code 42 matching FailJob rule at index 0',
                lastTransitionTime: new Date('2026-01-01T00:00:20Z'),
              },
            ],
          },
        }),
        [pod(0, '01', terminated(42, 'Error'))],
      );
    expect(failJob(1)).toMatchObject({ phase: 'Failed', reason: 'PodFailurePolicy', retriesUsed: 0 });
    expect(failJob(3)).toMatchObject({ retriesUsed: 2 });
  });

  it('Kueue: suspended is Queued with the quota message; admitted is Admitted; evicted is Queued/Preempted', () => {
    const wl = (conditions: NonNullable<KueueWorkload['status']>['conditions']): KueueWorkload => ({
      status: { conditions },
    });
    const queued = jobStatus(
      job({ suspend: true }),
      [],
      wl([
        {
          type: 'QuotaReserved',
          status: 'False',
          reason: 'Pending',
          message: "couldn't assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu",
          lastTransitionTime: new Date(),
        },
      ]),
    );
    expect(queued).toMatchObject({ phase: 'Queued', reason: 'Pending', message: expect.stringContaining('quota') });
    const admittedAt = new Date('2026-01-01T00:00:03Z');
    const admitted = jobStatus(
      job(),
      [],
      wl([{ type: 'Admitted', status: 'True', reason: 'Admitted', message: '', lastTransitionTime: admittedAt }]),
    );
    expect(admitted).toMatchObject({ phase: 'Admitted', admittedAt });
    const preempted = jobStatus(
      job({ suspend: true }),
      [],
      wl([
        {
          type: 'Evicted',
          status: 'True',
          reason: 'Preempted',
          message: 'Preempted to accommodate a workload (UID: x) due to prioritization in the ClusterQueue',
          lastTransitionTime: new Date(),
        },
      ]),
    );
    expect(preempted).toMatchObject({
      phase: 'Queued',
      reason: 'Preempted',
      message: expect.stringMatching(/^Preempted/),
    });
  });

  it('the cancelled note makes the job Cancelled with its time and reason, replicas stopped', () => {
    const s = jobStatus(
      job({ annotations: { [ANNOTATIONS.cancelled]: JSON.stringify({ at: '2026-01-01T00:01:00Z', reason: 'stop' }) } }),
      [pod(0, '01', running())],
    );
    expect(s).toMatchObject({
      phase: 'Cancelled',
      reason: 'Cancelled',
      message: 'stop',
      finishedAt: new Date('2026-01-01T00:01:00Z'),
    });
    expect(s.replicas.every((r) => r.phase !== 'Running')).toBe(true);
  });
});
