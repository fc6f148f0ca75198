// The orchestrator with every table on PostgreSQL (the pipelines, leases, tracker, registry and local backend's
// tables in a fresh schema of the peer from scripts/peers): caching with its explanations, and resume after kill -9.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { metadataStoreRef } from '@mlplane/core';
import { startTestPlatform } from '@mlplane/defaults/testing';
import { postgresPlugin } from '@mlplane/plugin-postgres';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { dropSchema, freshSchema, pgUrl } from '../../../test-support/pg-env.js';
import { artifact, PipelineOrchestrator, pipeline } from '../src/index.js';
import { killAndResume } from './fixtures/kill-and-resume.js';
import { nodeStep } from './fixtures/node-step.js';

const schemas: string[] = [];
const dirs: string[] = [];
afterAll(async () => {
  for (const s of schemas) await dropSchema(s);
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('pipelines on PostgreSQL', () => {
  it('fans out, caches and explains with its state in PostgreSQL', async () => {
    const schema = freshSchema('mlplane_pipelines');
    schemas.push(schema);
    await using platform = await startTestPlatform({
      plugins: [postgresPlugin()],
      config: { postgres: { connectionString: pgUrl(), schema }, embedded: { compute: { cpu: 8 } } },
    });
    expect((await platform.get(metadataStoreRef)).dialect).toBe('postgres');
    const orchestrator = await PipelineOrchestrator.forPlatform(platform, { workspace: join(platform.dataDir, 'ws') });
    const make = nodeStep({
      name: 'make',
      inputs: { n: z.number() },
      outputs: { file: artifact(), sq: z.number() },
      script: "outFile('file', 'n' + inputs.n); out('sq', inputs.n * inputs.n);",
    });
    const total = nodeStep({
      name: 'total',
      inputs: { sqs: z.array(z.number()) },
      outputs: { sum: z.number() },
      script: "out('sum', inputs.sqs.reduce((a, b) => a + b, 0));",
    });
    const p = pipeline({ name: 'pg-fan', params: { ns: z.array(z.number()) } }, (q) => {
      const made = q.map(make, q.params.ns, (n) => ({ n }));
      q.step(total, { sqs: made.sq });
    });
    const first = await orchestrator.run(p, { ns: [1, 2, 3] });
    expect(first.status).toBe('Succeeded');
    expect(first.outputs('total')).toEqual({ sum: 14 });
    const second = await orchestrator.run(p, { ns: [1, 2, 4] });
    const status = Object.fromEntries(second.steps.map((s) => [s.stepId, s.status]));
    expect(status).toMatchObject({
      'make[0]': 'Cached',
      'make[1]': 'Cached',
      'make[2]': 'Succeeded',
      total: 'Succeeded',
    });
    const why = await orchestrator.explainCache(second.runId);
    expect(why.find((e) => e.step === 'make[2]')!.reasons).toEqual([
      `input 'n' changed: 3 -> 4 (since run ${first.runId})`,
    ]);
    expect(why.find((e) => e.step === 'make[0]')!.reusedFrom?.runId).toBe(first.runId);
  });

  it('resumes after kill -9 of the orchestrator, each step run once', async () => {
    const schema = freshSchema('mlplane_pipelines');
    schemas.push(schema);
    const root = await mkdtemp(join(tmpdir(), 'mlplane-resume-pg-'));
    dirs.push(root);
    await killAndResume(root, {
      platform: { signals: [] },
      postgres: { connectionString: pgUrl(), schema },
      embedded: {
        dataDir: join(root, 'data'),
        secrets: { masterKey: randomBytes(32).toString('base64') },
        compute: { cpu: 16, killGraceMs: 500 },
      },
    });
  }, 120_000);
});
