import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MlplaneApi } from './http/app.js';

export interface ServeOptions {
  /** 0 picks a free port (read it from `ServedApi.port`). Default 8080. */
  readonly port?: number;
  /** Default 127.0.0.1: only this machine. Use 0.0.0.0 (or ::) behind a proxy or in a container. */
  readonly host?: string;
  /** How long `close()` waits for requests in flight before cutting their connections; default 10 s. */
  readonly closeDeadlineMs?: number;
}

export interface ServedApi {
  readonly server: Server;
  readonly host: string;
  readonly port: number;
  /** `http://host:port`, with a loopback address when the server listens on every interface. */
  readonly url: string;
  /**
   * Stops gracefully: accepts no new connection, lets requests in flight finish (their answers carry
   * `Connection: close`), closes keep-alive connections as soon as they are idle, and after `deadlineMs` cuts the
   * connections still open. Resolves once the server is closed; `cut` counts the requests still running at the
   * deadline (0 when every one finished). Calling it again returns the same promise.
   */
  close(deadlineMs?: number): Promise<{ readonly cut: number }>;
}

/** Serves the API (`api.listener`) on its own Node HTTP server; resolves once it listens. */
export async function serve(api: Pick<MlplaneApi, 'listener'>, options: ServeOptions = {}): Promise<ServedApi> {
  const inFlight = new Set<ServerResponse>();
  let closing = false;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    inFlight.add(res);
    res.once('close', () => {
      inFlight.delete(res);
      // A keep-alive connection that just went idle while closing has nothing more to carry.
      if (closing) server.closeIdleConnections();
    });
    if (closing) res.setHeader('connection', 'close');
    api.listener(req, res);
  });
  // Node's defaults close keep-alive sockets after 5 s idle; proxies in front usually keep theirs longer, and a
  // server closing a socket the proxy is about to reuse answers that request with a reset.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;

  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;

  let closed: Promise<{ cut: number }> | undefined;
  const close = (deadlineMs = options.closeDeadlineMs ?? 10_000) => {
    closed ??= new Promise((resolve) => {
      closing = true;
      // Answers not yet started tell their clients not to reuse the connection.
      for (const res of inFlight) if (!res.headersSent) res.setHeader('connection', 'close');
      let cut = 0;
      const timer = setTimeout(() => {
        cut = inFlight.size;
        server.closeAllConnections();
      }, deadlineMs);
      timer.unref();
      server.close(() => {
        clearTimeout(timer);
        resolve({ cut });
      });
      server.closeIdleConnections();
    });
    return closed;
  };
  return { server, host, port, url: `http://${shownHost}:${port}`, close };
}
