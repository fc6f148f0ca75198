// Error mapping and outage handling of the MLflow client, against local sockets (no MLflow server needed).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConflictError, NotFoundError, PermissionDeniedError, UnavailableError, ValidationError } from '@mlplane/core';
import { afterEach, describe, expect, it } from 'vitest';
import { MlflowApiError, MlflowClient, mapMlflowError } from '../src/index.js';

function client(trackingUri: string, retries = 2): MlflowClient {
  return new MlflowClient({
    trackingUri,
    connections: 2,
    connectTimeoutMs: 1000,
    requestTimeoutMs: 2000,
    retries,
    retryMinDelayMs: 10,
  });
}

/** A port nothing listens on: bound once, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('mapMlflowError', () => {
  const cases: [number, string, new (...args: any[]) => Error][] = [
    [400, 'RESOURCE_ALREADY_EXISTS', ConflictError],
    [404, 'RESOURCE_DOES_NOT_EXIST', NotFoundError],
    [400, 'INVALID_PARAMETER_VALUE', ValidationError],
    [400, 'INVALID_STATE', ConflictError],
    [403, 'PERMISSION_DENIED', PermissionDeniedError],
    [401, 'UNAUTHENTICATED', PermissionDeniedError],
    [500, 'INTERNAL_ERROR', UnavailableError],
    [503, 'TEMPORARILY_UNAVAILABLE', UnavailableError],
    [429, 'REQUEST_LIMIT_EXCEEDED', UnavailableError],
    [404, 'HTTP_404', NotFoundError],
  ];
  for (const [status, code, type] of cases) {
    it(`maps ${status} ${code} to ${type.name}, keeping MLflow's error as the cause`, () => {
      const cause = new MlflowApiError(status, code, 'the server said so');
      const err = mapMlflowError(cause, 'a call', 'http://mlflow');
      expect(err).toBeInstanceOf(type);
      expect(err.message).toContain('the server said so');
      expect(err.cause).toBe(cause);
    });
  }
});

describe('MlflowClient outages', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    server = undefined;
  });

  it('turns an unreachable server into UnavailableError with the cause, after bounded retries of an idempotent call', async () => {
    const c = client(`http://127.0.0.1:${await closedPort()}`);
    const err = await c
      .call('GET', 'mlflow/experiments/get', { params: { experiment_id: '1' }, idempotent: true })
      .catch((e) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect(err.message).toContain('did not answer');
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
    expect(c.retriesDone).toBe(2);
    await c.close();
  });

  it('never repeats a call that is not idempotent', async () => {
    const c = client(`http://127.0.0.1:${await closedPort()}`);
    const err = await c
      .call('POST', 'mlflow/experiments/create', { params: { name: 'x' }, idempotent: false })
      .catch((e) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect(c.retriesDone).toBe(0);
    await c.close();
  });

  it('retries 503 answers of an idempotent call until the server answers, and sends the bearer token', async () => {
    let calls = 0;
    const auth: (string | undefined)[] = [];
    server = createServer((req, res) => {
      calls++;
      auth.push(req.headers.authorization);
      if (calls <= 2) {
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error_code: 'TEMPORARILY_UNAVAILABLE', message: 'busy' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ experiment: { experiment_id: '7', name: 'n' } }));
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const c = new MlflowClient({
      trackingUri: `http://127.0.0.1:${port}`,
      auth: { kind: 'bearer', token: 'tok' },
      connections: 2,
      connectTimeoutMs: 1000,
      requestTimeoutMs: 2000,
      retries: 3,
      retryMinDelayMs: 10,
    });
    const res = await c.call<{ experiment: { experiment_id: string } }>('GET', 'mlflow/experiments/get', {
      params: { experiment_id: '7' },
      idempotent: true,
    });
    // The outage was met twice, then the answer came through.
    expect(calls).toBe(3);
    expect(c.retriesDone).toBe(2);
    expect(res.experiment.experiment_id).toBe('7');
    expect(auth).toEqual(['Bearer tok', 'Bearer tok', 'Bearer tok']);
    await c.close();
  });

  it('refuses a tracking URI that is not http(s)', () => {
    expect(() => client('ftp://x')).toThrow(ValidationError);
  });
});
