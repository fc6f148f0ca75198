import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import type { GpuDevice } from './slots.js';

/**
 * Runs the replica's program under `sh`, which writes the program's exit status to a file when it ends: a platform
 * that restarts while the program runs is no longer its parent and cannot wait for it, so it reads the file
 * afterwards. The program runs as a child of `sh`, in the group that kill signals reach. `sh` survives SIGTERM (a
 * handler, which exec resets, so the program keeps the default) and goes on waiting, so that a program that takes
 * time to shut down (a checkpoint) is not cut short by the group being killed when its wrapper ends. A program killed
 * by signal N exits 128+N, as container runtimes report it.
 */
const WRAPPER = [
  'exitfile=$1; shift',
  'trap : TERM',
  '"$@" &',
  'child=$!',
  // wait returns early when a trapped signal arrives; keep waiting while the program lives.
  'while :; do wait "$child"; code=$?; kill -0 "$child" 2>/dev/null || break; done',
  // Owner-only, as every file of the data dir; the program itself keeps the umask it was given.
  'umask 077; echo "$code" > "$exitfile.tmp" && mv "$exitfile.tmp" "$exitfile"',
  'exit "$code"',
].join('\n');

export interface LaunchOptions {
  readonly command: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd?: string;
  /** stdout and stderr of the program go straight to this file descriptor (the raw log). */
  readonly outputFd: number;
  readonly exitFile: string;
}

/** A replica's process, identified across restarts by pid, start time and boot. */
export interface ProcessIdentity {
  readonly pid: number;
  /** Field 22 of /proc/<pid>/stat: clock ticks after boot; a reused pid has another. */
  readonly startTicks: string;
  readonly bootId: string;
}

/** Starts the program as leader of a new process group (detached), so that kill(-pid) reaches all it spawns. */
export function launch(options: LaunchOptions): { child: ChildProcess; identity: ProcessIdentity } {
  const child = spawn('/bin/sh', ['-c', WRAPPER, 'mlplane-replica', options.exitFile, ...options.command], {
    detached: true,
    stdio: ['ignore', options.outputFd, options.outputFd],
    env: { ...options.env },
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  // The platform does not wait for its jobs to exit, nor do they die with it.
  child.unref();
  if (child.pid === undefined) {
    // spawn reports failures (cwd missing, no /bin/sh) asynchronously through 'error'; the caller listens.
    return { child, identity: { pid: 0, startTicks: '', bootId: bootId() } };
  }
  return { child, identity: { pid: child.pid, startTicks: startTicks(child.pid) ?? '', bootId: bootId() } };
}

let cachedBootId: string | undefined;
/** Identifies this boot of the host; pids and start ticks repeat across boots. */
export function bootId(): string {
  if (cachedBootId === undefined) {
    try {
      cachedBootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      cachedBootId = 'unknown';
    }
  }
  return cachedBootId;
}

/** Start time of `pid` in clock ticks after boot, or undefined when no such process exists (or no /proc). */
export function startTicks(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: fields resume after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = fields[0];
    // A zombie has exited; it only waits for its parent to read the status.
    if (state === 'Z' || state === 'X') return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

/** Whether the process recorded as `identity` is still the one running under that pid. */
export function isAlive(identity: ProcessIdentity): boolean {
  if (identity.pid <= 0 || identity.bootId !== bootId()) return false;
  const ticks = startTicks(identity.pid);
  return ticks !== undefined && ticks === identity.startTicks;
}

/** Signals the whole process group led by `pid`; a group that is gone already is no error. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  if (pid <= 0) return;
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** Exit code as a container runtime reports it: the code, or 128 + the signal's number. */
export function exitCodeOf(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const number = signal ? (constants.signals as Record<string, number>)[signal] : undefined;
  return 128 + (number ?? 0);
}

/**
 * GPUs nvidia-smi reports on this host, or undefined when it is not installed or fails (a host without NVIDIA
 * drivers). Devices are identified by index, as CUDA_VISIBLE_DEVICES takes them.
 */
export async function detectNvidiaGpus(timeoutMs = 10_000): Promise<GpuDevice[] | undefined> {
  const out = await new Promise<string | undefined>((resolve) => {
    execFile(
      'nvidia-smi',
      ['--query-gpu=index,name,memory.total', '--format=csv,noheader,nounits'],
      { timeout: timeoutMs },
      (err, stdout) => resolve(err ? undefined : stdout),
    );
  });
  if (out === undefined) return undefined;
  return parseNvidiaSmi(out);
}

/** Parses `index, name, memory.total` CSV lines (MiB, no units). */
export function parseNvidiaSmi(csv: string): GpuDevice[] {
  const devices: GpuDevice[] = [];
  for (const line of csv.split('\n')) {
    const [index, name, memory] = line.split(',').map((f) => f.trim());
    if (!index || !/^\d+$/.test(index)) continue;
    const memoryMiB = Number(memory);
    devices.push({
      id: index,
      ...(name ? { product: name.replace(/\s+/g, '-') } : {}),
      ...(Number.isFinite(memoryMiB) && memoryMiB > 0 ? { memoryMiB } : {}),
    });
  }
  return devices;
}
