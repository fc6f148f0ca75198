// A real HTTP receiver on 127.0.0.1 for the webhook tests: answers each request with the next scripted status.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';

export interface ReceivedRequest {
  readonly method: string | undefined;
  readonly path: string | undefined;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly at: number;
}

export interface Receiver {
  readonly url: string;
  readonly requests: ReceivedRequest[];
  /** Statuses for the next requests, in order; 200 once they are used up. */
  script(...statuses: (number | { status: number; headers?: Record<string, string> })[]): void;
  close(): Promise<void>;
}

export async function startReceiver(): Promise<Receiver> {
  const requests: ReceivedRequest[] = [];
  const queue: { status: number; headers?: Record<string, string> }[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({
        method: req.method,
        path: req.url,
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
      });
      const next = queue.shift() ?? { status: 200 };
      res.writeHead(next.status, { 'content-type': 'text/plain', ...next.headers });
      res.end(next.status < 300 ? 'ok' : 'no');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/hooks/mlplane`,
    requests,
    script: (...statuses) => {
      for (const s of statuses) queue.push(typeof s === 'number' ? { status: s } : s);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
