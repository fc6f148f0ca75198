import { platformHooksConformance } from '@mlplane/core/testing';
import { startTestPlatform } from '../src/testing/index.js';

// The embedded defaults and the SQL management layer provide artifacts, tracking, the registry and local compute;
// serving has no embedded provider yet, so the suite skips that port by name.
platformHooksConformance('embedded defaults (SQLite, local files, local processes)', async () => ({
  platform: await startTestPlatform(),
  job: (name) => ({ name, project: 'hooks', replicaGroups: [{ role: 'main', command: ['true'] }] }),
}));
