import { existsSync } from 'node:fs';
import { artifactStoreRef, eventBusRef, loadConfig, secretStoreRef, telemetryRef } from '@mlplane/core';
import { createReferencePlatform } from './reference-distribution.js';

/**
 * The reference distribution: the whole platform on embedded defaults, on one machine, no servers; a `postgres`,
 * `kafka`, `redis-streams`, `redis-cache` or `mlflow` section in the config installs that production plugin
 * (mlplane.yaml.example lists every key). Config comes from $MLPLANE_CONFIG or ./mlplane.yaml when present, plus
 * MLPLANE__* environment overrides. It runs until SIGTERM or SIGINT, then stops gracefully.
 */
const file = process.env.MLPLANE_CONFIG ?? (existsSync('mlplane.yaml') ? 'mlplane.yaml' : undefined);
const config = await loadConfig({ files: file ? [file] : [] });
const platform = createReferencePlatform(config);

try {
  await platform.start();
} catch (err) {
  console.error(`mlplane: ${(err as Error).message}`);
  process.exit(1);
}

// Touch every embedded port so a broken data dir fails now, not on first use.
const [artifacts, events, secrets, telemetry] = await Promise.all([
  platform.get(artifactStoreRef),
  platform.get(eventBusRef),
  platform.get(secretStoreRef),
  platform.get(telemetryRef),
]);
telemetry.logger.info(
  {
    config: file ?? '(defaults)',
    artifactStore: artifacts.capabilities,
    eventBus: events.capabilities,
    secrets: (await secrets.list()).length,
  },
  'mlplane reference platform is up; press Ctrl-C to stop',
);

// Nothing else holds the event loop open until the control plane serves HTTP; stay up until stopped.
const keepAlive = setInterval(() => undefined, 1 << 30);
platform.hooks.platform.shutdown.tap('reference-platform', () => clearInterval(keepAlive));
