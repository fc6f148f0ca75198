import { platformHooksConformance } from '@mlplane/core/testing';
import { startTestPlatform } from '../src/testing/index.js';

// The embedded defaults and the SQL management layer provide artifacts, tracking and the registry; compute and
// serving have no embedded provider yet, so the suite skips those ports by name.
platformHooksConformance('embedded defaults (SQLite, local files)', async () => ({
  platform: await startTestPlatform(),
}));
