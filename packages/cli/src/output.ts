import { ApiError } from '@mlplane/client';
import { ConfigError, isMlplaneError } from '@mlplane/core';
import Table from 'cli-table3';
import { CommanderError } from 'commander';

/**
 * Exit codes, so scripts can tell why a command failed (docs/cli.md lists them):
 * 1 any other failure, 2 bad usage or input refused (400/413/422), 3 server unreachable, 4 not authenticated or not
 * allowed (401/403), 5 not found (404), 6 conflict (409).
 */
export const EXIT = Object.freeze({
  ok: 0,
  failure: 1,
  usage: 2,
  unreachable: 3,
  denied: 4,
  notFound: 5,
  conflict: 6,
});

/** A failure the CLI explains in one line. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failure,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** The one line and exit code an error ends a command with; never a stack trace. */
export function describeFailure(err: unknown): { line: string; exitCode: number } {
  if (err instanceof CliError) return { line: err.message, exitCode: err.exitCode };
  if (err instanceof ApiError) {
    const field = typeof err.details?.field === 'string' ? ` (field: ${err.details.field})` : '';
    const line = err.status === 0 ? err.message : `${err.status} ${err.code}: ${oneLine(err.message)}${field}`;
    return { line, exitCode: exitCodeOfStatus(err.status) };
  }
  if (err instanceof CommanderError) return { line: err.message.replace(/^error: /, ''), exitCode: EXIT.usage };
  if (err instanceof ConfigError) return { line: oneLine(err.message), exitCode: EXIT.usage };
  if (isMlplaneError(err)) {
    // A plugin that failed to start wraps what went wrong (a data dir in use is a conflict): exit with that.
    let status = err.httpStatus;
    for (let cause = err.cause; status >= 500 && isMlplaneError(cause); cause = cause.cause) status = cause.httpStatus;
    return { line: oneLine(err.message), exitCode: exitCodeOfStatus(status) };
  }
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'EADDRINUSE') return { line: `the port is in use: ${(err as Error).message}`, exitCode: EXIT.failure };
  if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') {
    return { line: oneLine((err as Error).message), exitCode: EXIT.usage };
  }
  return { line: oneLine((err as Error)?.message ?? String(err)), exitCode: EXIT.failure };
}

function exitCodeOfStatus(status: number): number {
  if (status === 0) return EXIT.unreachable;
  if (status === 401 || status === 403) return EXIT.denied;
  if (status === 404) return EXIT.notFound;
  if (status === 409) return EXIT.conflict;
  if (status === 400 || status === 413 || status === 422) return EXIT.usage;
  return EXIT.failure;
}

/** Multi-line messages (a config with several problems, as a list) joined into one line. */
export function oneLine(message: string): string {
  const lines = message
    .split('\n')
    .map((l) => l.trim().replace(/^- /, ''))
    .filter(Boolean);
  return lines.reduce((out, line) => (out === '' ? line : `${out}${out.endsWith(':') ? ' ' : '; '}${line}`), '');
}

export interface Output {
  /** `--json`: machine-readable output, one JSON document per command. */
  readonly json: boolean;
  out(text: string): void;
  err(text: string): void;
}

export const processOutput = (json: boolean): Output => ({
  json,
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
});

/** Prints `value` as JSON with --json, else the table `human` renders. */
export function show(output: Output, value: unknown, human: () => string): void {
  output.out(output.json ? JSON.stringify(value, null, 2) : human());
}

export function table(head: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const t = new Table({ head: [...head], style: { head: [], border: [] }, wordWrap: true });
  for (const row of rows) t.push(row.map(cell));
  return t.toString();
}

/** Key/value rows of one object. */
export function record(rows: readonly (readonly [string, unknown])[]): string {
  const t = new Table({ style: { head: [], border: [] }, wordWrap: true });
  for (const [k, v] of rows) t.push({ [k]: cell(v) });
  return t.toString();
}

function cell(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6)));
  return String(value);
}

/** `2026-12-02T08:11:33.123Z` as `2026-12-02 08:11:33`. */
export function when(iso: string | undefined): string {
  return iso ? iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '') : '';
}
