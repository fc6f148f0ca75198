import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

/**
 * The `mlplane` command as a real process, run from the sources (no build needed): node with the workspace's source
 * condition and tsx, the way `pnpm bench` runs TypeScript.
 */
const BIN = fileURLToPath(new URL('../src/bin.ts', import.meta.url));
const TSX = fileURLToPath(new URL('../../../node_modules/tsx/dist/loader.mjs', import.meta.url));
const NODE_ARGS = ['--conditions=@mlplane/source', '--import', TSX, BIN];

/** An environment without the caller's MLPLANE_* variables, so tests see only what they pass. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('MLPLANE')) env[k] = v;
  return { ...env, ...extra };
}

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `mlplane ...args` to completion. */
export function mlplane(
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv },
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [...NODE_ARGS, ...args],
      { cwd: options.cwd, env: options.env ?? cleanEnv(), maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        if (err && typeof err.code !== 'number') reject(err);
        else resolve({ code, stdout, stderr });
      },
    );
  });
}

/**
 * Runs `mlplane ...args` with a terminal as its stdout and stderr (util-linux `script` gives it a pseudo-terminal),
 * as a person runs it: progress bars are drawn only there. Resolves with everything the terminal showed.
 */
export function mlplaneInTerminal(
  args: readonly string[],
  options: { cwd: string; env: NodeJS.ProcessEnv },
): Promise<CliResult> {
  const quote = (arg: string) => `'${arg.replaceAll("'", "'\\''")}'`;
  const command = [process.execPath, ...NODE_ARGS, ...args].map(quote).join(' ');
  return new Promise((resolve, reject) => {
    execFile(
      'script',
      ['-qec', command, '/dev/null'],
      { cwd: options.cwd, env: options.env },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') reject(err);
        else resolve({ code: err ? (err.code as number) : 0, stdout, stderr });
      },
    );
  });
}

/** A TCP port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface UpProcess {
  readonly child: ChildProcess;
  readonly url: string;
  /** Everything printed on stdout so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
  /** Sends `signal` and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Spawns `mlplane up` in `cwd` on `port`, logging at info, without waiting for it. */
export function spawnUp(cwd: string, port: number, args: readonly string[] = []): ChildProcess {
  return spawn(process.execPath, [...NODE_ARGS, 'up', '--port', String(port), ...args], {
    cwd,
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Starts `mlplane up` and resolves once it printed that it is up (or rejects with its output when it exits first). */
export async function startUp(
  args: readonly string[],
  options: { cwd: string; port: number; env?: Record<string, string> },
): Promise<UpProcess> {
  const child = spawn(process.execPath, [...NODE_ARGS, 'up', '--port', String(options.port), ...args], {
    cwd: options.cwd,
    env: cleanEnv({ MLPLANE__PLATFORM__LOG_LEVEL: 'warn', ...options.env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => {
    out += b;
  });
  child.stderr!.on('data', (b: Buffer) => {
    err += b;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`mlplane up did not start in 60 s:\n${out}\n${err}`)), 60_000);
    const check = () => {
      if (out.includes('Stop with Ctrl-C')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`mlplane up exited with ${code} before it was up:\n${out}\n${err}`));
    });
  });
  return {
    child,
    url: `http://127.0.0.1:${options.port}`,
    stdout: () => out,
    stderr: () => err,
    exited,
    stop: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
