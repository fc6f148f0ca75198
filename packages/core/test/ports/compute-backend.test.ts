import { describe, expect, it } from 'vitest';
import {
  type ComputeBackendCapabilities,
  type JobSpec,
  MAX_RETRY_RULES,
  parseCpu,
  parseMemory,
  totalReplicas,
} from '../../src/ports/compute-backend.js';
import { validateJobSpec } from '../../src/ports/compute-backend-validation.js';
import { ValidationError } from '../../src/ports/errors.js';

/** What a Kubernetes backend behind Kueue would declare. */
const kueue: ComputeBackendCapabilities = {
  scheduler: 'kueue',
  gpu: true,
  gpuTypes: ['nvidia.com/gpu', 'nvidia.com/mig-1g.10gb'],
  queues: true,
  priorities: true,
  preemption: true,
  gang: 'admission',
  logsFollow: true,
  multiNode: true,
  multipleRoles: true,
  containers: true,
  volumeKinds: ['persistentVolumeClaim', 'emptyDir'],
  serviceAccounts: true,
  imagePullSecrets: true,
  secretRefKinds: ['kubernetesSecret', 'secretStore'],
  retryConditions: ['DisruptionTarget'],
  orderedStartup: true,
  statusAfterTtl: false,
};

/** What a local process backend would declare. */
const local: ComputeBackendCapabilities = {
  scheduler: 'local',
  gpu: false,
  queues: true,
  priorities: false,
  preemption: false,
  gang: 'placement',
  logsFollow: true,
  multiNode: false,
  multipleRoles: true,
  containers: false,
  volumeKinds: ['emptyDir'],
  serviceAccounts: false,
  imagePullSecrets: false,
  secretRefKinds: ['secretStore'],
  retryConditions: [],
  orderedStartup: true,
  statusAfterTtl: true,
};

/** An MPI-style training job: one launcher, four GPU workers, shared data, a big /dev/shm. */
const mpiJob: JobSpec = {
  name: 'bert-pretrain',
  project: 'nlp',
  runId: '0123456789abcdef0123456789abcdef',
  replicaGroups: [
    {
      role: 'worker',
      replicas: 4,
      image: 'registry.example/train:1.4',
      command: ['/usr/sbin/sshd', '-De'],
      resources: { cpu: '8', memory: '64Gi', gpu: { count: 8, product: 'NVIDIA-H100-80GB-HBM3' } },
      sharedMemory: '16Gi',
      volumeMounts: [
        { volume: 'data', mountPath: '/data', readOnly: true },
        { volume: 'scratch', mountPath: '/scratch' },
      ],
      tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
      nodeSelector: { 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' },
    },
    {
      role: 'launcher',
      image: 'registry.example/train:1.4',
      command: ['mpirun', '-np', '32', 'python', 'train.py'],
      env: { NCCL_DEBUG: 'WARN' },
      secretEnv: {
        HF_TOKEN: { kind: 'secretStore', name: 'huggingface/token' },
        WANDB_API_KEY: { kind: 'kubernetesSecret', name: 'wandb', key: 'api-key' },
      },
    },
  ],
  successPolicy: { roles: ['launcher'] },
  startupPolicy: 'InOrder',
  volumes: [
    { name: 'data', source: { kind: 'persistentVolumeClaim', claimName: 'datasets', readOnly: true } },
    { name: 'scratch', source: { kind: 'emptyDir', sizeLimit: '100Gi' } },
  ],
  serviceAccount: 'trainer',
  imagePullSecrets: ['registry-creds'],
  retries: 3,
  retryRules: [
    { action: 'FailJob', onExitCodes: { role: 'launcher', operator: 'In', values: [2, 42] } },
    { action: 'Ignore', onConditions: [{ type: 'DisruptionTarget' }] },
  ],
  timeoutSeconds: 86_400,
  ttlSecondsAfterFinished: 3600,
  queue: 'research',
  priority: 'high',
  gang: true,
  labels: { team: 'nlp', 'mlplane.io/experiment': 'bert' },
};

/** Applies `change` to a copy of the MPI job and returns the ValidationError it raises against `caps`. */
function refused(change: (spec: any) => void, caps: ComputeBackendCapabilities = kueue): ValidationError {
  const spec = structuredClone(mpiJob) as any;
  change(spec);
  try {
    validateJobSpec(spec, caps);
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error('expected a ValidationError');
}

describe('validateJobSpec', () => {
  it('accepts a launcher and worker job that uses every feature the backend declares', () => {
    expect(() => validateJobSpec(mpiJob, kueue)).not.toThrow();
    expect(() => validateJobSpec(mpiJob)).not.toThrow();
    expect(totalReplicas(mpiJob)).toBe(5);
  });

  it('accepts the smallest job: one group with a command', () => {
    const spec: JobSpec = { name: 'hello', project: 'p', replicaGroups: [{ role: 'main', command: ['echo', 'hi'] }] };
    expect(() => validateJobSpec(spec, local)).not.toThrow();
    expect(totalReplicas(spec)).toBe(1);
  });

  it('names the field of structural mistakes', () => {
    const cases: [(s: any) => void, string, string][] = [
      [(s) => (s.replicaGroups = []), 'replicaGroups', 'at least one group'],
      [(s) => (s.replicaGroups[1].role = 'worker'), 'replicaGroups[1].role', "role 'worker' appears twice"],
      [(s) => (s.replicaGroups[0].role = 'Worker_1'), 'replicaGroups[0].role', 'lowercase'],
      [(s) => (s.replicaGroups[0].replicas = 0), 'replicaGroups[0].replicas', 'from 1 to 10000'],
      [(s) => (s.replicaGroups[1].command = []), 'replicaGroups[1].command', 'non-empty array'],
      [(s) => (s.runId = 'not a run'), 'runId', 'not a tracker run id'],
      [(s) => (s.name = 'Bad_Name'), 'name', 'lowercase letters'],
      [(s) => (s.successPolicy = { roles: ['driver'] }), 'successPolicy.roles[0]', "'driver'"],
      [(s) => (s.timeoutSeconds = 0), 'timeoutSeconds', 'from 1'],
      [(s) => (s.ttlSecondsAfterFinished = -1), 'ttlSecondsAfterFinished', 'from 0'],
      [(s) => (s.labels = { team: 'has spaces' }), 'labels.team', 'at most 63'],
      [(s) => (s.restartScope = 'pod'), 'restartScope', "'job' or 'replica'"],
      [(s) => (s.experiment = ' '), 'experiment', 'non-empty experiment name'],
      [(s) => (s.experiment = 'e'.repeat(501)), 'experiment', 'at most 500'],
    ];
    for (const [change, field, message] of cases) {
      const err = refused(change);
      expect(err.field, message).toBe(field);
      expect(err.message).toContain(message);
    }
  });

  it('checks quantities and resources, naming the path to them', () => {
    expect(refused((s) => (s.replicaGroups[0].resources.memory = '64 GB')).field).toBe(
      'replicaGroups[0].resources.memory',
    );
    expect(refused((s) => (s.replicaGroups[0].sharedMemory = 'lots')).field).toBe('replicaGroups[0].sharedMemory');
    expect(refused((s) => (s.volumes[1].source.sizeLimit = '1 TB')).field).toBe('volumes[1].source.sizeLimit');
    const gpu = refused((s) => (s.replicaGroups[0].resources.gpu.type = 'nvidia.com/mig-7g.80gb'));
    expect(gpu.field).toBe('replicaGroups[0].resources.gpu.type');
    expect(gpu.message).toContain('offered: nvidia.com/gpu, nvidia.com/mig-1g.10gb');
  });

  it('checks that mounts name declared volumes and do not collide', () => {
    expect(refused((s) => (s.replicaGroups[0].volumeMounts[0].volume = 'datasets')).message).toContain(
      "'datasets' is not one of the job's volumes (data, scratch)",
    );
    expect(refused((s) => (s.replicaGroups[0].volumeMounts[1].mountPath = '/data/')).message).toContain(
      '/data is mounted twice',
    );
    expect(refused((s) => (s.replicaGroups[0].volumeMounts[1].mountPath = 'scratch')).field).toBe(
      'replicaGroups[0].volumeMounts[1].mountPath',
    );
    expect(refused((s) => (s.replicaGroups[0].volumeMounts[1].mountPath = '/dev/shm')).message).toContain(
      'set by sharedMemory',
    );
    expect(refused((s) => s.volumes.push({ name: 'data', source: { kind: 'emptyDir' } })).message).toContain(
      "volume 'data' is declared twice",
    );
    expect(refused((s) => (s.volumes[0].source.claimName = 'Datasets!')).field).toBe('volumes[0].source.claimName');
  });

  it('keeps secrets as references and never accepts a value', () => {
    const value = refused((s) => (s.replicaGroups[1].secretEnv.HF_TOKEN = 'hf_abc123'));
    expect(value.field).toBe('replicaGroups[1].secretEnv.HF_TOKEN');
    expect(value.message).toContain('secret reference, never a value');
    expect(value.message).not.toContain('hf_abc123');
    expect(refused((s) => (s.replicaGroups[1].secretEnv.WANDB_API_KEY.key = 'a/b')).field).toBe(
      'replicaGroups[1].secretEnv.WANDB_API_KEY.key',
    );
    expect(refused((s) => (s.replicaGroups[1].env.HF_TOKEN = 'x')).message).toContain('in both env and secretEnv');
    expect(refused((s) => (s.replicaGroups[1].env.MLFLOW_RUN_ID = 'x')).message).toContain('set runId on the spec');
    expect(refused((s) => (s.replicaGroups[1].env.MLPLANE_RUN_ID = 'x')).field).toBe(
      'replicaGroups[1].env.MLPLANE_RUN_ID',
    );
  });

  it('checks retry rules as Kubernetes podFailurePolicy does', () => {
    const rule = (r: unknown) => (s: any) => (s.retryRules = [r]);
    const cases: [unknown, string, string][] = [
      [{ action: 'FailJob', onExitCodes: { operator: 'In', values: [0, 1] } }, 'values', 'exit code 0 is a success'],
      [{ action: 'FailJob', onExitCodes: { operator: 'In', values: [3, 3] } }, 'values', 'twice'],
      [{ action: 'FailJob', onExitCodes: { operator: 'In', values: [] } }, 'values', '1 to 255'],
      [{ action: 'FailJob', onExitCodes: { operator: 'In', values: [256] } }, 'values[0]', 'from 0 to 255'],
      [{ action: 'Retry', onExitCodes: { operator: 'In', values: [1] } }, 'action', 'FailJob, Ignore or Count'],
      [{ action: 'Count', onExitCodes: { operator: 'Is', values: [1] } }, 'operator', 'In or NotIn'],
      [{ action: 'Count', onExitCodes: { role: 'ps', operator: 'In', values: [1] } }, 'role', 'not a role'],
      [{ action: 'Ignore' }, 'retryRules[0]', 'exactly one of'],
      [{ action: 'Ignore', onConditions: [{ type: 'NodeLost' }] }, 'type', 'reports: DisruptionTarget'],
      [{ action: 'Ignore', onConditions: [{ type: 'DisruptionTarget', status: 'yes' }] }, 'status', 'True, False'],
    ];
    for (const [r, field, message] of cases) {
      const err = refused(rule(r));
      expect(err.field?.endsWith(field), `${err.field} for ${message}`).toBe(true);
      expect(err.message).toContain(message);
    }
    const many = Array.from({ length: MAX_RETRY_RULES + 1 }, () => ({
      action: 'Count',
      onExitCodes: { operator: 'NotIn', values: [0] },
    }));
    expect(refused((s) => (s.retryRules = many)).message).toContain(`at most ${MAX_RETRY_RULES}`);
    // NotIn may list 0: "every failure except...".
    expect(() =>
      validateJobSpec(
        { ...mpiJob, retryRules: [{ action: 'FailJob', onExitCodes: { operator: 'NotIn', values: [0, 137] } }] },
        kueue,
      ),
    ).not.toThrow();
  });

  it('refuses what the backend does not have, saying what it has', () => {
    // The MPI job cut down to what a local backend runs: host processes, scratch space, SecretStore secrets.
    const hostJob = (s: any) => {
      for (const g of s.replicaGroups) delete g.image;
      s.volumes = [{ name: 'scratch', source: { kind: 'emptyDir' } }];
      s.replicaGroups[0].volumeMounts = [{ volume: 'scratch', mountPath: '/scratch' }];
      delete s.replicaGroups[0].resources.gpu;
      delete s.replicaGroups[1].secretEnv.WANDB_API_KEY;
      s.retryRules = [{ action: 'FailJob', onExitCodes: { operator: 'In', values: [2] } }];
      delete s.serviceAccount;
      delete s.imagePullSecrets;
      delete s.priority;
    };
    const base = structuredClone(mpiJob) as any;
    hostJob(base);
    expect(() => validateJobSpec(base, local)).not.toThrow();

    const cases: [(s: any) => void, string, string][] = [
      [(s) => (s.replicaGroups[1].image = 'train:1'), 'replicaGroups[1].image', 'host processes'],
      [
        (s) => (s.volumes[0].source = { kind: 'persistentVolumeClaim', claimName: 'data' }),
        'volumes[0].source.kind',
        'it mounts: emptyDir',
      ],
      [
        (s) => (s.replicaGroups[1].secretEnv.K = { kind: 'kubernetesSecret', name: 'k', key: 'v' }),
        'replicaGroups[1].secretEnv.K.kind',
        'it resolves: secretStore',
      ],
      [(s) => (s.replicaGroups[0].resources.gpu = { count: 1 }), 'replicaGroups[0].resources.gpu', 'no GPUs'],
      [(s) => (s.serviceAccount = 'trainer'), 'serviceAccount', 'no service accounts'],
      [(s) => (s.imagePullSecrets = ['creds']), 'imagePullSecrets', 'does not pull images'],
      [(s) => (s.priority = 'high'), 'priority', 'no priorities'],
      [
        (s) => s.retryRules.push({ action: 'Ignore', onConditions: [{ type: 'DisruptionTarget' }] }),
        'retryRules[1].onConditions[0].type',
        'it reports: none',
      ],
    ];
    for (const [change, field, message] of cases) {
      const err = refused((s) => {
        hostJob(s);
        change(s);
      }, local);
      expect(err.field).toBe(field);
      expect(err.message).toContain(message);
    }

    const plain: ComputeBackendCapabilities = { ...kueue, scheduler: 'kube-scheduler', gang: 'none', queues: false };
    expect(refused(() => undefined, plain).message).toContain('no queues');
    const gang = refused((s) => delete s.queue, plain);
    expect(gang.field).toBe('gang');
    expect(gang.message).toContain('kube-scheduler has no gang scheduling');
    expect(refused((s) => delete s.queue, { ...plain, gang: 'placement', orderedStartup: false }).field).toBe(
      'startupPolicy',
    );
    const oneRole = refused((s) => delete s.queue, { ...plain, gang: 'placement', multipleRoles: false });
    expect(oneRole.field).toBe('replicaGroups');
    expect(oneRole.message).toContain('2 roles (worker, launcher)');
  });
});

describe('quantities', () => {
  it('parses Kubernetes memory and CPU quantities and names the field of a bad one', () => {
    expect(parseMemory('512Mi')).toBe(512 * 2 ** 20);
    expect(parseMemory('1G')).toBe(1e9);
    expect(parseCpu('500m')).toBe(0.5);
    expect(parseCpu(2)).toBe(2);
    expect(() => parseMemory('4 GiB', 'x.memory')).toThrow(expect.objectContaining({ field: 'x.memory' }));
    expect(() => parseCpu('two')).toThrow(expect.objectContaining({ field: 'resources.cpu' }));
  });
});
