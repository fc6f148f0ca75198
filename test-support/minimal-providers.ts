// Minimal providers of the core ports, written as a third-party plugin author would: in memory, only the operations
// the hooks suite drives. They never fire a hook; the kernel's guards must.
import { Readable } from 'node:stream';
import {
  type ArtifactInfo,
  type ArtifactStore,
  artifactStoreRef,
  type ComputeBackend,
  ConflictError,
  computeBackendRef,
  type Deployment,
  type DeploymentSpec,
  definePlugin,
  type ExperimentTracker,
  experimentTrackerRef,
  isTerminalRunStatus,
  type JobSpec,
  type JobStatus,
  type ModelRegistry,
  type ModelServer,
  type ModelServerCapabilities,
  type ModelVersion,
  modelRegistryRef,
  modelServerRef,
  NotFoundError,
  planRollout,
  type Rollout,
  type RolloutOptions,
  type Run,
  type StoredArtifact,
} from '@mlplane/core';

const now = () => new Date();

function memoryArtifacts(): ArtifactStore {
  const blobs = new Map<string, { body: Buffer; info: ArtifactInfo }>();
  const info = (key: string): ArtifactInfo => {
    const found = blobs.get(key);
    if (!found) throw new NotFoundError(`no artifact '${key}'`);
    return found.info;
  };
  const store: Partial<ArtifactStore> = {
    capabilities: { presignedUrls: false, multipart: false, rangeReads: false, deduplicates: false } as never,
    async put(key, body, options) {
      const chunks: Buffer[] = [];
      if (typeof body === 'string' || body instanceof Uint8Array) chunks.push(Buffer.from(body));
      else for await (const c of body) chunks.push(Buffer.from(c));
      const data = Buffer.concat(chunks);
      const stored: StoredArtifact = {
        key,
        size: data.length,
        sha256: '',
        contentType: options?.contentType ?? 'application/octet-stream',
        metadata: options?.metadata ?? {},
        etag: `"${data.length}"`,
        lastModified: now(),
      };
      blobs.set(key, { body: data, info: stored });
      return stored;
    },
    async get(key) {
      return { info: info(key), body: Readable.from([blobs.get(key)!.body]) };
    },
    async head(key) {
      return info(key);
    },
    async exists(key) {
      return blobs.has(key);
    },
    async list(options) {
      const items = [...blobs.values()].map((b) => b.info).filter((i) => i.key.startsWith(options?.prefix ?? ''));
      return { items, prefixes: [] };
    },
    async delete(key) {
      blobs.delete(key);
    },
  };
  return store as ArtifactStore;
}

function memoryTracker(artifacts: ArtifactStore): ExperimentTracker {
  const runs = new Map<string, Run>();
  const params = new Map<string, string>();
  let next = 0;
  const tracker: Partial<ExperimentTracker> = {
    async createExperiment(input) {
      return { id: String(++next), name: input.name } as never;
    },
    async createRun(input) {
      const id = `run${++next}`;
      const run = {
        info: { id, experimentId: input.experimentId, name: id, status: 'RUNNING', artifactUri: `memory://${id}` },
        data: { metrics: [], params: [], tags: [] },
        inputs: { datasets: [] },
      } as unknown as Run;
      runs.set(id, run);
      return run;
    },
    async getRun(runId) {
      const run = runs.get(runId);
      if (!run) throw new NotFoundError(`no run ${runId}`);
      return run;
    },
    async updateRun(input) {
      const run = await tracker.getRun!(input.runId);
      const info = { ...run.info, ...(input.status ? { status: input.status } : {}) };
      if (input.status && isTerminalRunStatus(input.status)) Object.assign(info, { endTime: now() });
      runs.set(input.runId, { ...run, info });
      return info;
    },
    // Logging keeps only params, to refuse changing one as every tracker must (params are immutable).
    async logBatch(runId, batch) {
      await tracker.getRun!(runId);
      for (const param of batch.params ?? []) {
        const key = `${runId}/${param.key}`;
        if ((params.get(key) ?? param.value) !== param.value) throw new ConflictError(`param ${param.key} is set`);
        params.set(key, param.value);
      }
    },
    async logMetric(runId, metric) {
      await tracker.logBatch!(runId, { metrics: [metric] });
    },
    async logParam(runId, param) {
      await tracker.logBatch!(runId, { params: [param] });
    },
    async setTag(runId, tag) {
      await tracker.logBatch!(runId, { tags: [tag] });
    },
    async logArtifact(runId, path, body, options) {
      await tracker.getRun!(runId);
      return artifacts.put(`runs/${runId}/${path}`, body, options);
    },
    async listRunArtifacts(runId, options) {
      const prefix = `runs/${runId}/${options?.path ? `${options.path}/` : ''}`;
      const page = await artifacts.list({ prefix });
      return { items: page.items.map((i) => ({ path: i.key.slice(`runs/${runId}/`.length), isDir: false })) } as never;
    },
  };
  return tracker as ExperimentTracker;
}

function memoryRegistry(): ModelRegistry {
  const versions = new Map<string, ModelVersion>();
  const aliases = new Map<string, number>();
  const key = (name: string, version: number) => `${name}/${version}`;
  const registry: Partial<ModelRegistry> = {
    capabilities: {
      transitionHistory: false,
      signatures: false,
      asyncRegistration: false,
      atomicPromotionCheck: false,
      modelOrderBy: ['name'],
      changeEvents: false,
    },
    async createModel(input) {
      return { name: input.name } as never;
    },
    async createVersion(input) {
      const version = [...versions.values()].filter((v) => v.name === input.name).length + 1;
      const created = {
        name: input.name,
        version,
        source: input.source,
        status: 'READY',
        stage: 'None',
        tags: { ...input.tags },
        description: '',
        aliases: [],
        createdAt: now(),
        updatedAt: now(),
      } as unknown as ModelVersion;
      versions.set(key(input.name, version), created);
      return created;
    },
    async getVersion(name, version) {
      const found = versions.get(key(name, version));
      if (!found) throw new NotFoundError(`no version ${name} v${version}`);
      return found;
    },
    async setVersionTag(name, version, k, value) {
      const v = await registry.getVersion!(name, version);
      versions.set(key(name, version), { ...v, tags: { ...v.tags, [k]: value } });
    },
    async deleteVersionTag(name, version, k) {
      const v = await registry.getVersion!(name, version);
      const { [k]: _gone, ...tags } = v.tags;
      versions.set(key(name, version), { ...v, tags });
    },
    async transitionStage(input) {
      const v = await registry.getVersion!(input.name, input.version);
      const moved = { ...v, stage: input.to };
      versions.set(key(input.name, input.version), moved);
      return moved;
    },
    async setAlias(input) {
      await registry.getVersion!(input.name, input.version);
      aliases.set(`${input.name}@${input.alias}`, input.version);
    },
    async getVersionByAlias(name, alias) {
      const version = aliases.get(`${name}@${alias}`);
      if (version === undefined) throw new NotFoundError(`no alias ${name}@${alias}`);
      return registry.getVersion!(name, version);
    },
  };
  return registry as ModelRegistry;
}

/** Jobs move Pending -> Running -> Succeeded on timers; `watch` reports the current status, then every change. */
function timerCompute(): ComputeBackend {
  const jobs = new Map<string, JobStatus>();
  const waiters = new Set<() => void>();
  const set = (status: JobStatus) => {
    jobs.set(status.id, status);
    for (const wake of waiters) wake();
  };
  let next = 0;
  const backend: Partial<ComputeBackend> = {
    async submit(spec: JobSpec) {
      const status: JobStatus = {
        id: `job-${++next}`,
        name: spec.name,
        project: spec.project,
        phase: 'Pending',
        retriesUsed: 0,
        labels: { ...spec.labels },
        submittedAt: now(),
        replicas: [],
      };
      set(status);
      setTimeout(() => set({ ...jobs.get(status.id)!, phase: 'Running', startedAt: now() }), 20);
      setTimeout(() => set({ ...jobs.get(status.id)!, phase: 'Succeeded', finishedAt: now() }), 60);
      return status;
    },
    async get(id) {
      const found = jobs.get(id);
      if (!found) throw new NotFoundError(`no job ${id}`);
      return found;
    },
    async *watch(target, options) {
      const id = (target as { id: string }).id;
      let last: JobStatus | undefined;
      while (!options?.signal?.aborted) {
        const current = jobs.get(id)!;
        if (current !== last) {
          last = current;
          yield current;
          if (current.phase === 'Succeeded') return;
        }
        let wake: () => void = () => undefined;
        await new Promise<void>((resolve) => {
          wake = resolve;
          waiters.add(wake);
          options?.signal?.addEventListener('abort', () => resolve(), { once: true });
        });
        waiters.delete(wake);
      }
    },
  };
  return backend as ComputeBackend;
}

function memoryServer(): ModelServer {
  const deployments = new Map<string, Deployment>();
  const capabilities = {
    protocols: ['custom'],
    runtimes: ['python'],
    binaryTensors: false,
    canary: false,
    shadow: false,
    autoscaling: false,
    gpu: false,
    grpc: false,
    batching: false,
  } as unknown as ModelServerCapabilities;
  const server: Partial<ModelServer> = {
    capabilities,
    async deploy(spec: DeploymentSpec, options?: RolloutOptions) {
      const current = deployments.get(spec.name);
      const plan = planRollout(current, { ...options, kind: 'deploy', spec }, capabilities);
      if (options?.expectedGeneration !== undefined && options.expectedGeneration !== (current?.generation ?? 0)) {
        throw new ConflictError(`deployment '${spec.name}' moved on`);
      }
      const generation = (current?.generation ?? 0) + 1;
      const deployment = {
        name: spec.name,
        spec,
        generation,
        phase: 'Ready',
        traffic: plan.traffic,
        rolloutPhase: 'Complete',
        createdAt: current?.createdAt ?? now(),
        updatedAt: now(),
      } as unknown as Deployment;
      deployments.set(spec.name, deployment);
      const rollout = { ...plan, generation, at: now() } as unknown as Rollout;
      return { deployment, rollout };
    },
    async get(name) {
      const found = deployments.get(name);
      if (!found) throw new NotFoundError(`no deployment ${name}`);
      return found;
    },
  };
  return server as ModelServer;
}

/** One plugin providing every port the hooks suite drives, none of which fires a hook. */
export const minimalProvidersPlugin = definePlugin({
  id: 'minimal-providers',
  register(env) {
    env.provide(artifactStoreRef, { factory: memoryArtifacts });
    env.provide(experimentTrackerRef, {
      deps: { artifacts: artifactStoreRef },
      factory: ({ artifacts }) => memoryTracker(artifacts),
    });
    env.provide(modelRegistryRef, { factory: memoryRegistry });
    env.provide(computeBackendRef, { factory: timerCompute });
    env.provide(modelServerRef, { factory: memoryServer });
  },
});

/** The minimal compute and serving providers alone, to pair with a platform that has none. */
export const minimalComputeAndServingPlugin = definePlugin({
  id: 'minimal-compute-serving',
  register(env) {
    env.provide(computeBackendRef, { factory: timerCompute });
    env.provide(modelServerRef, { factory: memoryServer });
  },
});

export const probeJob = (name: string): JobSpec => ({
  name,
  project: 'default',
  replicaGroups: [{ role: 'main', command: ['true'] }],
});
export const probeDeployment = (name: string): DeploymentSpec =>
  ({
    name,
    project: 'default',
    model: 'models:/m/1',
    runtime: 'python',
    protocol: 'custom',
    replicas: { min: 1, max: 1 },
  }) as unknown as DeploymentSpec;
