// The ComputeBackend conformance suite on the Kubernetes peer. kwok's nodes run no containers, so the suite's jobs
// go to the peer's process node (scripts/peers.d/k8s/process-node.mjs), which runs each pod's command as a process
// on this machine and serves its output on the kubelet port: exit codes, logs, deadlines and cancels are real.
// The backend is configured as for a reserved node pool: every pod selects that node and tolerates its taint.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { computeBackendConformance } from '@mlplane/core/testing';
import { EnvFileSecretStore } from '@mlplane/defaults';
import { afterAll, describe } from 'vitest';
import { K8sComputeBackend, k8sConfigSchema } from '../src/index.js';
import { type PeerNamespace, PROCESS_NODE_POOL, peerNamespace } from './peer.js';

let peer: PeerNamespace | undefined;
let secretsDir: string | undefined;

afterAll(async () => {
  await peer?.remove();
  if (secretsDir) await rm(secretsDir, { recursive: true, force: true });
});

describe('plugin-k8s conformance', async () => {
  // Made at collection time: the suite creates a backend then to read its capabilities.
  peer = await peerNamespace('mlplane-conf');
  secretsDir = await mkdtemp(join(tmpdir(), 'mlplane-k8s-conf-secrets-'));
  const secrets = new EnvFileSecretStore({
    path: join(secretsDir, 'secrets.enc'),
    masterKey: randomBytes(32).toString('base64'),
  });
  computeBackendConformance('k8s (kube-scheduler) on the process node', async () => {
    const backend = await K8sComputeBackend.connect({
      config: k8sConfigSchema.parse({ namespace: peer!.namespace, watchRestartBackoffMs: 100, ...PROCESS_NODE_POOL }),
      kubeConfig: peer!.plugin,
      secrets,
    });
    return {
      backend,
      shell: (script: string) => ({ image: 'busybox:1.36', command: ['sh', '-c', script] }),
      putSecret: (name, value) => secrets.set(name, value),
      // Kubernetes' Job controller waits 10 s, 20 s, 40 s... before replacing a failed pod, so a job with three
      // retries takes over a minute by design.
      jobTimeoutMs: 45_000,
      async cleanup() {
        const page = await backend.list({ phases: ['Pending', 'Queued', 'Admitted', 'Running'], maxResults: 1000 });
        await Promise.all(page.items.map((j) => backend.cancel(j.id).catch(() => undefined)));
        await backend.close();
      },
    };
  });
});
