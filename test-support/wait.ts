// Helpers shared by the relay, webhook and cache tests: a logger that keeps its lines, and polling.
import type { LogBindings, Logger } from '@mlplane/core';

export interface LogLine {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly msg: string | undefined;
  readonly fields: Readonly<Record<string, unknown>>;
}

/** A Logger that records every line (with its bindings) for assertions. */
export function captureLogger(lines: LogLine[] = [], bindings: LogBindings = {}): Logger & { lines: LogLine[] } {
  const at =
    (level: LogLine['level']) =>
    (objOrMsg: object | string, msg?: string): void => {
      if (typeof objOrMsg === 'string') lines.push({ level, msg: objOrMsg, fields: { ...bindings } });
      else lines.push({ level, msg, fields: { ...bindings, ...objOrMsg } });
    };
  return {
    lines,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more) => captureLogger(lines, { ...bindings, ...more }),
  };
}

/** Polls `check` until it returns true or `timeoutMs` passes (then throws with `what`). */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
