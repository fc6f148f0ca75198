import { computeBackendRef, coreServices, definePlugin, secretStoreRef } from '@mlplane/core';
import { k8sConfigSchema } from './config.js';
import { K8sComputeBackend } from './k8s-compute-backend.js';

/**
 * The ComputeBackend on Kubernetes: jobs become batch/v1 Jobs placed by kube-scheduler, Kueue or Volcano (config
 * `scheduler`). At start it lists the plugin's Jobs and pods in `namespace` (re-attaching to jobs a previous
 * platform submitted), so an unreachable API server or missing rights fail the start with a message naming them.
 */
export const k8sPlugin = definePlugin({
  id: 'k8s',
  description: 'ComputeBackend on Kubernetes (Jobs; kube-scheduler, Kueue or Volcano)',
  configSchema: k8sConfigSchema,
  register(env) {
    env.provide(computeBackendRef, {
      deps: { secrets: secretStoreRef, logger: coreServices.logger },
      factory: ({ config, secrets, logger }) => K8sComputeBackend.connect({ config, secrets, logger }),
      dispose: (backend) => (backend as K8sComputeBackend).close(),
    });
  },
});
