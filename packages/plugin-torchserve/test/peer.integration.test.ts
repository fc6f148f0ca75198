// Checks the TorchServe peer (`scripts/peers up torchserve`): the tiny_linear model (y = 2*x1 + 3*x2 + 1) answers
// exact predictions over REST and gRPC, the management API describes it, and metrics come in Prometheus text.
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, describe, expect, it } from 'vitest';

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run scripts/peers up torchserve, then eval "$(scripts/peers env)"`);
  return value;
}

const protoDir = fileURLToPath(new URL('../proto/', import.meta.url));

type Unary<Req, Res> = (request: Req, callback: (error: grpc.ServiceError | null, response?: Res) => void) => void;
interface InferenceClient extends grpc.Client {
  Ping: Unary<Record<string, never>, { health: string }>;
  Predictions: Unary<{ model_name: string; input: Record<string, Buffer> }, { prediction: Buffer }>;
}
interface ManagementClient extends grpc.Client {
  DescribeModel: Unary<{ model_name: string }, { msg: string }>;
  ListModels: Unary<{ limit: number }, { msg: string }>;
}
type ClientConstructor<C> = new (address: string, credentials: grpc.ChannelCredentials) => C;

function loadService<C>(file: string, path: string[]): ClientConstructor<C> {
  const definition = protoLoader.loadSync(file, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    includeDirs: [protoDir],
  });
  let node: unknown = grpc.loadPackageDefinition(definition);
  for (const part of path) node = (node as Record<string, unknown>)[part];
  if (typeof node !== 'function') throw new Error(`service ${path.join('.')} not found in ${file}`);
  return node as ClientConstructor<C>;
}

function unary<Req, Res>(client: grpc.Client, method: Unary<Req, Res>, request: Req): Promise<Res> {
  return new Promise((resolve, reject) => {
    method.call(client, request, (error, response) => (error ? reject(error) : resolve(response as Res)));
  });
}

const clients: grpc.Client[] = [];
afterAll(() => {
  for (const c of clients) c.close();
});

describe('torchserve peer', () => {
  it('predicts exact values over REST', async () => {
    const base = requireEnv('MLPLANE_TORCHSERVE_INFERENCE_URL');
    const model = requireEnv('MLPLANE_TORCHSERVE_MODEL');
    const ping = await fetch(new URL('/ping', base));
    expect(await ping.json()).toEqual({ status: 'Healthy' });

    const res = await fetch(new URL(`/predictions/${model}`, base), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        data: [
          [1, 1],
          [2, 3],
          [-1, 0.5],
        ],
      }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ predictions: [6, 14, 0.5] });
  });

  it('answers an unknown model with 404', async () => {
    const res = await fetch(new URL('/predictions/no_such_model', requireEnv('MLPLANE_TORCHSERVE_INFERENCE_URL')), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"data":[[1,1]]}',
    });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ code: 404, type: 'ModelNotFoundException' });
  });

  it('describes the model over the management REST API', async () => {
    const model = requireEnv('MLPLANE_TORCHSERVE_MODEL');
    const res = await fetch(new URL(`/models/${model}`, requireEnv('MLPLANE_TORCHSERVE_MANAGEMENT_URL')));
    expect(res.status).toBe(200);
    const [description] = (await res.json()) as { modelName: string; workers: { status: string }[] }[];
    expect(description?.modelName).toBe(model);
    expect(description?.workers.map((w) => w.status)).toContain('READY');
  });

  it('serves Prometheus metrics', async () => {
    const res = await fetch(new URL('/metrics', requireEnv('MLPLANE_TORCHSERVE_METRICS_URL')));
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/^# TYPE ts_inference_requests_total counter$/m);
  });

  it('predicts exact values over gRPC', async () => {
    const model = requireEnv('MLPLANE_TORCHSERVE_MODEL');
    const Inference = loadService<InferenceClient>('inference.proto', [
      'org',
      'pytorch',
      'serve',
      'grpc',
      'inference',
      'InferenceAPIsService',
    ]);
    const client = new Inference(requireEnv('MLPLANE_TORCHSERVE_GRPC'), grpc.credentials.createInsecure());
    clients.push(client);
    expect(await unary(client, client.Ping, {})).toEqual({ health: expect.stringContaining('Healthy') });

    const response = await unary(client, client.Predictions, {
      model_name: model,
      input: {
        data: Buffer.from(
          JSON.stringify([
            [1, 1],
            [0, 0],
          ]),
        ),
      },
    });
    expect(JSON.parse(response.prediction.toString('utf8'))).toEqual({ predictions: [6, 1] });

    // TorchServe 0.12 answers an unknown model with INTERNAL (not NOT_FOUND) and this message.
    await expect(
      unary(client, client.Predictions, { model_name: 'no_such_model', input: { data: Buffer.from('[[1,1]]') } }),
    ).rejects.toMatchObject({ code: grpc.status.INTERNAL, details: expect.stringContaining('Model not found') });
  });

  it('describes the model over gRPC management', async () => {
    const model = requireEnv('MLPLANE_TORCHSERVE_MODEL');
    const Management = loadService<ManagementClient>('management.proto', [
      'org',
      'pytorch',
      'serve',
      'grpc',
      'management',
      'ManagementAPIsService',
    ]);
    const client = new Management(requireEnv('MLPLANE_TORCHSERVE_GRPC_MANAGEMENT'), grpc.credentials.createInsecure());
    clients.push(client);
    const listed = JSON.parse((await unary(client, client.ListModels, { limit: 10 })).msg) as {
      models: { modelName: string }[];
    };
    expect(listed.models.map((m) => m.modelName)).toContain(model);
    const described = JSON.parse((await unary(client, client.DescribeModel, { model_name: model })).msg) as {
      modelName: string;
    }[];
    expect(described[0]?.modelName).toBe(model);
  });
});
