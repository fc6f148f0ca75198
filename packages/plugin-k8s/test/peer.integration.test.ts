// Checks the Kubernetes peer (`scripts/peers up k8s`): a real control plane whose fake nodes
// (kwok) advertise NVIDIA GPUs and MIG slices, so GPU Jobs get scheduled and run to completion.
import { BatchV1Api, CoreV1Api, KubeConfig, type V1Job, type V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const GPU_NODES = ['gpu-node-0', 'gpu-node-1'];
const MIG_NODE = 'mig-node-0';

let batch: BatchV1Api;
let core: CoreV1Api;
const namespace = `mlplane-it-${Date.now().toString(36)}`;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs`. */
async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(500);
  }
}

function gpuJob(name: string, resource: string, tolerate = true): V1Job {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, labels: { 'app.kubernetes.io/managed-by': 'mlplane-test' } },
    spec: {
      backoffLimit: 0,
      template: {
        spec: {
          restartPolicy: 'Never',
          tolerations: tolerate ? [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }] : [],
          containers: [
            { name: 'train', image: 'busybox:stable', command: ['true'], resources: { limits: { [resource]: '1' } } },
          ],
        },
      },
    },
  };
}

async function jobPods(job: string): Promise<V1Pod[]> {
  const pods = await core.listNamespacedPod({ namespace, labelSelector: `batch.kubernetes.io/job-name=${job}` });
  return pods.items;
}

/** Creates the Job, waits until it is Complete or Failed, deletes it and returns the outcome and its pods. */
async function runJob(job: V1Job): Promise<{ outcome: string; reason?: string; pods: V1Pod[] }> {
  const name = job.metadata!.name!;
  await batch.createNamespacedJob({ namespace, body: job });
  try {
    const finished = await waitFor(`Job ${name} to finish`, async () => {
      const { status } = await batch.readNamespacedJobStatus({ name, namespace });
      return status?.conditions?.find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
    });
    return { outcome: finished.type, reason: finished.reason, pods: await jobPods(name) };
  } finally {
    await batch.deleteNamespacedJob({ name, namespace, propagationPolicy: 'Background' });
  }
}

beforeAll(async () => {
  const path = process.env.MLPLANE_KUBECONFIG;
  if (!path)
    throw new Error('MLPLANE_KUBECONFIG is not set: run `scripts/peers up k8s` and `eval "$(scripts/peers env)"`');
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  batch = kc.makeApiClient(BatchV1Api);
  core = kc.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  // Pods can only be created once the controller-manager has made the namespace's service account.
  await waitFor('the default service account', async () => {
    const accounts = await core.listNamespacedServiceAccount({ namespace });
    return accounts.items.some((a) => a.metadata?.name === 'default') ? true : undefined;
  });
});

afterAll(async () => {
  await core?.deleteNamespace({ name: namespace, propagationPolicy: 'Background' }).catch(() => undefined);
});

describe('Kubernetes peer', () => {
  it('advertises GPUs and MIG slices on its fake nodes', async () => {
    const nodes = await core.listNode({ labelSelector: 'mlplane.dev/peer=k8s' });
    const byName = new Map(nodes.items.map((n) => [n.metadata!.name!, n]));
    for (const name of GPU_NODES) {
      const node = byName.get(name);
      expect(node?.status?.allocatable?.['nvidia.com/gpu']).toBe('8');
      expect(node?.metadata?.labels?.['nvidia.com/gpu.product']).toBe('NVIDIA-H100-80GB-HBM3');
      expect(node?.spec?.taints).toContainEqual(
        expect.objectContaining({ key: 'nvidia.com/gpu', effect: 'NoSchedule' }),
      );
    }
    expect(byName.get(MIG_NODE)?.status?.allocatable?.['nvidia.com/mig-1g.10gb']).toBe('7');
    expect(byName.get(MIG_NODE)?.metadata?.labels?.['nvidia.com/mig.strategy']).toBe('mixed');
    for (const node of nodes.items) {
      expect(node.status?.conditions?.find((c) => c.type === 'Ready')?.status, node.metadata?.name).toBe('True');
    }
  });

  it('runs a Job requesting nvidia.com/gpu: 1 on a GPU node to completion', async () => {
    const { outcome, pods } = await runJob(gpuJob('train-gpu', 'nvidia.com/gpu'));
    expect(outcome).toBe('Complete');
    expect(pods).toHaveLength(1);
    expect(GPU_NODES).toContain(pods[0]?.spec?.nodeName);
    expect(pods[0]?.status?.phase).toBe('Succeeded');
  });

  it('runs a Job requesting nvidia.com/mig-1g.10gb: 1 on the MIG node', async () => {
    const { outcome, pods } = await runJob(gpuJob('train-mig', 'nvidia.com/mig-1g.10gb'));
    expect(outcome).toBe('Complete');
    expect(pods).toHaveLength(1);
    expect(pods[0]?.spec?.nodeName).toBe(MIG_NODE);
    expect(pods[0]?.status?.phase).toBe('Succeeded');
  });

  it("fails a Job whose pod carries kwok's container-failure label", async () => {
    const job = gpuJob('train-fail', 'nvidia.com/gpu');
    job.spec!.template.metadata = { labels: { 'pod-container-running-failed.stage.kwok.x-k8s.io': 'true' } };
    const { outcome, reason, pods } = await runJob(job);
    expect(outcome).toBe('Failed');
    expect(reason).toBe('BackoffLimitExceeded');
    expect(pods[0]?.status?.phase).toBe('Failed');
    expect(pods[0]?.status?.containerStatuses?.[0]?.state?.terminated?.exitCode).toBe(1);
  });

  it('leaves a GPU pod without the taint toleration unschedulable', async () => {
    const name = 'train-no-toleration';
    await batch.createNamespacedJob({ namespace, body: gpuJob(name, 'nvidia.com/gpu', false) });
    try {
      const reason = await waitFor('the scheduler to reject the pod', async () => {
        const [pod] = await jobPods(name);
        const scheduled = pod?.status?.conditions?.find((c) => c.type === 'PodScheduled');
        return scheduled?.status === 'False' ? scheduled.reason : undefined;
      });
      expect(reason).toBe('Unschedulable');
    } finally {
      await batch.deleteNamespacedJob({ name, namespace, propagationPolicy: 'Background' });
    }
  });
});
