import { createPlatformHooks, type PlatformHooks } from '../kernel/platform-hooks.js';
import type { PortDefinition } from '../kernel/port.js';
import type { Logger } from '../ports/telemetry.js';

const quiet: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => quiet,
};

/**
 * A provider as a platform's consumers see it: wrapped by its port's guard, so the port's hooks fire. For tests that
 * build a provider by hand; a started platform does this itself. Failing after-change taps go to `logger`.
 */
export function guarded<T>(
  port: PortDefinition<T, any>,
  provider: T,
  hooks: PlatformHooks = createPlatformHooks(),
  logger: Logger = quiet,
): T {
  return port.guard(provider, {
    hooks: hooks.of(port),
    hooksOf: (other) => hooks.of(other),
    providerId: 'test',
    logger,
    signal: new AbortController().signal,
  });
}
