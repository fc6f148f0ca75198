import { ValidationError } from './errors.js';

/*
 * Open Inference Protocol v2 (KServe, Triton, MLServer; TorchServe with the kservev2 envelope): the tensor types the
 * ModelServer port speaks, and the codec of the binary tensor data extension, so that every adapter puts the same
 * bytes on the wire. Field names keep the protocol's spelling so that messages pass through unchanged.
 *
 * Binary tensor data extension: the HTTP body is the JSON header followed by the raw tensors, in the order their
 * tensors appear in the header. Each binary tensor has parameter `binary_data_size` (its byte count) and no `data`;
 * the header's byte length travels in the `Inference-Header-Content-Length` HTTP header. Raw tensors are
 * little-endian, row-major, unpadded; BOOL is one byte (0 or 1); BYTES elements are a 4-byte little-endian unsigned
 * length followed by that many bytes. A request asks for binary outputs with `binary_data: true` on an output, or
 * `binary_data_output: true` in its parameters.
 */

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

/** Bytes per element of each fixed-size type; BYTES elements vary (4-byte length prefix + content). */
export const TENSOR_ELEMENT_BYTES: Readonly<Record<Exclude<TensorDatatype, 'BYTES'>, number>> = Object.freeze({
  BOOL: 1,
  UINT8: 1,
  UINT16: 2,
  UINT32: 4,
  UINT64: 8,
  INT8: 1,
  INT16: 2,
  INT32: 4,
  INT64: 8,
  FP16: 2,
  FP32: 4,
  FP64: 8,
  BF16: 2,
});

export const TENSOR_DATATYPES: readonly TensorDatatype[] = Object.freeze([
  ...(Object.keys(TENSOR_ELEMENT_BYTES) as Exclude<TensorDatatype, 'BYTES'>[]),
  'BYTES' as const,
]);

/** HTTP header holding the byte length of the JSON header when binary tensors follow it. */
export const INFERENCE_HEADER_CONTENT_LENGTH = 'Inference-Header-Content-Length';
/** Parameter of a binary tensor in a request input or response output: its byte count. */
export const BINARY_DATA_SIZE = 'binary_data_size';
/** Parameter of a requested output: return it as binary data. */
export const BINARY_DATA = 'binary_data';
/** Request parameter: return every output as binary data. */
export const BINARY_DATA_OUTPUT = 'binary_data_output';

export type InferParameters = Readonly<Record<string, string | number | boolean>>;

interface TensorHeader {
  readonly name: string;
  /** Every dimension concrete (no -1) in requests and responses. */
  readonly shape: readonly number[];
  readonly datatype: TensorDatatype;
  /** `binary_data_size` is set by the encoder and removed by the decoder: never set it by hand. */
  readonly parameters?: InferParameters;
}

/** A tensor in JSON: `data` flattened in row-major order, shape-product elements; BYTES elements are strings. */
export interface JsonTensor extends TensorHeader {
  readonly data: readonly (number | boolean | string)[];
  readonly raw?: never;
}

/**
 * A tensor as raw bytes (binary data extension): little-endian, row-major; for BYTES, each element a 4-byte
 * little-endian length then its bytes (see `encodeBytesElements`). Its byte count must fit the shape.
 */
export interface BinaryTensor extends TensorHeader {
  readonly raw: Uint8Array;
  readonly data?: never;
}

export type InferTensor = JsonTensor | BinaryTensor;

export interface RequestedOutput {
  readonly name: string;
  /** `{ binary_data: true }` asks for this output as raw bytes. */
  readonly parameters?: InferParameters;
}

export interface InferRequest {
  /** Echoed in the response. */
  readonly id?: string;
  readonly inputs: readonly InferTensor[];
  /** Outputs to return (all when absent). */
  readonly outputs?: readonly RequestedOutput[];
  /** `{ binary_data_output: true }` asks for every output as raw bytes. */
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

/** An encoded message: the HTTP body, and the value of `Inference-Header-Content-Length` when binary tensors follow. */
export interface EncodedInferBody {
  readonly body: Uint8Array;
  /** Byte length of the JSON header; absent when the body is all JSON (no header to send). */
  readonly headerLength?: number;
  /** `application/octet-stream` with binary tensors (as Triton answers), else `application/json`. */
  readonly contentType: string;
}

/** Number of elements a tensor of `shape` holds (the length its flattened `data` must have). */
export function tensorElementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

export function encodeInferRequest(request: InferRequest): EncodedInferBody {
  return encodeMessage(request as unknown as Message, 'inputs');
}

/** ValidationError (`field` names the tensor) when the header is not JSON or a tensor does not fit its bytes. */
export function decodeInferRequest(body: Uint8Array, headerLength?: number): InferRequest {
  return decodeMessage(body, headerLength, 'inputs') as unknown as InferRequest;
}

export function encodeInferResponse(response: InferResponse): EncodedInferBody {
  return encodeMessage(response as unknown as Message, 'outputs');
}

/** ValidationError (`field` names the tensor) when the header is not JSON or a tensor does not fit its bytes. */
export function decodeInferResponse(body: Uint8Array, headerLength?: number): InferResponse {
  return decodeMessage(body, headerLength, 'outputs') as unknown as InferResponse;
}

/** BYTES elements as raw tensor data: each a 4-byte little-endian length, then its bytes (strings as UTF-8). */
export function encodeBytesElements(elements: readonly (string | Uint8Array)[]): Uint8Array {
  const parts = elements.map((e) => (typeof e === 'string' ? Buffer.from(e, 'utf8') : e));
  const out = new Uint8Array(parts.reduce((n, p) => n + 4 + p.byteLength, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const p of parts) {
    view.setUint32(at, p.byteLength, true);
    out.set(p, at + 4);
    at += 4 + p.byteLength;
  }
  return out;
}

/** Splits raw BYTES tensor data into its elements; ValidationError when a length runs past the end. */
export function decodeBytesElements(raw: Uint8Array, field = 'raw'): Uint8Array[] {
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out: Uint8Array[] = [];
  let at = 0;
  while (at < raw.byteLength) {
    if (at + 4 > raw.byteLength) {
      throw new ValidationError(`${field}: BYTES data ends inside an element's 4-byte length`, { field });
    }
    const length = view.getUint32(at, true);
    if (at + 4 + length > raw.byteLength) {
      throw new ValidationError(
        `${field}: a BYTES element of ${length} bytes runs past the end of the tensor data (${raw.byteLength} bytes)`,
        { field },
      );
    }
    out.push(raw.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
  return out;
}

type TensorList = 'inputs' | 'outputs';
type Message = Record<string, unknown> & { readonly [K in TensorList]?: readonly InferTensor[] };

const JSON_CONTENT_TYPE = 'application/json';
const BINARY_CONTENT_TYPE = 'application/octet-stream';

/** Checks that a tensor's data fits its shape and type, so no malformed tensor is ever put on the wire. */
function checkTensor(tensor: InferTensor, field: string): void {
  if (typeof tensor?.name !== 'string' || tensor.name === '') {
    throw new ValidationError(`${field}.name must be a non-empty string`, { field: `${field}.name` });
  }
  if (!TENSOR_DATATYPES.includes(tensor.datatype)) {
    throw new ValidationError(`${field}.datatype '${String(tensor.datatype)}' is not an OIP v2 datatype`, {
      field: `${field}.datatype`,
    });
  }
  if (!Array.isArray(tensor.shape) || tensor.shape.some((d) => !Number.isSafeInteger(d) || d < 0)) {
    throw new ValidationError(`${field}.shape must list non-negative integer dimensions`, { field: `${field}.shape` });
  }
  if (tensor.parameters !== undefined && BINARY_DATA_SIZE in tensor.parameters) {
    throw new ValidationError(`${field}.parameters.${BINARY_DATA_SIZE} is set by the encoder from raw: do not set it`, {
      field: `${field}.parameters.${BINARY_DATA_SIZE}`,
    });
  }
  const count = tensorElementCount(tensor.shape);
  const hasRaw = tensor.raw !== undefined;
  if (hasRaw === (tensor.data !== undefined)) {
    throw new ValidationError(`${field} needs exactly one of data (JSON) and raw (binary)`, { field });
  }
  if (!hasRaw) {
    if (!Array.isArray(tensor.data) || tensor.data.length !== count) {
      throw new ValidationError(
        `${field}.data holds ${Array.isArray(tensor.data) ? tensor.data.length : 'no'} elements; shape [${tensor.shape.join(', ')}] needs ${count}`,
        { field: `${field}.data` },
      );
    }
    return;
  }
  if (!(tensor.raw instanceof Uint8Array)) {
    throw new ValidationError(`${field}.raw must be a Uint8Array`, { field: `${field}.raw` });
  }
  if (tensor.datatype === 'BYTES') {
    const elements = decodeBytesElements(tensor.raw, `${field}.raw`).length;
    if (elements !== count) {
      throw new ValidationError(
        `${field}.raw holds ${elements} BYTES elements; shape [${tensor.shape.join(', ')}] needs ${count}`,
        { field: `${field}.raw` },
      );
    }
    return;
  }
  const expected = count * TENSOR_ELEMENT_BYTES[tensor.datatype];
  if (tensor.raw.byteLength !== expected) {
    throw new ValidationError(
      `${field}.raw holds ${tensor.raw.byteLength} bytes; ${tensor.datatype} of shape [${tensor.shape.join(', ')}] needs ${expected}`,
      { field: `${field}.raw` },
    );
  }
}

function encodeMessage(message: Message, list: TensorList): EncodedInferBody {
  const tensors = message[list];
  if (!Array.isArray(tensors)) throw new ValidationError(`${list} must be an array of tensors`, { field: list });
  const raws: Uint8Array[] = [];
  const header = tensors.map((tensor, i) => {
    checkTensor(tensor, `${list}[${i}]`);
    if (tensor.raw === undefined) return tensor;
    raws.push(tensor.raw);
    const { raw, ...rest } = tensor;
    return { ...rest, parameters: { ...rest.parameters, [BINARY_DATA_SIZE]: raw.byteLength } };
  });
  const json = Buffer.from(JSON.stringify({ ...message, [list]: header }), 'utf8');
  if (raws.length === 0) return { body: new Uint8Array(json), contentType: JSON_CONTENT_TYPE };
  const body = Buffer.concat([json, ...raws]);
  return {
    body: new Uint8Array(body.buffer, body.byteOffset, body.byteLength),
    headerLength: json.byteLength,
    contentType: BINARY_CONTENT_TYPE,
  };
}

function decodeMessage(body: Uint8Array, headerLength: number | undefined, list: TensorList): Message {
  const length = headerLength ?? body.byteLength;
  if (!Number.isSafeInteger(length) || length < 0 || length > body.byteLength) {
    throw new ValidationError(
      `${INFERENCE_HEADER_CONTENT_LENGTH} is ${headerLength} but the body has ${body.byteLength} bytes`,
      { field: 'headerLength' },
    );
  }
  let message: Message;
  try {
    message = JSON.parse(Buffer.from(body.buffer, body.byteOffset, length).toString('utf8')) as Message;
  } catch (err) {
    throw new ValidationError(`the inference header is not JSON: ${(err as Error).message}`, {
      field: 'body',
      cause: err,
    });
  }
  const tensors = message?.[list] as unknown;
  if (!Array.isArray(tensors)) throw new ValidationError(`the inference header has no ${list} array`, { field: list });
  let at = length;
  const decoded = tensors.map((tensor: Record<string, unknown>, i) => {
    const field = `${list}[${i}]`;
    const parameters = (tensor?.parameters ?? undefined) as Record<string, unknown> | undefined;
    const size = parameters?.[BINARY_DATA_SIZE];
    if (size === undefined) {
      checkTensor(tensor as unknown as InferTensor, field);
      return tensor;
    }
    if (tensor.data !== undefined) {
      throw new ValidationError(`${field} has both data and ${BINARY_DATA_SIZE}: a tensor is JSON or binary`, {
        field,
      });
    }
    if (!Number.isSafeInteger(size) || (size as number) < 0 || at + (size as number) > body.byteLength) {
      throw new ValidationError(
        `${field} declares ${BINARY_DATA_SIZE} ${String(size)} but only ${body.byteLength - at} bytes follow`,
        { field: `${field}.parameters.${BINARY_DATA_SIZE}` },
      );
    }
    const { [BINARY_DATA_SIZE]: _size, ...rest } = parameters as Record<string, string | number | boolean>;
    const { data: _data, parameters: _parameters, ...header } = tensor;
    const out = {
      ...header,
      ...(Object.keys(rest).length > 0 ? { parameters: rest } : {}),
      raw: body.subarray(at, at + (size as number)),
    } as unknown as BinaryTensor;
    at += size as number;
    checkTensor(out, field);
    return out;
  });
  if (at !== body.byteLength) {
    throw new ValidationError(
      `${body.byteLength - at} bytes follow the last binary tensor: the body does not match its ${BINARY_DATA_SIZE} parameters`,
      { field: 'body' },
    );
  }
  return { ...message, [list]: decoded };
}
