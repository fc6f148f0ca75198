// The Iris pipeline of iris-pipeline.ts with every job step run as a Kubernetes Job: a platform on embedded defaults
// (SQLite, local artifacts, tracker and registry) whose ComputeBackend is plugin-k8s, and the same
// PipelineOrchestrator, which only speaks the port.
import { realpathSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { computeBackendRef, type JobPhase, modelRegistryRef, type Platform } from '@mlplane/core';
import { createPlatform } from '@mlplane/defaults';
import { PipelineOrchestrator, type PipelineRunStatus, type StepStatus } from '@mlplane/pipelines';
import { type K8sConfigInput, k8sPlugin } from '@mlplane/plugin-k8s';
import { ensureIrisVenv, IRIS_MODEL, runIrisPipeline } from './iris-pipeline.js';

/**
 * Run it against the Kubernetes peer (`scripts/peers up k8s`, then `eval "$(scripts/peers env)"`):
 *   node --conditions=@mlplane/source --import tsx examples/src/iris-pipeline-k8s.ts
 * It makes the venv of iris-pipeline.ts (once), runs the pipeline with each job step as a Job in
 * MLPLANE_K8S_NAMESPACE (default `default`) on the peer's process node, and prints one JSON line: the run's status,
 * its steps, the champion, and the Jobs created with the node their pod ran on. MLPLANE_DATA_DIR keeps the
 * platform's data (SQLite, artifacts, the pipeline workspace) there; without it a temporary directory is used and
 * removed. The Jobs stay in the namespace until deleted
 * (`kubectl delete jobs -l app.kubernetes.io/managed-by=mlplane`).
 */

/** Where the step pods go: node labels every pod must match and the taints they tolerate (a reserved node pool). */
export interface NodePool {
  readonly nodeSelector: Readonly<Record<string, string>>;
  readonly tolerations: NonNullable<K8sConfigInput['tolerations']>;
}

/**
 * The Kubernetes peer's process node (scripts/peers.d/k8s/process-node.mjs): the one node that runs pods' commands,
 * as processes on the peer's host. It is labelled and tainted `mlplane.dev/runtime=process`.
 */
export const PEER_PROCESS_NODE_POOL: NodePool = {
  nodeSelector: { 'mlplane.dev/runtime': 'process' },
  tolerations: [{ key: 'mlplane.dev/runtime', operator: 'Equal', value: 'process', effect: 'NoSchedule' }],
};

export interface K8sPipelineSettings {
  /** A kubeconfig with the rights of packages/plugin-k8s/deploy/rbac.yaml in `namespace` (or more). */
  readonly kubeconfig: string;
  /** The namespace the step Jobs are created in; it must exist. */
  readonly namespace: string;
  /** The embedded platform's data: SQLite, artifacts, tracker, registry, and the pipeline workspace below it. */
  readonly dataDir: string;
  /** Default: the peer's process node. */
  readonly nodePool?: NodePool;
  /**
   * Image of the step containers (the steps set none). The peer's process node ignores images; in a cluster this is
   * an image with Python and scikit-learn.
   */
  readonly image?: string;
}

/** The composition: embedded defaults for everything but compute, plugin-k8s for compute. */
export function createK8sPipelinePlatform(settings: K8sPipelineSettings): Platform {
  const pool = settings.nodePool ?? PEER_PROCESS_NODE_POOL;
  const k8s: K8sConfigInput = {
    kubeconfig: settings.kubeconfig,
    namespace: settings.namespace,
    nodeSelector: { ...pool.nodeSelector },
    tolerations: [...pool.tolerations],
    ...(settings.image !== undefined ? { defaultImage: settings.image } : {}),
  };
  return createPlatform({
    plugins: [k8sPlugin()],
    config: { platform: { signals: [] }, embedded: { dataDir: settings.dataDir }, k8s },
    log: { level: 'warn' },
  });
}

/** The pipeline workspace: a directory the orchestrator and every step pod must see at the same path. */
export const workspaceOf = (dataDir: string) => join(resolve(dataDir), 'pipelines');

export interface K8sIrisRun {
  readonly runId: string;
  readonly status: PipelineRunStatus;
  readonly error?: string;
  readonly steps: Readonly<Record<string, StepStatus>>;
  readonly accuracy?: number;
  /** The registered version the `champion` alias points at after the run. */
  readonly champion?: number;
  readonly namespace: string;
  /** One per job step: the Job (its name is the job id) and where its pod ran. */
  readonly jobs: readonly { step: string; job: string; phase: JobPhase; node?: string }[];
}

/** Runs the Iris pipeline on a started platform of createK8sPipelinePlatform and sums it up. */
export async function runIrisOnKubernetes(
  platform: Platform,
  options: { readonly python: string; readonly dataDir: string; readonly namespace: string },
): Promise<K8sIrisRun> {
  const orchestrator = await PipelineOrchestrator.forPlatform(platform, { workspace: workspaceOf(options.dataDir) });
  const result = await runIrisPipeline(orchestrator, { python: options.python });
  const compute = await platform.get(computeBackendRef);
  const jobs = [];
  for (const s of result.steps) {
    if (s.jobId === undefined) continue;
    const job = await compute.get(s.jobId);
    const node = job.replicas[0]?.node;
    jobs.push({ step: s.stepId, job: s.jobId, phase: job.phase, ...(node !== undefined ? { node } : {}) });
  }
  const registry = await platform.get(modelRegistryRef);
  const champion = await registry.getVersionByAlias(IRIS_MODEL, 'champion').catch(() => undefined);
  const accuracy = result.outputs('evaluate')?.accuracy as number | undefined;
  return {
    runId: result.runId,
    status: result.status,
    ...(result.error !== undefined ? { error: result.error } : {}),
    steps: Object.fromEntries(result.steps.map((s) => [s.stepId, s.status])),
    ...(accuracy !== undefined ? { accuracy } : {}),
    ...(champion ? { champion: champion.version } : {}),
    namespace: options.namespace,
    jobs,
  };
}

async function main(): Promise<void> {
  const kubeconfig = process.env.MLPLANE_KUBECONFIG;
  if (!kubeconfig)
    throw new Error('MLPLANE_KUBECONFIG is not set: run scripts/peers up k8s, then eval "$(scripts/peers env)"');
  const namespace = process.env.MLPLANE_K8S_NAMESPACE || 'default';
  const kept = process.env.MLPLANE_DATA_DIR;
  const dataDir = kept || (await mkdtemp(join(tmpdir(), 'mlplane-iris-k8s-')));
  const python = await ensureIrisVenv();
  const platform = createK8sPipelinePlatform({ kubeconfig, namespace, dataDir });
  try {
    await platform.start();
    const run = await runIrisOnKubernetes(platform, { python, dataDir, namespace });
    console.log(JSON.stringify(run));
    if (run.status !== 'Succeeded') process.exitCode = 1;
  } finally {
    await platform.stop();
    if (!kept) await rm(dataDir, { recursive: true, force: true });
  }
}

// Run when executed as a script, not when imported.
if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(`iris-pipeline-k8s: ${(err as Error).message}`);
    process.exit(1);
  });
}
