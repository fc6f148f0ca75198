// actingAs: the actor (and project) of the work in progress reach every domain event, the registry's stage and
// alias histories, and the audit entries made from events, without an actor argument on each operation.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DomainEvent } from '@mlplane/core';
import { actingAs, currentActor, ValidationError } from '@mlplane/core';
import { LocalArtifactStore, SqliteMetadataStore } from '@mlplane/defaults';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditFromEvent, SYSTEM_ACTOR } from '../src/audit/from-event.js';
import { readOutbox } from '../src/outbox/outbox.js';
import { SqlModelRegistry } from '../src/registry/sql-model-registry.js';
import { SqlExperimentTracker } from '../src/tracker/sql-experiment-tracker.js';

let dir: string;
let store: SqliteMetadataStore;
let tracker: SqlExperimentTracker;
let registry: SqlModelRegistry;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mlplane-actor-'));
  store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
  tracker = await SqlExperimentTracker.open({ store, artifacts: new LocalArtifactStore({ root: join(dir, 'a') }) });
  registry = await SqlModelRegistry.open({ store, tracker });
});

afterAll(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

async function eventsAbout(subjectPart: string): Promise<DomainEvent[]> {
  const rows = await readOutbox(store.db(), { limit: 1_000_000 });
  return rows.map((r) => r.event).filter((e) => e.subject.includes(subjectPart));
}

describe('actingAs', () => {
  it('names the actor and project on every event of the work, and in the audit entries made from them', async () => {
    const { experimentId, runId } = await actingAs({ actor: 'alice', project: 'fraud' }, async () => {
      const experiment = await tracker.createExperiment({ name: 'acting-1' });
      const run = await tracker.createRun({ experimentId: experiment.id });
      await tracker.logBatch(run.info.id, {
        metrics: [{ key: 'auc', value: 0.9 }],
        params: [{ key: 'lr', value: '1' }],
      });
      await tracker.logMetric(run.info.id, { key: 'auc', value: 0.91 });
      await tracker.setTag(run.info.id, { key: 'team', value: 'risk' });
      return { experimentId: experiment.id, runId: run.info.id };
    });
    const events = [...(await eventsAbout(`experiment:${experimentId}`)), ...(await eventsAbout(`run:${runId}`))];
    expect(events.map((e) => e.type)).toEqual(
      expect.arrayContaining([
        'experiment.created',
        'run.created',
        'run.params.logged',
        'run.metrics.logged',
        'run.tags.set',
      ]),
    );
    for (const e of events) expect(e, e.type).toMatchObject({ actor: 'alice', project: 'fraud' });
    expect(auditFromEvent(events[0]!)).toMatchObject({ actor: 'alice', project: 'fraud' });
    // The run's user is whoever created it.
    expect((await tracker.getRun(runId)).info.userId).toBe('alice');
  });

  it('records the actor in stage and alias histories; an actor named in the input wins', async () => {
    const name = 'acting-model';
    await actingAs({ actor: 'carol' }, async () => {
      await registry.createModel({ name });
      await registry.createVersion({ name, source: 's3://m/1' });
      await registry.setAlias({ name, alias: 'champion', version: 1 });
      await registry.transitionStage({ name, version: 1, to: 'Staging' });
      await registry.transitionStage({ name, version: 1, to: 'Production', actor: 'release-bot' });
    });
    const history = await registry.getTransitionHistory(name, 1);
    expect(history.items.map((t) => [t.to, t.actor])).toEqual([
      ['Staging', 'carol'],
      ['Production', 'release-bot'],
    ]);
    expect((await registry.getAliasHistory(name)).map((m) => m.actor)).toEqual(['carol']);
    expect((await registry.getVersion(name, 1)).userId).toBe('carol');
    const events = await eventsAbout(`model:${name}`);
    expect(events.find((e) => e.type === 'model.alias.set')?.actor).toBe('carol');
    expect(events.filter((e) => e.type === 'model.version.stage.transitioned').map((e) => e.actor)).toEqual([
      'carol',
      'release-bot',
    ]);
  });

  it('keeps concurrent work apart, and work outside any context is the system', async () => {
    const names = ['acting-dave', 'acting-erin'];
    await Promise.all(
      names.map((name, i) =>
        actingAs({ actor: i === 0 ? 'dave' : 'erin' }, async () => {
          for (let k = 0; k < 5; k++) {
            // Interleave the two units of work at every await.
            await new Promise((r) => setTimeout(r, Math.random() * 3));
            await tracker.createExperiment({ name: `${name}-${k}` });
          }
        }),
      ),
    );
    const rows = (await readOutbox(store.db(), { limit: 1_000_000 })).map((r) => r.event);
    for (const [i, name] of names.entries()) {
      const mine = rows.filter(
        (e) => e.type === 'experiment.created' && String((e.payload as { name?: string }).name).startsWith(name),
      );
      expect(mine).toHaveLength(5);
      for (const e of mine) expect(e.actor).toBe(i === 0 ? 'dave' : 'erin');
    }
    expect(currentActor()).toBeUndefined();
    const system = await tracker.createExperiment({ name: 'acting-system' });
    const [created] = await eventsAbout(`experiment:${system.id}`);
    expect(created?.actor).toBeUndefined();
    expect(auditFromEvent(created!).actor).toBe(SYSTEM_ACTOR);
  });

  it('refuses an empty actor or project', () => {
    expect(() => actingAs({ actor: '' }, () => 1)).toThrow(ValidationError);
    expect(() => actingAs({ actor: ' ' }, () => 1)).toThrow('actingAs needs a non-empty actor (a principal id)');
    expect(() => actingAs({ actor: 'a', project: '' }, () => 1)).toThrow(
      'actingAs: project must be a non-empty string when given',
    );
    expect(actingAs({ actor: 'a' }, () => currentActor())).toEqual({ actor: 'a' });
  });
});
