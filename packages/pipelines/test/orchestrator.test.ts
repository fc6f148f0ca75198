import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { experimentTrackerRef, modelRegistryRef, ValidationError } from '@mlplane/core';
import { startTestPlatform, type TestPlatform } from '@mlplane/defaults/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  action,
  artifact,
  step as defineStep,
  LINEAGE_TAGS,
  PipelineOrchestrator,
  type PipelineRunResult,
  pipeline,
  registerModel,
  when,
} from '../src/index.js';
import { nodeStep } from './fixtures/node-step.js';

let platform: TestPlatform;
let orchestrator: PipelineOrchestrator;
let marks: string;

beforeAll(async () => {
  platform = await startTestPlatform({ config: { embedded: { compute: { cpu: 16, killGraceMs: 500 } } } });
  marks = await mkdtemp(join(tmpdir(), 'mlplane-pipeline-marks-'));
  orchestrator = await PipelineOrchestrator.forPlatform(platform, { workspace: join(platform.dataDir, 'pipelines') });
});
afterAll(async () => {
  await platform?.stop();
  await rm(marks, { recursive: true, force: true });
});

/** Appends the step id to `<marks>/<file>`: the order and count of executions, as the processes saw them. */
const log = (file: string, dir = 'inputs.marks') =>
  `fs.appendFileSync(path.join(${dir}, ${JSON.stringify(file)}), process.env.MLPLANE_STEP_ID + '\\n');`;
const lines = async (file: string) =>
  (await readFile(join(marks, file), 'utf8').catch(() => '')).split('\n').filter((l) => l !== '');

const step = (r: PipelineRunResult, id: string) => {
  const s = r.steps.find((x) => x.stepId === id);
  if (!s) throw new Error(`no step ${id} in ${r.steps.map((x) => x.stepId).join(', ')}`);
  return s;
};

describe('pipeline orchestration on the local ComputeBackend', () => {
  it('runs steps in DAG order: a step starts only after everything it needs finished', async () => {
    const mk = <I extends Record<string, z.ZodType>>(name: string, inputs: I) =>
      nodeStep({
        name,
        inputs: { marks: z.string(), ...inputs },
        outputs: { at: z.number() },
        script: `${log('order.log')} out('at', Date.now());`,
      });
    const a = mk('a', {});
    const b = mk('b', { after: z.number() });
    const c = mk('c', { after: z.number() });
    const d = mk('d', { x: z.number(), y: z.number() });
    const p = pipeline({ name: 'diamond', params: { marks: z.string() } }, (q) => {
      const ra = q.step(a, { marks: q.params.marks });
      const rb = q.step(b, { marks: q.params.marks, after: ra.at });
      const rc = q.step(c, { marks: q.params.marks, after: ra.at });
      q.step(d, { marks: q.params.marks, x: rb.at, y: rc.at });
    });
    const result = await orchestrator.run(p, { marks });
    expect(result.status).toBe('Succeeded');
    const order = await lines('order.log');
    expect(order).toHaveLength(4);
    expect(order[0]).toBe('a');
    expect(order[3]).toBe('d');
    expect(new Set(order.slice(1, 3))).toEqual(new Set(['b', 'c']));
    expect(step(result, 'd').startedAt!.getTime()).toBeGreaterThanOrEqual(
      Math.max(step(result, 'b').finishedAt!.getTime(), step(result, 'c').finishedAt!.getTime()),
    );
  });

  it('fans out over a list from an earlier step and fans the results back in, in item order', async () => {
    const list = nodeStep({
      name: 'list',
      outputs: { ns: z.array(z.number()) },
      script: "out('ns', [3, 1, 4, 1, 5]);",
    });
    const square = nodeStep({
      name: 'square',
      inputs: { n: z.number() },
      outputs: { sq: z.number(), file: artifact() },
      script: "out('sq', inputs.n * inputs.n); outFile('file', 'n=' + inputs.n);",
    });
    const sum = nodeStep({
      name: 'sum',
      inputs: { sqs: z.array(z.number()), files: z.array(artifact()) },
      outputs: { total: z.number(), text: z.string() },
      script:
        "out('total', inputs.sqs.reduce((a, b) => a + b, 0)); out('text', inputs.files.map((f) => fs.readFileSync(f.path, 'utf8')).join(','));",
    });
    const p = pipeline({ name: 'fan' }, (q) => {
      const l = q.step(list, {});
      const squares = q.map(square, l.ns, (n) => ({ n }));
      q.step(sum, { sqs: squares.sq, files: squares.file });
    });
    const result = await orchestrator.run(p, {});
    expect(result.status).toBe('Succeeded');
    expect(result.outputs('square')?.sq).toEqual([9, 1, 16, 1, 25]);
    expect(result.outputs('sum')).toEqual({ total: 52, text: 'n=3,n=1,n=4,n=1,n=5' });
    expect(result.steps.filter((s) => s.node === 'square' && s.stepId !== 'square')).toHaveLength(5);
    // Equal bytes are one artifact: items 1 and 3 both wrote 'n=1'.
    const files = result.outputs('square')!.file as { key: string }[];
    expect(files[1]!.key).toBe(files[3]!.key);
  });

  it('skips a step whose condition is false, and the steps that need its outputs, saying why', async () => {
    const measure = nodeStep({
      name: 'measure',
      inputs: { v: z.number() },
      outputs: { v: z.number() },
      script: "out('v', inputs.v);",
    });
    const deploy = nodeStep({
      name: 'deploy',
      inputs: { v: z.number() },
      outputs: { url: z.string() },
      script: "out('url', 'http://x');",
    });
    const notify = nodeStep({ name: 'notify', inputs: { url: z.string() }, script: '' });
    const report = nodeStep({ name: 'report', inputs: { v: z.number() }, script: '' });
    const p = pipeline({ name: 'branchy', params: { v: z.number() } }, (q) => {
      const m = q.step(measure, { v: q.params.v });
      const d = q.step(deploy, { v: m.v }, { when: when({ v: m.v }, ({ v }) => v > 0.9, 'accuracy above 0.9') });
      q.step(notify, { url: d.url });
      q.step(report, { v: m.v }, { when: when({ v: m.v }, ({ v }) => v <= 0.9) });
    });
    const low = await orchestrator.run(p, { v: 0.5 });
    expect(low.status).toBe('Succeeded');
    expect(step(low, 'deploy').status).toBe('Skipped');
    expect(step(low, 'notify').status).toBe('Skipped');
    expect(step(low, 'report').status).toBe('Succeeded');
    const why = await orchestrator.explainCache(low.runId);
    expect(why.find((e) => e.step === 'deploy')?.reasons[0]).toContain('condition false: accuracy above 0.9');
    expect(why.find((e) => e.step === 'notify')?.reasons[0]).toContain(
      "input 'url' comes from step 'deploy', which was skipped",
    );

    const high = await orchestrator.run(p, { v: 0.95 });
    expect(step(high, 'deploy').status).toBe('Succeeded');
    expect(step(high, 'notify').status).toBe('Succeeded');
    expect(step(high, 'report').status).toBe('Skipped');
  });

  it('reuses every step of an unchanged rerun, reruns what a change reaches, and explains each decision', async () => {
    const prep = nodeStep({
      name: 'prep',
      inputs: { marks: z.string(), rows: z.number() },
      outputs: { data: artifact() },
      script: `${log('cache.log')} outFile('data', 'rows=' + inputs.rows);`,
    });
    const fitStep = (version: string) =>
      nodeStep({
        name: 'fit',
        version,
        inputs: { marks: z.string(), data: artifact(), lr: z.number() },
        outputs: { loss: z.number() },
        script: `${log('cache.log')} out('loss', inputs.lr * fs.readFileSync(inputs.data.path, 'utf8').length);`,
      });
    const build = (version: string) =>
      pipeline({ name: 'cachey', params: { marks: z.string(), rows: z.number(), lr: z.number() } }, (q) => {
        const d = q.step(prep, { marks: q.params.marks, rows: q.params.rows });
        q.step(fitStep(version), { marks: q.params.marks, data: d.data, lr: q.params.lr });
      });

    const first = await orchestrator.run(build('1'), { marks, rows: 10, lr: 0.1 });
    expect(first.steps.map((s) => s.status)).toEqual(['Succeeded', 'Succeeded']);
    const firstWhy = await orchestrator.explainCache(first.runId);
    expect(firstWhy.map((e) => e.decision)).toEqual(['ran', 'ran']);
    expect(firstWhy[0]!.reasons[0]).toContain("no earlier execution of step 'fit'");

    const again = await orchestrator.run(build('1'), { marks, rows: 10, lr: 0.1 });
    expect(again.steps.map((s) => s.status)).toEqual(['Cached', 'Cached']);
    expect(again.outputs('fit')).toEqual(first.outputs('fit'));
    const againWhy = await orchestrator.explainCache(again.runId);
    for (const e of againWhy) {
      expect(e.decision).toBe('reused');
      expect(e.reusedFrom?.runId).toBe(first.runId);
      expect(e.reasons[0]).toContain(`same cache key as step '${e.step}' of run ${first.runId}`);
    }
    expect(await lines('cache.log')).toEqual(['prep', 'fit']);

    // A new learning rate reaches only fit; a new code version too.
    const lr = await orchestrator.run(build('1'), { marks, rows: 10, lr: 0.2 });
    expect(lr.steps.map((s) => [s.stepId, s.status])).toEqual([
      ['fit', 'Succeeded'],
      ['prep', 'Cached'],
    ]);
    const lrWhy = (await orchestrator.explainCache(lr.runId)).find((e) => e.step === 'fit')!;
    expect(lrWhy.decision).toBe('ran');
    expect(lrWhy.reasons).toEqual([`input 'lr' changed: 0.1 -> 0.2 (since run ${again.runId})`]);

    const v2 = await orchestrator.run(build('2'), { marks, rows: 10, lr: 0.2 });
    const v2Why = (await orchestrator.explainCache(v2.runId)).find((e) => e.step === 'fit')!;
    expect(v2Why.reasons).toEqual([`code version changed: '1' -> '2' (since run ${lr.runId})`]);

    // New rows change prep's output, so fit sees another artifact.
    const rows = await orchestrator.run(build('2'), { marks, rows: 11, lr: 0.2 });
    const rowsWhy = await orchestrator.explainCache(rows.runId);
    expect(rowsWhy.find((e) => e.step === 'prep')!.reasons).toEqual([
      `input 'rows' changed: 10 -> 11 (since run ${v2.runId})`,
    ]);
    expect(rowsWhy.find((e) => e.step === 'fit')!.reasons[0]).toMatch(
      /^input artifact 'data' changed: sha256 [0-9a-f]{12} -> sha256 [0-9a-f]{12}/,
    );
    expect(await lines('cache.log')).toEqual(['prep', 'fit', 'fit', 'fit', 'prep', 'fit']);
  });

  it('does not reuse a result whose artifacts were deleted, and says so', async () => {
    const make = nodeStep({
      name: 'make',
      inputs: { tag: z.string() },
      outputs: { file: artifact() },
      script: "outFile('file', 'made ' + inputs.tag);",
    });
    const p = pipeline({ name: 'gone' }, (q) => {
      q.step(make, { tag: `t${Date.now()}` });
    });
    const first = await orchestrator.run(p, {});
    const file = first.outputs('make')!.file as { key: string };
    const { artifactStoreRef } = await import('@mlplane/core');
    await (await platform.get(artifactStoreRef)).delete(file.key);
    const second = await orchestrator.run(p, {});
    expect(step(second, 'make').status).toBe('Succeeded');
    const why = (await orchestrator.explainCache(second.runId))[0]!;
    expect(why.reasons[0]).toContain(`its output ${file.key} is gone from the ArtifactStore`);
  });

  it('does not reuse a result that lacks an output the step now declares, and says so', async () => {
    const tag = `t${Date.now()}`;
    const v1 = nodeStep({
      name: 'grow',
      inputs: { tag: z.string() },
      outputs: { a: z.number() },
      script: "out('a', 1);",
    });
    const v1b = nodeStep({
      name: 'grow',
      inputs: { tag: z.string() },
      outputs: { a: z.number(), b: z.number() },
      script: "out('a', 1);",
    });
    const first = await orchestrator.run(
      pipeline({ name: 'grow' }, (q) => void q.step(v1, { tag })),
      {},
    );
    expect(step(first, 'grow').status).toBe('Succeeded');
    // Same name, version, command and inputs, so the same cache key; but a new output the stored result lacks.
    const second = await orchestrator.run(
      pipeline({ name: 'grow' }, (q) => void q.step(v1b, { tag })),
      {},
    );
    expect(second.status).toBe('Failed');
    const why = (await orchestrator.explainCache(second.runId))[0]!;
    expect(why.reasons[0]).toContain("its stored output 'b' is missing (the outputs changed without a new version)");
    expect(step(second, 'grow').error).toContain("step 'grow' wrote no output 'b'");
  });

  it('fails a step whose output breaks its schema with a ValidationError naming the field, without retrying', async () => {
    const emit = nodeStep({
      name: 'emit',
      outputs: { count: z.number().int().nonnegative() },
      script: `${log('schema.log', JSON.stringify(marks))} out('count', -3);`,
      retry: { retries: 2, minDelayMs: 10 },
    });
    const after = nodeStep({ name: 'after', inputs: { count: z.number() }, script: '' });
    const p = pipeline({ name: 'badout' }, (q) => {
      const e = q.step(emit, {});
      q.step(after, { count: e.count });
    });
    const result = await orchestrator.run(p, {});
    expect(result.status).toBe('Failed');
    expect(result.error).toContain("step 'emit' failed: output 'count' of step 'emit' fails its schema");
    const failed = step(result, 'emit');
    expect(failed.status).toBe('Failed');
    expect(failed.error).toContain("output 'count' of step 'emit' fails its schema");
    expect(failed.attempt).toBe(1);
    expect(await lines('schema.log')).toEqual(['emit']);
    expect(result.steps.find((s) => s.stepId === 'after')).toBeUndefined();
    const why = await orchestrator.explainCache(result.runId);
    expect(why.find((e) => e.step === 'emit')?.decision).toBe('failed');
  });

  it('retries a failed attempt with backoff as a new job, then succeeds', async () => {
    const flaky = nodeStep({
      name: 'flaky',
      inputs: { marks: z.string() },
      outputs: { ok: z.boolean() },
      script: `${log('flaky.log')} if (fs.readFileSync(path.join(inputs.marks, 'flaky.log'), 'utf8').split('\\n').length < 3) process.exit(3); out('ok', true);`,
      retry: { retries: 2, minDelayMs: 200 },
      cache: false,
    });
    const p = pipeline({ name: 'flaky', params: { marks: z.string() } }, (q) => {
      q.step(flaky, { marks: q.params.marks });
    });
    const result = await orchestrator.run(p, { marks });
    expect(result.status).toBe('Succeeded');
    expect(step(result, 'flaky').attempt).toBe(2);
    expect(await lines('flaky.log')).toEqual(['flaky', 'flaky']);
  });

  it('ends an attempt that outlives its timeout and fails the step once retries are spent', async () => {
    const stuck = nodeStep({ name: 'stuck', script: 'setTimeout(() => {}, 60000);', timeoutSeconds: 1, cache: false });
    const p = pipeline({ name: 'stuck' }, (q) => {
      q.step(stuck, {});
    });
    const started = Date.now();
    const result = await orchestrator.run(p, {});
    expect(result.status).toBe('Failed');
    expect(step(result, 'stuck').error).toContain('DeadlineExceeded');
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  it('resumes a failed run once its cause is fixed: finished steps are kept, the failed one and the rest run', async () => {
    const blocker = join(marks, 'blocker');
    await writeFile(blocker, 'present');
    const a = nodeStep({
      name: 'a',
      inputs: { marks: z.string() },
      outputs: { v: z.number() },
      script: `${log('fix.log')} out('v', 1);`,
    });
    const b = nodeStep({
      name: 'b',
      inputs: { marks: z.string(), v: z.number() },
      outputs: { v: z.number() },
      script: `${log('fix.log')} if (fs.existsSync(path.join(inputs.marks, 'blocker'))) process.exit(2); out('v', inputs.v + 1);`,
      cache: false,
    });
    const c = nodeStep({
      name: 'c',
      inputs: { marks: z.string(), v: z.number() },
      outputs: { v: z.number() },
      script: `${log('fix.log')} out('v', inputs.v + 1);`,
    });
    const p = pipeline({ name: 'fixable', params: { marks: z.string() } }, (q) => {
      const ra = q.step(a, { marks: q.params.marks });
      const rb = q.step(b, { marks: q.params.marks, v: ra.v });
      q.step(c, { marks: q.params.marks, v: rb.v });
    });
    const failed = await orchestrator.run(p, { marks });
    expect(failed.status).toBe('Failed');
    expect(step(failed, 'b').error).toContain('exit code 2');
    expect(await lines('fix.log')).toEqual(['a', 'b']);

    await rm(blocker);
    const fixed = await orchestrator.resume(failed.runId, p);
    expect(fixed.runId).toBe(failed.runId);
    expect(fixed.status).toBe('Succeeded');
    expect(fixed.outputs('c')).toEqual({ v: 3 });
    expect(step(fixed, 'b').attempt).toBe(2);
    expect(await lines('fix.log')).toEqual(['a', 'b', 'b', 'c']);
    const why = await orchestrator.explainCache(fixed.runId);
    expect(why.find((e) => e.step === 'a')!.resumed).toBe(true);
  });

  it("fails a step whose job the backend refuses (a queue on a backend without queues), naming the backend's field", async () => {
    const queued = defineStep({ name: 'queued', version: '1', job: { command: ['true'], queue: 'gpu-jobs' } });
    const result = await orchestrator.run(
      pipeline({ name: 'queued' }, (q) => void q.step(queued, {})),
      {},
    );
    expect(result.status).toBe('Failed');
    expect(step(result, 'queued').error).toMatch(/queue/);
    expect(step(result, 'queued').jobId).toBeUndefined();
  });

  it('adopts on resume the tracker run of a step whose start the dead orchestrator did not record', async () => {
    const gate = join(marks, 'gate');
    await writeFile(gate, 'closed');
    const x = nodeStep({
      name: 'x',
      inputs: { marks: z.string() },
      outputs: { v: z.number() },
      script: "if (fs.existsSync(path.join(inputs.marks, 'gate'))) process.exit(1); out('v', 1);",
      cache: false,
    });
    const y = nodeStep({
      name: 'y',
      inputs: { v: z.number() },
      outputs: { v: z.number() },
      script: "out('v', inputs.v + 1);",
      cache: false,
    });
    const p = pipeline({ name: 'adopt', params: { marks: z.string() } }, (q) => {
      const rx = q.step(x, { marks: q.params.marks });
      q.step(y, { v: rx.v });
    });
    const failed = await orchestrator.run(p, { marks });
    expect(failed.status).toBe('Failed');
    // What a crash between creating y's tracker run and recording it leaves behind.
    const tracker = await platform.get(experimentTrackerRef);
    const experiment = await tracker.getExperimentByName('pipelines/adopt');
    const orphan = await tracker.createRun({
      experimentId: experiment.id,
      name: 'y',
      parentRunId: failed.trackerRunId!,
      tags: { [LINEAGE_TAGS.pipelineRun]: failed.runId, [LINEAGE_TAGS.step]: 'y' },
    });
    await rm(gate);
    const resumed = await orchestrator.resume(failed.runId, p);
    expect(resumed.status).toBe('Succeeded');
    expect(step(resumed, 'y').trackerRunId).toBe(orphan.info.id);
    expect((await tracker.getRun(orphan.info.id)).info.status).toBe('FINISHED');
  });

  it('refuses parameters that break their schema, naming the field', async () => {
    const p = pipeline({ name: 'typed', params: { n: z.number().int() } }, () => {});
    const err = await orchestrator.run(p, { n: 1.5 }).catch((e) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect(err.field).toBe('params.n');
    const extra = await orchestrator.run(p, { n: 1, m: 2 } as never).catch((e) => e);
    expect(extra).toBeInstanceOf(ValidationError);
    expect(extra.field).toBe('params.m');
  });

  it('records lineage: a tracker run per pipeline run, a child run per step, and the registered model linked to its training run', async () => {
    const trainer = nodeStep({
      name: 'trainer',
      inputs: { lr: z.number() },
      outputs: { model: artifact(), accuracy: z.number() },
      script: "outFile('model', 'weights lr=' + inputs.lr); out('accuracy', 0.93);",
    });
    const model = `lineage-${Date.now()}`;
    const p = pipeline({ name: 'lineage', params: { lr: z.number() } }, (q) => {
      const t = q.step(trainer, { lr: q.params.lr });
      q.step(registerModel({ model, metricName: 'accuracy' }), { model: t.model, metric: t.accuracy });
    });
    const result = await orchestrator.run(p, { lr: 0.5 });
    expect(result.status).toBe('Succeeded');
    const tracker = await platform.get(experimentTrackerRef);
    const registry = await platform.get(modelRegistryRef);
    const parent = await tracker.getRun(result.trackerRunId!);
    expect(parent.data.tags[LINEAGE_TAGS.pipelineRun]).toBe(result.runId);
    expect(parent.info.status).toBe('FINISHED');
    const trainRun = await tracker.getRun(step(result, 'trainer').trackerRunId!);
    expect(trainRun.info.parentRunId ?? trainRun.data.tags['mlflow.parentRunId']).toBe(result.trackerRunId);
    expect(trainRun.data.params.lr).toBe('0.5');
    expect(trainRun.data.metrics.accuracy?.value).toBe(0.93);
    const modelOut = result.outputs('trainer')!.model as { uri: string; sha256: string };
    expect(trainRun.data.tags[`${LINEAGE_TAGS.output}model`]).toBe(`${modelOut.uri} sha256:${modelOut.sha256}`);
    const registered = result.outputs('register-model') as { name: string; version: number };
    const lineage = await registry.getLineage(model, registered.version);
    expect(lineage.runId).toBe(trainRun.info.id);
    expect(lineage.source).toBe(modelOut.uri);
    const version = await registry.getVersion(model, registered.version);
    expect(version.tags.accuracy).toBe('0.93');
    const regRun = await tracker.getRun(step(result, 'register-model').trackerRunId!);
    expect(regRun.inputs.datasetInputs.map((d) => d.dataset.digest)).toEqual([modelOut.sha256.slice(0, 36)]);
  });

  it('runs actions in the orchestrator and retries one that throws', async () => {
    let calls = 0;
    const flakyAction = action({
      name: 'count-calls',
      version: '1',
      outputs: { calls: z.number() },
      cache: false,
      retry: { retries: 1, minDelayMs: 10 },
      run: () => {
        calls += 1;
        if (calls === 1) throw new Error('registry hiccup');
        return { calls };
      },
    });
    const p = pipeline({ name: 'actions' }, (q) => {
      q.step(flakyAction, {});
    });
    const result = await orchestrator.run(p, {});
    expect(result.outputs('count-calls')).toEqual({ calls: 2 });
    expect(step(result, 'count-calls').attempt).toBe(2);
  });
});
