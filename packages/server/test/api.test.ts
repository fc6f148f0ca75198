import { auditLogRef } from '@mlplane/core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startTestApi, type TestApi } from './support.js';

let t: TestApi;
beforeAll(async () => {
  t = await startTestApi();
});
afterAll(() => t?.[Symbol.asyncDispose]());

describe('/api/v1 over embedded defaults', () => {
  it('tracks an experiment and a run end to end, and the audit log names the caller', async () => {
    const created = await t.call('POST', '/api/v1/projects/vision/experiments', { body: { name: 'resnet' } });
    expect(created.status).toBe(201);
    expect(created.body.tags['mlplane.project']).toBe('vision');
    const experimentId = created.body.id;
    const run = await t.call('POST', '/api/v1/projects/vision/runs', { body: { experimentId, name: 'r1' } });
    expect(run.status).toBe(201);
    const runId = run.body.info.id;
    const logged = await t.call('POST', `/api/v1/projects/vision/runs/${runId}/log-batch`, {
      body: {
        metrics: [
          { key: 'loss', value: 0.5, step: 1 },
          { key: 'loss', value: 'NaN', step: 2 },
        ],
        params: [{ key: 'lr', value: '0.01' }],
      },
    });
    expect(logged.status).toBe(204);
    const history = await t.call('GET', `/api/v1/projects/vision/runs/${runId}/metrics/loss`);
    expect(history.body.items.map((m: { value: unknown }) => m.value)).toEqual([0.5, 'NaN']);
    const found = await t.call('POST', '/api/v1/projects/vision/runs/search', {
      body: { experimentIds: [experimentId], filter: "params.lr = '0.01'" },
    });
    expect(found.body.items.map((r: { info: { id: string } }) => r.info.id)).toEqual([runId]);
    const audit = await t.platform.get(auditLogRef);
    // Events reach the audit log through the outbox relay, a moment after the request.
    await vi.waitFor(
      async () => {
        const entries = await audit.list({ maxResults: 100 });
        const runEntry = entries.items.find((e) => e.action.startsWith('run.'));
        expect(runEntry).toMatchObject({ actor: 'admin', project: 'vision' });
      },
      { timeout: 10_000, interval: 100 },
    );
  });

  it('hides another project’s experiments behind 404 and refuses reserved tags', async () => {
    const a = await t.call('POST', '/api/v1/projects/a/experiments', { body: { name: 'only-in-a' } });
    const other = await t.call('GET', `/api/v1/projects/b/experiments/${a.body.id}`);
    expect(other.status).toBe(404);
    expect(other.body.code).toBe('NOT_FOUND');
    const reserved = await t.call('PUT', `/api/v1/projects/a/experiments/${a.body.id}/tags/mlplane.project`, {
      body: { value: 'b' },
    });
    expect(reserved.status).toBe(400);
    expect(reserved.body).toMatchObject({ code: 'VALIDATION', details: { field: 'key' } });
  });

  it('answers 401 without a token and 403 for a token of another project', async () => {
    expect((await t.call('GET', '/api/v1/projects/a/experiments', { token: null })).status).toBe(401);
    const bToken = await t.token('bob', ['b'], ['editor']);
    const denied = await t.call('GET', '/api/v1/projects/a/experiments', { token: bToken });
    expect(denied.status).toBe(403);
    expect(denied.body.code).toBe('PERMISSION_DENIED');
    expect((await t.call('GET', '/api/v1/projects/b/experiments', { token: bToken })).status).toBe(200);
  });

  it('answers malformed bodies with 400 and a message, and request ids', async () => {
    const res = await t.call('POST', '/api/v1/projects/a/experiments', {
      rawBody: '{"name": ',
      headers: { 'content-type': 'application/json', 'x-request-id': 'req-123' },
    });
    expect(res.status).toBe(400);
    expect(res.body.message).toMatch(/not valid JSON/);
    expect(res.headers.get('x-request-id')).toBe('req-123');
    const wrongType = await t.call('POST', '/api/v1/projects/a/experiments', { body: { name: 42 } });
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.details.field).toBe('name');
  });

  it('serves /health, /ready and an OpenAPI 3.1 document', async () => {
    expect((await t.call('GET', '/health', { token: null })).status).toBe(200);
    expect((await t.call('GET', '/ready', { token: null })).status).toBe(200);
    const doc = await t.call('GET', '/api/v1/openapi.json');
    expect(doc.body.openapi).toBe('3.1.0');
    expect(doc.body.paths['/api/v1/projects/{project}/runs/{runId}/log-batch'].post.operationId).toBe('logBatch');
  });
});
