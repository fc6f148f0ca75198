// The Volcano strategy on the Kubernetes peer with Volcano's PodGroup and Queue kinds installed (test/fixtures):
// the plugin's PodGroup is accepted under strict field validation, owned by the Job, and its pods wait for a
// scheduler named volcano. No Volcano scheduler runs here, so admission and gang placement are not simulated.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  ApiextensionsV1Api,
  CustomObjectsApi,
  loadAllYaml,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { K8sComputeBackend, k8sConfigSchema, LABELS } from '../src/index.js';
import { type PeerNamespace, peerNamespace, sleep, waitFor } from './peer.js';

const CRDS = fileURLToPath(new URL('./fixtures/volcano-crds.yaml', import.meta.url));
const VOLCANO = { group: 'scheduling.volcano.sh', version: 'v1beta1' };
let peer: PeerNamespace;
let backend: K8sComputeBackend;
let custom: CustomObjectsApi;
let queue: string;

beforeAll(async () => {
  peer = await peerNamespace('mlplane-volcano');
  const crds = peer.admin.makeApiClient(ApiextensionsV1Api);
  for (const crd of loadAllYaml(readFileSync(CRDS, 'utf8')) as V1CustomResourceDefinition[]) {
    await crds.createCustomResourceDefinition({ body: crd }).catch((error: { code?: number }) => {
      if (error.code !== 409) throw error;
    });
    await waitFor(`CRD ${crd.metadata!.name} to be established`, async () => {
      const c = await crds.readCustomResourceDefinition({ name: crd.metadata!.name! });
      return c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True') ? true : undefined;
    });
  }
  custom = peer.admin.makeApiClient(CustomObjectsApi);
  queue = `${peer.namespace}-research`;
  await custom.createClusterCustomObject({
    ...VOLCANO,
    plural: 'queues',
    body: {
      apiVersion: 'scheduling.volcano.sh/v1beta1',
      kind: 'Queue',
      metadata: { name: queue },
      spec: { weight: 1 },
    },
  });
  backend = await K8sComputeBackend.connect({
    config: k8sConfigSchema.parse({ namespace: peer.namespace, scheduler: { kind: 'volcano' } }),
    kubeConfig: peer.plugin,
  });
});

afterAll(async () => {
  await backend?.close();
  await custom?.deleteClusterCustomObject({ ...VOLCANO, plural: 'queues', name: queue }).catch(() => undefined);
  await peer?.remove();
});

describe('Volcano strategy on the Kubernetes peer (CRDs only)', () => {
  it('a gang job gets an owned PodGroup with minMember = replicas; its pods wait for the volcano scheduler', async () => {
    const submitted = await backend.submit({
      name: 'gang',
      project: 'volcano-it',
      gang: true,
      queue,
      replicaGroups: [{ role: 'worker', command: ['true'], replicas: 2, resources: { gpu: { count: 1 } } }],
    });
    const job = await peer.batch.readNamespacedJob({ name: submitted.id, namespace: peer.namespace });
    const group = (await custom.getNamespacedCustomObject({
      ...VOLCANO,
      namespace: peer.namespace,
      plural: 'podgroups',
      name: submitted.id,
    })) as { spec: Record<string, unknown>; metadata: { ownerReferences?: { uid: string }[] } };
    expect(group.spec).toMatchObject({ minMember: 2, queue });
    expect(group.metadata.ownerReferences?.[0]?.uid).toBe(job.metadata!.uid);
    const pods = await waitFor('both pods', async () => {
      const list = await peer.core.listNamespacedPod({
        namespace: peer.namespace,
        labelSelector: `${LABELS.jobId}=${submitted.id}`,
      });
      return list.items.length === 2 ? list.items : undefined;
    });
    for (const pod of pods) {
      expect(pod.spec!.schedulerName).toBe('volcano');
      expect(pod.metadata!.annotations).toMatchObject({ 'scheduling.k8s.io/group-name': submitted.id });
    }
    // Nothing binds them: kube-scheduler ignores pods for another scheduler, and no Volcano runs here.
    await sleep(2_000);
    const status = await backend.get(submitted.id);
    expect(status.phase).toBe('Pending');
    expect(status.replicas.every((r) => r.node === undefined)).toBe(true);
    await backend.cancel(submitted.id);
  });
});
