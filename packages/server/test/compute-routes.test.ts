import { action, pipeline } from '@mlplane/pipelines';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { startTestApi, type TestApi } from './support.js';

let t: TestApi;
beforeAll(async () => {
  t = await startTestApi();
});
afterAll(() => t?.[Symbol.asyncDispose]());

const P = '/api/v1/projects/jobs-project';

describe('jobs over /api/v1 on the local ComputeBackend', () => {
  it('submits a job, follows it to Succeeded and reads its log', async () => {
    const submitted = await t.call('POST', `${P}/jobs`, {
      body: { name: 'hello', replicaGroups: [{ role: 'main', command: ['sh', '-c', 'echo one; echo two'] }] },
    });
    expect(submitted.status).toBe(201);
    expect(submitted.body).toMatchObject({ name: 'hello', project: 'jobs-project' });
    const id = submitted.body.id;
    await vi.waitFor(async () => expect((await t.call('GET', `${P}/jobs/${id}`)).body.phase).toBe('Succeeded'), {
      timeout: 15_000,
      interval: 100,
    });
    const logs = await t.call('GET', `${P}/jobs/${id}/logs`);
    expect(logs.status).toBe(200);
    expect(logs.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(logs.body).toBe('one\ntwo\n');
    const listed = await t.call('GET', `${P}/jobs?phase=Succeeded`);
    expect(listed.body.items.map((j: { id: string }) => j.id)).toContain(id);
    const queues = await t.call('GET', `${P}/queues`);
    expect(queues.status).toBe(200);
    expect(queues.body.queues.map((q: { name: string }) => q.name)).toContain('default');
  });

  it('cancels a running job, hides it from other projects and refuses a bad spec naming the field', async () => {
    const submitted = await t.call('POST', `${P}/jobs`, {
      body: { name: 'sleeper', replicaGroups: [{ role: 'main', command: ['sleep', '30'] }] },
    });
    const id = submitted.body.id;
    expect((await t.call('GET', `/api/v1/projects/elsewhere/jobs/${id}`)).status).toBe(404);
    const cancelled = await t.call('POST', `${P}/jobs/${id}/cancel`, { body: { reason: 'test' } });
    expect(cancelled.status).toBe(200);
    await vi.waitFor(async () => expect((await t.call('GET', `${P}/jobs/${id}`)).body.phase).toBe('Cancelled'), {
      timeout: 15_000,
      interval: 100,
    });
    const bad = await t.call('POST', `${P}/jobs`, {
      body: { name: 'Bad Name!', replicaGroups: [{ role: 'main', command: ['true'] }] },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.details.field).toBe('name');
  });
});

describe('pipeline runs over /api/v1', () => {
  it('shows a run and explains why its steps were reused on a rerun', async () => {
    const count = action({ name: 'count', version: '1', outputs: { n: z.number() }, run: () => ({ n: 3 }) });
    const p = pipeline({ name: 'explained' }, (q) => {
      q.step(count, {});
    });
    await t.pipelines.run(p, {}, { project: 'jobs-project' });
    const again = await t.pipelines.run(p, {}, { project: 'jobs-project' });
    const shown = await t.call('GET', `${P}/pipeline-runs/${again.runId}`);
    expect(shown.body).toMatchObject({ pipeline: 'explained', status: 'Succeeded' });
    const explained = await t.call('GET', `${P}/pipeline-runs/${again.runId}/cache`);
    expect(explained.body.items).toEqual([
      expect.objectContaining({ step: 'count', decision: 'reused', reasons: expect.any(Array) }),
    ]);
    expect((await t.call('GET', `/api/v1/projects/elsewhere/pipeline-runs/${again.runId}`)).status).toBe(404);
  });
});
