// Jobs of several roles as JobSets on the Kubernetes peer with the JobSet controller (`scripts/peers up jobset`),
// run on the peer's process node with exactly the rights of deploy/rbac.yaml: what the plugin creates (the JobSet,
// its child Jobs, the Secret it owns), a restarted backend finding a running JobSet job again, and cancel.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CustomObjectsApi } from '@kubernetes/client-node';
import { isTerminalJobPhase, type JobSpec, type JobStatus } from '@mlplane/core';
import { EnvFileSecretStore } from '@mlplane/defaults';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { JOBSET, K8sComputeBackend, k8sConfigSchema, LABELS } from '../src/index.js';
import { type PeerNamespace, PROCESS_NODE, PROCESS_NODE_POOL, peerNamespace, waitFor } from './peer.js';

let peer: PeerNamespace;
let custom: CustomObjectsApi;
let secrets: EnvFileSecretStore;
let secretsDir: string;
const project = `js-${Date.now().toString(36)}`;

const connect = () =>
  K8sComputeBackend.connect({
    config: k8sConfigSchema.parse({ namespace: peer.namespace, watchRestartBackoffMs: 100, ...PROCESS_NODE_POOL }),
    kubeConfig: peer.plugin,
    secrets,
  });

const sh = (script: string) => ({ image: 'busybox:1.36', command: ['sh', '-c', script] });
const twoRoles = (extra: Partial<JobSpec> = {}): JobSpec => ({
  name: 'pair',
  project,
  replicaGroups: [
    { role: 'worker', replicas: 2, ...sh('echo "worker $MLPLANE_REPLICA_INDEX of $MASTER_ADDR"; sleep 2') },
    { role: 'launcher', ...sh('echo "launcher $TOKEN"; sleep 2') },
  ],
  ...extra,
});

async function untilEnd(b: K8sComputeBackend, id: string): Promise<JobStatus> {
  let last: JobStatus | undefined;
  for await (const s of b.watch({ id }, { signal: AbortSignal.timeout(90_000) })) last = s;
  if (!last || !isTerminalJobPhase(last.phase)) throw new Error(`job ${id} did not end: ${JSON.stringify(last)}`);
  return last;
}

beforeAll(async () => {
  peer = await peerNamespace('mlplane-jobset');
  custom = peer.admin.makeApiClient(CustomObjectsApi);
  secretsDir = await mkdtemp(join(tmpdir(), 'mlplane-k8s-jobset-'));
  secrets = new EnvFileSecretStore({
    path: join(secretsDir, 'secrets.enc'),
    masterKey: randomBytes(32).toString('base64'),
  });
  await custom.listNamespacedCustomObject({ ...JOBSET, namespace: peer.namespace }).catch(() => {
    throw new Error('JobSet is not installed on the peer: run `scripts/peers up jobset`');
  });
});

afterAll(async () => {
  await peer?.remove();
  if (secretsDir) await rm(secretsDir, { recursive: true, force: true });
});

describe('jobs of several roles as JobSets', () => {
  it('creates one JobSet with a Job per role and a Secret it owns; every replica runs and logs', async () => {
    const backend = await connect();
    try {
      expect(backend.capabilities).toMatchObject({ multipleRoles: true, orderedStartup: true });
      await secrets.set('team/token', 'tok-12345');
      const submitted = await backend.submit(
        twoRoles({
          replicaGroups: [
            twoRoles().replicaGroups[0]!,
            { ...twoRoles().replicaGroups[1]!, secretEnv: { TOKEN: { kind: 'secretStore', name: 'team/token' } } },
          ],
        }),
      );
      const jobSet = (await custom.getNamespacedCustomObject({
        ...JOBSET,
        namespace: peer.namespace,
        name: submitted.id,
      })) as { metadata: { uid: string; labels: Record<string, string> } };
      expect(jobSet.metadata.labels).toMatchObject({ [LABELS.managedBy]: 'mlplane', [LABELS.jobId]: submitted.id });
      const secret = await peer.core.readNamespacedSecret({ name: `${submitted.id}-env`, namespace: peer.namespace });
      expect(secret.metadata?.ownerReferences).toEqual([
        expect.objectContaining({ kind: 'JobSet', name: submitted.id, uid: jobSet.metadata.uid, controller: true }),
      ]);

      const end = await untilEnd(backend, submitted.id);
      expect(end.phase).toBe('Succeeded');
      expect(end.replicas.map((r) => `${r.role}-${r.index}:${r.phase}:${r.node}`)).toEqual([
        `worker-0:Succeeded:${PROCESS_NODE}`,
        `worker-1:Succeeded:${PROCESS_NODE}`,
        `launcher-0:Succeeded:${PROCESS_NODE}`,
      ]);
      const children = await peer.batch.listNamespacedJob({
        namespace: peer.namespace,
        labelSelector: `${LABELS.jobSetName}=${submitted.id}`,
      });
      expect(children.items.map((j) => j.metadata!.name).sort()).toEqual([
        `${submitted.id}-launcher-0`,
        `${submitted.id}-worker-0`,
      ]);
      const lines = async (role: string, index: number) => {
        const out: string[] = [];
        for await (const line of backend.logs(submitted.id, { role, index })) out.push(line);
        return out;
      };
      expect(await lines('worker', 1)).toEqual([`worker 1 of ${submitted.id}-worker-0-0.${submitted.id}`]);
      expect(await lines('launcher', 0)).toEqual(['launcher tok-12345']);
    } finally {
      await backend.close();
    }
  });

  it('a restarted backend finds a running JobSet job again by its key; cancel deletes the JobSet and its Jobs', async () => {
    const first = await connect();
    const keyed = twoRoles({
      idempotencyKey: `jobset-${Date.now()}`,
      replicaGroups: [
        { role: 'worker', ...sh('sleep 60') },
        { role: 'launcher', ...sh('sleep 60') },
      ],
    });
    const submitted = await first.submit(keyed);
    await waitFor('the JobSet job to run', async () =>
      (await first.get(submitted.id)).phase === 'Running' ? true : undefined,
    );
    await first.close();

    const second = await connect();
    try {
      expect((await second.get(submitted.id)).phase).toBe('Running');
      expect((await second.submit(keyed)).id).toBe(submitted.id);
      const cancelled = await second.cancel(submitted.id, { reason: 'test over' });
      expect(cancelled).toMatchObject({ phase: 'Cancelled', reason: 'Cancelled' });
      await waitFor('the JobSet and its Jobs to be gone', async () => {
        const jobSets = (await custom.listNamespacedCustomObject({ ...JOBSET, namespace: peer.namespace })) as {
          items: { metadata: { name: string } }[];
        };
        const jobs = await peer.batch.listNamespacedJob({
          namespace: peer.namespace,
          labelSelector: `${LABELS.jobSetName}=${submitted.id}`,
        });
        return jobSets.items.some((j) => j.metadata.name === submitted.id) || jobs.items.length > 0 ? undefined : true;
      });
      expect((await second.get(submitted.id)).phase).toBe('Cancelled');
    } finally {
      await second.close();
    }
  });
});
