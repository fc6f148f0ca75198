import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  auditLogRef,
  authorizerRef,
  type DomainEvent,
  eventBusRef,
  experimentTrackerRef,
  metadataStoreRef,
  modelRegistryRef,
  PermissionDeniedError,
  STAGE_POLICY,
  ValidationError,
  VetoedError,
  verifyWebhook,
  veto,
} from '@mlplane/core';
import { SqliteMetadataStore } from '@mlplane/defaults';
import { startTestPlatform } from '@mlplane/defaults/testing';
import { webhookSubscriptionsRef } from '@mlplane/sql';
import { describe, expect, it } from 'vitest';

describe('management layer on a started platform (embedded defaults)', () => {
  it('tracks, registers and promotes; every change is relayed as an event and audited', async () => {
    await using platform = await startTestPlatform();
    expect(platform.pluginIds).toEqual(['embedded', 'management']);
    expect((await platform.get(metadataStoreRef)).dialect).toBe('sqlite');

    const bus = await platform.get(eventBusRef);
    const seen: DomainEvent[] = [];
    await bus.subscribe({ group: 'test-observer', handler: async (e) => void seen.push(e) });

    platform.hooks.model.beforePromote.tapPromise({ name: 'risk-review', stage: STAGE_POLICY }, async (version, to) =>
      to === 'Production' && !version.tags.reviewed ? veto('needs a risk review') : undefined,
    );

    const tracker = await platform.get(experimentTrackerRef);
    const experiment = await tracker.createExperiment({ name: 'fraud' });
    const run = await tracker.createRun({ experimentId: experiment.id, userId: 'ana' });
    await tracker.logBatch(run.info.id, {
      metrics: [{ key: 'auc', value: 0.93, step: 1, timestamp: Date.now() }],
      params: [{ key: 'lr', value: '0.01' }],
    });

    const registry = await platform.get(modelRegistryRef);
    await registry.createModel({ name: 'fraud' });
    const v1 = await registry.createVersion({
      name: 'fraud',
      source: `${run.info.artifactUri}/model`,
      runId: run.info.id,
    });
    const err = await registry
      .transitionStage({ name: 'fraud', version: v1.version, to: 'Production' })
      .catch((e) => e);
    expect(err).toBeInstanceOf(VetoedError);
    expect((err as VetoedError).message).toContain('vetoed by risk-review: needs a risk review');
    expect((await registry.getVersion('fraud', v1.version)).stage).toBe('None');

    await registry.setVersionTag('fraud', v1.version, 'reviewed', 'yes');
    const promoted = await registry.transitionStage({
      name: 'fraud',
      version: v1.version,
      to: 'Production',
      actor: 'ana',
    });
    expect(promoted.stage).toBe('Production');

    // The relay moves outbox rows to the bus; the management plugin's audit consumer records each one.
    await expect
      .poll(() => seen.map((e) => e.type), { timeout: 10_000 })
      .toEqual(expect.arrayContaining(['experiment.created', 'run.created', 'model.created', 'model.version.created']));
    const audit = await platform.get(auditLogRef);
    await expect
      .poll(async () => (await audit.list({ order: 'asc' })).items.map((e) => e.action), { timeout: 10_000 })
      .toEqual(expect.arrayContaining(['experiment.created', 'run.created', 'model.version.created']));
    const promotions = await audit.list({ action: 'model.*' });
    expect(promotions.items.some((e) => e.outcome === 'succeeded')).toBe(true);
    expect(await audit.verify()).toMatchObject({ ok: true });

    const authorizer = await platform.get(authorizerRef);
    const resource = { project: 'default', kind: 'model', id: 'fraud' } as const;
    const nobody = { id: 'nobody', kind: 'user', roles: {} } as const;
    expect((await authorizer.authorize(nobody, 'model.promote', resource)).allowed).toBe(false);
    const editor = { id: 'ana', kind: 'user', roles: { default: ['editor'] } } as const;
    expect((await authorizer.authorize(editor, 'model.promote', resource)).allowed).toBe(true);
  });

  it('delivers events to a webhook subscription, signed with the secret shown once', async () => {
    const received: { body: string; headers: IncomingHttpHeaders }[] = [];
    const server = createServer(async (req, res) => {
      let body = '';
      for await (const chunk of req) body += chunk;
      received.push({ body, headers: req.headers });
      res.writeHead(204).end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      await using platform = await startTestPlatform();
      const webhooks = await platform.get(webhookSubscriptionsRef);
      const { secret } = await webhooks.create({
        url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`,
        eventTypes: ['experiment.*'],
      });
      expect(secret).toBeDefined();
      const tracker = await platform.get(experimentTrackerRef);
      await tracker.createExperiment({ name: 'webhooked' });
      await expect.poll(() => received.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
      const delivery = received[0]!;
      expect(JSON.parse(delivery.body)).toMatchObject({ type: 'experiment.created' });
      expect(verifyWebhook({ secret: secret!, body: delivery.body, headers: delivery.headers })).toEqual({ ok: true });
      expect(verifyWebhook({ secret: 'wrong-secret', body: delivery.body, headers: delivery.headers }).ok).toBe(false);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('applies management.tokens: the lifetime limit, and failed-check counts written when the platform stops', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'mlplane-tokens-'));
    try {
      const platform = await startTestPlatform({
        config: { embedded: { dataDir }, management: { tokens: { maxLifetimeMs: 86_400_000 } } },
      });
      const authorizer = await platform.get(authorizerRef);
      await authorizer.grant('ana', 'default', 'editor');
      const input = {
        principal: await authorizer.getPrincipal('ana'),
        name: 'ci',
        projects: ['default'],
        roles: ['viewer'],
      };
      const err = await authorizer
        .createToken({ ...input, expiresAt: new Date(Date.now() + 2 * 86_400_000) })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ValidationError);
      expect((err as ValidationError).message).toContain('1 day (management.tokens.maxLifetimeMs)');
      const token = await authorizer.createToken({ ...input, expiresAt: new Date(Date.now() + 3_600_000) });
      await authorizer.revokeToken(token.id);
      for (let i = 0; i < 5; i++) {
        await expect(authorizer.verifyToken(token.secret, { source: '10.1.2.3' })).rejects.toThrow(
          PermissionDeniedError,
        );
      }
      await platform.stop();
      // Read back after the stop: the counts still coalescing were written before the store closed.
      const store = await SqliteMetadataStore.open({ path: join(dataDir, 'metadata.db') });
      try {
        // The log's rows as written (opening the log itself needs the platform's chain key and checkpoints).
        const rows = await store
          .db()
          .selectFrom('audit_log')
          .select('details')
          .where('action', '=', 'token.verify')
          .orderBy('seq')
          .execute();
        const entries = rows.map((r) => ({ details: JSON.parse(r.details as string) as Record<string, unknown> }));
        expect(entries.map((e) => [e.details.count, e.details.coalesced ?? false])).toEqual([
          [1, false],
          [4, true],
        ]);
      } finally {
        await store.close();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
