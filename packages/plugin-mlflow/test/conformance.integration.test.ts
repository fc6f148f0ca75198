import { experimentTrackerConformance, modelRegistryConformance } from '@mlplane/core/testing';
import { MlflowClient, MlflowExperimentTracker, MlflowModelRegistry } from '../src/index.js';
import { mlflowUrl } from './support.js';

function client(): MlflowClient {
  return new MlflowClient({
    trackingUri: mlflowUrl(),
    connections: 8,
    connectTimeoutMs: 5000,
    requestTimeoutMs: 60_000,
    retries: 2,
  });
}

experimentTrackerConformance('MlflowExperimentTracker on the MLflow peer', async () => {
  const c = client();
  const tracker = new MlflowExperimentTracker(c);
  return {
    tracker,
    readArtifact: async (key) => {
      const [, runId, path] = /\/([0-9a-f]{32})\/artifacts\/(.+)$/.exec(key)!;
      const { body } = await tracker.openArtifact(runId!, path!);
      const chunks: Buffer[] = [];
      for await (const chunk of body) chunks.push(Buffer.from(chunk));
      return Buffer.concat(chunks);
    },
    cleanup: () => c.close(),
  };
});

modelRegistryConformance('MlflowModelRegistry on the MLflow peer', async () => {
  const c = client();
  return {
    // The suite wraps it in the port's guard, as a platform does, so the promotion hooks fire.
    registry: new MlflowModelRegistry(c),
    tracker: new MlflowExperimentTracker(c),
    cleanup: () => c.close(),
  };
});
