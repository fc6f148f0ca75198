export { type K8sConfig, type K8sConfigInput, k8sConfigSchema, type SchedulerConfig } from './config.js';
export { buildJobSetManifests, JOBSET, type JobSetManifests, type JobSetObject, jobSetAsJob } from './jobset.js';
export { K8sComputeBackend, type K8sComputeBackendOptions } from './k8s-compute-backend.js';
export { ANNOTATIONS, LABELS, MANAGED_BY } from './labels.js';
export {
  buildManifests,
  capabilitiesFor,
  type JobManifests,
  validateForKubernetes,
  validateImageReference,
} from './manifests.js';
export { k8sPlugin } from './plugin.js';
export { jobStatus, type KueueWorkload, type WarningEvent } from './status.js';
