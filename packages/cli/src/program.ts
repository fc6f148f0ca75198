import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { artifactCommands } from './commands/artifacts.js';
import { auditCommands } from './commands/audit.js';
import { computeCommands } from './commands/compute.js';
import { modelCommands } from './commands/models.js';
import { clientAction } from './commands/shared.js';
import { tokenCommands } from './commands/tokens.js';
import { trackingCommands } from './commands/tracking.js';
import { CliError, describeFailure, EXIT, processOutput } from './output.js';
import type { RunningDistribution } from './up.js';

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65_535) throw new InvalidArgumentError('must be a port number (0-65535)');
  return n;
}

/** The `mlplane` command line. */
export function buildProgram(env: NodeJS.ProcessEnv = process.env): Command {
  const program = new Command('mlplane')
    .description('mlplane: run the platform (`mlplane up`) and talk to a running one')
    .option('--url <url>', 'the server (env MLPLANE_URL; default http://127.0.0.1:8080)')
    .option('--token <token>', 'an API token (env MLPLANE_TOKEN; default ./.mlplane/admin-token when readable)')
    .option('--project <project>', 'the project (env MLPLANE_PROJECT; default "default")')
    .option('--json', 'print JSON for scripts instead of tables')
    // One line for a usage error, like every other failure: `mlplane: unknown option '--frob'`.
    .configureOutput({ outputError: (text, write) => write(`mlplane: ${text.replace(/^error: /, '')}`) })
    .configureHelp({ showGlobalOptions: true })
    .exitOverride();

  program
    .command('up')
    .description('run the platform: the HTTP API and the background workers, until SIGTERM or SIGINT')
    .option(
      '--data-dir <dir>',
      "where the embedded defaults keep data and the admin token (default: the config's, else ./.mlplane)",
    )
    .addOption(new Option('--port <n>', 'the HTTP port').argParser(port).default(8080))
    .option('--host <address>', 'the address to listen on; 0.0.0.0 behind a proxy or in a container', '127.0.0.1')
    .option('--config <file>', 'a production config: its sections install the plugins, platform.strict on')
    .option('--public-url <url>', 'where clients reach the API, when a proxy sits in front')
    .action(async (opts: { dataDir?: string; port: number; host: string; config?: string; publicUrl?: string }) => {
      await runUp(opts, env);
    });

  program
    .command('config')
    .description('config files')
    .command('check')
    .description('validate a config file offline; exits non-zero with the reason when it is not valid')
    .argument('<file>')
    .action(async (file: string, _opts: unknown, command: Command) => {
      const out = processOutput(command.optsWithGlobals().json === true);
      // Loaded on demand: client commands need none of the platform's packages, and start faster without them.
      const { checkConfig } = await import('./config-check.js');
      const result = await checkConfig(file, env);
      if (out.json) out.out(JSON.stringify({ ...result, ok: result.problems.length === 0 }, null, 2));
      if (result.problems.length > 0) {
        throw new CliError(`${file} is not valid: ${result.problems.join('; ')}`, EXIT.usage);
      }
      if (!out.json) {
        out.out(`${file} is valid (sections: ${result.sections.join(', ') || 'none: every port on its default'})`);
      }
    });

  const action = clientAction(env);
  trackingCommands(program, action);
  modelCommands(program, action);
  artifactCommands(program, action);
  tokenCommands(program, action);
  auditCommands(program, action);
  computeCommands(program, action);
  return program;
}

/**
 * `mlplane up`: starts the distribution, prints where it is (and the admin token on the first start), and stops it
 * gracefully on the configured signals; a second signal while stopping exits at once.
 */
interface UpCommandOptions {
  dataDir?: string;
  port: number;
  host: string;
  config?: string;
  publicUrl?: string;
  publicMetrics?: boolean;
}

async function runUp(opts: UpCommandOptions, env: NodeJS.ProcessEnv): Promise<void> {
  // A signal during the start is kept and acted on once the platform is up, so the start is never cut half-way
  // (a data dir lock held, an admin token issued but not yet written).
  let early: NodeJS.Signals | undefined;
  const duringStart = (signal: NodeJS.Signals) => {
    early ??= signal;
  };
  for (const signal of START_SIGNALS) process.on(signal, duringStart);
  const { startDistribution } = await import('./up.js');
  let running: RunningDistribution;
  try {
    running = await startDistribution({
      port: opts.port,
      host: opts.host,
      env,
      ...(opts.dataDir ? { dataDir: opts.dataDir } : {}),
      ...(opts.config ? { config: opts.config } : {}),
      ...(opts.publicUrl ? { publicUrl: opts.publicUrl } : {}),
      ...(opts.publicMetrics ? { publicMetrics: true } : {}),
    });
  } finally {
    for (const signal of START_SIGNALS) process.removeListener(signal, duringStart);
  }
  const lines = [
    `mlplane is up (data dir ${running.dataDir}${running.configFile ? `, config ${running.configFile}` : ''})`,
    `  API:       ${running.urls.api}`,
    `  API docs:  ${running.urls.docs}`,
    `  MLflow:    MLFLOW_TRACKING_URI=${running.urls.mlflow}`,
    `  metrics:   ${running.urls.metrics}`,
  ];
  if (running.newAdminToken) {
    lines.push(
      `Admin token (shown this once; kept in ${running.adminTokenFile}, mode 600):`,
      `  ${running.newAdminToken}`,
      `  export MLPLANE_URL=${running.served.url} MLPLANE_TOKEN=$(cat ${running.adminTokenFile})`,
    );
  } else {
    lines.push(`Admin token: in ${running.adminTokenFile}`);
  }
  lines.push('Stop with Ctrl-C or SIGTERM.');
  process.stdout.write(`${lines.join('\n')}\n`);

  await new Promise<void>((resolve) => {
    let stopping = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (stopping) {
        process.stderr.write(`mlplane: ${signal} again, exiting without waiting\n`);
        process.exit(EXIT.failure);
      }
      stopping = true;
      process.stderr.write(`mlplane: ${signal}, stopping (requests in flight finish first)\n`);
      running.stop().then(({ clean }) => {
        for (const s of running.signals) process.removeListener(s, onSignal);
        process.exitCode = clean ? EXIT.ok : EXIT.failure;
        resolve();
      });
    };
    for (const signal of running.signals) process.on(signal, onSignal);
    if (early) onSignal(early);
  });
}

/** Signals held back while `up` starts: every one the config's `platform.signals` may list. */
const START_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];

/** Runs the command line; never throws: failures print one line to stderr and set the exit code. */
export async function main(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const program = buildProgram(env);
  // `pnpm start -- --port 1` runs `mlplane up -- --port 1`: that literal `--` would end option parsing.
  const args = argv.slice(2);
  const separator = args[0] === 'up' ? 1 : 0;
  if (args[separator] === '--') args.splice(separator, 1);
  try {
    await program.parseAsync(args, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander printed its own message (an unknown option, a missing argument) or the help.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const { line, exitCode } = describeFailure(err);
    process.stderr.write(`mlplane: ${line}\n`);
    return exitCode;
  }
}
