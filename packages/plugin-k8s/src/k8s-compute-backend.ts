import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { PassThrough } from 'node:stream';
import {
  ApiException,
  BatchV1Api,
  CoreV1Api,
  type CoreV1Event,
  CustomObjectsApi,
  KubeConfig,
  type KubernetesListObject,
  ListWatch,
  Log,
  makeInformer,
  PatchStrategy,
  SchedulingV1Api,
  setHeaderOptions,
  type V1Job,
  type V1OwnerReference,
  type V1Pod,
  type V1Secret,
  type V1Service,
  Watch,
} from '@kubernetes/client-node';
import {
  type ComputeBackend,
  type ComputeBackendCapabilities,
  ConflictError,
  decodePageToken,
  encodePageToken,
  foreignPageToken,
  isTerminalJobPhase,
  type JobSpec,
  type JobStatus,
  LIST_JOBS_PAGE,
  type ListJobsOptions,
  type LogOptions,
  malformedPageToken,
  NotFoundError,
  type Page,
  PermissionDeniedError,
  resolveMaxResults,
  type SecretStore,
  UnavailableError,
  ValidationError,
  validateJobSpec,
  type WatchJobsTarget,
  type WatchOptions,
} from '@mlplane/core';
import type { K8sConfig } from './config.js';
import { buildJobSetManifests, JOBSET, type JobSetObject, jobSetAsJob } from './jobset.js';
import { ANNOTATIONS, idempotencyLabel, LABELS, MANAGED_BY } from './labels.js';
import { buildManifests, capabilitiesFor, checkOneRole, type ManifestInput, specDigest } from './manifests.js';
import { attemptNumbers, jobStatus, type KueueWorkload, podsByIndex, specOf, type WarningEvent } from './status.js';
import { WatchCache } from './watch-cache.js';

export interface K8sComputeBackendOptions {
  readonly config: K8sConfig;
  /** Resolves `secretStore` references of `secretEnv`; without it such specs are refused. */
  readonly secrets?: SecretStore;
  /** A kubeconfig already loaded (tests); otherwise built from `config.kubeconfig` / `config.context`. */
  readonly kubeConfig?: KubeConfig;
  readonly logger?: { warn(obj: object, msg?: string): void };
}

const KUEUE_GROUP = 'kueue.x-k8s.io';
const KUEUE_VERSION = 'v1beta2';
/** How long a looked-up priority class is trusted before it is read again. */
const PRIORITY_CLASS_TTL_MS = 60_000;
/** Cancelled jobs whose Job object is gone keep their last status in memory, up to this many. */
const MAX_TOMBSTONES = 10_000;

type Listener = (status: JobStatus) => void;

/** What a Job or JobSet owns: created after it, with an ownerReference, so they go with it. */
interface OwnedObjects {
  readonly secret?: V1Secret;
  readonly service?: V1Service;
  readonly podGroup?: Record<string, unknown>;
}

/** A Job or JobSet built and validated, ready to be created (see K8sComputeBackend.plan). */
interface Planned {
  readonly kind: 'Job' | 'JobSet';
  readonly owned: OwnedObjects;
  /** Creates it; `remember` puts it in the cache unless the informer was first. */
  create(): Promise<{ asJob: V1Job; remember(): void }>;
}

/**
 * Drops what the plugin never reads from an object the informer caches (client-go's informers do the same with a
 * transform): managedFields are often the largest part of a Job or pod, and the cache holds every one of them.
 */
function trim<T extends { metadata?: { managedFields?: unknown } }>(obj: T): T {
  if (obj.metadata?.managedFields !== undefined) delete obj.metadata.managedFields;
  return obj;
}

function statusCode(error: unknown): number | undefined {
  if (error instanceof ApiException) return error.code;
  const e = error as { statusCode?: number; code?: unknown } | undefined;
  return typeof e?.statusCode === 'number' ? e.statusCode : typeof e?.code === 'number' ? e.code : undefined;
}

function serverMessage(error: unknown): string {
  if (error instanceof ApiException) {
    const body = error.body as unknown;
    if (typeof body === 'string') {
      try {
        return (JSON.parse(body) as { message?: string }).message ?? body;
      } catch {
        return body;
      }
    }
    return (body as { message?: string } | undefined)?.message ?? error.message;
  }
  return error instanceof Error ? error.message : String(error);
}

/** The port's typed error for a failed API call; `what` names the object for a message a user can act on. */
function portError(error: unknown, what: string): Error {
  const code = statusCode(error);
  const message = serverMessage(error);
  if (code === 404) return new NotFoundError(`${what} not found`, { cause: error });
  if (code === 409) return new ConflictError(`${what}: ${message}`, { cause: error });
  if (code === 400 || code === 422) return new ValidationError(`${what}: ${message}`, { cause: error, field: 'spec' });
  if (code === 401 || code === 403) {
    return new PermissionDeniedError(
      `${what}: the plugin's credentials may not do this (${message}); see the RBAC in docs/plugins/k8s.md`,
      {
        cause: error,
      },
    );
  }
  return new UnavailableError(`${what}: the Kubernetes API server did not answer (${message})`, { cause: error });
}

function randomSuffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  return [...randomBytes(5)].map((b) => alphabet[b % alphabet.length]).join('');
}

interface ListCursor {
  readonly q: string;
  readonly t: number;
  readonly id: string;
}

/**
 * ComputeBackend on Kubernetes: each job is a batch/v1 Job (an Indexed Job, one pod per replica) in one namespace,
 * labelled as mlplane's. Status comes from informers on Jobs, their pods and (under Kueue) Workloads, so `get`,
 * `list` and `watch` read memory, and a restarted platform finds its running jobs again from their labels.
 */
export class K8sComputeBackend implements ComputeBackend {
  private caps: ComputeBackendCapabilities;
  private readonly namespace: string;
  private readonly batch: BatchV1Api;
  private readonly core: CoreV1Api;
  private readonly custom: CustomObjectsApi;
  private readonly scheduling: SchedulingV1Api;
  /** Each job's Job, or for a job of several roles its JobSet seen as a Job (jobSetAsJob). */
  private readonly jobs = new Map<string, V1Job>();
  /** JobSets by name (= job id), and the child Jobs of each by Job name. */
  private readonly jobSets = new Map<string, JobSetObject>();
  private readonly jobSetChildren = new Map<string, Map<string, V1Job>>();
  private readonly pods = new Map<string, Map<string, V1Pod>>();
  private readonly workloads = new Map<string, KueueWorkload>();
  /** The latest Warning event about each job's Job or pods (FailedCreate, FailedMount...), by job id. */
  private readonly warnings = new Map<string, WarningEvent>();
  /** Pod name -> job id, to attribute a pod's events. */
  private readonly podJobs = new Map<string, string>();
  private readonly statuses = new Map<string, JobStatus>();
  private readonly statusKeys = new Map<string, string>();
  private readonly tombstones = new Map<string, JobStatus>();
  private readonly listeners = new Set<Listener>();
  private readonly dirty = new Set<string>();
  private readonly caches: WatchCache<never>[] = [];
  private readonly priorityClasses = new Map<string, number>();
  private readonly closed = new AbortController();
  private flushScheduled = false;

  private constructor(
    private readonly options: K8sComputeBackendOptions,
    private readonly kc: KubeConfig,
  ) {
    const { config } = options;
    this.caps = capabilitiesFor(config);
    this.namespace = config.namespace;
    this.batch = kc.makeApiClient(BatchV1Api);
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.scheduling = kc.makeApiClient(SchedulingV1Api);
  }

  /**
   * Connects and fills the caches (re-attaching to every job this plugin made in the namespace). UnavailableError
   * when the first lists do not succeed within `syncTimeoutMs`.
   */
  static async connect(options: K8sComputeBackendOptions): Promise<K8sComputeBackend> {
    const kc = options.kubeConfig ?? new KubeConfig();
    if (!options.kubeConfig) {
      if (options.config.kubeconfig) kc.loadFromFile(options.config.kubeconfig);
      else kc.loadFromDefault();
      if (options.config.context) kc.setCurrentContext(options.config.context);
    }
    const backend = new K8sComputeBackend(options, kc);
    await backend.startInformers();
    return backend;
  }

  get capabilities(): ComputeBackendCapabilities {
    return this.caps;
  }

  /** Whether the cluster serves JobSets to this account: several roles are then one JobSet (kube-scheduler only). */
  private async probeJobSets(): Promise<boolean> {
    try {
      await this.custom.listNamespacedCustomObject({ ...JOBSET, namespace: this.namespace, limit: 1 });
      return true;
    } catch (error) {
      const code = statusCode(error);
      if (code === 404) return false;
      if (code === 403) {
        this.options.logger?.warn(
          { err: error },
          'k8s: JobSets are installed but the plugin may not list them (see deploy/rbac.yaml); several roles are refused',
        );
        return false;
      }
      throw portError(
        error,
        `listing JobSets in namespace '${this.namespace}' (API server ${this.kc.getCurrentCluster()?.server ?? 'unknown'})`,
      );
    }
  }

  /** Recomputes the Job view of a JobSet from the JobSet and its child Jobs. */
  private refreshJobSet(name: string): void {
    const jobSet = this.jobSets.get(name);
    if (!jobSet) return;
    this.jobs.set(name, jobSetAsJob(jobSet, [...(this.jobSetChildren.get(name)?.values() ?? [])]));
    this.touch(name);
  }

  private async startInformers(): Promise<void> {
    const ns = this.namespace;
    const jobSetsServed = this.options.config.scheduler.kind === 'kube-scheduler' && (await this.probeJobSets());
    this.caps = capabilitiesFor(this.options.config, jobSetsServed);
    const selector = `${LABELS.managedBy}=${MANAGED_BY}`;
    const onError = (what: string) => (error: unknown, restartInMs: number) =>
      this.options.logger?.warn({ err: error, restartInMs }, `k8s: the ${what} watch stopped; restarting`);
    const backoff = this.options.config.watchRestartBackoffMs;

    const jobs = new WatchCache(
      makeInformer<V1Job>(
        this.kc,
        `/apis/batch/v1/namespaces/${ns}/jobs`,
        () => this.batch.listNamespacedJob({ namespace: ns, labelSelector: selector }),
        selector,
      ),
      { restartBackoffMs: backoff, onError: onError('Job') },
    );
    const upsertJob = (job: V1Job) => {
      const name = job.metadata?.name;
      if (!name) return;
      const parent = job.metadata?.labels?.[LABELS.jobSetName];
      if (parent !== undefined) {
        // A child Job of one of the plugin's JobSets: it feeds the JobSet's status, it is no job of its own.
        const children = this.jobSetChildren.get(parent) ?? new Map<string, V1Job>();
        children.set(name, trim(job));
        this.jobSetChildren.set(parent, children);
        this.refreshJobSet(parent);
        return;
      }
      this.jobs.set(name, trim(job));
      this.touch(name);
    };
    jobs.on('add', upsertJob);
    jobs.on('update', upsertJob);
    jobs.on('delete', (job) => {
      const name = job.metadata?.name;
      if (!name) return;
      const parent = job.metadata?.labels?.[LABELS.jobSetName];
      if (parent !== undefined) {
        this.jobSetChildren.get(parent)?.delete(name);
        this.refreshJobSet(parent);
        return;
      }
      if (job.metadata?.annotations?.[ANNOTATIONS.cancelled] !== undefined) {
        this.tombstone(name, jobStatus(job, [...(this.pods.get(name)?.values() ?? [])], this.workloads.get(name)));
      }
      this.jobs.delete(name);
      this.warnings.delete(name);
      this.touch(name);
    });

    const pods = new WatchCache(
      makeInformer<V1Pod>(
        this.kc,
        `/api/v1/namespaces/${ns}/pods`,
        () => this.core.listNamespacedPod({ namespace: ns, labelSelector: selector }),
        selector,
      ),
      { restartBackoffMs: backoff, onError: onError('Pod') },
    );
    const upsertPod = (pod: V1Pod) => {
      const job = pod.metadata?.labels?.[LABELS.jobId];
      const name = pod.metadata?.name;
      if (!job || !name) return;
      const byName = this.pods.get(job) ?? new Map<string, V1Pod>();
      byName.set(name, trim(pod));
      this.podJobs.set(name, job);
      this.pods.set(job, byName);
      this.touch(job);
    };
    pods.on('add', upsertPod);
    pods.on('update', upsertPod);
    pods.on('delete', (pod) => {
      const job = pod.metadata?.labels?.[LABELS.jobId];
      if (!job) return;
      // A JobSet deletes the Jobs of a restart, and those still running when it ends: their pods' last states stay
      // (attempts, exit codes) until the JobSet itself goes.
      if (pod.metadata?.labels?.[LABELS.jobSetName] !== undefined && this.jobSets.has(job)) return;
      this.pods.get(job)?.delete(pod.metadata?.name ?? '');
      this.podJobs.delete(pod.metadata?.name ?? '');
      if (this.pods.get(job)?.size === 0) this.pods.delete(job);
      this.touch(job);
    });
    // Warning events only (a field selector): why a Job could not create its pods (quota, admission webhooks) or a
    // pod could not start (volumes, images) when no pod condition says so.
    const warningSelector = 'type=Warning';
    const events = new WatchCache(
      new ListWatch<CoreV1Event>(
        `/api/v1/namespaces/${ns}/events`,
        new Watch(this.kc),
        () => this.core.listNamespacedEvent({ namespace: ns, fieldSelector: warningSelector }),
        false,
        undefined,
        warningSelector,
      ),
      { restartBackoffMs: backoff, onError: onError('Event') },
    );
    const onWarning = (event: CoreV1Event) => {
      const about = event.involvedObject;
      const job =
        about.kind === 'Job' ? about.name : about.kind === 'Pod' ? this.podJobs.get(about.name ?? '') : undefined;
      if (!job || !this.jobs.has(job) || !event.reason) return;
      const at = new Date(event.lastTimestamp ?? event.eventTime ?? event.metadata.creationTimestamp ?? 0).getTime();
      const seen = this.warnings.get(job);
      if (seen && seen.at > at) return;
      this.warnings.set(job, { reason: event.reason, message: event.message ?? '', at });
      this.touch(job);
    };
    events.on('add', onWarning);
    events.on('update', onWarning);
    this.caches.push(jobs as never, pods as never, events as never);

    if (jobSetsServed) {
      const jobSets = new WatchCache(
        makeInformer<JobSetObject & { metadata: { name: string } }>(
          this.kc,
          `/apis/${JOBSET.group}/${JOBSET.version}/namespaces/${ns}/${JOBSET.plural}`,
          () =>
            this.custom.listNamespacedCustomObject({
              ...JOBSET,
              namespace: ns,
              labelSelector: selector,
            }) as Promise<KubernetesListObject<JobSetObject & { metadata: { name: string } }>>,
          selector,
        ),
        { restartBackoffMs: backoff, onError: onError('JobSet') },
      );
      const upsertJobSet = (jobSet: JobSetObject) => {
        const name = jobSet.metadata?.name;
        if (!name) return;
        this.jobSets.set(name, trim(jobSet));
        this.refreshJobSet(name);
      };
      jobSets.on('add', upsertJobSet);
      jobSets.on('update', upsertJobSet);
      jobSets.on('delete', (jobSet) => {
        const name = jobSet.metadata?.name;
        if (!name) return;
        const asJob = jobSetAsJob(jobSet, [...(this.jobSetChildren.get(name)?.values() ?? [])]);
        if (jobSet.metadata?.annotations?.[ANNOTATIONS.cancelled] !== undefined) {
          this.tombstone(name, jobStatus(asJob, [...(this.pods.get(name)?.values() ?? [])]));
        }
        this.jobSets.delete(name);
        this.jobSetChildren.delete(name);
        for (const pod of this.pods.get(name)?.keys() ?? []) this.podJobs.delete(pod);
        this.pods.delete(name);
        this.jobs.delete(name);
        this.warnings.delete(name);
        this.touch(name);
      });
      this.caches.push(jobSets as never);
    }

    if (this.options.config.scheduler.kind === 'kueue') {
      // Kueue's Workloads carry none of our labels: each names its Job in an ownerReference.
      const workloads = new WatchCache(
        makeInformer<KueueWorkload & { metadata: { name: string } }>(
          this.kc,
          `/apis/${KUEUE_GROUP}/${KUEUE_VERSION}/namespaces/${ns}/workloads`,
          () =>
            this.custom.listNamespacedCustomObject({
              group: KUEUE_GROUP,
              version: KUEUE_VERSION,
              namespace: ns,
              plural: 'workloads',
            }) as Promise<KubernetesListObject<KueueWorkload & { metadata: { name: string } }>>,
        ),
        { restartBackoffMs: backoff, onError: onError('Kueue Workload') },
      );
      const ownerJob = (wl: KueueWorkload) =>
        (wl.metadata as { ownerReferences?: V1OwnerReference[] } | undefined)?.ownerReferences?.find(
          (o) => o.kind === 'Job',
        )?.name;
      const upsertWorkload = (wl: KueueWorkload) => {
        const job = ownerJob(wl);
        if (!job) return;
        this.workloads.set(job, trim(wl as KueueWorkload & { metadata?: { managedFields?: unknown } }));
        this.touch(job);
      };
      workloads.on('add', upsertWorkload);
      workloads.on('update', upsertWorkload);
      workloads.on('delete', (wl) => {
        const job = ownerJob(wl);
        if (!job) return;
        this.workloads.delete(job);
        this.touch(job);
      });
      this.caches.push(workloads as never);
    }

    await Promise.all(this.caches.map((c) => c.start()));
    const timeoutMs = this.options.config.syncTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const outcome = await Promise.race([Promise.all(this.caches.map((c) => c.synced)), timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      await this.close();
      throw new UnavailableError(
        `k8s: could not list Jobs and pods in namespace '${this.namespace}' within ${timeoutMs} ms ` +
          `(API server ${this.kc.getCurrentCluster()?.server ?? 'unknown'})`,
      );
    }
    this.flush();
  }

  /** Restarts of the informers after errors so far (a test reads it to check that recovery happened). */
  get watchRestarts(): number {
    return this.caches.reduce((n, c) => n + c.restarts, 0);
  }

  private tombstone(id: string, status: JobStatus): void {
    this.tombstones.set(id, status);
    if (this.tombstones.size > MAX_TOMBSTONES) {
      this.tombstones.delete(this.tombstones.keys().next().value as string);
    }
  }

  /** Marks a job's status for recomputation; statuses are recomputed once per event-loop turn. */
  private touch(id: string): void {
    this.dirty.add(id);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    const ids = [...this.dirty];
    this.dirty.clear();
    for (const id of ids) {
      const status = this.computeStatus(id);
      if (!status) {
        this.statuses.delete(id);
        this.statusKeys.delete(id);
        continue;
      }
      const key = JSON.stringify(status);
      if (this.statusKeys.get(id) === key) continue;
      this.statuses.set(id, status);
      this.statusKeys.set(id, key);
      for (const listener of this.listeners) listener(status);
    }
  }

  private computeStatus(id: string): JobStatus | undefined {
    const job = this.jobs.get(id);
    if (!job) return this.tombstones.get(id);
    if (!specOf(job)) return undefined;
    return jobStatus(job, [...(this.pods.get(id)?.values() ?? [])], this.workloads.get(id), this.warnings.get(id));
  }

  private current(id: string): JobStatus | undefined {
    if (this.dirty.has(id)) this.flush();
    return this.statuses.get(id) ?? this.tombstones.get(id);
  }

  async submit(spec: JobSpec): Promise<JobStatus> {
    checkOneRole(spec, this.capabilities);
    validateJobSpec(spec, this.capabilities);
    const key = spec.idempotencyKey !== undefined ? idempotencyLabel(spec.project, spec.idempotencyKey) : undefined;
    if (key !== undefined) {
      const existing = this.findByKey(spec, key);
      if (existing) return this.sameSpecOrConflict(existing, spec);
    }
    // A keyed job's name comes from its key, so two racing submits collide on the name and only one Job exists.
    let name = `${spec.name}-${key !== undefined ? key.slice(0, 8) : randomSuffix()}`;
    const submittedAt = new Date();
    const storeSecrets = usesSecretStore(spec);
    const plan = (secretValues: Record<string, string>) =>
      this.plan({
        spec,
        name,
        config: this.options.config,
        capabilities: this.capabilities,
        submittedAt,
        secretValues,
      });
    // Built (and so validated) before any call to the API server, and before the SecretStore is read.
    let planned = plan(storeSecrets ? dummySecrets(spec) : {});
    await this.checkPriorityClass(spec);
    const secretValues = storeSecrets ? await this.readSecrets(spec) : {};
    if (storeSecrets) planned = plan(secretValues);
    for (let attempt = 0; ; attempt++) {
      let made: Awaited<ReturnType<Planned['create']>>;
      try {
        made = await planned.create();
      } catch (error) {
        if (statusCode(error) === 409) {
          if (key !== undefined) return this.sameSpecOrConflict(await this.readJob(name), spec);
          if (attempt < 3) {
            name = `${spec.name}-${randomSuffix()}`;
            planned = plan(secretValues);
            continue;
          }
        }
        throw portError(error, `creating ${planned.kind} '${name}' in namespace '${this.namespace}'`);
      }
      await this.createOwned(made.asJob, planned.owned, planned.kind);
      made.remember();
      // Watchers get it on the next flush; the caller gets it now, without recomputing other jobs' statuses.
      this.touch(name);
      return jobStatus(made.asJob, []);
    }
  }

  /**
   * What one submit creates: a Job, or for several roles a JobSet, with the objects they own. `create` sends the
   * Job or JobSet with strict field validation (a field the API server does not know is an error, never dropped).
   */
  private plan(input: ManifestInput): Planned {
    const { name } = input;
    if (input.spec.replicaGroups.length > 1) {
      const manifests = buildJobSetManifests(input);
      return {
        kind: 'JobSet',
        owned: manifests,
        create: async () => {
          const created = (await this.custom.createNamespacedCustomObject({
            ...JOBSET,
            namespace: this.namespace,
            body: manifests.jobSet,
            fieldValidation: 'Strict',
          })) as JobSetObject;
          const asJob = jobSetAsJob(created, []);
          return {
            asJob,
            remember: () => {
              if (this.jobSets.has(name)) return;
              this.jobSets.set(name, created);
              this.jobs.set(name, asJob);
            },
          };
        },
      };
    }
    const manifests = buildManifests(input);
    return {
      kind: 'Job',
      owned: manifests,
      create: async () => {
        const created = await this.batch.createNamespacedJob({
          namespace: this.namespace,
          body: manifests.job,
          fieldValidation: 'Strict',
        });
        return {
          asJob: created,
          remember: () => {
            if (!this.jobs.has(name)) this.jobs.set(name, trim(created));
          },
        };
      },
    };
  }

  private findByKey(spec: JobSpec, key: string): V1Job | undefined {
    for (const job of this.jobs.values()) {
      const meta = job.metadata;
      if (meta?.labels?.[LABELS.idempotencyKey] === key && meta.annotations?.[ANNOTATIONS.project] === spec.project) {
        return job;
      }
    }
    return undefined;
  }

  private sameSpecOrConflict(job: V1Job, spec: JobSpec): JobStatus {
    const name = job.metadata?.name ?? '';
    if (job.metadata?.annotations?.[ANNOTATIONS.specDigest] !== specDigest(spec)) {
      throw new ConflictError(
        `idempotency key '${spec.idempotencyKey}' was used in project '${spec.project}' for job ${name} with a different spec`,
      );
    }
    if (!this.jobs.has(name)) this.jobs.set(name, job);
    this.touch(name);
    this.flush();
    return this.statuses.get(name) ?? jobStatus(job, []);
  }

  /** The job's Job, or its JobSet seen as a Job; NotFoundError when neither exists. */
  private async readJob(name: string): Promise<V1Job> {
    try {
      return await this.batch.readNamespacedJob({ name, namespace: this.namespace });
    } catch (error) {
      if (statusCode(error) !== 404 || !this.capabilities.multipleRoles) throw portError(error, `job '${name}'`);
    }
    try {
      const jobSet = (await this.custom.getNamespacedCustomObject({
        ...JOBSET,
        namespace: this.namespace,
        name,
      })) as JobSetObject;
      return jobSetAsJob(jobSet, [...(this.jobSetChildren.get(name)?.values() ?? [])]);
    } catch (error) {
      throw portError(error, `job '${name}'`);
    }
  }

  /** The Secret, Service and PodGroup of a Job, each owned by it; the Job is deleted again if one fails. */
  private async createOwned(job: V1Job, manifests: OwnedObjects, ownerKind: 'Job' | 'JobSet'): Promise<void> {
    const owner: V1OwnerReference = {
      apiVersion: ownerKind === 'JobSet' ? `${JOBSET.group}/${JOBSET.version}` : 'batch/v1',
      kind: ownerKind,
      name: job.metadata!.name!,
      uid: job.metadata!.uid!,
      // No blockOwnerDeletion: it would need `update` on jobs/finalizers where OwnerReferencesPermissionEnforcement
      // is on, and Background deletion does not wait for dependents anyway.
      controller: true,
    };
    const own = <T extends { metadata?: object }>(o: T): T => ({
      ...o,
      metadata: { ...o.metadata, ownerReferences: [owner] },
    });
    try {
      if (manifests.secret) {
        await this.core.createNamespacedSecret({
          namespace: this.namespace,
          body: own(manifests.secret),
          fieldValidation: 'Strict',
        });
      }
      if (manifests.service) {
        await this.core.createNamespacedService({
          namespace: this.namespace,
          body: own(manifests.service),
          fieldValidation: 'Strict',
        });
      }
      if (manifests.podGroup) {
        await this.custom.createNamespacedCustomObject({
          group: 'scheduling.volcano.sh',
          version: 'v1beta1',
          namespace: this.namespace,
          plural: 'podgroups',
          body: own(manifests.podGroup as { metadata?: object }),
          fieldValidation: 'Strict',
        });
      }
    } catch (error) {
      await this.deleteTop(owner.name, ownerKind === 'JobSet').catch(() => undefined);
      throw portError(error, `creating the objects of ${ownerKind} '${owner.name}'`);
    }
  }

  /** ValidationError (field `priority`) for a priority class the cluster does not have; reads only. */
  private async checkPriorityClass(spec: JobSpec): Promise<void> {
    if (spec.priority === undefined || !this.options.config.checkPriorityClasses) return;
    const name = spec.priority;
    const seen = this.priorityClasses.get(name);
    if (seen !== undefined && Date.now() - seen < PRIORITY_CLASS_TTL_MS) return;
    const kueue = this.options.config.scheduler.kind === 'kueue';
    try {
      if (kueue) {
        await this.custom.getClusterCustomObject({
          group: KUEUE_GROUP,
          version: KUEUE_VERSION,
          plural: 'workloadpriorityclasses',
          name,
        });
      } else {
        await this.scheduling.readPriorityClass({ name });
      }
    } catch (error) {
      if (statusCode(error) === 404) {
        throw new ValidationError(
          `priority '${name}' is not a ${kueue ? 'Kueue WorkloadPriorityClass' : 'PriorityClass'} of this cluster`,
          { field: 'priority' },
        );
      }
      throw portError(error, `reading priority class '${name}'`);
    }
    this.priorityClasses.set(name, Date.now());
  }

  /** Deletes the job's Job or JobSet; the garbage collector deletes what they own (Jobs, pods, Secret, Service). */
  private async deleteTop(name: string, jobSet: boolean): Promise<void> {
    if (jobSet) {
      await this.custom.deleteNamespacedCustomObject({
        ...JOBSET,
        namespace: this.namespace,
        name,
        propagationPolicy: 'Background',
      });
    } else {
      await this.batch.deleteNamespacedJob({ name, namespace: this.namespace, propagationPolicy: 'Background' });
    }
  }

  private async readSecrets(spec: JobSpec): Promise<Record<string, string>> {
    const values: Record<string, string> = {};
    for (const [envName, ref, i] of secretStoreRefs(spec)) {
      const field = `replicaGroups[${i}].secretEnv.${envName}`;
      if (!this.options.secrets) {
        throw new ValidationError(`${field}: this platform has no SecretStore to read '${ref.name}' from`, { field });
      }
      try {
        values[envName] = await this.options.secrets.get(ref.name);
      } catch (error) {
        if (error instanceof NotFoundError) {
          throw new ValidationError(`${field}: the SecretStore has no secret '${ref.name}'`, { field, cause: error });
        }
        throw error;
      }
    }
    return values;
  }

  async get(id: string): Promise<JobStatus> {
    const status = this.current(id);
    if (status) return status;
    // Not seen by the informer yet (another process submitted it a moment ago), or gone.
    const job = await this.readJob(id).catch((error: unknown) => {
      if (error instanceof NotFoundError) throw new NotFoundError(`job '${id}' not found`);
      throw error;
    });
    if (job.metadata?.labels?.[LABELS.managedBy] !== MANAGED_BY || !specOf(job)) {
      throw new NotFoundError(`job '${id}' not found`);
    }
    return jobStatus(job, [...(this.pods.get(id)?.values() ?? [])], this.workloads.get(id));
  }

  private allStatuses(): JobStatus[] {
    if (this.dirty.size > 0) this.flush();
    const out = [...this.statuses.values()];
    for (const [id, s] of this.tombstones) if (!this.statuses.has(id)) out.push(s);
    return out;
  }

  private matcher(filter: Omit<ListJobsOptions, 'maxResults' | 'pageToken'>): (s: JobStatus) => boolean {
    return (s) =>
      (filter.project === undefined || s.project === filter.project) &&
      (filter.runId === undefined || s.runId === filter.runId) &&
      (filter.phases === undefined || filter.phases.includes(s.phase)) &&
      Object.entries(filter.labels ?? {}).every(([k, v]) => s.labels[k] === v);
  }

  async list(options: ListJobsOptions = {}): Promise<Page<JobStatus>> {
    const max = resolveMaxResults(options.maxResults, LIST_JOBS_PAGE);
    const { maxResults: _m, pageToken, ...filter } = options;
    const query = JSON.stringify([filter.project, filter.runId, filter.phases, filter.labels]);
    let after: ListCursor | undefined;
    if (pageToken !== undefined) {
      const cursor = decodePageToken<ListCursor>(pageToken);
      if (typeof cursor?.t !== 'number' || typeof cursor.id !== 'string' || typeof cursor.q !== 'string') {
        throw malformedPageToken();
      }
      if (cursor.q !== query) throw foreignPageToken('filters');
      after = cursor;
    }
    const newestFirst = (a: JobStatus, b: JobStatus) =>
      b.submittedAt.getTime() - a.submittedAt.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
    const items = this.allStatuses()
      .filter(this.matcher(filter))
      .filter((s) => {
        if (!after) return true;
        const t = s.submittedAt.getTime();
        return t < after.t || (t === after.t && s.id < after.id);
      })
      .sort(newestFirst);
    const page = items.slice(0, max);
    const last = page.at(-1);
    return {
      items: page,
      ...(items.length > max && last
        ? { nextPageToken: encodePageToken({ q: query, t: last.submittedAt.getTime(), id: last.id }) }
        : {}),
    };
  }

  async *watch(target: WatchJobsTarget, options: WatchOptions = {}): AsyncIterable<JobStatus> {
    const signal = AbortSignal.any([this.closed.signal, ...(options.signal ? [options.signal] : [])]);
    const byId = 'id' in target ? target.id : undefined;
    const matches = byId !== undefined ? (s: JobStatus) => s.id === byId : this.matcher(target as ListJobsOptions);
    const queue: JobStatus[] = [];
    let wake: (() => void) | undefined;
    const listener: Listener = (s) => {
      if (!matches(s)) return;
      queue.push(s);
      wake?.();
    };
    // Subscribed before reading the current statuses, so no change between the two is missed.
    this.listeners.add(listener);
    const onAbort = () => wake?.();
    signal.addEventListener('abort', onAbort);
    const lastSent = new Map<string, string>();
    const fresh = (s: JobStatus) => {
      const key = JSON.stringify(s);
      if (lastSent.get(s.id) === key) return false;
      lastSent.set(s.id, key);
      return true;
    };
    try {
      if (byId !== undefined) {
        const first = await this.get(byId);
        fresh(first);
        yield first;
        if (isTerminalJobPhase(first.phase)) return;
      } else {
        const current = this.allStatuses()
          .filter(matches)
          .sort((a, b) => a.submittedAt.getTime() - b.submittedAt.getTime());
        for (const s of current) {
          if (signal.aborted) return;
          fresh(s);
          yield s;
        }
      }
      while (!signal.aborted) {
        const next = queue.shift();
        if (next === undefined) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
          continue;
        }
        if (!fresh(next)) continue;
        yield next;
        if (byId !== undefined && isTerminalJobPhase(next.phase)) return;
      }
    } finally {
      this.listeners.delete(listener);
      signal.removeEventListener('abort', onAbort);
    }
  }

  async *logs(id: string, options: LogOptions = {}): AsyncIterable<string> {
    const job = this.jobs.get(id) ?? (await this.readJob(id));
    const spec = specOf(job);
    const groups = spec?.replicaGroups ?? [];
    if (!spec || groups.length === 0) throw new NotFoundError(`job '${id}' not found`);
    const role = options.role ?? groups[0]!.role;
    const group = groups.find((g) => g.role === role);
    if (!group) {
      throw new NotFoundError(
        `job '${id}' has no role '${role}' (it has ${groups.map((g) => `'${g.role}'`).join(', ')})`,
      );
    }
    const index = options.index ?? 0;
    if (!Number.isInteger(index) || index < 0 || index >= (group.replicas ?? 1)) {
      throw new NotFoundError(`job '${id}' has no replica ${role}-${index}`);
    }
    const byRole = groups.length > 1 ? role : undefined;
    let pod = this.attemptPod(id, byRole, index, options.attempt);
    if (options.follow) {
      // A pod that has not started has no log yet: wait until it runs or ends.
      for await (const status of this.watch({ id }, options.signal ? { signal: options.signal } : {})) {
        const replica = status.replicas.find((r) => r.role === role && r.index === index);
        if (replica && replica.phase !== 'Pending') break;
      }
      pod = this.attemptPod(id, byRole, index, options.attempt) ?? pod;
    }
    if (!pod?.metadata?.name) {
      throw new NotFoundError(
        `replica ${role}-${index} of job '${id}' has no attempt ${options.attempt ?? '(none started)'} (removed, or not started)`,
      );
    }
    const params = {
      ...(options.tailLines !== undefined ? { tailLines: options.tailLines } : {}),
      ...(options.timestamps ? { timestamps: true } : {}),
    };
    const podName = pod.metadata.name;
    const container = this.options.config.containerName;
    if (!options.follow) {
      let text: string;
      try {
        text = await this.core.readNamespacedPodLog({ name: podName, namespace: this.namespace, container, ...params });
      } catch (error) {
        throw portError(error, `log of pod '${podName}'`);
      }
      const lines = text.split('\n');
      if (lines.at(-1) === '') lines.pop();
      yield* lines;
      return;
    }
    const stream = new PassThrough();
    const controller = await new Log(this.kc)
      .log(this.namespace, podName, container, stream, { follow: true, ...params })
      .catch((error: unknown) => {
        throw portError(error, `log of pod '${podName}'`);
      });
    const stop = () => controller.abort();
    options.signal?.addEventListener('abort', stop);
    try {
      for await (const line of createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY })) yield line;
    } finally {
      options.signal?.removeEventListener('abort', stop);
      stop();
    }
  }

  private attemptPod(
    id: string,
    role: string | undefined,
    index: number,
    attempt: number | undefined,
  ): V1Pod | undefined {
    const attempts = podsByIndex([...(this.pods.get(id)?.values() ?? [])], role).get(index) ?? [];
    if (attempt === undefined) return attempts.at(-1);
    return attempts[attemptNumbers(attempts).indexOf(attempt)];
  }

  async cancel(id: string, options: { readonly reason?: string } = {}): Promise<JobStatus> {
    const status = await this.get(id);
    if (isTerminalJobPhase(status.phase)) return status;
    const note = JSON.stringify({
      at: new Date().toISOString(),
      ...(options.reason ? { reason: options.reason } : {}),
    });
    let patched: V1Job;
    const isJobSet = this.jobSets.has(id);
    const body = { metadata: { annotations: { [ANNOTATIONS.cancelled]: note } } };
    const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
    try {
      // Recorded on the Job first, so every process watching it reads Cancelled, not a job that vanished.
      patched = isJobSet
        ? jobSetAsJob(
            (await this.custom.patchNamespacedCustomObject(
              { ...JOBSET, namespace: this.namespace, name: id, body },
              mergePatch,
            )) as JobSetObject,
            [...(this.jobSetChildren.get(id)?.values() ?? [])],
          )
        : await this.batch.patchNamespacedJob({ name: id, namespace: this.namespace, body }, mergePatch);
      // Background: the Job goes at once and the garbage collector deletes its pods, Secret, Service and PodGroup.
      await this.deleteTop(id, isJobSet);
    } catch (error) {
      if (statusCode(error) === 404) return this.get(id);
      throw portError(error, `cancelling job '${id}'`);
    }
    const cancelled = jobStatus(patched, [...(this.pods.get(id)?.values() ?? [])], this.workloads.get(id));
    this.tombstone(id, cancelled);
    this.jobs.delete(id);
    this.touch(id);
    this.flush();
    return cancelled;
  }

  /** Stops the informers and ends every watch; jobs keep running in the cluster and are found again on connect. */
  async close(): Promise<void> {
    this.closed.abort();
    await Promise.all(this.caches.map((c) => c.stop()));
  }
}

/** Every `secretStore` reference of the spec's groups: env var name, reference, group index. */
function secretStoreRefs(spec: JobSpec): [string, { kind: 'secretStore'; name: string }, number][] {
  return spec.replicaGroups.flatMap((g, i) =>
    Object.entries(g.secretEnv ?? {}).flatMap(([env, ref]) =>
      ref.kind === 'secretStore' ? [[env, ref, i] as [string, { kind: 'secretStore'; name: string }, number]] : [],
    ),
  );
}

const usesSecretStore = (spec: JobSpec) => secretStoreRefs(spec).length > 0;

/** Placeholder values so that the manifests can be validated before the SecretStore is read; never sent anywhere. */
function dummySecrets(spec: JobSpec): Record<string, string> {
  return Object.fromEntries(secretStoreRefs(spec).map(([k]) => [k, '']));
}
