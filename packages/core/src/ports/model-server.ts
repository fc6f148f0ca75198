import { definePort } from '../kernel/port.js';
import { createExtensionPoint, createServiceRef } from '../kernel/service-ref.js';
import type { ResourceRequest, SecretRef } from './compute-backend.js';
import { validateSecretRef } from './compute-backend-validation.js';
import { ConflictError, NotFoundError, ValidationError } from './errors.js';
import { createModelServerHooks, guardModelServer } from './guards/model-server.js';
import type { InferRequest, InferResponse, ModelMetadata } from './inference-protocol.js';
import { type ModelRegistry, type ModelVersion, parseModelUri } from './model-registry.js';
import type { Page, PageLimits, PageOptions } from './paging.js';

export type { GpuRequest, ResourceRequest, SecretRef } from './compute-backend.js';
export {
  ConflictError,
  NotFoundError,
  UnavailableError,
  ValidationError,
  VetoedError,
} from './errors.js';
export type {
  BinaryTensor,
  InferParameters,
  InferRequest,
  InferResponse,
  InferTensor,
  JsonTensor,
  ModelMetadata,
  TensorDatatype,
  TensorMetadata,
} from './inference-protocol.js';
export type { Page, PageOptions } from './paging.js';

/** Deployment names become endpoint paths and Kubernetes Service names: a DNS-1123 label. */
export const DEPLOYMENT_NAME_PATTERN = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
export const LIST_DEPLOYMENTS_PAGE: PageLimits = Object.freeze({ default: 100, max: 1000 });
/** Runtime names, as packagers and servers declare them: `torchserve`, `onnxruntime`, `triton`, `python`. */
export const RUNTIME_NAME_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;

/**
 * The wire protocol a deployment speaks, fixed per deployment:
 * - `oip-v2`: Open Inference Protocol v2 (KServe, Triton, MLServer; TorchServe with the kservev2 envelope):
 *   `infer` with JSON or binary tensors, `modelMetadata`, per-model readiness;
 * - `torchserve`: TorchServe's inference API (`POST /predictions/{model}[/{version}]`, JSON or raw bodies): `predict`;
 * - `custom`: the runtime's own HTTP API; `predict` posts to `predictPath`.
 */
export type InferenceProtocol = 'oip-v2' | 'torchserve' | 'custom';
export const INFERENCE_PROTOCOLS: readonly InferenceProtocol[] = Object.freeze(['oip-v2', 'torchserve', 'custom']);

/**
 * A registered model version to serve, named through the ModelRegistry: `models:/<name>@<alias>` follows an alias
 * (`models:/fraud@champion`), `models:/<name>/<version>` pins one (`models:/fraud/3`). Stage and `latest` URIs are
 * refused: they move with every registration, so what a deployment serves would change by accident.
 */
export type ModelReference = string;

export type ParsedModelReference =
  | { readonly name: string; readonly kind: 'version'; readonly version: number }
  | { readonly name: string; readonly kind: 'alias'; readonly alias: string };

/** What a reference named when a rollout applied it. */
export interface ResolvedModel {
  /** As written in the spec. */
  readonly reference: ModelReference;
  readonly name: string;
  readonly version: number;
  /** Set when the reference follows an alias. */
  readonly alias?: string;
  /** The version's `source`: the artifact URI of its files. */
  readonly source: string;
}

/** Server-side dynamic batching (TorchServe batch_size / max_batch_delay, Triton dynamic batching). */
export interface BatchingSpec {
  readonly maxBatchSize: number;
  readonly maxDelayMs: number;
}

export interface ReplicaRange {
  /** 0 allows scale to zero, which needs `capabilities.autoscaling`. */
  readonly min: number;
  readonly max: number;
}

/**
 * A second revision taking `percent` of requests; its answers go back to callers. It may differ from the primary in
 * model, handler, replicas and resources; `promote` makes those the primary's.
 */
export interface CanarySpec {
  readonly model: ModelReference;
  /** 0..100, an integer; the primary takes the rest. 0 keeps the canary deployed but idle. */
  readonly percent: number;
  readonly handler?: string;
  readonly replicas?: ReplicaRange;
  readonly resources?: ResourceRequest;
}

/** A copy of `percent` of requests sent to another model whose answers are discarded (logged for comparison). */
export interface ShadowSpec {
  readonly model: ModelReference;
  /** 1..100, an integer. */
  readonly percent: number;
}

export interface DeploymentSpec {
  /** Unique endpoint name; see DEPLOYMENT_NAME_PATTERN. */
  readonly name: string;
  readonly project: string;
  /** The primary model. */
  readonly model: ModelReference;
  /** Serving runtime: `torchserve`, `onnxruntime`, `python`, `triton`...; one of `capabilities.runtimes`. */
  readonly runtime: string;
  /** One of `capabilities.protocols`. */
  readonly protocol: InferenceProtocol;
  /** Runtime-specific entry point (TorchServe handler, Python `module:Class`). */
  readonly handler?: string;
  /** For `custom`: the path `predict` posts to, default `/predict`. ValidationError for other protocols. */
  readonly predictPath?: string;
  /** Server-specific units: pods on Kubernetes, workers on TorchServe, processes locally. */
  readonly replicas: ReplicaRange;
  readonly resources?: ResourceRequest;
  /** Needs `capabilities.canary`; changed by `startCanary`, `shiftTraffic`, `promote`, `rollback`. */
  readonly canary?: CanarySpec;
  /** Needs `capabilities.shadow`. */
  readonly shadow?: ShadowSpec;
  /** Needs `capabilities.batching`. */
  readonly batching?: BatchingSpec;
  /** Per-request timeout on the server. */
  readonly timeoutSeconds?: number;
  readonly env?: Readonly<Record<string, string>>;
  /** Env var -> secret reference, resolved by the server at start; values never enter the spec. */
  readonly secretEnv?: Readonly<Record<string, SecretRef>>;
  readonly labels?: Readonly<Record<string, string>>;
}

/** Where requests go, in percent: `primary + canary = 100`; `shadow` is a copy of that share, not a part of it. */
export interface TrafficSplit {
  readonly primary: number;
  readonly canary: number;
  readonly shadow: number;
}

export type DeploymentPhase = 'Pending' | 'Ready' | 'Failed' | 'Terminating';

/** One revision being served (the primary, the canary or the shadow). */
export interface RevisionStatus {
  readonly model: ResolvedModel;
  readonly replicas: { readonly desired: number; readonly ready: number };
  /** Share of requests it answers (the shadow: the share copied to it). */
  readonly percent: number;
  /** The archive built for the runtime by a ModelPackager, when the runtime needs one (`.mar` for TorchServe). */
  readonly package?: PackagedModel;
}

/**
 * The operations that change what a deployment serves or how traffic is split: each one is a rollout, and the
 * kernel fires `deployment.beforeRollout` (a policy may veto) before it and `deployment.rolledOut` after it, with
 * the operation's `Rollout`. Scaling and undeploying are not rollouts.
 * - `deploy`: create the deployment or replace its spec;
 * - `startCanary`: add a canary revision at N%;
 * - `shiftTraffic`: change the canary's share;
 * - `promote`: the canary becomes the primary at 100%;
 * - `rollback`: drop the canary, or without one, restore the spec before the last deploy or promote.
 */
export type RolloutKind = 'deploy' | 'startCanary' | 'shiftTraffic' | 'promote' | 'rollback';

export interface RolloutOptions {
  /** Principal asking for the rollout; defaults to the acting principal (`actingAs`). */
  readonly actor?: string;
  readonly reason?: string;
  /**
   * Refuse with ConflictError, changing nothing, unless the deployment is still at this generation (0: does not
   * exist yet). The kernel passes the generation its policy judged, so a rollout that landed in between is not
   * overwritten by one nobody reviewed.
   */
  readonly expectedGeneration?: number;
}

/** A rollout operation as data: what `planRollout` and the `deployment.beforeRollout` hook see. */
export type RolloutRequest = RolloutOptions &
  (
    | { readonly kind: 'deploy'; readonly spec: DeploymentSpec }
    | { readonly kind: 'startCanary'; readonly name: string; readonly canary: CanarySpec }
    | { readonly kind: 'shiftTraffic'; readonly name: string; readonly percent: number }
    | { readonly kind: 'promote'; readonly name: string }
    | { readonly kind: 'rollback'; readonly name: string }
  );

/** What a rollout changes: everything a policy needs to judge it, and what the server applies. */
export interface RolloutPlan {
  readonly kind: RolloutKind;
  /** The deployment's name. */
  readonly name: string;
  /** The spec after the rollout. */
  readonly spec: DeploymentSpec;
  /** The spec before it; undefined when `deploy` creates the deployment. */
  readonly previous: DeploymentSpec | undefined;
  readonly traffic: TrafficSplit;
  readonly previousTraffic: TrafficSplit | undefined;
  /** What `rollback` will restore afterwards (the deployment's `previousSpec` after this rollout). */
  readonly rollbackSpec: DeploymentSpec | undefined;
  /** The deployment's generation the plan was made from (0: it does not exist). */
  readonly fromGeneration: number;
  /**
   * True when the spec after equals the spec before (a repeated `deploy`): nothing rolls out and no rollout hook
   * fires. The server still re-resolves alias references then, so a deployment follows an alias moved since (alias
   * moves pass the registry's own `model.beforePromote` gate).
   */
  readonly noop: boolean;
  readonly actor: string | undefined;
  readonly reason: string | undefined;
}

/** A rollout as applied: the plan plus the versions its references named at that moment. */
export interface Rollout extends RolloutPlan {
  readonly models: RolloutModels;
  /** Undefined when `deploy` created the deployment. */
  readonly previousModels: RolloutModels | undefined;
  /** The deployment's generation after the rollout. */
  readonly generation: number;
  readonly at: Date;
}

export interface RolloutModels {
  readonly primary: ResolvedModel;
  readonly canary?: ResolvedModel;
  readonly shadow?: ResolvedModel;
}

export interface RolloutResult {
  readonly deployment: Deployment;
  readonly rollout: Rollout;
}

export interface Deployment {
  readonly name: string;
  readonly spec: DeploymentSpec;
  /** What `rollback` restores when no canary runs: the spec before the last `deploy` or `promote`; absent after a rollback. */
  readonly previousSpec?: DeploymentSpec;
  /** Raised by every rollout that changes something (never by scaling); see `RolloutOptions.expectedGeneration`. */
  readonly generation: number;
  readonly phase: DeploymentPhase;
  readonly primary: RevisionStatus;
  readonly canary?: RevisionStatus;
  readonly shadow?: RevisionStatus;
  /** The split in effect, which lags `spec` while a rollout progresses. */
  readonly traffic: TrafficSplit;
  /** `Progressing` until the revisions of the latest rollout are ready and take their share; `Failed` when they cannot. */
  readonly rolloutPhase: 'Progressing' | 'Complete' | 'Failed';
  readonly lastRollout?: Rollout;
  /** Base URLs where the deployment is reachable directly, when it is. */
  readonly endpoints?: { readonly http?: string; readonly grpc?: string };
  readonly message?: string;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/**
 * A request in the deployment's own protocol (`torchserve` or `custom`). JSON is sent as `application/json`; raw
 * bodies (images, audio) with their content type.
 */
export type PredictRequest = { readonly json: unknown } | { readonly body: Uint8Array; readonly contentType: string };

export interface PredictResponse {
  readonly contentType: string;
  readonly body: Uint8Array;
  /** The parsed body when the content type is JSON. */
  readonly json?: unknown;
  /** Which revision answered, where the server says. */
  readonly servedBy?: 'primary' | 'canary';
}

export interface Health {
  readonly live: boolean;
  readonly ready: boolean;
}

export interface InvokeOptions {
  /** Send to this revision, bypassing the traffic split (e.g. to test a canary at 0%); ConflictError when it is absent. */
  readonly revision?: 'primary' | 'canary';
  readonly signal?: AbortSignal;
}

export interface WatchDeploymentOptions {
  /** Ends the iteration (without error) when aborted. */
  readonly signal?: AbortSignal;
}

/** Which features differ between backends; `validateDeploymentSpec` checks a spec against them. */
export interface ModelServerCapabilities {
  readonly protocols: readonly InferenceProtocol[];
  /** Runtimes it can run. */
  readonly runtimes: readonly string[];
  /** `infer` accepts and returns binary tensors (the OIP v2 binary data extension). */
  readonly binaryTensors: boolean;
  readonly canary: boolean;
  readonly shadow: boolean;
  /** Replicas scale between min and max with load (else they stay at min). */
  readonly autoscaling: boolean;
  readonly gpu: boolean;
  /** Deployments expose a gRPC endpoint. */
  readonly grpc: boolean;
  /** `batching` is honoured. */
  readonly batching: boolean;
}

/**
 * Serves registered model versions behind named deployments. References in specs are resolved through the
 * ModelRegistry when a rollout is applied, and the version found stays served until the next rollout. Rollouts
 * (see RolloutKind) resolve with the deployment and the Rollout applied, once the server accepted them (usually
 * `rolloutPhase: 'Progressing'`); `watch` follows them to Complete or Failed. The kernel fires the rollout hooks
 * around them; servers never fire hooks. Unknown deployments raise NotFoundError; a spec breaking
 * `validateDeploymentSpec` raises ValidationError; requests to a deployment that is not Ready raise
 * UnavailableError.
 */
export interface ModelServer {
  readonly capabilities: ModelServerCapabilities;
  /**
   * Creates the deployment or replaces its spec (a canary in the old spec and not in the new one is dropped).
   * An equal spec changes nothing (`rollout.noop`) beyond following aliases moved since.
   * NotFoundError when a reference names no model, version or alias; ConflictError when it names a version
   * that is not READY, or on a stale `expectedGeneration`.
   */
  deploy(spec: DeploymentSpec, options?: RolloutOptions): Promise<RolloutResult>;
  /** ConflictError when a canary already runs (shift, promote or roll it back first). */
  startCanary(name: string, canary: CanarySpec, options?: RolloutOptions): Promise<RolloutResult>;
  /** Sets the canary's share (0..100); ConflictError without a canary. */
  shiftTraffic(name: string, percent: number, options?: RolloutOptions): Promise<RolloutResult>;
  /** The canary becomes the primary and takes 100%; the spec before becomes `previousSpec`. ConflictError without a canary. */
  promote(name: string, options?: RolloutOptions): Promise<RolloutResult>;
  /** Drops the canary; without one, restores `previousSpec`. ConflictError when there is neither. */
  rollback(name: string, options?: RolloutOptions): Promise<RolloutResult>;
  /** Changes only the primary's replica range (not a rollout; the generation stays). */
  scale(name: string, replicas: ReplicaRange): Promise<Deployment>;
  /** Idempotent: undeploying a missing deployment succeeds. Not a rollout. */
  undeploy(name: string): Promise<void>;
  get(name: string): Promise<Deployment>;
  /** Sorted by name; page limits LIST_DEPLOYMENTS_PAGE. */
  list(options?: PageOptions & { readonly project?: string }): Promise<Page<Deployment>>;
  /**
   * The deployment now, then after every change of phase, rollout phase, traffic or replica readiness; ends when
   * aborted or once the deployment is undeployed. Changes missed during a reconnect arrive as the latest state.
   */
  watch(name: string, options?: WatchDeploymentOptions): AsyncIterable<Deployment>;
  /** For `torchserve` and `custom` deployments; ValidationError for `oip-v2` ones (use `infer`). */
  predict(name: string, request: PredictRequest, options?: InvokeOptions): Promise<PredictResponse>;
  /**
   * For `oip-v2` deployments (ValidationError otherwise). Binary tensors need `capabilities.binaryTensors`; the
   * answer holds binary outputs where the request asked for them (`binary_data`, `binary_data_output`).
   */
  infer(name: string, request: InferRequest, options?: InvokeOptions): Promise<InferResponse>;
  /** The server's liveness and readiness, or one deployment's (and revision's) readiness when named. */
  health(target?: { readonly name: string; readonly revision?: 'primary' | 'canary' }): Promise<Health>;
  /** For `oip-v2` deployments. */
  modelMetadata(name: string, revision?: 'primary' | 'canary'): Promise<ModelMetadata>;
}

export const modelServerRef = createServiceRef<ModelServer>({ id: 'core.modelServer' });

/**
 * The port as the kernel knows it: its hooks (`deployment.beforeRollout`, `deployment.rolledOut`, under
 * `platform.hooks.deployment`) and the guard that makes them fire for whichever provider is chosen, around every
 * rollout operation (deploy, startCanary, shiftTraffic, promote, rollback). Providers never fire these hooks.
 */
export const modelServerPort = definePort({
  ref: modelServerRef,
  hooksKey: 'deployment',
  createHooks: createModelServerHooks,
  guard: guardModelServer,
});

// ---------------------------------------------------------------- packaging

/** Where a packaged archive was stored. */
export interface PackagedModel {
  readonly runtime: string;
  /** Archive format, e.g. `mar`. */
  readonly format: string;
  /** ArtifactStore key of the archive. */
  readonly key: string;
  /** The archive's absolute URI (`ArtifactStore.uri(key)`), what the runtime is told to load. */
  readonly uri: string;
  readonly sha256: string;
  readonly size: number;
}

export interface PackageModelInput {
  /** The version to package, as the registry holds it; its files are at `version.source`. */
  readonly version: ModelVersion;
  /** Runtime entry point baked into the archive (TorchServe handler). */
  readonly handler?: string;
  readonly signal?: AbortSignal;
}

/**
 * Builds what a runtime loads from a registered version's files: a TorchServe `.mar`, a Triton model repository
 * layout. The model server calls the packager of the deployment's runtime, when there is one, at each rollout that
 * serves a new version, and reports the result in `RevisionStatus.package`.
 */
export interface ModelPackager {
  /** See RUNTIME_NAME_PATTERN; one packager per runtime. */
  readonly runtime: string;
  readonly format: string;
  /**
   * Stores the archive in the ArtifactStore and says where. Idempotent: packaging the same version with the same
   * handler again returns the archive already stored. NotFoundError when the version's files are missing;
   * ValidationError when they are not a model this runtime can load.
   */
  package(input: PackageModelInput): Promise<PackagedModel>;
}

/** What plugins contribute packagers through. */
export interface ModelPackagersExtension {
  /** ConflictError when a packager for the same runtime was added; ValidationError for a bad runtime name. */
  addPackager(packager: ModelPackager): void;
}

/**
 * Extension point a model server plugin registers (with a `ModelPackagerSet`) so that other plugins add packagers
 * by runtime name without importing its internals.
 */
export const modelPackagersExtensionPoint = createExtensionPoint<ModelPackagersExtension>({
  id: 'modelServer.packagers',
});

/** The packagers contributed through `modelPackagersExtensionPoint`, looked up by runtime. */
export class ModelPackagerSet implements ModelPackagersExtension {
  readonly #byRuntime = new Map<string, ModelPackager>();

  addPackager(packager: ModelPackager): void {
    const runtime = packager?.runtime;
    if (typeof runtime !== 'string' || !RUNTIME_NAME_PATTERN.test(runtime)) {
      throw new ValidationError(`packager runtime '${String(runtime)}' must be lowercase letters, digits and '-'`, {
        field: 'runtime',
      });
    }
    if (typeof packager.package !== 'function') {
      throw new ValidationError(`the packager for '${runtime}' has no package() method`, { field: 'package' });
    }
    if (this.#byRuntime.has(runtime)) {
      throw new ConflictError(`a packager for runtime '${runtime}' was already added: one packager per runtime`);
    }
    this.#byRuntime.set(runtime, packager);
  }

  /** The packager of `runtime`, or undefined when the runtime loads a version's files as they are. */
  find(runtime: string): ModelPackager | undefined {
    return this.#byRuntime.get(runtime);
  }

  /** NotFoundError naming the runtimes that have packagers. */
  get(runtime: string): ModelPackager {
    const packager = this.find(runtime);
    if (!packager) {
      throw new NotFoundError(
        `no packager for runtime '${runtime}' (packagers exist for: ${this.runtimes().join(', ') || 'none'})`,
      );
    }
    return packager;
  }

  runtimes(): string[] {
    return [...this.#byRuntime.keys()].sort();
  }
}

// ---------------------------------------------------------------- helpers

/** Parses `models:/<name>@<alias>` or `models:/<name>/<version>`; ValidationError (naming `field`) otherwise. */
export function parseModelReference(reference: string, field = 'model'): ParsedModelReference {
  if (typeof reference !== 'string') throw new ValidationError(`${field} must be a models:/ URI`, { field });
  let parsed: ReturnType<typeof parseModelUri>;
  try {
    parsed = parseModelUri(reference);
  } catch (err) {
    throw new ValidationError(
      `${field} '${reference}' is not a model reference; use models:/<name>@<alias> or models:/<name>/<version>`,
      { field, cause: err },
    );
  }
  if (parsed.kind === 'version') {
    if (parsed.version < 1 || !Number.isSafeInteger(parsed.version)) {
      throw new ValidationError(`${field} '${reference}' names version ${parsed.version}; versions start at 1`, {
        field,
      });
    }
    return parsed;
  }
  if (parsed.kind === 'alias') return parsed;
  throw new ValidationError(
    `${field} '${reference}' names a ${parsed.kind === 'stage' ? 'stage' : 'latest version'}, which moves with every registration; deploy models:/${parsed.name}/<version> or an alias such as models:/${parsed.name}@champion`,
    { field },
  );
}

/**
 * The version a reference names now, through the registry. ValidationError for a malformed reference; NotFoundError
 * (from the registry) when the model, version or alias does not exist; ConflictError when the version is not READY.
 */
export async function resolveModelReference(
  registry: Pick<ModelRegistry, 'resolve'>,
  reference: ModelReference,
  field = 'model',
): Promise<ResolvedModel> {
  const parsed = parseModelReference(reference, field);
  const version = await registry.resolve(reference);
  if (version.status !== 'READY') {
    throw new ConflictError(
      `${reference} names version ${version.version} of '${version.name}', which is ${version.status}: only READY versions can be served`,
    );
  }
  return {
    reference,
    name: version.name,
    version: version.version,
    ...(parsed.kind === 'alias' ? { alias: parsed.alias } : {}),
    source: version.source,
  };
}

/** The split a spec asks for. */
export function trafficOf(spec: Pick<DeploymentSpec, 'canary' | 'shadow'>): TrafficSplit {
  const canary = spec.canary?.percent ?? 0;
  return { primary: 100 - canary, canary, shadow: spec.shadow?.percent ?? 0 };
}

/**
 * What a rollout operation would change, computed from the deployment as it is (undefined when it does not exist):
 * the same rules every server applies, so that the kernel can show a policy the exact spec, previous spec and
 * traffic split before the server acts. NotFoundError for an operation other than `deploy` on a missing deployment;
 * ConflictError when the operation does not fit the state (see ModelServer); ValidationError when the resulting spec
 * breaks `validateDeploymentSpec` (against `capabilities` when given).
 */
export function planRollout(
  current: Pick<Deployment, 'name' | 'spec' | 'previousSpec' | 'generation'> | undefined,
  request: RolloutRequest,
  capabilities?: ModelServerCapabilities,
): RolloutPlan {
  const name = request.kind === 'deploy' ? request.spec?.name : request.name;
  if (current === undefined && request.kind !== 'deploy')
    throw new NotFoundError(`deployment '${name}' does not exist`);
  if (current !== undefined && current.name !== name) {
    throw new ValidationError(`the plan is for '${name}' but the deployment given is '${current.name}'`, {
      field: 'name',
    });
  }
  const before = current?.spec;
  let spec: DeploymentSpec;
  let rollbackSpec = current?.previousSpec;
  switch (request.kind) {
    case 'deploy':
      spec = request.spec;
      if (before !== undefined && !sameValue(before, spec)) rollbackSpec = before;
      break;
    case 'startCanary':
      if (before!.canary) {
        throw new ConflictError(
          `deployment '${name}' already runs a canary (${before!.canary.model} at ${before!.canary.percent}%): shift, promote or roll it back first`,
        );
      }
      spec = { ...before!, canary: request.canary };
      break;
    case 'shiftTraffic': {
      const canary = requireCanary(before!, 'shift traffic to');
      spec = { ...before!, canary: { ...canary, percent: request.percent } };
      break;
    }
    case 'promote': {
      const canary = requireCanary(before!, 'promote');
      const { canary: _dropped, ...primary } = before!;
      spec = {
        ...primary,
        model: canary.model,
        ...(canary.handler !== undefined ? { handler: canary.handler } : {}),
        ...(canary.replicas !== undefined ? { replicas: canary.replicas } : {}),
        ...(canary.resources !== undefined ? { resources: canary.resources } : {}),
      };
      rollbackSpec = primary;
      break;
    }
    case 'rollback':
      if (before!.canary) {
        const { canary: _dropped, ...primary } = before!;
        spec = primary;
      } else if (current!.previousSpec) {
        spec = current!.previousSpec;
        rollbackSpec = undefined;
      } else {
        throw new ConflictError(`deployment '${name}' has no canary and no previous spec to roll back to`);
      }
      break;
    default:
      throw new ValidationError(`unknown rollout kind '${String((request as { kind: unknown }).kind)}'`, {
        field: 'kind',
      });
  }
  validateDeploymentSpec(spec, capabilities);
  return {
    kind: request.kind,
    name: spec.name,
    spec,
    previous: before,
    traffic: trafficOf(spec),
    previousTraffic: before === undefined ? undefined : trafficOf(before),
    rollbackSpec,
    fromGeneration: current?.generation ?? 0,
    noop: before !== undefined && sameValue(before, spec),
    actor: request.actor,
    reason: request.reason,
  };
}

function requireCanary(spec: DeploymentSpec, what: string): CanarySpec {
  if (!spec.canary) throw new ConflictError(`deployment '${spec.name}' runs no canary to ${what}: start one first`);
  return spec.canary;
}

/** Structural equality of plain data (specs hold only JSON values); key order does not matter. */
function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keysA = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined);
  const keysB = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined);
  return (
    keysA.length === keysB.length &&
    keysA.every((k) => sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]))
  );
}

const ENV_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

function checkPercent(value: unknown, field: string, min: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > 100) {
    throw new ValidationError(`${field} must be an integer from ${min} to 100, got ${String(value)}`, { field });
  }
}

function checkReplicas(value: unknown, field: string, caps: ModelServerCapabilities | undefined): void {
  const r = value as ReplicaRange | undefined;
  if (
    typeof r !== 'object' ||
    r === null ||
    !Number.isInteger(r.min) ||
    !Number.isInteger(r.max) ||
    r.min < 0 ||
    r.max < 1 ||
    r.min > r.max
  ) {
    throw new ValidationError(`${field} must be { min, max } integers with 0 <= min <= max and max >= 1`, { field });
  }
  if (r.min === 0 && caps && !caps.autoscaling) {
    throw new ValidationError(`${field}.min 0 scales to zero, which this server cannot do`, { field: `${field}.min` });
  }
}

/**
 * Checks a spec before anything changes: names, references, percentages, replica ranges, secret references, and,
 * when `capabilities` are given, that the server has what the spec uses. ValidationError whose `field` is the path to
 * the first problem (`canary.percent`, `secretEnv.TOKEN.name`).
 */
export function validateDeploymentSpec(spec: DeploymentSpec, capabilities?: ModelServerCapabilities): void {
  const caps = capabilities;
  if (typeof spec !== 'object' || spec === null)
    throw new ValidationError('a deployment spec must be an object', { field: 'spec' });
  if (typeof spec.name !== 'string' || !DEPLOYMENT_NAME_PATTERN.test(spec.name)) {
    throw new ValidationError(
      `deployment name '${String(spec.name)}' must be lowercase letters, digits and '-', at most 63 chars`,
      { field: 'name' },
    );
  }
  if (typeof spec.project !== 'string' || spec.project.trim() === '') {
    throw new ValidationError('project must be a non-empty string', { field: 'project' });
  }
  parseModelReference(spec.model, 'model');
  if (typeof spec.runtime !== 'string' || !RUNTIME_NAME_PATTERN.test(spec.runtime)) {
    throw new ValidationError(`runtime '${String(spec.runtime)}' must be lowercase letters, digits and '-'`, {
      field: 'runtime',
    });
  }
  if (caps && !caps.runtimes.includes(spec.runtime)) {
    throw new ValidationError(`this server has no runtime '${spec.runtime}' (it runs: ${caps.runtimes.join(', ')})`, {
      field: 'runtime',
    });
  }
  if (!INFERENCE_PROTOCOLS.includes(spec.protocol)) {
    throw new ValidationError(`protocol must be one of ${INFERENCE_PROTOCOLS.join(', ')}`, { field: 'protocol' });
  }
  if (caps && !caps.protocols.includes(spec.protocol)) {
    throw new ValidationError(`this server does not speak ${spec.protocol} (it speaks: ${caps.protocols.join(', ')})`, {
      field: 'protocol',
    });
  }
  if (spec.predictPath !== undefined) {
    if (spec.protocol !== 'custom') {
      throw new ValidationError(`predictPath is for custom protocols; ${spec.protocol} fixes its own paths`, {
        field: 'predictPath',
      });
    }
    if (typeof spec.predictPath !== 'string' || !spec.predictPath.startsWith('/')) {
      throw new ValidationError('predictPath must be an absolute path such as /predict', { field: 'predictPath' });
    }
  }
  checkReplicas(spec.replicas, 'replicas', caps);
  if (spec.canary !== undefined) {
    if (caps && !caps.canary) throw new ValidationError('this server cannot run canaries', { field: 'canary' });
    parseModelReference(spec.canary.model, 'canary.model');
    checkPercent(spec.canary.percent, 'canary.percent', 0);
    if (spec.canary.replicas !== undefined) checkReplicas(spec.canary.replicas, 'canary.replicas', caps);
  }
  if (spec.shadow !== undefined) {
    if (caps && !caps.shadow) throw new ValidationError('this server cannot mirror traffic', { field: 'shadow' });
    parseModelReference(spec.shadow.model, 'shadow.model');
    checkPercent(spec.shadow.percent, 'shadow.percent', 1);
  }
  if (spec.batching !== undefined) {
    if (caps && !caps.batching) throw new ValidationError('this server does not batch requests', { field: 'batching' });
    if (!Number.isInteger(spec.batching.maxBatchSize) || spec.batching.maxBatchSize < 1) {
      throw new ValidationError('batching.maxBatchSize must be a positive integer', { field: 'batching.maxBatchSize' });
    }
    if (!Number.isInteger(spec.batching.maxDelayMs) || spec.batching.maxDelayMs < 0) {
      throw new ValidationError('batching.maxDelayMs must be a non-negative integer', { field: 'batching.maxDelayMs' });
    }
  }
  if (spec.timeoutSeconds !== undefined && (!Number.isInteger(spec.timeoutSeconds) || spec.timeoutSeconds < 1)) {
    throw new ValidationError('timeoutSeconds must be a positive integer', { field: 'timeoutSeconds' });
  }
  for (const name of Object.keys(spec.env ?? {})) {
    if (!ENV_NAME_PATTERN.test(name)) {
      throw new ValidationError(`'${name}' is not an environment variable name`, { field: `env.${name}` });
    }
  }
  for (const [name, ref] of Object.entries(spec.secretEnv ?? {})) {
    if (!ENV_NAME_PATTERN.test(name)) {
      throw new ValidationError(`'${name}' is not an environment variable name`, { field: `secretEnv.${name}` });
    }
    if (spec.env && Object.hasOwn(spec.env, name)) {
      throw new ValidationError(`${name} is in both env and secretEnv: keep one`, { field: `secretEnv.${name}` });
    }
    validateSecretRef(ref, `secretEnv.${name}`);
  }
}
