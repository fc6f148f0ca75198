// The Kubernetes peer (`scripts/peers up k8s`) set up for the plugin's tests: a fresh namespace, the RBAC of
// deploy/rbac.yaml bound to a ServiceAccount, and a kubeconfig holding that account's token, so the plugin runs with
// exactly those rights (the admin kubeconfig is used only for setup and for checking what the plugin created).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  BatchV1Api,
  CoreV1Api,
  KubeConfig,
  loadAllYaml,
  RbacAuthorizationV1Api,
  SchedulingV1Api,
  type V1ClusterRole,
  type V1Role,
} from '@kubernetes/client-node';

export const GPU_NODES = ['gpu-node-0', 'gpu-node-1'];
export const MIG_NODE = 'mig-node-0';
/** kwok's failure stage (scripts/peers.d/k8s/kwok-stages.yaml): the label fails the pod, the annotation sets its code. */
export const KWOK_FAIL_LABEL = 'pod-container-running-failed.stage.kwok.x-k8s.io';
export const KWOK_EXIT_CODE = 'pod-container-running-failed.stage.kwok.x-k8s.io/exit-code';
/** Both are needed for an exact completion delay. */
export const KWOK_COMPLETE_DELAY = 'pod-complete.stage.kwok.x-k8s.io/delay';
export const KWOK_COMPLETE_JITTER = 'pod-complete.stage.kwok.x-k8s.io/jitter-delay';

/**
 * The peer's process node (scripts/peers.d/k8s/process-node.mjs) runs pods' commands as host processes; it is
 * tainted, so a backend sends pods there with this config (a reserved node pool, as a platform team would set one).
 */
export const PROCESS_NODE = 'process-node-0';
export const PROCESS_NODE_POOL = {
  nodeSelector: { 'mlplane.dev/runtime': 'process' },
  tolerations: [
    { key: 'mlplane.dev/runtime', operator: 'Equal' as const, value: 'process', effect: 'NoSchedule' as const },
  ],
};

const RBAC = fileURLToPath(new URL('../deploy/rbac.yaml', import.meta.url));

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(250);
  }
}

export interface PeerNamespace {
  readonly namespace: string;
  readonly admin: KubeConfig;
  /** Authenticated as the ServiceAccount bound to deploy/rbac.yaml only. */
  readonly plugin: KubeConfig;
  readonly batch: BatchV1Api;
  readonly core: CoreV1Api;
  readonly scheduling: SchedulingV1Api;
  remove(): Promise<void>;
}

export function adminKubeConfig(): KubeConfig {
  const path = process.env.MLPLANE_KUBECONFIG;
  if (!path) {
    throw new Error('MLPLANE_KUBECONFIG is not set: run `scripts/peers up k8s` and `eval "$(scripts/peers env)"`');
  }
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

export async function peerNamespace(prefix: string): Promise<PeerNamespace> {
  const admin = adminKubeConfig();
  const core = admin.makeApiClient(CoreV1Api);
  const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
  const namespace = `${prefix}-${Date.now().toString(36)}`;
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  await waitFor('the default service account', async () => {
    const accounts = await core.listNamespacedServiceAccount({ namespace });
    return accounts.items.some((a) => a.metadata?.name === 'default') ? true : undefined;
  });

  const docs = loadAllYaml(readFileSync(RBAC, 'utf8')) as (V1Role | V1ClusterRole)[];
  const role = docs.find((d) => d.kind === 'Role') as V1Role;
  const clusterRole = docs.find((d) => d.kind === 'ClusterRole') as V1ClusterRole;
  await rbac.createNamespacedRole({ namespace, body: { ...role, metadata: { ...role.metadata, namespace } } });
  // One ClusterRole for every test namespace: replaced by the file's current rules.
  const clusterRoleName = clusterRole.metadata!.name!;
  await rbac.deleteClusterRole({ name: clusterRoleName }).catch(() => undefined);
  await rbac.createClusterRole({ body: clusterRole });
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'mlplane' } } });
  const subject = { kind: 'ServiceAccount', name: 'mlplane', namespace };
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name: 'mlplane-k8s' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: role.metadata!.name! },
      subjects: [subject],
    },
  });
  const bindingName = `mlplane-k8s-${namespace}`;
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: bindingName },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: clusterRoleName },
      subjects: [subject],
    },
  });
  const token = await core.createNamespacedServiceAccountToken({
    name: 'mlplane',
    namespace,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const cluster = admin.getCurrentCluster()!;
  const plugin = new KubeConfig();
  plugin.loadFromOptions({
    clusters: [{ name: 'peer', server: cluster.server, caData: cluster.caData, skipTLSVerify: false }],
    users: [{ name: 'mlplane', token: token.status!.token }],
    contexts: [{ name: 'peer', cluster: 'peer', user: 'mlplane', namespace }],
    currentContext: 'peer',
  });
  return {
    namespace,
    admin,
    plugin,
    batch: admin.makeApiClient(BatchV1Api),
    core,
    scheduling: admin.makeApiClient(SchedulingV1Api),
    async remove() {
      await rbac.deleteClusterRoleBinding({ name: bindingName }).catch(() => undefined);
      await core.deleteNamespace({ name: namespace, propagationPolicy: 'Background' }).catch(() => undefined);
    },
  };
}
