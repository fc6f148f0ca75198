// A private S3 server for tests that stop it: the peer's own start script (scripts/peers.d/s3.sh, the same
// versitygw binary) under a fresh MLPLANE_PEERS_STATE and a free port, so the shared peer is never touched.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { S3ConfigInput } from '../src/config.js';

const peersScript = fileURLToPath(new URL('../../../scripts/peers', import.meta.url));

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${err.message}\n${stdout}${stderr}`));
      else resolve(stdout);
    });
  });
}

export interface PrivateS3 {
  /** Connection variables as `scripts/peers env` prints them (MLPLANE_S3_ENDPOINT...). */
  readonly env: Readonly<Record<string, string>>;
  /** Plugin config for this server. */
  config(overrides?: Partial<S3ConfigInput>): S3ConfigInput;
  /** Kills the server at once (SIGKILL, as a crash or a lost host); its data stays for `start`. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** Runs `versitygw admin ...` against it as the root account (needs `iam`). */
  admin(...args: string[]): Promise<string>;
  down(): Promise<void>;
}

/** `iam` runs versitygw's internal IAM service, so that tests can create accounts without access to the bucket. */
export async function startPrivateS3(options: { iam?: boolean } = {}): Promise<PrivateS3> {
  const state = await mkdtemp(join(tmpdir(), 'mlplane-private-s3-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    MLPLANE_PEERS_STATE: state,
    MLPLANE_S3_PORT: String(await freePort()),
    // versitygw reads its flags from the environment too; scripts/peers hands its environment to the server.
    ...(options.iam ? { VGW_IAM_DIR: join(state, 'iam') } : {}),
  };
  if (options.iam) await mkdir(join(state, 'iam'));
  const down = async () => {
    await run(peersScript, ['down', 's3'], env, 60_000).catch(() => undefined);
    await rm(state, { recursive: true, force: true });
  };
  try {
    await run(peersScript, ['up', 's3'], env, 600_000);
  } catch (err) {
    await down();
    throw err;
  }
  const vars: Record<string, string> = {};
  for (const line of (await run(peersScript, ['env'], env, 30_000)).split('\n')) {
    const m = /^export (MLPLANE_S3_[A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) vars[m[1]!] = m[2]!;
  }
  const cache = process.env.MLPLANE_PEERS_CACHE ?? join(process.env.HOME ?? '', '.cache', 'mlplane-peers');
  return {
    env: vars,
    config: (overrides = {}) => ({
      bucket: vars.MLPLANE_S3_BUCKET!,
      endpoint: vars.MLPLANE_S3_ENDPOINT!,
      region: vars.MLPLANE_S3_REGION!,
      forcePathStyle: true,
      credentials: { accessKeyId: vars.MLPLANE_S3_ACCESS_KEY!, secretAccessKey: vars.MLPLANE_S3_SECRET_KEY! },
      ...overrides,
    }),
    stop: async () => {
      // The server was started for this test by scripts/peers, in its own process group; its PIDs are on file.
      const pidFile = join(state, 's3.pids');
      const pids = (await readFile(pidFile, 'utf8')).split('\n').filter(Boolean).map(Number);
      for (const pid of pids) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      // A process blocked in disk I/O dies only when the I/O ends; until then its port still accepts connections.
      const deadline = Date.now() + 60_000;
      while (pids.some(alive) || (await accepts(Number(vars.MLPLANE_S3_ENDPOINT!.split(':').pop())))) {
        if (Date.now() > deadline) throw new Error(`the private S3 server (PIDs ${pids.join(', ')}) did not die`);
        await new Promise((r) => setTimeout(r, 50));
      }
      // `restart` would otherwise signal these PIDs again, which the system may have reused.
      await rm(pidFile, { force: true });
    },
    start: async () => {
      await run(peersScript, ['restart', 's3'], env, 120_000);
    },
    admin: (...args) =>
      run(
        join(cache, 's3', 'bin', 'versitygw'),
        [
          'admin',
          '--access',
          vars.MLPLANE_S3_ACCESS_KEY!,
          '--secret',
          vars.MLPLANE_S3_SECRET_KEY!,
          '--endpoint-url',
          vars.MLPLANE_S3_ENDPOINT!,
          ...args,
        ],
        env,
        30_000,
      ),
    down,
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether something listens on the port (a connection is accepted). */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
