import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { computeBackendConformance } from '@mlplane/core/testing';
import { PostgresMetadataStore } from '@mlplane/plugin-postgres';
import { SqlExperimentTracker } from '@mlplane/sql';
import { dropSchema, freshSchema, pgUrl } from '../../../test-support/pg-env.js';
import { LocalArtifactStore } from '../src/artifact-store/local-artifact-store.js';
import { LocalComputeBackend } from '../src/compute/local-compute-backend.js';
import { EnvFileSecretStore } from '../src/secret-store/file-secret-store.js';

// The local backend keeps its jobs in whichever MetadataStore is chosen: here PostgreSQL (the peer), where list
// filters by label use jsonb and pages use a bigserial.
computeBackendConformance('LocalComputeBackend on PostgreSQL (peer, schema per test)', async () => {
  const schema = freshSchema('mlplane_compute');
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-compute-pg-'));
  const store = await PostgresMetadataStore.connect({ connectionString: pgUrl(), schema });
  const artifacts = await LocalArtifactStore.open({ root: join(dir, 'artifacts') });
  const secrets = new EnvFileSecretStore({
    path: join(dir, 'secrets.enc'),
    masterKey: randomBytes(32).toString('base64'),
  });
  const tracker = await SqlExperimentTracker.open({ store, artifacts });
  const backend = await LocalComputeBackend.open({
    store,
    artifacts,
    secrets,
    tracker,
    workDir: join(dir, 'compute'),
    killGraceMs: 1_000,
    restartBackoffMs: 50,
    capacity: { cpu: 64, memory: '64Gi', gpus: 0 },
  });
  return {
    backend,
    shell: (script) => ({ command: ['sh', '-c', script] }),
    putSecret: (name, value) => secrets.set(name, value),
    cleanup: async () => {
      const page = await backend.list({ phases: ['Pending', 'Queued', 'Admitted', 'Running'], maxResults: 1000 });
      await Promise.all(page.items.map((j) => backend.cancel(j.id).catch(() => undefined)));
      await backend.close();
      await artifacts.close();
      await store.close();
      await dropSchema(schema);
      await rm(dir, { recursive: true, force: true });
    },
    jobTimeoutMs: 15_000,
  };
});
