import { z } from 'zod';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const OBJECT_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const objectName = (what: string) =>
  z.string().max(253).regex(OBJECT_NAME, `must be a ${what} name: lowercase letters, digits, '-' and '.'`);

/**
 * How replicas get placed. Each strategy sets the capability flags the port reports (docs/plugins/k8s.md):
 * - `kube-scheduler`: plain Jobs, no queues, no gang scheduling;
 * - `kueue`: Jobs created suspended with `kueue.x-k8s.io/queue-name`; Kueue admits them (queues, priorities,
 *   preemption, gang admission);
 * - `volcano`: `schedulerName: volcano` and a PodGroup per job (`minMember` = replicas): gang placement.
 */
export const schedulerSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('kube-scheduler') }),
  z.object({
    kind: z.literal('kueue'),
    /** LocalQueue for specs without `queue`; a spec without a queue is refused when this is absent. */
    defaultQueue: objectName('LocalQueue').optional(),
  }),
  z.object({
    kind: z.literal('volcano'),
    /** Volcano Queue for specs without `queue` (Volcano's own default is `default`). */
    defaultQueue: objectName('Queue').default('default'),
    /** The scheduler name Volcano's scheduler answers to. */
    schedulerName: z.string().min(1).default('volcano'),
  }),
]);

/** `plugins.k8s` (or the `k8s` section of mlplane.yaml). */
export const k8sConfigSchema = z
  .object({
    /**
     * Path of a kubeconfig file. Absent: the in-cluster service account when running in a pod, else `KUBECONFIG`
     * or `~/.kube/config` (the client's default loading).
     */
    kubeconfig: z.string().min(1).optional(),
    /** Context of the kubeconfig to use; default its current context. */
    context: z.string().min(1).optional(),
    /** Namespace the Jobs (and their Secrets, Services, PodGroups) are created in and watched. */
    namespace: z.string().max(63).regex(DNS_LABEL, 'must be a namespace name (DNS-1123 label)').default('default'),
    scheduler: schedulerSchema.default({ kind: 'kube-scheduler' }),
    /**
     * GPU resource types jobs may request (`nvidia.com/gpu`, MIG profiles `nvidia.com/mig-1g.10gb`); the port refuses
     * others with a ValidationError before anything is created.
     */
    gpuTypes: z.array(z.string().min(1)).min(1).default(['nvidia.com/gpu']),
    /**
     * Node labels every pod must match, merged under each replica group's own `nodeSelector` (which wins on a
     * shared key): a node pool reserved for ML jobs.
     */
    nodeSelector: z.record(z.string().min(1).max(317), z.string().max(63)).default({}),
    /** Tolerations added to every pod before the group's own (the taint of that reserved node pool). */
    tolerations: z
      .array(
        z
          .object({
            key: z.string().min(1).optional(),
            operator: z.enum(['Exists', 'Equal']).optional(),
            value: z.string().optional(),
            effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']).optional(),
            tolerationSeconds: z.number().int().optional(),
          })
          .strict(),
      )
      .default([]),
    /** Taint key GPU nodes carry; a toleration (`Exists`, NoSchedule) is added to pods that request GPUs. */
    gpuTaintKey: z.string().min(1).default('nvidia.com/gpu'),
    /**
     * Image for a replica group without `image`: Kubernetes always runs a container, so a plain command runs in
     * this image.
     */
    defaultImage: z.string().min(1).default('busybox:1.36'),
    /** Container name in every pod (log reads and exit-code rules refer to it). */
    containerName: z.string().regex(DNS_LABEL).max(63).default('main'),
    /**
     * Seconds a finished Job (and its pods and logs) is kept when the spec sets no `ttlSecondsAfterFinished`;
     * absent keeps it until deleted.
     */
    defaultTtlSecondsAfterFinished: z.number().int().min(0).optional(),
    /** Port torchrun's rendezvous listens on in replica 0 (MASTER_PORT) for multi-replica jobs. */
    masterPort: z.number().int().min(1).max(65535).default(29500),
    /**
     * Check that a spec's `priority` names an existing PriorityClass (kube-scheduler, Volcano) or
     * WorkloadPriorityClass (Kueue) before creating anything; needs `get` on them (see the RBAC manifest).
     */
    checkPriorityClasses: z.boolean().default(true),
    /** How long a re-attach or informer start may take before `submit`, `get` and `list` answer UnavailableError. */
    syncTimeoutMs: z.number().int().positive().default(30_000),
    /** First wait before an informer that stopped on an error is restarted; doubled per failure up to 30 s. */
    watchRestartBackoffMs: z.number().int().min(10).max(30_000).default(500),
  })
  .strict();

export type K8sConfig = z.output<typeof k8sConfigSchema>;
export type K8sConfigInput = z.input<typeof k8sConfigSchema>;
export type SchedulerConfig = z.output<typeof schedulerSchema>;
