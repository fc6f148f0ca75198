import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConflictError } from '@mlplane/core';
import { createPlatform } from '@mlplane/defaults';
import { afterAll, describe, expect, it } from 'vitest';
import { PipelineOrchestrator, pipeline } from '../src/index.js';
import { killAndResume } from './fixtures/kill-and-resume.js';
import { resumePipeline } from './fixtures/resume-pipeline.js';

const cleanup: string[] = [];
afterAll(async () => {
  for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
});

async function tempRoot(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'mlplane-resume-'));
  cleanup.push(root);
  return root;
}

const embedded = (root: string) => ({
  platform: { signals: [] },
  embedded: {
    dataDir: join(root, 'data'),
    secrets: { masterKey: randomBytes(32).toString('base64') },
    compute: { cpu: 16, killGraceMs: 500 },
  },
});

describe('resume after the orchestrator is killed (embedded SQLite)', () => {
  it('kill -9 mid-run: the resumed run keeps finished steps, finds the running job again and runs the rest once', async () => {
    const root = await tempRoot();
    await killAndResume(root, embedded(root));
  }, 120_000);

  it('refuses to resume with another definition of the pipeline', async () => {
    const root = await tempRoot();
    const platform = createPlatform({ plugins: [], config: embedded(root), log: { level: 'silent' } });
    await platform.start();
    try {
      const orchestrator = await PipelineOrchestrator.forPlatform(platform, { workspace: join(root, 'ws') });
      const other = pipeline({ name: 'resumable' }, () => {});
      const done = await orchestrator.run(other, {});
      const err = await orchestrator.resume(done.runId, resumePipeline).catch((e) => e);
      expect(err).toBeInstanceOf(ConflictError);
      expect(err.message).toContain('another definition');
    } finally {
      await platform.stop();
    }
  });
});
