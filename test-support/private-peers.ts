// Fault tests restart their peers, so they run private ones (own state dir and ports via scripts/peers) that no
// other test file shares: a restart of the shared PostgreSQL or Kafka would break whatever runs beside them.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PeerAddress } from './outage.js';

const peersScript = fileURLToPath(new URL('../scripts/peers', import.meta.url));

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

export interface PrivatePeers {
  /** Connection variables as `scripts/peers env` prints them (MLPLANE_PG_URL, MLPLANE_KAFKA_BROKERS...). */
  readonly env: Readonly<Record<string, string>>;
  /**
   * `scripts/peers restart <name>`; KILL is a crash, TERM a clean shutdown. Resolves once healthy again.
   * `downSeconds` keeps it stopped that long before it starts again, so that clients surely meet the outage.
   */
  restart(name: string, signal: 'TERM' | 'KILL', options?: { readonly downSeconds?: number }): Promise<void>;
  /** Where the peer listens, for an OutageWatch. */
  address(name: PeerName): PeerAddress;
  /** Stops one peer (its data is removed) until `start` brings it back on the same port. */
  stop(name: string): Promise<void>;
  start(name: string): Promise<void>;
  down(): Promise<void>;
}

export type PeerName = 'postgres' | 'kafka' | 'redis';

const PORT_VARIABLES: Readonly<Record<PeerName, string>> = {
  postgres: 'MLPLANE_PG_PORT',
  kafka: 'MLPLANE_KAFKA_PORT',
  redis: 'MLPLANE_REDIS_PORT',
};

function run(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(peersScript, args, { env, timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`scripts/peers ${args.join(' ')} failed: ${err.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

/** Starts `names` on free ports under a fresh MLPLANE_PEERS_STATE; `down()` stops them and removes their data. */
export async function startPrivatePeers(names: readonly string[]): Promise<PrivatePeers> {
  const state = await mkdtemp(join(tmpdir(), 'mlplane-private-peers-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    MLPLANE_PEERS_STATE: state,
    MLPLANE_PG_PORT: String(await freePort()),
    MLPLANE_KAFKA_PORT: String(await freePort()),
    MLPLANE_KAFKA_CONTROLLER_PORT: String(await freePort()),
    MLPLANE_REDIS_PORT: String(await freePort()),
    MLPLANE_K8S_PORT: String(await freePort()),
    MLPLANE_K8S_ETCD_PORT: String(await freePort()),
    MLPLANE_K8S_ETCD_PEER_PORT: String(await freePort()),
    MLPLANE_K8S_CONTROLLER_MANAGER_PORT: String(await freePort()),
    MLPLANE_K8S_SCHEDULER_PORT: String(await freePort()),
    MLPLANE_K8S_PROCESS_NODE_PORT: String(await freePort()),
  };
  const down = async () => {
    await run(['down', ...names], env, 120_000).catch(() => undefined);
    await rm(state, { recursive: true, force: true });
  };
  try {
    await run(['up', ...names], env, 300_000);
  } catch (err) {
    await down();
    throw err;
  }
  const vars: Record<string, string> = {};
  for (const line of (await run(['env'], env, 30_000)).split('\n')) {
    const m = /^export ([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) vars[m[1]!] = m[2]!;
  }
  return {
    env: vars,
    restart: async (name, signal, options = {}) => {
      const pause = String(options.downSeconds ?? 0);
      await run(
        ['restart', name],
        { ...env, MLPLANE_PEERS_RESTART_SIGNAL: signal, MLPLANE_PEERS_RESTART_PAUSE_S: pause },
        300_000,
      );
    },
    address: (name) => ({ host: '127.0.0.1', port: Number(env[PORT_VARIABLES[name]]) }),
    stop: async (name) => {
      await run(['down', name], env, 120_000);
    },
    start: async (name) => {
      await run(['up', name], env, 300_000);
    },
    down,
  };
}
