import { definePort } from '../kernel/port.js';
import { createServiceRef } from '../kernel/service-ref.js';
import type { ResourceRequest } from './compute-backend.js';
import { createModelServerHooks, guardModelServer } from './guards/model-server.js';
import type { Page, PageLimits, PageOptions } from './paging.js';

export type { GpuRequest, ResourceRequest } from './compute-backend.js';
export {
  ConflictError,
  NotFoundError,
  UnavailableError,
  ValidationError,
  VetoedError,
} from './errors.js';
export type { Page, PageOptions } from './paging.js';

/** Deployment names become endpoint paths and Kubernetes Service names: a DNS-1123 label. */
export const DEPLOYMENT_NAME_PATTERN = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
export const LIST_DEPLOYMENTS_PAGE: PageLimits = Object.freeze({ default: 100, max: 1000 });

/** A registered model version to serve. */
export interface ServedModel {
  readonly name: string;
  readonly version: number;
  /** Where the files are (the version's `source`, or a packaged archive such as a `.mar`). */
  readonly uri: string;
}

/**
 * How requests are split. Without a canary everything goes to `DeploymentSpec.model`. Shadow traffic is a
 * copy whose responses are discarded (logged for comparison), never returned to callers.
 */
export interface TrafficSplit {
  /** 0..100 of requests to `canaryVersion`; needs `capabilities.canary`. */
  readonly canaryPercent?: number;
  readonly canaryVersion?: ServedModel;
  /** Needs `capabilities.shadow`. */
  readonly shadowVersion?: ServedModel;
  /** 0..100 of requests mirrored to the shadow; default 100. */
  readonly shadowPercent?: number;
}

/** Server-side dynamic batching (TorchServe batch_size / max_batch_delay, Triton dynamic batching). */
export interface BatchingSpec {
  readonly maxBatchSize: number;
  readonly maxDelayMs: number;
}

export interface DeploymentSpec {
  /** Unique endpoint name; see DEPLOYMENT_NAME_PATTERN. */
  readonly name: string;
  readonly project: string;
  readonly model: ServedModel;
  /** Serving runtime: `torchserve`, `onnxruntime`, `python`, `triton`...; ValidationError when the backend has none such. */
  readonly runtime: string;
  /** Runtime-specific entry point (TorchServe handler, Python `module:Class`). */
  readonly handler?: string;
  /** Server-specific units: pods on Kubernetes, workers on TorchServe, processes locally. `min` 0 allows scale to zero where `autoscaling`. */
  readonly replicas: { readonly min: number; readonly max: number };
  readonly resources?: ResourceRequest;
  readonly traffic?: TrafficSplit;
  readonly batching?: BatchingSpec;
  /** Per-request timeout on the server. */
  readonly timeoutSeconds?: number;
  readonly env?: Readonly<Record<string, string>>;
  readonly labels?: Readonly<Record<string, string>>;
}

export type DeploymentPhase = 'Pending' | 'Ready' | 'Failed' | 'Terminating';

export interface Deployment {
  readonly name: string;
  readonly spec: DeploymentSpec;
  readonly phase: DeploymentPhase;
  readonly replicas: { readonly desired: number; readonly ready: number };
  /** Base URLs where the deployment is reachable directly, when it is. */
  readonly endpoints?: { readonly http?: string; readonly grpc?: string };
  readonly message?: string;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/** JSON prediction (KServe v1 style): `instances` (row-oriented) or `inputs` (column-oriented). */
export type PredictRequest =
  | { readonly instances: readonly unknown[]; readonly parameters?: Readonly<Record<string, unknown>> }
  | { readonly inputs: unknown; readonly parameters?: Readonly<Record<string, unknown>> };

export interface PredictResponse {
  /** One per instance, in order. */
  readonly predictions: readonly unknown[];
  /** The version that answered (canary or primary). */
  readonly modelVersion?: number;
}

/** Open Inference Protocol v2 tensor element types. */
export type TensorDatatype =
  | 'BOOL'
  | 'UINT8'
  | 'UINT16'
  | 'UINT32'
  | 'UINT64'
  | 'INT8'
  | 'INT16'
  | 'INT32'
  | 'INT64'
  | 'FP16'
  | 'FP32'
  | 'FP64'
  | 'BYTES'
  | 'BF16';

export const TENSOR_DATATYPES: readonly TensorDatatype[] = Object.freeze([
  'BOOL',
  'UINT8',
  'UINT16',
  'UINT32',
  'UINT64',
  'INT8',
  'INT16',
  'INT32',
  'INT64',
  'FP16',
  'FP32',
  'FP64',
  'BYTES',
  'BF16',
]);

export type InferParameters = Readonly<Record<string, string | number | boolean>>;

/**
 * A tensor in OIP v2 JSON form. Field names keep the protocol's spelling so requests pass through
 * unchanged. `data` is flattened in row-major order with shape-product elements; BYTES elements are strings.
 */
export interface InferTensor {
  readonly name: string;
  /** -1 is not allowed in requests; every dimension is concrete. */
  readonly shape: readonly number[];
  readonly datatype: TensorDatatype;
  readonly parameters?: InferParameters;
  readonly data: readonly (number | boolean | string)[];
}

export interface InferRequest {
  /** Echoed in the response. */
  readonly id?: string;
  readonly inputs: readonly InferTensor[];
  /** Outputs to return (all when absent). */
  readonly outputs?: readonly { readonly name: string; readonly parameters?: InferParameters }[];
  readonly parameters?: InferParameters;
}

export interface InferResponse {
  readonly model_name: string;
  readonly model_version?: string;
  readonly id?: string;
  readonly parameters?: InferParameters;
  readonly outputs: readonly InferTensor[];
}

/** OIP v2 tensor metadata; -1 marks a variable dimension. */
export interface TensorMetadata {
  readonly name: string;
  readonly datatype: TensorDatatype;
  readonly shape: readonly number[];
}

/** OIP v2 model metadata (`GET /v2/models/{name}[/versions/{v}]`). */
export interface ModelMetadata {
  readonly name: string;
  readonly versions?: readonly string[];
  /** Framework/runtime, e.g. `pytorch_torchscript`, `onnxruntime_onnx`. */
  readonly platform: string;
  readonly inputs: readonly TensorMetadata[];
  readonly outputs: readonly TensorMetadata[];
}

export interface Health {
  readonly live: boolean;
  readonly ready: boolean;
}

export interface InvokeOptions {
  /** Call this version directly, bypassing the traffic split (e.g. to test a canary); it must be deployed. */
  readonly version?: number;
  readonly signal?: AbortSignal;
}

/** Which features differ between backends. */
export interface ModelServerCapabilities {
  /** `infer` and `modelMetadata` speak Open Inference Protocol v2. */
  readonly oipV2: boolean;
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
 * Serves registered model versions behind named deployments. Rollouts (deploy with a changed spec,
 * setTraffic) first run the `deployment.beforeRollout` veto hook and raise VetoedError, changing nothing,
 * when a policy refuses. Unknown deployments raise NotFoundError; requests to a deployment that is not
 * Ready raise UnavailableError; malformed inputs raise ValidationError.
 */
export interface ModelServer {
  readonly capabilities: ModelServerCapabilities;
  /**
   * Creates the deployment or rolls it to the new spec; idempotent by name (an equal spec changes nothing).
   * Resolves once accepted, usually Pending; ValidationError for features the backend lacks.
   */
  deploy(spec: DeploymentSpec): Promise<Deployment>;
  /** Idempotent: undeploying a missing deployment succeeds. */
  undeploy(name: string): Promise<void>;
  scale(name: string, replicas: { readonly min: number; readonly max: number }): Promise<Deployment>;
  /** ValidationError when percentages leave 0..100 or name a version without giving it. */
  setTraffic(name: string, traffic: TrafficSplit): Promise<Deployment>;
  get(name: string): Promise<Deployment>;
  /** Sorted by name; page limits LIST_DEPLOYMENTS_PAGE. */
  list(options?: PageOptions & { readonly project?: string }): Promise<Page<Deployment>>;
  predict(name: string, request: PredictRequest, options?: InvokeOptions): Promise<PredictResponse>;
  /** Needs `capabilities.oipV2`. */
  infer(name: string, request: InferRequest, options?: InvokeOptions): Promise<InferResponse>;
  /** The server's liveness and readiness, or one deployment's (and version's) readiness when named. */
  health(target?: { readonly name: string; readonly version?: number }): Promise<Health>;
  /** Needs `capabilities.oipV2`. */
  modelMetadata(name: string, version?: number): Promise<ModelMetadata>;
}

export const modelServerRef = createServiceRef<ModelServer>({ id: 'core.modelServer' });

/**
 * The port as the kernel knows it: its hooks (`deployment.beforeRollout`, `deployment.rolledOut`, under `platform.hooks.deployment`) and the guard that makes
 * them fire for whichever provider is chosen. Providers never fire these hooks themselves.
 */
export const modelServerPort = definePort({
  ref: modelServerRef,
  hooksKey: 'deployment',
  createHooks: createModelServerHooks,
  guard: guardModelServer,
});

/** Number of elements a tensor of `shape` holds (the length its flattened `data` must have). */
export function tensorElementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}
