// The ComputeBackend conformance suite on the Kubernetes peer. kwok runs no containers, so outcomes there come from
// its Stages, not from the suite's scripts: set MLPLANE_K8S_CONFORMANCE=1 to run the suite (on a cluster whose nodes
// run containers it checks everything; on the kwok peer, see docs/plugins/k8s.md for which cases can pass).
import { computeBackendConformance } from '@mlplane/core/testing';
import { afterAll, describe } from 'vitest';
import { K8sComputeBackend, k8sConfigSchema } from '../src/index.js';
import { type PeerNamespace, peerNamespace } from './peer.js';

const enabled = process.env.MLPLANE_K8S_CONFORMANCE === '1';
let peer: PeerNamespace | undefined;

afterAll(async () => {
  await peer?.remove();
});

describe.runIf(enabled)('plugin-k8s conformance', async () => {
  // Made at collection time: the suite creates a backend then to read its capabilities.
  peer = await peerNamespace('mlplane-conf');
  computeBackendConformance('k8s (kube-scheduler)', async () => {
    const backend = await K8sComputeBackend.connect({
      config: k8sConfigSchema.parse({ namespace: peer!.namespace, watchRestartBackoffMs: 100 }),
      kubeConfig: peer!.plugin,
    });
    return {
      backend,
      shell: (script: string) => ({ image: 'busybox:1.36', command: ['sh', '-c', script] }),
      jobTimeoutMs: 20_000,
      async cleanup() {
        const page = await backend.list({ phases: ['Pending', 'Queued', 'Admitted', 'Running'], maxResults: 1000 });
        await Promise.all(page.items.map((j) => backend.cancel(j.id).catch(() => undefined)));
        await backend.close();
      },
    };
  });
});
