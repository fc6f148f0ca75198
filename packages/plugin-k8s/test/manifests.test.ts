import { type JobSpec, ValidationError } from '@mlplane/core';
import { describe, expect, it } from 'vitest';
import {
  ANNOTATIONS,
  buildJobSetManifests,
  buildManifests,
  capabilitiesFor,
  jobSetAsJob,
  type K8sConfigInput,
  k8sConfigSchema,
  LABELS,
} from '../src/index.js';

const config = (input: K8sConfigInput = {}) =>
  k8sConfigSchema.parse({ gpuTypes: ['nvidia.com/gpu', 'nvidia.com/mig-1g.10gb'], ...input });

const base = (extra: Partial<JobSpec> = {}): JobSpec => ({
  name: 'train',
  project: 'vision',
  replicaGroups: [{ role: 'main', image: 'ghcr.io/acme/train:1.2', command: ['python', '-m', 'train'] }],
  ...extra,
});

function build(spec: JobSpec, input: K8sConfigInput = {}, secretValues?: Record<string, string>) {
  const c = config(input);
  return buildManifests({
    spec,
    name: `${spec.name}-abcde`,
    config: c,
    capabilities: capabilitiesFor(c),
    submittedAt: new Date('2026-01-02T03:04:05.678Z'),
    ...(secretValues ? { secretValues } : {}),
  });
}

function refused(spec: JobSpec, field: string, input: K8sConfigInput = {}, message?: RegExp) {
  let caught: unknown;
  try {
    build(spec, input);
  } catch (error) {
    caught = error;
  }
  expect(caught, `expected a ValidationError on ${field}`).toBeInstanceOf(ValidationError);
  expect((caught as ValidationError).field).toBe(field);
  if (message) expect((caught as Error).message).toMatch(message);
}

const group = (extra: Partial<JobSpec['replicaGroups'][number]>) => ({
  role: 'main',
  image: 'ghcr.io/acme/train:1.2',
  command: ['python', '-m', 'train'],
  ...extra,
});

describe('JobSpec to batch/v1 Job', () => {
  it('maps image, command, args, env and the ids every replica gets', () => {
    const { job, secret, service, podGroup } = build(
      base({
        runId: 'ab'.repeat(16),
        replicaGroups: [group({ args: ['--epochs', '3'], env: { LR: '0.1' }, workingDir: '/work' })],
      }),
    );
    expect(secret).toBeUndefined();
    expect(service).toBeUndefined();
    expect(podGroup).toBeUndefined();
    expect(job.metadata?.name).toBe('train-abcde');
    const c = job.spec!.template.spec!.containers[0]!;
    expect(c).toMatchObject({
      name: 'main',
      image: 'ghcr.io/acme/train:1.2',
      command: ['python', '-m', 'train'],
      args: ['--epochs', '3'],
      workingDir: '/work',
    });
    expect(c.env).toEqual(
      expect.arrayContaining([
        { name: 'LR', value: '0.1' },
        { name: 'MLPLANE_JOB_ID', value: 'train-abcde' },
        { name: 'MLPLANE_ROLE', value: 'main' },
        {
          name: 'MLPLANE_REPLICA_INDEX',
          valueFrom: { fieldRef: { fieldPath: "metadata.labels['batch.kubernetes.io/job-completion-index']" } },
        },
        { name: 'MLFLOW_RUN_ID', value: 'ab'.repeat(16) },
        { name: 'MLPLANE_RUN_ID', value: 'ab'.repeat(16) },
      ]),
    );
    expect(job.spec).toMatchObject({ completionMode: 'Indexed', completions: 1, parallelism: 1, backoffLimit: 0 });
    expect(job.spec!.template.spec!.restartPolicy).toBe('Never');
    expect(job.spec!.suspend).toBeUndefined();
  });

  it('a group without an image runs in the configured default image', () => {
    const { job } = build(base({ replicaGroups: [{ role: 'main', command: ['true'] }] }), { defaultImage: 'alpine:3' });
    expect(job.spec!.template.spec!.containers[0]!.image).toBe('alpine:3');
  });

  it('labels and annotations link the Job to its job, run and project; the idempotency key is a hashed label', () => {
    const { job } = build(
      base({
        runId: 'run-1',
        labels: { team: 'vision' },
        annotations: { note: 'hi there' },
        idempotencyKey: 'nightly/2026-01-02',
      }),
    );
    const labels = job.metadata!.labels!;
    expect(labels).toMatchObject({
      team: 'vision',
      [LABELS.managedBy]: 'mlplane',
      [LABELS.jobId]: 'train-abcde',
      [LABELS.project]: 'vision',
      [LABELS.runId]: 'run-1',
    });
    expect(labels[LABELS.idempotencyKey]).toMatch(/^[0-9a-f]{63}$/);
    expect(labels[LABELS.idempotencyKey]).not.toContain('nightly');
    const annotations = job.metadata!.annotations!;
    expect(annotations).toMatchObject({
      note: 'hi there',
      [ANNOTATIONS.project]: 'vision',
      [ANNOTATIONS.runId]: 'run-1',
      [ANNOTATIONS.submittedAt]: '2026-01-02T03:04:05.678Z',
    });
    expect(JSON.parse(annotations[ANNOTATIONS.spec]!)).toMatchObject({ name: 'train', project: 'vision' });
    expect(annotations[ANNOTATIONS.specDigest]).toMatch(/^[0-9a-f]{64}$/);
    // The pods carry the job id and role, so the pod informer finds them by label.
    expect(job.spec!.template.metadata!.labels).toMatchObject({
      team: 'vision',
      [LABELS.jobId]: 'train-abcde',
      [LABELS.role]: 'main',
    });
  });

  it('a project name that is no label value is labelled by its hash and kept whole in the annotation', () => {
    const { job } = build(base({ project: 'Team Vision / 2026' }));
    expect(job.metadata!.labels![LABELS.project]).toMatch(/^h\.[0-9a-f]{40}$/);
    expect(job.metadata!.annotations![ANNOTATIONS.project]).toBe('Team Vision / 2026');
  });

  it('GPUs: extended resource as request and limit, the taint toleration, affinity on product and memory', () => {
    const { job } = build(
      base({
        replicaGroups: [
          group({
            resources: {
              cpu: '4',
              memory: '32Gi',
              limits: { memory: '40Gi' },
              gpu: { count: 2, product: 'NVIDIA-H100-80GB-HBM3', minMemoryMiB: 81559 },
            },
          }),
        ],
      }),
    );
    const pod = job.spec!.template.spec!;
    expect(pod.containers[0]!.resources).toEqual({
      requests: { cpu: '4', memory: '32Gi', 'nvidia.com/gpu': '2' },
      limits: { memory: '40Gi', 'nvidia.com/gpu': '2' },
    });
    expect(pod.tolerations).toEqual([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(pod.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms).toEqual([
      {
        matchExpressions: [
          { key: 'nvidia.com/gpu.product', operator: 'In', values: ['NVIDIA-H100-80GB-HBM3'] },
          { key: 'nvidia.com/gpu.memory', operator: 'Gt', values: ['81558'] },
        ],
      },
    ]);
  });

  it('a MIG profile is requested as its own resource; no GPU means no toleration and no affinity', () => {
    const mig = build(
      base({ replicaGroups: [group({ resources: { gpu: { count: 1, type: 'nvidia.com/mig-1g.10gb' } } })] }),
    );
    expect(mig.job.spec!.template.spec!.containers[0]!.resources?.limits).toEqual({ 'nvidia.com/mig-1g.10gb': '1' });
    expect(mig.job.spec!.template.spec!.tolerations).toHaveLength(1);
    const cpu = build(base({ replicaGroups: [group({ resources: { cpu: '500m', gpu: { count: 0 } } })] }));
    expect(cpu.job.spec!.template.spec!.tolerations).toBeUndefined();
    expect(cpu.job.spec!.template.spec!.affinity).toBeUndefined();
  });

  it('volumes, /dev/shm as a memory emptyDir, service account, pull secrets, tolerations and node selector', () => {
    const { job } = build(
      base({
        volumes: [
          { name: 'data', source: { kind: 'persistentVolumeClaim', claimName: 'imagenet', readOnly: true } },
          { name: 'scratch', source: { kind: 'emptyDir', sizeLimit: '10Gi' } },
        ],
        serviceAccount: 'trainer',
        imagePullSecrets: ['regcred'],
        replicaGroups: [
          group({
            sharedMemory: '8Gi',
            volumeMounts: [
              { volume: 'data', mountPath: '/data', readOnly: true },
              { volume: 'scratch', mountPath: '/scratch', subPath: 'run' },
            ],
            tolerations: [{ key: 'spot', operator: 'Equal', value: 'true', effect: 'NoSchedule' }],
            nodeSelector: { 'topology.kubernetes.io/zone': 'eu-1a' },
          }),
        ],
      }),
    );
    const pod = job.spec!.template.spec!;
    expect(pod.volumes).toEqual([
      { name: 'data', persistentVolumeClaim: { claimName: 'imagenet', readOnly: true } },
      { name: 'scratch', emptyDir: { sizeLimit: '10Gi' } },
      { name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: '8Gi' } },
    ]);
    expect(pod.containers[0]!.volumeMounts).toEqual([
      { name: 'data', mountPath: '/data', readOnly: true },
      { name: 'scratch', mountPath: '/scratch', subPath: 'run' },
      { name: 'dshm', mountPath: '/dev/shm' },
    ]);
    expect(pod.serviceAccountName).toBe('trainer');
    expect(pod.automountServiceAccountToken).toBeUndefined();
    expect(pod.imagePullSecrets).toEqual([{ name: 'regcred' }]);
    expect(pod.tolerations).toEqual([{ key: 'spot', operator: 'Equal', value: 'true', effect: 'NoSchedule' }]);
    expect(pod.nodeSelector).toEqual({ 'topology.kubernetes.io/zone': 'eu-1a' });
  });

  it("the config's nodeSelector and tolerations reach every pod, under the group's own", () => {
    const pool = {
      nodeSelector: { pool: 'ml', 'topology.kubernetes.io/zone': 'eu-1b' },
      tolerations: [{ key: 'pool', operator: 'Equal' as const, value: 'ml', effect: 'NoSchedule' as const }],
    };
    const plain = build(base(), pool).job.spec!.template.spec!;
    expect(plain.nodeSelector).toEqual(pool.nodeSelector);
    expect(plain.tolerations).toEqual(pool.tolerations);
    const own = build(
      base({
        replicaGroups: [
          group({
            nodeSelector: { 'topology.kubernetes.io/zone': 'eu-1a' },
            tolerations: [{ key: 'spot', operator: 'Exists' }],
            resources: { gpu: { count: 1 } },
          }),
        ],
      }),
      pool,
    ).job.spec!.template.spec!;
    expect(own.nodeSelector).toEqual({ pool: 'ml', 'topology.kubernetes.io/zone': 'eu-1a' });
    expect(own.tolerations).toEqual([
      ...pool.tolerations,
      { key: 'spot', operator: 'Exists' },
      { key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' },
    ]);
    expect(() => config({ tolerations: [{ key: 'x', operator: 'Maybe' }] } as never)).toThrow();
  });

  it('retries, deadline, TTL and retry rules become backoffLimit, activeDeadlineSeconds, TTL and podFailurePolicy', () => {
    const { job } = build(
      base({
        retries: 3,
        timeoutSeconds: 3600,
        ttlSecondsAfterFinished: 600,
        retryRules: [
          { action: 'FailJob', onExitCodes: { operator: 'In', values: [42, 3] } },
          { action: 'Ignore', onConditions: [{ type: 'DisruptionTarget' }] },
          { action: 'Count', onExitCodes: { role: 'main', operator: 'NotIn', values: [0] } },
        ],
      }),
    );
    expect(job.spec).toMatchObject({ backoffLimit: 3, activeDeadlineSeconds: 3600, ttlSecondsAfterFinished: 600 });
    expect(job.spec!.podFailurePolicy).toEqual({
      rules: [
        { action: 'FailJob', onExitCodes: { containerName: 'main', operator: 'In', values: [3, 42] } },
        { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
        { action: 'Count', onExitCodes: { containerName: 'main', operator: 'NotIn', values: [0] } },
      ],
    });
    expect(build(base(), { defaultTtlSecondsAfterFinished: 86400 }).job.spec!.ttlSecondsAfterFinished).toBe(86400);
  });

  it('kubernetesSecret refs become secretKeyRefs; SecretStore refs go into the owned Secret, never the Job', () => {
    const { job, secret } = build(
      base({
        replicaGroups: [
          group({
            secretEnv: {
              DB_PASSWORD: { kind: 'kubernetesSecret', name: 'db', key: 'password' },
              HF_TOKEN: { kind: 'secretStore', name: 'hf/token' },
            },
          }),
        ],
      }),
      {},
      { HF_TOKEN: 'hf_secret_value_123' },
    );
    const env = job.spec!.template.spec!.containers[0]!.env!;
    expect(env).toContainEqual({ name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } });
    expect(env).toContainEqual({
      name: 'HF_TOKEN',
      valueFrom: { secretKeyRef: { name: 'train-abcde-env', key: 'HF_TOKEN' } },
    });
    expect(JSON.stringify(job)).not.toContain('hf_secret_value_123');
    expect(secret).toMatchObject({
      kind: 'Secret',
      metadata: { name: 'train-abcde-env', labels: { [LABELS.jobId]: 'train-abcde' } },
      data: { HF_TOKEN: Buffer.from('hf_secret_value_123').toString('base64') },
    });
  });

  it('several replicas: an Indexed Job, a headless Service and the torchrun variables', () => {
    const { job, service } = build(base({ replicaGroups: [group({ replicas: 4 })] }));
    expect(job.spec).toMatchObject({ completionMode: 'Indexed', completions: 4, parallelism: 4 });
    expect(job.spec!.template.spec!.subdomain).toBe('train-abcde');
    expect(service).toMatchObject({
      metadata: { name: 'train-abcde' },
      spec: { clusterIP: 'None', publishNotReadyAddresses: true, selector: { [LABELS.jobId]: 'train-abcde' } },
    });
    const env = job.spec!.template.spec!.containers[0]!.env!;
    expect(env).toEqual(
      expect.arrayContaining([
        { name: 'MASTER_ADDR', value: 'train-abcde-0.train-abcde' },
        { name: 'MASTER_PORT', value: '29500' },
        { name: 'WORLD_SIZE', value: '4' },
        {
          name: 'NODE_RANK',
          valueFrom: { fieldRef: { fieldPath: "metadata.labels['batch.kubernetes.io/job-completion-index']" } },
        },
      ]),
    );
    // A Service name must start with a letter; a job name may start with a digit.
    const digit = buildManifests({
      spec: base({ name: '7b-train', replicaGroups: [group({ replicas: 2 })] }),
      name: '7b-train-abcde',
      config: config(),
      capabilities: capabilitiesFor(config()),
    });
    expect(digit.service?.metadata?.name).toBe('j7b-train-abcde');
  });

  it('priority: priorityClassName under kube-scheduler; Kueue: suspended, queue and priority labels', () => {
    expect(build(base({ priority: 'high' })).job.spec!.template.spec!.priorityClassName).toBe('high');
    const { job } = build(base({ queue: 'team-a', priority: 'high' }), { scheduler: { kind: 'kueue' } });
    expect(job.spec!.suspend).toBe(true);
    expect(job.metadata!.labels).toMatchObject({
      'kueue.x-k8s.io/queue-name': 'team-a',
      'kueue.x-k8s.io/priority-class': 'high',
    });
    expect(job.spec!.template.spec!.priorityClassName).toBeUndefined();
    const defaulted = build(base(), { scheduler: { kind: 'kueue', defaultQueue: 'shared' } });
    expect(defaulted.job.metadata!.labels!['kueue.x-k8s.io/queue-name']).toBe('shared');
  });

  it('Volcano: schedulerName, the group annotation and a PodGroup whose minMember is the gang size', () => {
    const { job, podGroup } = build(base({ gang: true, queue: 'research', replicaGroups: [group({ replicas: 2 })] }), {
      scheduler: { kind: 'volcano' },
    });
    const pod = job.spec!.template;
    expect(pod.spec!.schedulerName).toBe('volcano');
    expect(pod.metadata!.annotations).toMatchObject({ 'scheduling.k8s.io/group-name': 'train-abcde' });
    expect(podGroup).toEqual({
      apiVersion: 'scheduling.volcano.sh/v1beta1',
      kind: 'PodGroup',
      metadata: {
        name: 'train-abcde',
        namespace: 'default',
        labels: { [LABELS.managedBy]: 'mlplane', [LABELS.jobId]: 'train-abcde' },
      },
      spec: { minMember: 2, queue: 'research' },
    });
  });

  it('capability flags follow the scheduler strategy', () => {
    expect(capabilitiesFor(config())).toMatchObject({ scheduler: 'kube-scheduler', queues: false, gang: 'none' });
    expect(capabilitiesFor(config({ scheduler: { kind: 'kueue' } }))).toMatchObject({
      queues: true,
      preemption: true,
      gang: 'admission',
    });
    expect(capabilitiesFor(config({ scheduler: { kind: 'volcano' } }))).toMatchObject({
      queues: true,
      gang: 'placement',
    });
  });
});

describe('validation before anything reaches the API server', () => {
  it('image references a runtime would refuse', () => {
    for (const image of [
      'Ghcr.io/Acme/Train',
      'acme/train:',
      'acme//train',
      'acme/train:tag with space',
      'acme/TRAIN',
    ]) {
      refused(base({ replicaGroups: [group({ image })] }), 'replicaGroups[0].image', {}, /image reference/);
    }
    for (const image of ['busybox', 'registry.local:5000/a/b:1.0', `x/y@sha256:${'a'.repeat(64)}`, 'a_b/c__d-e.f:v1']) {
      expect(() => build(base({ replicaGroups: [group({ image })] }))).not.toThrow();
    }
    refused(base({ replicaGroups: [{ role: 'main', command: ['true'] }] }), 'config.defaultImage', {
      defaultImage: 'Not An Image',
    });
  });

  it('quantities Kubernetes would reject, and a request above its limit', () => {
    refused(base({ replicaGroups: [group({ resources: { memory: '4 GB' } })] }), 'replicaGroups[0].resources.memory');
    refused(base({ replicaGroups: [group({ resources: { cpu: '2 cores' } })] }), 'replicaGroups[0].resources.cpu');
    refused(base({ replicaGroups: [group({ sharedMemory: 'lots' })] }), 'replicaGroups[0].sharedMemory');
    refused(
      base({ replicaGroups: [group({ resources: { memory: '8Gi', limits: { memory: '4Gi' } } })] }),
      'replicaGroups[0].resources.limits.memory',
      {},
      /below the request/,
    );
    refused(
      base({ replicaGroups: [group({ resources: { cpu: 4, limits: { cpu: '2' } } })] }),
      'replicaGroups[0].resources.limits.cpu',
    );
  });

  it('names over the limit, reserved label prefixes, unknown GPU types', () => {
    refused(base({ name: 'x'.repeat(53) }), 'name');
    refused(base({ labels: { 'mlplane.dev/job-id': 'forged' } }), 'labels.mlplane.dev/job-id', {}, /set by the plugin/);
    refused(
      base({ annotations: { 'mlplane.dev/spec': '{}' } }),
      'annotations.mlplane.dev/spec',
      {},
      /set by the plugin/,
    );
    refused(base({ labels: { 'kueue.x-k8s.io/queue-name': 'q' } }), 'labels.kueue.x-k8s.io/queue-name');
    // Other mlplane.dev/ keys are not the plugin's: the pipeline orchestrator labels its steps' jobs with them.
    const step = build(base({ labels: { 'mlplane.dev/pipeline': 'iris', 'mlplane.dev/step': 'train' } })).job;
    expect(step.metadata!.labels).toMatchObject({ 'mlplane.dev/pipeline': 'iris', 'mlplane.dev/step': 'train' });
    expect(step.spec!.template.metadata!.labels).toMatchObject({ 'mlplane.dev/step': 'train' });
    refused(base({ annotations: { 'kueue.x-k8s.io/queue-name': 'x' } }), 'annotations.kueue.x-k8s.io/queue-name');
    refused(
      base({ replicaGroups: [group({ resources: { gpu: { count: 1, type: 'amd.com/gpu' } } })] }),
      'replicaGroups[0].resources.gpu.type',
    );
    refused(base({ labels: { team: 'x'.repeat(64) } }), 'labels.team');
  });

  it('features the strategy lacks, several roles, and a queue Kueue could not admit', () => {
    refused(base({ gang: true }), 'gang', {}, /no gang scheduling/);
    refused(base({ queue: 'a' }), 'queue', {}, /no queues/);
    refused(
      base({ replicaGroups: [group({}), group({ role: 'worker' })] }),
      'replicaGroups',
      {},
      /one replica group per job/,
    );
    refused(base(), 'queue', { scheduler: { kind: 'kueue' } }, /LocalQueue/);
    refused(base({ queue: 'Team_A' }), 'queue', { scheduler: { kind: 'kueue' } });
    refused(
      base({ retries: 2, replicaGroups: [group({ replicas: 2 })] }),
      'restartScope',
      {},
      /restarts only the failed replica/,
    );
    expect(() =>
      build(base({ retries: 2, restartScope: 'replica', replicaGroups: [group({ replicas: 2 })] })),
    ).not.toThrow();
  });

  it('a spec too large for the Job annotations', () => {
    refused(base({ replicaGroups: [group({ args: ['x'.repeat(300_000)] })] }), 'spec', {}, /annotations/);
  });
});

describe('a JobSpec with several roles to a JobSet', () => {
  const c = config();
  const caps = capabilitiesFor(c, true);
  const spec = base({
    runId: 'ab'.repeat(16),
    retries: 2,
    timeoutSeconds: 600,
    ttlSecondsAfterFinished: 60,
    successPolicy: { roles: ['launcher'] },
    startupPolicy: 'InOrder',
    retryRules: [
      { action: 'FailJob', onExitCodes: { role: 'launcher', operator: 'In', values: [42] } },
      { action: 'Ignore', onExitCodes: { role: 'worker', operator: 'In', values: [7] } },
    ],
    replicaGroups: [
      group({ role: 'worker', replicas: 2, resources: { gpu: { count: 1 } } }),
      group({ role: 'launcher', secretEnv: { TOKEN: { kind: 'secretStore', name: 'hf/token' } } }),
    ],
  });
  const built = () =>
    buildJobSetManifests({
      spec,
      name: 'train-abcde',
      config: c,
      capabilities: caps,
      secretValues: { TOKEN: 's3cr3t' },
    });

  it('has the capabilities only with the JobSet CRD and kube-scheduler', () => {
    expect(capabilitiesFor(c).multipleRoles).toBe(false);
    expect(caps).toMatchObject({ multipleRoles: true, orderedStartup: true });
    expect(capabilitiesFor(config({ scheduler: { kind: 'kueue', defaultQueue: 'q' } }), true).multipleRoles).toBe(
      false,
    );
  });

  it('one replicatedJob per role, every defaulted field written, retries and rules as JobSet policies', () => {
    const { jobSet, secret } = built();
    expect(jobSet).toMatchObject({ apiVersion: 'jobset.x-k8s.io/v1alpha2', kind: 'JobSet' });
    expect(jobSet.metadata!.labels).toMatchObject({ [LABELS.managedBy]: 'mlplane', [LABELS.jobId]: 'train-abcde' });
    expect(JSON.parse(jobSet.metadata!.annotations![ANNOTATIONS.spec]!)).toEqual(spec);
    const s = jobSet.spec as Record<string, unknown> & { replicatedJobs: Record<string, any>[] };
    expect(s.network).toEqual({ enableDNSHostnames: true, subdomain: 'train-abcde', publishNotReadyAddresses: true });
    expect(s.successPolicy).toEqual({ operator: 'All', targetReplicatedJobs: ['launcher'] });
    expect(s.startupPolicy).toEqual({ startupPolicyOrder: 'InOrder' });
    expect(s.failurePolicy).toMatchObject({ maxRestarts: 2 });
    expect(s.ttlSecondsAfterFinished).toBe(60);
    expect(s.replicatedJobs.map((r) => [r.name, r.replicas])).toEqual([
      ['worker', 1],
      ['launcher', 1],
    ]);
    const [worker, launcher] = s.replicatedJobs.map((r) => r.template);
    expect(worker.metadata.labels).toMatchObject({ [LABELS.managedBy]: 'mlplane', [LABELS.role]: 'worker' });
    expect(worker.spec).toMatchObject({ completionMode: 'Indexed', completions: 2, parallelism: 2, backoffLimit: 0 });
    expect(worker.spec.activeDeadlineSeconds).toBe(600);
    expect(worker.spec.ttlSecondsAfterFinished).toBeUndefined();
    // Each role gets only its own exit-code rules.
    expect(worker.spec.podFailurePolicy.rules).toEqual([
      { action: 'Ignore', onExitCodes: { containerName: 'main', operator: 'In', values: [7] } },
    ]);
    expect(launcher.spec.podFailurePolicy.rules[0].action).toBe('FailJob');
    const pod = worker.spec.template.spec;
    expect(pod.restartPolicy).toBe('Never');
    expect(pod.subdomain).toBeUndefined();
    expect(pod.tolerations).toContainEqual({ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' });
    const env = Object.fromEntries(
      pod.containers[0].env.map((e: { name: string; value?: string }) => [e.name, e.value]),
    );
    expect(env).toMatchObject({
      MLPLANE_JOB_ID: 'train-abcde',
      MLPLANE_ROLE: 'worker',
      MASTER_ADDR: 'train-abcde-worker-0-0.train-abcde',
      MASTER_PORT: '29500',
    });
    expect(secret?.metadata?.name).toBe('train-abcde-env');
    expect(secret?.data).toEqual({ TOKEN: Buffer.from('s3cr3t').toString('base64') });
  });

  it("restartScope 'replica' retries within each role's Job; a group's bad field is named with its index", () => {
    const replica = buildJobSetManifests({
      spec: { ...spec, restartScope: 'replica' },
      name: 'train-abcde',
      config: c,
      capabilities: caps,
      secretValues: { TOKEN: 'x' },
    });
    const s = replica.jobSet.spec as { failurePolicy: { maxRestarts: number }; replicatedJobs: any[] };
    expect(s.failurePolicy.maxRestarts).toBe(0);
    expect(s.replicatedJobs[0].template.spec.backoffLimit).toBe(2);
    let caught: unknown;
    try {
      buildJobSetManifests({
        spec: { ...spec, replicaGroups: [spec.replicaGroups[0]!, group({ role: 'launcher', image: 'Bad Image' })] },
        name: 'train-abcde',
        config: c,
        capabilities: caps,
      });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ValidationError);
    expect((caught as ValidationError).field).toBe('replicaGroups[1].image');
  });

  it('the JobSet seen as a Job: Completed, a failure with its child Job reason, restarts and counted failures', () => {
    const js = (conditions: object[], restarts = 0) => ({
      metadata: { name: 'train-abcde', annotations: {} },
      status: { conditions, restarts },
    });
    const child = (reason: string, failed: number) => ({
      metadata: { name: 'train-abcde-launcher-0' },
      status: { failed, conditions: [{ type: 'Failed', status: 'True', reason, message: 'm' }] },
    });
    const done = jobSetAsJob(js([{ type: 'Completed', status: 'True', reason: 'AllJobsCompleted' }]) as never, []);
    expect(done.status?.conditions?.[0]).toMatchObject({ type: 'Complete', reason: 'Completed' });
    const failJob = jobSetAsJob(
      js([{ type: 'Failed', status: 'True', reason: 'FailJobSetFailurePolicyAction' }]) as never,
      [child('PodFailurePolicy', 1)] as never,
    );
    expect(failJob.status).toMatchObject({ failed: 1 });
    expect(failJob.status?.conditions?.[0]).toMatchObject({ type: 'Failed', reason: 'PodFailurePolicy' });
    const spent = jobSetAsJob(
      js([{ type: 'Failed', status: 'True', reason: 'ReachedMaxRestarts' }], 2) as never,
      [child('BackoffLimitExceeded', 1)] as never,
    );
    expect(spent.status).toMatchObject({ failed: 3 });
    expect(spent.status?.conditions?.[0]?.reason).toBe('BackoffLimitExceeded');
  });
});
