import { type Command, InvalidArgumentError } from 'commander';
import { type Connection, type ConnectionOptions, connect } from '../connection.js';
import { CliError, EXIT, type Output, processOutput } from '../output.js';

/**
 * Wraps a client command's handler: commander hands it the positional arguments, then the command's options, then
 * the command; the handler gets the connection (from --url/--token/--project or the environment), the output
 * (--json or tables), the positional arguments and its own options.
 */
export type Action = <Args extends unknown[]>(
  handler: (connection: Connection, out: Output, ...args: Args) => Promise<void>,
) => (...args: any[]) => Promise<void>;

export function clientAction(env: NodeJS.ProcessEnv): Action {
  return (handler) =>
    async (...args: any[]) => {
      const command = args.at(-1) as Command;
      const globals = command.optsWithGlobals() as ConnectionOptions;
      const connection = connect(globals, env);
      const out = processOutput(globals.json === true);
      await handler(connection, out, ...(args.slice(0, -1) as never));
    };
}

/** Commander option parser collecting a repeatable option into an array. */
export const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

/** `key=value` pairs as a record; a CliError naming the option for one without '='. */
export function keyValues(pairs: readonly string[], option: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new CliError(`${option} takes key=value, got '${pair}'`, EXIT.usage);
    out[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return out;
}
