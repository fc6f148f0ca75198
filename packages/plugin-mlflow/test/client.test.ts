// Error mapping and outage handling of the MLflow client, against local sockets (no MLflow server needed).
import { createServer, type Server } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { ConflictError, NotFoundError, PermissionDeniedError, UnavailableError, ValidationError } from '@mlplane/core';
import { afterEach, describe, expect, it } from 'vitest';
import { isWriteRace, MlflowApiError, MlflowClient, mapMlflowError } from '../src/index.js';

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

describe('write races', () => {
  it('maps a unique-index violation reported as a bad request to a ConflictError flagged as a lost race', () => {
    const cause = new MlflowApiError(
      400,
      'BAD_REQUEST',
      '(sqlite3.IntegrityError) UNIQUE constraint failed: params.key',
    );
    const err = mapMlflowError(cause, 'POST mlflow/runs/log-batch', 'http://mlflow');
    expect(err).toBeInstanceOf(ConflictError);
    expect(isWriteRace(err)).toBe(true);
    expect(isWriteRace(mapMlflowError(new MlflowApiError(400, 'RESOURCE_ALREADY_EXISTS', 'taken'), 'x', 'y'))).toBe(
      false,
    );
  });
});

describe('MlflowClient outages', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    server = undefined;
  });

  it('turns an unreachable server into UnavailableError with the cause, after bounded retries of an idempotent call', async () => {
    const c = client(`http://127.0.0.1:${await closedPort()}`);
    const err = (await c
      .call('GET', 'mlflow/experiments/get', { params: { experiment_id: '1' }, idempotent: true })
      .catch((e: unknown) => e)) as UnavailableError;
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

  it('lets idle sockets go before the server expires them, so a call after a pause is not lost', async () => {
    // A server that, like uvicorn past its keep-alive timeout, treats a socket idle for 300 ms as expired: the next
    // request on it is dropped unanswered. The client must have let that socket go and opened a fresh one.
    let connections = 0;
    let dropped = 0;
    const raw = createNetServer((socket) => {
      connections++;
      let idleSince = 0;
      let buffered = '';
      socket.on('data', (chunk) => {
        if (idleSince > 0 && Date.now() - idleSince > 300) {
          dropped++;
          socket.destroy();
          return;
        }
        buffered += chunk.toString();
        const head = buffered.indexOf('\r\n\r\n');
        if (head < 0) return;
        const length = Number(/content-length: (\d+)/i.exec(buffered.slice(0, head))?.[1] ?? 0);
        if (buffered.length < head + 4 + length) return;
        buffered = '';
        const body = '{"experiment_id":"1"}';
        socket.write(
          `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
        );
        idleSince = Date.now();
      });
    });
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    const { port } = raw.address() as AddressInfo;
    const connect = (keepAliveMs: number) =>
      new MlflowClient({
        trackingUri: `http://127.0.0.1:${port}`,
        connections: 1,
        connectTimeoutMs: 1000,
        requestTimeoutMs: 2000,
        retries: 0,
        keepAliveMs,
      });
    const create = (c: MlflowClient) =>
      c.call('POST', 'mlflow/experiments/create', { params: { name: 'x' }, idempotent: false });
    const pause = () => new Promise((resolve) => setTimeout(resolve, 500));
    try {
      // A client keeping sockets longer than the server meets the expiry: the fault this guards against.
      const long = connect(5000);
      await create(long);
      await pause();
      await expect(create(long)).rejects.toBeInstanceOf(UnavailableError);
      expect(dropped).toBe(1);
      await long.close();
      // With idle sockets let go first, the same pause costs a new connection and nothing else.
      const short = connect(100);
      const before = connections;
      await create(short);
      await pause();
      await create(short);
      expect(connections - before).toBe(2);
      expect(dropped).toBe(1);
      await short.close();
    } finally {
      await new Promise((resolve) => raw.close(resolve));
    }
  });

  it('repeats an idempotent call that lost a write race, and only such a call', async () => {
    let calls = 0;
    server = createServer((_req, res) => {
      calls++;
      if (calls === 1 || calls === 3) {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error_code: 'BAD_REQUEST', message: 'UNIQUE constraint failed: params.key' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const c = client(`http://127.0.0.1:${port}`, 3);
    await c.call('POST', 'mlflow/runs/log-batch', { params: { run_id: 'r' }, idempotent: true });
    // The race was met once, then the repeat went through.
    expect(calls).toBe(2);
    expect(c.retriesDone).toBe(1);
    const err = await c.call('POST', 'mlflow/runs/create', { params: {}, idempotent: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect(calls).toBe(3);
    await c.close();
  });

  it('refuses a tracking URI that is not http(s)', () => {
    expect(() => client('ftp://x')).toThrow(ValidationError);
  });
});
