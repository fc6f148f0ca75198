import { MlplaneError } from '../ports/errors.js';

/** The plugins cannot be wired together: a missing or doubly-provided port, a cycle, a bad registration. */
export class WiringError extends MlplaneError {
  readonly code = 'WIRING' as const;
  readonly httpStatus = 500;
}

/** Configuration is invalid; the message names the plugin and the path of each problem. */
export class ConfigError extends MlplaneError {
  readonly code = 'CONFIG' as const;
  readonly httpStatus = 500;
  readonly problems: readonly string[];
  constructor(message: string, problems: readonly string[] = [], options?: { cause?: unknown }) {
    super(message, options);
    this.problems = problems;
  }
}

/** A plugin's factory, init, start or shutdown work threw; the message names the plugin and the step. */
export class PluginFailedError extends MlplaneError {
  readonly code = 'PLUGIN_FAILED' as const;
  readonly httpStatus = 500;
  readonly pluginId: string;
  constructor(pluginId: string, step: string, cause: unknown) {
    super(`plugin '${pluginId}' failed to ${step}: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
    this.pluginId = pluginId;
  }
}
