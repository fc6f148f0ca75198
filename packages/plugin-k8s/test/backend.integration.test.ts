// K8sComputeBackend on the Kubernetes peer, running with exactly the rights of deploy/rbac.yaml. kwok runs no
// containers: its Stages decide each pod's outcome (complete after 1-3 s, or fail with the exit code an annotation
// names), so these tests check placement, status, retries, cancel and re-attach, not what a program prints.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ConflictError,
  computeBackendPort,
  createPlatformHooks,
  isTerminalJobPhase,
  type JobSpec,
  type JobStatus,
  NotFoundError,
  ValidationError,
} from '@mlplane/core';
import { guarded } from '@mlplane/core/testing';
import { EnvFileSecretStore } from '@mlplane/defaults';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { K8sComputeBackend, type K8sConfigInput, k8sConfigSchema, LABELS } from '../src/index.js';
import {
  GPU_NODES,
  KWOK_COMPLETE_DELAY,
  KWOK_COMPLETE_JITTER,
  KWOK_EXIT_CODE,
  KWOK_FAIL_LABEL,
  MIG_NODE,
  type PeerNamespace,
  peerNamespace,
  waitFor,
} from './peer.js';

let peer: PeerNamespace;
let backend: K8sComputeBackend;
let secrets: EnvFileSecretStore;
let secretsDir: string;
const project = `it-${Date.now().toString(36)}`;

async function connect(extra: K8sConfigInput = {}): Promise<K8sComputeBackend> {
  return K8sComputeBackend.connect({
    config: k8sConfigSchema.parse({
      namespace: peer.namespace,
      gpuTypes: ['nvidia.com/gpu', 'nvidia.com/mig-1g.10gb'],
      watchRestartBackoffMs: 100,
      ...extra,
    }),
    kubeConfig: peer.plugin,
    secrets,
  });
}

const spec = (extra: Partial<JobSpec> = {}, group: Partial<JobSpec['replicaGroups'][number]> = {}): JobSpec => ({
  name: 'train',
  project,
  replicaGroups: [{ role: 'main', image: 'busybox:1.36', command: ['sh', '-c', 'true'], ...group }],
  ...extra,
});

async function untilEnd(b: K8sComputeBackend, id: string, timeoutMs = 60_000): Promise<JobStatus[]> {
  const seen: JobStatus[] = [];
  for await (const s of b.watch({ id }, { signal: AbortSignal.timeout(timeoutMs) })) seen.push(s);
  if (!seen.at(-1) || !isTerminalJobPhase(seen.at(-1)!.phase)) {
    throw new Error(`job ${id} did not end: ${JSON.stringify(seen.at(-1))}`);
  }
  return seen;
}

async function jobsInNamespace(): Promise<string[]> {
  return (await peer.batch.listNamespacedJob({ namespace: peer.namespace })).items.map((j) => j.metadata!.name!);
}

beforeAll(async () => {
  peer = await peerNamespace('mlplane-k8s');
  secretsDir = await mkdtemp(join(tmpdir(), 'mlplane-k8s-secrets-'));
  secrets = new EnvFileSecretStore({
    path: join(secretsDir, 'secrets.enc'),
    masterKey: randomBytes(32).toString('base64'),
  });
  await peer.scheduling.createPriorityClass({ body: { metadata: { name: `${peer.namespace}-high` }, value: 1000 } });
  backend = await connect();
});

afterAll(async () => {
  await backend?.close();
  await peer?.scheduling.deletePriorityClass({ name: `${peer.namespace}-high` }).catch(() => undefined);
  await peer?.remove();
  if (secretsDir) await rm(secretsDir, { recursive: true, force: true });
});

describe('K8sComputeBackend on the Kubernetes peer', () => {
  it('a GPU job lands on a GPU node and succeeds; statuses move forward Pending -> Running -> Succeeded', async () => {
    const submitted = await backend.submit(spec({ labels: { team: 'vision' } }, { resources: { gpu: { count: 1 } } }));
    expect(submitted).toMatchObject({ project, name: 'train', phase: 'Pending', labels: { team: 'vision' } });
    const seen = await untilEnd(backend, submitted.id);
    const phases = seen.map((s) => s.phase).filter((p, i, a) => a.indexOf(p) === i);
    expect(phases).toEqual(['Pending', 'Running', 'Succeeded']);
    const end = seen.at(-1)!;
    expect(end.replicas).toHaveLength(1);
    expect(end.replicas[0]).toMatchObject({ phase: 'Succeeded', exitCode: 0, attempt: 1, reason: 'Completed' });
    expect(GPU_NODES).toContain(end.replicas[0]!.node);
    expect(end.startedAt).toBeInstanceOf(Date);
    expect(end.finishedAt!.getTime()).toBeGreaterThanOrEqual(end.submittedAt.getTime());
  });

  it('a MIG request lands on the MIG node; product and memory constraints pick the GPU node', async () => {
    const mig = await backend.submit(spec({}, { resources: { gpu: { count: 1, type: 'nvidia.com/mig-1g.10gb' } } }));
    const h100 = await backend.submit(
      spec({}, { resources: { gpu: { count: 1, product: 'NVIDIA-H100-80GB-HBM3', minMemoryMiB: 81559 } } }),
    );
    const [migEnd, h100End] = await Promise.all([untilEnd(backend, mig.id), untilEnd(backend, h100.id)]);
    expect(migEnd.at(-1)!.replicas[0]).toMatchObject({ phase: 'Succeeded', node: MIG_NODE });
    expect(GPU_NODES).toContain(h100End.at(-1)!.replicas[0]!.node);
  });

  it("a job asking for more GPUs than any node has stays Pending with the scheduler's reason; cancel ends it", async () => {
    const submitted = await backend.submit(spec({}, { resources: { gpu: { count: 16 } } }));
    const pending = await waitFor('the scheduler to refuse the pod', async () => {
      const s = await backend.get(submitted.id);
      return s.reason === 'Unschedulable' ? s : undefined;
    });
    expect(pending.phase).toBe('Pending');
    expect(pending.message).toMatch(/Insufficient nvidia\.com\/gpu/);
    const cancelled = await backend.cancel(submitted.id, { reason: 'no node is big enough' });
    expect(cancelled).toMatchObject({ phase: 'Cancelled', reason: 'Cancelled', message: 'no node is big enough' });
    expect(await backend.get(submitted.id)).toMatchObject({ phase: 'Cancelled' });
    expect(await backend.cancel(submitted.id)).toMatchObject({ phase: 'Cancelled' });
    // Deleted with propagationPolicy Background: the Job at once, its pods by the garbage collector.
    expect(await jobsInNamespace()).not.toContain(submitted.id);
    await waitFor('the pods to be deleted', async () => {
      const pods = await peer.core.listNamespacedPod({
        namespace: peer.namespace,
        labelSelector: `${LABELS.jobId}=${submitted.id}`,
      });
      return pods.items.length === 0 ? true : undefined;
    });
  });

  it("a Job that cannot create its pods (quota) shows the Job controller's Warning event", async () => {
    const quota = 'no-pods';
    await peer.core.createNamespacedResourceQuota({
      namespace: peer.namespace,
      body: { metadata: { name: quota }, spec: { hard: { pods: '0' } } },
    });
    try {
      await waitFor('the quota to be counted', async () => {
        const q = await peer.core.readNamespacedResourceQuota({ name: quota, namespace: peer.namespace });
        return q.status?.hard?.pods !== undefined ? true : undefined;
      });
      const submitted = await backend.submit(spec());
      const blocked = await waitFor('the FailedCreate event', async () => {
        const s = await backend.get(submitted.id);
        return s.reason === 'FailedCreate' ? s : undefined;
      });
      expect(blocked.phase).toBe('Pending');
      expect(blocked.message).toMatch(/forbidden: exceeded quota/);
      await backend.cancel(submitted.id);
    } finally {
      await peer.core.deleteNamespacedResourceQuota({ name: quota, namespace: peer.namespace });
    }
  });

  it('a failing pod surfaces its exit code; a FailJob rule ends the job at once despite retries left', async () => {
    const failing = { labels: { [KWOK_FAIL_LABEL]: 'true' }, annotations: { [KWOK_EXIT_CODE]: '42' } };
    const submitted = await backend.submit(
      spec({
        ...failing,
        retries: 3,
        retryRules: [{ action: 'FailJob', onExitCodes: { operator: 'In', values: [42] } }],
      }),
    );
    const end = (await untilEnd(backend, submitted.id)).at(-1)!;
    expect(end).toMatchObject({ phase: 'Failed', reason: 'PodFailurePolicy' });
    expect(end.replicas[0]).toMatchObject({ phase: 'Failed', exitCode: 42, attempt: 1 });
    expect(end.message).toContain('exited with code 42');
  });

  it('a failure no rule matches is counted and retried until retries are spent (BackoffLimitExceeded)', async () => {
    const submitted = await backend.submit(
      spec({
        labels: { [KWOK_FAIL_LABEL]: 'true' },
        annotations: { [KWOK_EXIT_CODE]: '3' },
        retries: 1,
        retryRules: [{ action: 'FailJob', onExitCodes: { operator: 'In', values: [42] } }],
      }),
    );
    const end = (await untilEnd(backend, submitted.id, 90_000)).at(-1)!;
    expect(end).toMatchObject({ phase: 'Failed', reason: 'BackoffLimitExceeded', retriesUsed: 2 });
    expect(end.replicas[0]).toMatchObject({ phase: 'Failed', exitCode: 3, attempt: 2 });
  });

  it('an idempotency key returns the same job; the same key with another spec is a ConflictError', async () => {
    const keyed = spec({ idempotencyKey: `nightly-${Date.now()}` });
    const [a, b] = await Promise.all([backend.submit(keyed), backend.submit(keyed)]);
    expect(b.id).toBe(a.id);
    expect((await jobsInNamespace()).filter((n) => n === a.id)).toHaveLength(1);
    await expect(backend.submit({ ...keyed, retries: 2 })).rejects.toBeInstanceOf(ConflictError);
    const job = await peer.batch.readNamespacedJob({ name: a.id, namespace: peer.namespace });
    expect(job.metadata!.labels![LABELS.idempotencyKey]).toMatch(/^[0-9a-f]{63}$/);
  });

  it('bad input is a ValidationError naming the field, and nothing reaches the API server', async () => {
    const before = await jobsInNamespace();
    const cases: [JobSpec, string][] = [
      [spec({ priority: 'no-such-class' }), 'priority'],
      [spec({}, { image: 'Acme/Train:latest' }), 'replicaGroups[0].image'],
      [spec({}, { resources: { memory: '1.5 GiB' } }), 'replicaGroups[0].resources.memory'],
      [spec({ name: 'n'.repeat(60) }), 'name'],
      [
        spec({}, { secretEnv: { TOKEN: { kind: 'secretStore', name: 'missing/secret' } } }),
        'replicaGroups[0].secretEnv.TOKEN',
      ],
    ];
    for (const [bad, field] of cases) {
      const error = await backend.submit(bad).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, field).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).field).toBe(field);
    }
    expect(await jobsInNamespace()).toEqual(before);
    // An existing PriorityClass passes (read with the ClusterRole's `get`).
    const ok = await backend.submit(spec({ priority: `${peer.namespace}-high` }));
    const job = await peer.batch.readNamespacedJob({ name: ok.id, namespace: peer.namespace });
    expect(job.spec!.template.spec!.priorityClassName).toBe(`${peer.namespace}-high`);
  });

  it('SecretStore values go into a Secret owned by the Job; the Job holds only the reference', async () => {
    await secrets.set('hf/token', 'hf_value_for_the_test_0123');
    const submitted = await backend.submit(
      spec({}, { secretEnv: { HF_TOKEN: { kind: 'secretStore', name: 'hf/token' } } }),
    );
    const job = await peer.batch.readNamespacedJob({ name: submitted.id, namespace: peer.namespace });
    expect(JSON.stringify(job)).not.toContain('hf_value_for_the_test_0123');
    const secret = await peer.core.readNamespacedSecret({ name: `${submitted.id}-env`, namespace: peer.namespace });
    expect(Buffer.from(secret.data!.HF_TOKEN!, 'base64').toString()).toBe('hf_value_for_the_test_0123');
    expect(secret.metadata!.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'Job', name: submitted.id, uid: job.metadata!.uid, controller: true }),
    ]);
    expect((await untilEnd(backend, submitted.id)).at(-1)!.phase).toBe('Succeeded');
  });

  it('a two-replica job: an Indexed Job with a headless Service; both replicas reported by index', async () => {
    const submitted = await backend.submit(spec({}, { replicas: 2, resources: { gpu: { count: 1 } } }));
    const svc = await peer.core.readNamespacedService({ name: submitted.id, namespace: peer.namespace });
    expect(svc.spec!.clusterIP).toBe('None');
    const end = (await untilEnd(backend, submitted.id)).at(-1)!;
    expect(end.phase).toBe('Succeeded');
    expect(end.replicas.map((r) => [r.index, r.phase])).toEqual([
      [0, 'Succeeded'],
      [1, 'Succeeded'],
    ]);
  });

  it('job.beforeSubmit rewrites what is created: a plugin adds a toleration and a label', async () => {
    const hooks = createPlatformHooks();
    hooks.of(computeBackendPort).beforeSubmit.tapPromise('spot-nodes', async (s) => ({
      ...s,
      labels: { ...s.labels, 'cost-center': 'research' },
      replicaGroups: s.replicaGroups.map((g) => ({
        ...g,
        tolerations: [
          ...(g.tolerations ?? []),
          { key: 'spot', operator: 'Exists' as const, effect: 'NoSchedule' as const },
        ],
      })),
    }));
    const submitted = await guarded(computeBackendPort, backend, hooks).submit(spec());
    const job = await peer.batch.readNamespacedJob({ name: submitted.id, namespace: peer.namespace });
    expect(job.metadata!.labels).toMatchObject({ 'cost-center': 'research' });
    expect(job.spec!.template.spec!.tolerations).toContainEqual({
      key: 'spot',
      operator: 'Exists',
      effect: 'NoSchedule',
    });
    expect(submitted.labels).toMatchObject({ 'cost-center': 'research' });
  });

  it('list filters by project, labels and phase, newest first, in pages', async () => {
    const listProject = `${project}-list`;
    const ids: string[] = [];
    for (const team of ['a', 'b', 'a']) {
      ids.push((await backend.submit({ ...spec({ labels: { team } }), project: listProject })).id);
    }
    const page1 = await backend.list({ project: listProject, maxResults: 2 });
    expect(page1.items.map((s) => s.id)).toEqual([ids[2], ids[1]]);
    const page2 = await backend.list({ project: listProject, maxResults: 2, pageToken: page1.nextPageToken! });
    expect(page2.items.map((s) => s.id)).toEqual([ids[0]]);
    expect(page2.nextPageToken).toBeUndefined();
    expect((await backend.list({ project: listProject, labels: { team: 'a' } })).items.map((s) => s.id)).toEqual([
      ids[2],
      ids[0],
    ]);
    await expect(backend.list({ project, pageToken: page1.nextPageToken! })).rejects.toBeInstanceOf(ValidationError);
    await expect(backend.get('no-such-job-xyz')).rejects.toBeInstanceOf(NotFoundError);
  });

  it('a restarted backend re-attaches to running jobs by label and follows them to the end, submitting nothing', async () => {
    const slow = { [KWOK_COMPLETE_DELAY]: '6s', [KWOK_COMPLETE_JITTER]: '6s' };
    const first = await connect();
    const keyed = spec({ annotations: slow, idempotencyKey: `reattach-${Date.now()}` });
    const submitted = await first.submit(keyed);
    await waitFor('the job to run', async () =>
      (await first.get(submitted.id)).phase === 'Running' ? true : undefined,
    );
    await first.close();
    const before = await jobsInNamespace();

    const second = await connect();
    try {
      expect((await second.get(submitted.id)).phase).toBe('Running');
      // Resubmitting with the key finds the job again instead of creating another.
      expect((await second.submit(keyed)).id).toBe(submitted.id);
      const end = (await untilEnd(second, submitted.id)).at(-1)!;
      expect(end.phase).toBe('Succeeded');
      expect(await jobsInNamespace()).toEqual(before);
    } finally {
      await second.close();
    }
  });
});
