// The Kueue strategy on the Kubernetes peer with Kueue running (`scripts/peers up kueue`): two ClusterQueues with
// GPU quotas on an H100 ResourceFlavor, a LocalQueue each, two WorkloadPriorityClasses. Jobs that kwok keeps running
// for a minute hold their quota, so admission, queueing on exhausted quota and preemption by priority can be seen.
import { ApiextensionsV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import type { JobSpec, JobStatus } from '@mlplane/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { K8sComputeBackend, k8sConfigSchema, LABELS } from '../src/index.js';
import { KWOK_COMPLETE_DELAY, KWOK_COMPLETE_JITTER, type PeerNamespace, peerNamespace, waitFor } from './peer.js';

const KUEUE = { group: 'kueue.x-k8s.io', version: 'v1beta2' };
let peer: PeerNamespace;
let custom: CustomObjectsApi;
let backend: K8sComputeBackend;
let tag: string;
const cluster: { plural: string; name: string }[] = [];

/** kwok completes these pods only after a minute: they hold their quota while the test runs. */
const long = { [KWOK_COMPLETE_DELAY]: '60s', [KWOK_COMPLETE_JITTER]: '60s' };

const gpuJob = (queue: string, priority: string, name = 'train'): JobSpec => ({
  name,
  project: 'kueue-it',
  queue,
  priority,
  annotations: long,
  replicaGroups: [{ role: 'main', command: ['sh', '-c', 'sleep 60'], resources: { gpu: { count: 1 } } }],
});

async function createCluster(plural: string, body: Record<string, unknown>): Promise<void> {
  await custom.createClusterCustomObject({ ...KUEUE, plural, body });
  cluster.push({ plural, name: (body.metadata as { name: string }).name });
}

async function until(id: string, ok: (s: JobStatus) => boolean, what: string): Promise<JobStatus> {
  return waitFor(what, async () => {
    const s = await backend.get(id);
    return ok(s) ? s : undefined;
  });
}

beforeAll(async () => {
  peer = await peerNamespace('mlplane-kueue');
  tag = peer.namespace;
  custom = peer.admin.makeApiClient(CustomObjectsApi);
  const crds = peer.admin.makeApiClient(ApiextensionsV1Api);
  await crds.readCustomResourceDefinition({ name: 'workloads.kueue.x-k8s.io' }).catch(() => {
    throw new Error('Kueue is not installed on the peer: run `scripts/peers up kueue`');
  });
  await createCluster('resourceflavors', {
    apiVersion: 'kueue.x-k8s.io/v1beta2',
    kind: 'ResourceFlavor',
    metadata: { name: `${tag}-h100` },
    spec: {
      nodeLabels: { 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' },
      tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
    },
  });
  for (const [queue, gpus] of [
    ['a', 2],
    ['b', 1],
    ['c', 2],
  ] as const) {
    await createCluster('clusterqueues', {
      apiVersion: 'kueue.x-k8s.io/v1beta2',
      kind: 'ClusterQueue',
      metadata: { name: `${tag}-${queue}` },
      spec: {
        namespaceSelector: {},
        preemption: { withinClusterQueue: 'LowerPriority' },
        resourceGroups: [
          {
            coveredResources: ['nvidia.com/gpu'],
            flavors: [{ name: `${tag}-h100`, resources: [{ name: 'nvidia.com/gpu', nominalQuota: gpus }] }],
          },
        ],
      },
    });
    await custom.createNamespacedCustomObject({
      ...KUEUE,
      namespace: peer.namespace,
      plural: 'localqueues',
      body: {
        apiVersion: 'kueue.x-k8s.io/v1beta2',
        kind: 'LocalQueue',
        metadata: { name: `queue-${queue}` },
        spec: { clusterQueue: `${tag}-${queue}` },
      },
    });
  }
  for (const [name, value] of [
    ['low', 100],
    ['high', 1000],
  ] as const) {
    await createCluster('workloadpriorityclasses', {
      apiVersion: 'kueue.x-k8s.io/v1beta2',
      kind: 'WorkloadPriorityClass',
      metadata: { name: `${tag}-${name}` },
      value,
    });
  }
  backend = await K8sComputeBackend.connect({
    config: k8sConfigSchema.parse({
      namespace: peer.namespace,
      scheduler: { kind: 'kueue', defaultQueue: 'queue-a' },
      watchRestartBackoffMs: 100,
    }),
    kubeConfig: peer.plugin,
  });
});

afterAll(async () => {
  await backend?.close();
  await peer?.remove();
  for (const { plural, name } of cluster.reverse()) {
    await custom?.deleteClusterCustomObject({ ...KUEUE, plural, name }).catch(() => undefined);
  }
});

describe('Kueue strategy on the Kubernetes peer', () => {
  it("admits within quota, queues on exhausted quota with Kueue's message, and preempts by priority", async () => {
    const low1 = await backend.submit(gpuJob('queue-a', `${tag}-low`));
    // Created suspended: Queued until Kueue admits it (which it may have done already by now).
    expect(low1.phase).toBe('Queued');
    const job = await peer.batch.readNamespacedJob({ name: low1.id, namespace: peer.namespace });
    expect(job.metadata!.labels).toMatchObject({
      [LABELS.kueueQueue]: 'queue-a',
      [LABELS.kueuePriority]: `${tag}-low`,
    });
    const low2 = await backend.submit(gpuJob('queue-a', `${tag}-low`));
    for (const id of [low1.id, low2.id]) {
      const running = await until(id, (s) => s.phase === 'Running', `${id} to run`);
      expect(running.admittedAt).toBeInstanceOf(Date);
      expect(running.replicas[0]!.node).toMatch(/^gpu-node-/);
    }

    const low3 = await backend.submit(gpuJob('queue-a', `${tag}-low`));
    const queued = await until(low3.id, (s) => s.message !== undefined, 'Kueue to say why the job waits');
    expect(queued.phase).toBe('Queued');
    expect(queued.message).toMatch(/quota/i);

    // Queue b has its own quota: its job runs while queue a is full.
    const other = await backend.submit(gpuJob('queue-b', `${tag}-low`));
    await until(other.id, (s) => s.phase === 'Running', 'the queue-b job to run');

    const high = await backend.submit(gpuJob('queue-a', `${tag}-high`, 'urgent'));
    await until(high.id, (s) => s.phase === 'Running', 'the high-priority job to run');
    const lows = await Promise.all([low1.id, low2.id].map((id) => backend.get(id)));
    const preempted = lows.filter((s) => s.phase === 'Queued');
    expect(preempted).toHaveLength(1);
    expect(preempted[0]).toMatchObject({ reason: 'Preempted' });
    expect(preempted[0]!.message).toMatch(/preempt/i);
    expect((await backend.get(low3.id)).phase).toBe('Queued');
  });

  it('a two-replica gang job starts both replicas or neither: queued whole until its quota is free', async () => {
    const holder = await backend.submit(gpuJob('queue-c', `${tag}-low`, 'holder'));
    await until(holder.id, (s) => s.phase === 'Running', 'the job holding one of two GPUs to run');
    const gang = await backend.submit({
      ...gpuJob('queue-c', `${tag}-low`, 'gang'),
      gang: true,
      replicaGroups: [{ ...gpuJob('queue-c', '').replicaGroups[0]!, replicas: 2 }],
    });
    const queued = await until(gang.id, (s) => s.message !== undefined, 'Kueue to say why the gang job waits');
    expect(queued.phase).toBe('Queued');
    expect(queued.message).toMatch(/quota/i);
    // One GPU is free, but Kueue admits the Workload whole or not at all: no pod of the job exists.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const pods = () =>
      peer.core.listNamespacedPod({ namespace: peer.namespace, labelSelector: `${LABELS.jobId}=${gang.id}` });
    expect((await pods()).items).toHaveLength(0);
    expect((await backend.get(gang.id)).phase).toBe('Queued');

    await backend.cancel(holder.id);
    const running = await until(
      gang.id,
      (s) => s.phase === 'Running' && s.replicas.every((r) => r.phase === 'Running'),
      'both replicas of the gang job to run',
    );
    expect(running.replicas).toHaveLength(2);
    expect((await pods()).items).toHaveLength(2);
  });

  it('an unknown WorkloadPriorityClass and a missing queue are ValidationErrors before anything is created', async () => {
    await expect(backend.submit(gpuJob('queue-a', 'no-such-priority'))).rejects.toMatchObject({ field: 'priority' });
  });
});
