import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { type ServedApi, serve } from '../src/index.js';
import { startTestApi } from './support.js';

/** A listener whose answers wait until the test releases them, so requests are in flight when close starts. */
function gatedListener() {
  const waiting: (() => void)[] = [];
  let arrived = 0;
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    arrived++;
    req.resume();
    req.on('end', () => {
      waiting.push(() => res.end(`done ${req.url}`));
    });
  };
  return {
    listener,
    arrived: () => arrived,
    waitingCount: () => waiting.length,
    release: () => {
      for (const finish of waiting.splice(0)) finish();
    },
  };
}

const until = async (check: () => boolean, what: string) => {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > 5000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

let served: ServedApi | undefined;
let agent: Agent | undefined;
afterEach(async () => {
  await served?.close(0);
  await agent?.close();
  served = undefined;
  agent = undefined;
});

describe('serve', () => {
  it('serves the API on a free port', async () => {
    await using t = await startTestApi();
    served = await serve(t.api, { port: 0 });
    expect(served.port).toBeGreaterThan(0);
    const res = await request(`${served.url}/health`);
    expect(res.statusCode).toBe(200);
    expect(await res.body.json()).toEqual({ status: 'ok' });
  });

  it('lets requests in flight finish, refuses new connections and closes idle keep-alive ones', async () => {
    const gate = gatedListener();
    served = await serve({ listener: gate.listener }, { port: 0 });
    agent = new Agent({ keepAliveTimeout: 60_000, pipelining: 0 });
    // An idle keep-alive connection, left open by a finished request.
    const idle = request(`${served.url}/idle`, { dispatcher: agent });
    await until(() => gate.waitingCount() === 1, 'the first request');
    gate.release();
    expect((await idle).statusCode).toBe(200);
    // Three requests in flight, on their own connections.
    const inFlight = [1, 2, 3].map((n) =>
      request(`${served!.url}/slow/${n}`, { dispatcher: new Agent({ pipelining: 0 }) }),
    );
    await until(() => gate.waitingCount() === 3, 'three requests in flight');

    const closed = served.close(5000);
    // The listening socket is gone at once: a new connection is refused.
    await expect(
      new Promise((resolve, reject) => {
        const socket = connect(served!.port, '127.0.0.1', () => resolve(socket.destroy()));
        socket.once('error', reject);
      }),
    ).rejects.toMatchObject({ code: 'ECONNREFUSED' });

    gate.release();
    const answers = await Promise.all(inFlight);
    expect(answers.map((a) => a.statusCode)).toEqual([200, 200, 200]);
    expect(answers.map((a) => a.headers.connection)).toEqual(['close', 'close', 'close']);
    expect(await Promise.all(answers.map((a) => a.body.text()))).toEqual([
      'done /slow/1',
      'done /slow/2',
      'done /slow/3',
    ]);
    // Closed without waiting for the idle keep-alive connection to time out (65 s).
    expect(await closed).toEqual({ cut: 0 });
    expect(gate.arrived()).toBe(4);
  });

  it('cuts requests still running at the deadline', async () => {
    const gate = gatedListener();
    served = await serve({ listener: gate.listener }, { port: 0 });
    const stuck = request(`${served.url}/stuck`, { dispatcher: new Agent({ pipelining: 0 }) });
    await until(() => gate.waitingCount() === 1, 'the request');
    const started = Date.now();
    expect(await served.close(200)).toEqual({ cut: 1 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    await expect(stuck).rejects.toThrow(/other side closed|socket/i);
  });

  it('fails to start on a port in use, with the reason', async () => {
    served = await serve({ listener: gatedListener().listener }, { port: 0 });
    await expect(serve({ listener: gatedListener().listener }, { port: served.port })).rejects.toMatchObject({
      code: 'EADDRINUSE',
    });
  });
});
