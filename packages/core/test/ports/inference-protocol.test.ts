import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/ports/errors.js';
import {
  BINARY_DATA_SIZE,
  decodeBytesElements,
  decodeInferRequest,
  decodeInferResponse,
  encodeBytesElements,
  encodeInferRequest,
  encodeInferResponse,
  type InferRequest,
  type InferResponse,
} from '../../src/ports/inference-protocol.js';

const le = (values: number[], bytes: 4 | 8, kind: 'f' | 'i'): Uint8Array => {
  const buf = Buffer.alloc(values.length * bytes);
  values.forEach((v, i) => {
    if (kind === 'f' && bytes === 4) buf.writeFloatLE(v, i * 4);
    else if (kind === 'i' && bytes === 4) buf.writeInt32LE(v, i * 4);
    else buf.writeBigInt64LE(BigInt(v), i * 8);
  });
  return new Uint8Array(buf);
};

function expectValidation(fn: () => unknown, message: string, field?: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ValidationError);
  expect((err as ValidationError).message).toContain(message);
  if (field !== undefined) expect((err as ValidationError).field).toBe(field);
}

describe('OIP v2 binary tensor data', () => {
  it('sends an all-JSON request as plain JSON, without a header length', () => {
    const request: InferRequest = {
      id: 'r1',
      inputs: [{ name: 'x', shape: [2, 2], datatype: 'FP32', data: [1, 2, 3, 4] }],
    };
    const encoded = encodeInferRequest(request);
    expect(encoded.contentType).toBe('application/json');
    expect(encoded.headerLength).toBeUndefined();
    expect(JSON.parse(Buffer.from(encoded.body).toString())).toEqual(request);
    expect(decodeInferRequest(encoded.body)).toEqual(request);
  });

  it('puts binary tensors after the JSON header in input order, each with binary_data_size', () => {
    const image = le([0.5, -1.25, 3, 4, 5, 6], 4, 'f');
    const tokens = encodeBytesElements(['héllo', new Uint8Array([0, 255])]);
    const request: InferRequest = {
      inputs: [
        { name: 'image', shape: [2, 3], datatype: 'FP32', raw: image },
        { name: 'scale', shape: [1], datatype: 'FP64', data: [0.5] },
        { name: 'tokens', shape: [2], datatype: 'BYTES', raw: tokens, parameters: { content_type: 'str' } },
      ],
      outputs: [{ name: 'probabilities', parameters: { binary_data: true } }],
    };
    const { body, headerLength, contentType } = encodeInferRequest(request);
    expect(contentType).toBe('application/octet-stream');
    const header = JSON.parse(Buffer.from(body.subarray(0, headerLength)).toString('utf8'));
    expect(header.inputs).toEqual([
      { name: 'image', shape: [2, 3], datatype: 'FP32', parameters: { [BINARY_DATA_SIZE]: 24 } },
      { name: 'scale', shape: [1], datatype: 'FP64', data: [0.5] },
      { name: 'tokens', shape: [2], datatype: 'BYTES', parameters: { content_type: 'str', [BINARY_DATA_SIZE]: 16 } },
    ]);
    expect(header.outputs).toEqual([{ name: 'probabilities', parameters: { binary_data: true } }]);
    // The raw bytes follow the header back to back, in the order of their tensors.
    expect(Buffer.from(body.subarray(headerLength)).equals(Buffer.concat([image, tokens]))).toBe(true);
    // BYTES: 4-byte little-endian length, then the bytes ('héllo' is 6 bytes in UTF-8).
    expect([...tokens.subarray(0, 4)]).toEqual([6, 0, 0, 0]);

    const decoded = decodeInferRequest(body, headerLength);
    expect(decoded.outputs).toEqual(request.outputs);
    expect(decoded.inputs[0]).toEqual({ name: 'image', shape: [2, 3], datatype: 'FP32', raw: image });
    expect(decoded.inputs[1]).toEqual(request.inputs[1]);
    expect(decoded.inputs[2]).toEqual({
      name: 'tokens',
      shape: [2],
      datatype: 'BYTES',
      parameters: { content_type: 'str' },
      raw: tokens,
    });
    const elements = decodeBytesElements(decoded.inputs[2]!.raw!);
    expect(Buffer.from(elements[0]!).toString('utf8')).toBe('héllo');
    expect([...elements[1]!]).toEqual([0, 255]);
  });

  it('decodes a response holding binary and JSON outputs', () => {
    const logits = le([7, -3], 8, 'i');
    const response: InferResponse = {
      model_name: 'fraud',
      model_version: '3',
      outputs: [
        { name: 'label', shape: [2], datatype: 'INT64', raw: logits },
        { name: 'flags', shape: [3], datatype: 'BOOL', raw: new Uint8Array([1, 0, 1]) },
        { name: 'note', shape: [1], datatype: 'BYTES', data: ['ok'] },
      ],
    };
    const { body, headerLength } = encodeInferResponse(response);
    expect(decodeInferResponse(body, headerLength)).toEqual(response);
  });

  it('refuses tensors whose data does not fit their shape and type, before anything is sent', () => {
    const tensor = (t: object): InferRequest => ({ inputs: [t as never] });
    expectValidation(
      () => encodeInferRequest(tensor({ name: 'x', shape: [2, 2], datatype: 'FP32', data: [1, 2, 3] })),
      'holds 3 elements; shape [2, 2] needs 4',
      'inputs[0].data',
    );
    expectValidation(
      () => encodeInferRequest(tensor({ name: 'x', shape: [3], datatype: 'FP32', raw: new Uint8Array(8) })),
      'holds 8 bytes; FP32 of shape [3] needs 12',
      'inputs[0].raw',
    );
    expectValidation(
      () => encodeInferRequest(tensor({ name: 'x', shape: [2], datatype: 'BYTES', raw: encodeBytesElements(['a']) })),
      'holds 1 BYTES elements; shape [2] needs 2',
    );
    expectValidation(
      () =>
        encodeInferRequest(tensor({ name: 'x', shape: [1], datatype: 'BYTES', raw: new Uint8Array([9, 0, 0, 0, 1]) })),
      'runs past the end',
    );
    expectValidation(
      () => encodeInferRequest(tensor({ name: 'x', shape: [1], datatype: 'FP8', data: [1] })),
      "'FP8' is not an OIP v2 datatype",
      'inputs[0].datatype',
    );
    expectValidation(
      () => encodeInferRequest(tensor({ name: 'x', shape: [1], datatype: 'FP32', data: [1], raw: new Uint8Array(4) })),
      'exactly one of data (JSON) and raw (binary)',
    );
    expectValidation(
      () =>
        encodeInferRequest(
          tensor({ name: 'x', shape: [1], datatype: 'FP32', data: [1], parameters: { [BINARY_DATA_SIZE]: 4 } }),
        ),
      'set by the encoder',
    );
    expectValidation(
      () => encodeInferRequest(tensor({ name: 'x', shape: [-1], datatype: 'FP32', data: [] })),
      'non-negative integer dimensions',
    );
  });

  it('refuses bodies whose bytes do not match their header', () => {
    const { body, headerLength } = encodeInferRequest({
      inputs: [{ name: 'x', shape: [2], datatype: 'INT32', raw: le([1, 2], 4, 'i') }],
    });
    expectValidation(() => decodeInferRequest(body, body.byteLength + 1), 'but the body has', 'headerLength');
    expectValidation(
      () => decodeInferRequest(Buffer.concat([body, Buffer.from([0])]), headerLength),
      '1 bytes follow the last binary tensor',
      'body',
    );
    expectValidation(
      () => decodeInferRequest(body.subarray(0, body.byteLength - 1), headerLength),
      'declares binary_data_size 8 but only 7 bytes follow',
    );
    expectValidation(() => decodeInferRequest(body.subarray(1), headerLength! - 1), 'not JSON', 'body');
    const both = Buffer.from(
      JSON.stringify({
        inputs: [{ name: 'x', shape: [1], datatype: 'INT32', data: [1], parameters: { [BINARY_DATA_SIZE]: 4 } }],
      }),
    );
    expectValidation(
      () => decodeInferRequest(Buffer.concat([both, Buffer.alloc(4)]), both.byteLength),
      'both data and binary_data_size',
    );
    expectValidation(() => decodeInferResponse(Buffer.from('{"model_name":"m"}')), 'no outputs array', 'outputs');
  });
});
