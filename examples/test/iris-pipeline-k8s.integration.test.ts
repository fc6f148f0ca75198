// examples/src/iris-pipeline-k8s.ts run as a script against the Kubernetes peer, as its comment tells a user to run
// it: the Iris pipeline's job steps become Jobs in a namespace made for the test, their pods run on the peer's process
// node, and the platform's data the script kept is opened again to check the run, the registry and the champion.
// What the script prints is checked against the API server with an admin client.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { BatchV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { modelRegistryRef, type Platform } from '@mlplane/core';
import { PipelineOrchestrator } from '@mlplane/pipelines';
import { LABELS, MANAGED_BY } from '@mlplane/plugin-k8s';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureIrisVenv, IRIS_MODEL } from '../src/iris-pipeline.js';
import { createK8sPipelinePlatform, type K8sIrisRun, workspaceOf } from '../src/iris-pipeline-k8s.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const script = fileURLToPath(new URL('../src/iris-pipeline-k8s.ts', import.meta.url));
const PROCESS_NODE = 'process-node-0';
const JOB_STEPS = ['ingest', 'features', 'train[0]', 'train[1]', 'train[2]', 'train[3]', 'evaluate'];
const STEPS = [...JOB_STEPS, 'train', 'champion-metric', 'register-model', 'set-champion'];

let kubeconfig: string;
let core: CoreV1Api;
let batch: BatchV1Api;
let namespace: string;
let dataDir: string;

beforeAll(async () => {
  const path = process.env.MLPLANE_KUBECONFIG;
  if (!path)
    throw new Error('MLPLANE_KUBECONFIG is not set: run scripts/peers up k8s, then eval "$(scripts/peers env)"');
  kubeconfig = path;
  const admin = new KubeConfig();
  admin.loadFromFile(kubeconfig);
  core = admin.makeApiClient(CoreV1Api);
  batch = admin.makeApiClient(BatchV1Api);
  namespace = `mlplane-iris-${Date.now().toString(36)}`;
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  // Pods of a namespace whose `default` ServiceAccount does not exist yet are refused by the API server.
  for (const deadline = Date.now() + 60_000; ; ) {
    const accounts = await core.listNamespacedServiceAccount({ namespace });
    if (accounts.items.some((a) => a.metadata?.name === 'default')) break;
    if (Date.now() > deadline) throw new Error(`no default ServiceAccount in ${namespace} after 60 s`);
    await new Promise((r) => setTimeout(r, 250));
  }
  dataDir = await mkdtemp(join(tmpdir(), 'mlplane-iris-k8s-test-'));
  // The script makes the venv too; made here so that the script's own timeout covers the run only.
  await ensureIrisVenv();
}, 600_000);

afterAll(async () => {
  if (namespace) await core.deleteNamespace({ name: namespace, propagationPolicy: 'Background' }).catch(() => {});
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('the iris pipeline on Kubernetes', () => {
  it('runs every job step as a Job on the process node and makes the best model the champion', {
    timeout: 600_000,
  }, async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['--conditions=@mlplane/source', '--import', 'tsx', script],
      {
        cwd: root,
        env: { ...process.env, MLPLANE_K8S_NAMESPACE: namespace, MLPLANE_DATA_DIR: dataDir },
        timeout: 540_000,
        maxBuffer: 16 * 2 ** 20,
      },
    ).catch((err: Error & { stdout?: string }) => {
      // A failed run still prints its summary (then exits 1): show it.
      throw new Error(`${err.message}\nstdout: ${err.stdout ?? ''}`);
    });
    const run = JSON.parse(stdout.trim().split('\n').at(-1)!) as K8sIrisRun;

    // What the script printed.
    expect(run.error).toBeUndefined();
    expect(run.status).toBe('Succeeded');
    expect(run.steps).toEqual(Object.fromEntries(STEPS.map((s) => [s, 'Succeeded'])));
    expect(run.accuracy).toBeGreaterThan(0.8);
    expect(run.namespace).toBe(namespace);
    expect(run.jobs.map((j) => j.step).sort()).toEqual([...JOB_STEPS].sort());
    for (const j of run.jobs) expect(j, j.step).toMatchObject({ phase: 'Succeeded', node: PROCESS_NODE });

    // What the API server holds: one Job per job step, each with one pod that ran to completion on the process node.
    const jobs = await batch.listNamespacedJob({ namespace, labelSelector: `${LABELS.managedBy}=${MANAGED_BY}` });
    expect(jobs.items).toHaveLength(JOB_STEPS.length);
    expect(jobs.items.map((j) => j.metadata!.name).sort()).toEqual(run.jobs.map((j) => j.job).sort());
    for (const job of jobs.items) {
      const name = job.metadata!.name!;
      expect(job.status?.succeeded, name).toBe(1);
      // The orchestrator's labels reach the Job as they are.
      expect(job.metadata!.labels, name).toMatchObject({
        'mlplane.dev/pipeline': 'iris',
        'mlplane.dev/pipeline-run': run.runId,
      });
      const pods = await core.listNamespacedPod({ namespace, labelSelector: `${LABELS.jobId}=${name}` });
      expect(pods.items, name).toHaveLength(1);
      expect(pods.items[0]!.spec!.nodeName, name).toBe(PROCESS_NODE);
      expect(pods.items[0]!.status!.phase, name).toBe('Succeeded');
      expect(pods.items[0]!.status!.containerStatuses?.[0]?.state?.terminated?.exitCode, name).toBe(0);
    }
    const stepLabels = jobs.items.map((j) => j.metadata!.labels!['mlplane.dev/step']).sort();
    expect(stepLabels).toEqual(['evaluate', 'features', 'ingest', 'train', 'train', 'train', 'train']);

    // The platform's data the script kept: the stored run, the registered version and the champion alias.
    const platform: Platform = createK8sPipelinePlatform({ kubeconfig, namespace, dataDir });
    await platform.start();
    try {
      const orchestrator = await PipelineOrchestrator.forPlatform(platform, { workspace: workspaceOf(dataDir) });
      const stored = await orchestrator.result(run.runId);
      expect(stored.status).toBe('Succeeded');
      for (const s of stored.steps.filter((s) => JOB_STEPS.includes(s.stepId))) {
        expect(run.jobs.find((j) => j.step === s.stepId)?.job, s.stepId).toBe(s.jobId);
      }
      expect(stored.outputs('ingest')?.rows).toBe(150);
      expect(stored.outputs('evaluate')?.accuracy).toBe(run.accuracy);
      const registered = stored.outputs('register-model') as { version: number };
      expect(run.champion).toBe(registered.version);
      const champion = await (await platform.get(modelRegistryRef)).getVersionByAlias(IRIS_MODEL, 'champion');
      expect(champion.version).toBe(registered.version);
      expect(Number(champion.tags.accuracy)).toBe(run.accuracy);
    } finally {
      await platform.stop();
    }
  });
});
