// Informer recovery: a private Kubernetes peer (own ports and state, so no other test file meets the outage) is
// killed and started again on the same etcd data while a job runs. The plugin's watches stop on the outage and are
// restarted with backoff; the job's completion, which happens while or after the API server was down, still arrives.
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { isTerminalJobPhase, type JobStatus, UnavailableError } from '@mlplane/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PrivatePeers, startPrivatePeers } from '../../../test-support/private-peers.js';
import { K8sComputeBackend, k8sConfigSchema } from '../src/index.js';
import { KWOK_COMPLETE_DELAY, KWOK_COMPLETE_JITTER, waitFor } from './peer.js';

let peers: PrivatePeers;
let kc: KubeConfig;

beforeAll(async () => {
  peers = await startPrivatePeers(['k8s']);
  kc = new KubeConfig();
  kc.loadFromFile(peers.env.MLPLANE_KUBECONFIG!);
  const core = kc.makeApiClient(CoreV1Api);
  await waitFor('the default service account', async () => {
    const accounts = await core.listNamespacedServiceAccount({ namespace: 'default' });
    return accounts.items.length > 0 ? true : undefined;
  });
}, 300_000);

afterAll(async () => {
  await peers?.down();
}, 120_000);

describe('K8sComputeBackend through an API server restart', () => {
  it('restarts its watches with backoff and delivers the status changes made meanwhile', async () => {
    const backend = await K8sComputeBackend.connect({
      config: k8sConfigSchema.parse({ namespace: 'default', watchRestartBackoffMs: 200 }),
      kubeConfig: kc,
    });
    try {
      const submitted = await backend.submit({
        name: 'survivor',
        project: 'recovery',
        // kwok completes the pod 15 s after it runs: after the outage below began.
        annotations: { [KWOK_COMPLETE_DELAY]: '15s', [KWOK_COMPLETE_JITTER]: '15s' },
        replicaGroups: [{ role: 'main', command: ['sh', '-c', 'sleep 15'] }],
      });
      const seen: JobStatus[] = [];
      const watching = (async () => {
        for await (const s of backend.watch({ id: submitted.id }, { signal: AbortSignal.timeout(180_000) })) {
          seen.push(s);
        }
      })();
      await waitFor('the job to run', async () => (seen.some((s) => s.phase === 'Running') ? true : undefined));
      const restartsBefore = backend.watchRestarts;

      await peers.restart('k8s', 'KILL', { downSeconds: 3 });
      await watching;

      // The outage was met: the watches failed and were restarted.
      expect(backend.watchRestarts).toBeGreaterThan(restartsBefore);
      const end = seen.at(-1)!;
      expect(isTerminalJobPhase(end.phase)).toBe(true);
      expect(end.phase).toBe('Succeeded');
      expect(end.replicas[0]).toMatchObject({ phase: 'Succeeded', exitCode: 0 });
      // Nothing was submitted twice: one Job of that name exists.
      expect((await backend.list({ project: 'recovery' })).items.map((s) => s.id)).toEqual([submitted.id]);
    } finally {
      await backend.close();
    }
  }, 300_000);

  it('answers UnavailableError when it cannot reach the API server at connect', async () => {
    const unreachable = new KubeConfig();
    unreachable.loadFromOptions({
      clusters: [{ name: 'c', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
      users: [{ name: 'u', token: 'x' }],
      contexts: [{ name: 'c', cluster: 'c', user: 'u' }],
      currentContext: 'c',
    });
    const error = await K8sComputeBackend.connect({
      config: k8sConfigSchema.parse({ syncTimeoutMs: 1_500, watchRestartBackoffMs: 100 }),
      kubeConfig: unreachable,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(UnavailableError);
    expect((error as Error).message).toContain('https://127.0.0.1:1');
  });
});
