import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConflictError, NotFoundError, ValidationError } from '@mlplane/core';
import { experimentTrackerConformance, readAll, rejects } from '@mlplane/core/testing';
import { LocalArtifactStore, SqliteMetadataStore } from '@mlplane/defaults';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readOutbox } from '../src/outbox/outbox.js';
import type { TrackerDatabase } from '../src/tracker/schema.js';
import { SqlExperimentTracker } from '../src/tracker/sql-experiment-tracker.js';

experimentTrackerConformance('SqlExperimentTracker on SQLite (temp dir)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-tracker-'));
  const store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
  const artifacts = new LocalArtifactStore({ root: join(dir, 'artifacts') });
  const tracker = await SqlExperimentTracker.open({ store, artifacts });
  return {
    tracker,
    events: async () => (await readOutbox(store.db(), { limit: 1_000_000 })).map((e) => e.event),
    readArtifact: async (key) => readAll((await artifacts.get(key)).body),
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('SqlExperimentTracker artifact URIs', () => {
  let dir: string;
  let store: SqliteMetadataStore;
  let artifacts: LocalArtifactStore;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mlplane-tracker-uri-'));
    store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
    artifacts = new LocalArtifactStore({ root: join(dir, 'artifacts') });
  });
  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const text = async (body: AsyncIterable<Uint8Array>) => (await readAll(body)).toString();

  it('records the store URI of each default location and writes below the matching key', async () => {
    const tracker = await SqlExperimentTracker.open({ store, artifacts, artifactRoot: 'my experiments' });
    const experiment = await tracker.createExperiment({ name: 'uris' });
    expect(experiment.artifactLocation).toBe(artifacts.uri(`my experiments/${experiment.id}`));
    expect(experiment.artifactLocation).toMatch(/^file:\/\/\/.*\/my%20experiments\/\d+$/);
    const run = await tracker.createRun({ experimentId: experiment.id });
    expect(run.info.artifactUri).toBe(artifacts.uri(`my experiments/${experiment.id}/${run.info.id}/artifacts`));
    const info = await tracker.logArtifact(run.info.id, 'model/a b.txt', 'weights');
    expect(info.key).toBe(`my experiments/${experiment.id}/${run.info.id}/artifacts/model/a b.txt`);
    expect(await text((await artifacts.get(info.key)).body)).toBe('weights');
    expect(await text((await tracker.openArtifact(run.info.id, 'model/a b.txt')).body)).toBe('weights');
    // The URI search attribute sees the same value the run reports.
    const found = await tracker.searchRuns({
      experimentIds: [experiment.id],
      filter: `attributes.artifact_uri = '${run.info.artifactUri}'`,
    });
    expect(found.items.map((r) => r.info.id)).toEqual([run.info.id]);
  });

  it('accepts an explicit location inside its store and refuses one outside it', async () => {
    const tracker = await SqlExperimentTracker.open({ store, artifacts });
    const inside = `${artifacts.uri('teams/risk')}/`;
    const experiment = await tracker.createExperiment({ name: 'inside', artifactLocation: inside });
    expect(experiment.artifactLocation).toBe(artifacts.uri('teams/risk'));
    const run = await tracker.createRun({ experimentId: experiment.id });
    const info = await tracker.logArtifact(run.info.id, 'x.txt', 'x');
    expect(info.key).toBe(`teams/risk/${run.info.id}/artifacts/x.txt`);

    for (const outside of ['s3://bucket/mlflow', 'file:///elsewhere/artifacts', 'mlflow-artifacts:/1']) {
      const err = await rejects(
        tracker.createExperiment({ name: `outside-${outside.length}`, artifactLocation: outside }),
        ValidationError,
        "outside this tracker's artifact store",
      );
      expect(err.field).toBe('artifactLocation');
    }
    // A refused location creates nothing.
    expect((await tracker.searchExperiments()).items.map((e) => e.name)).toEqual(['inside']);
  });

  it('turns locations recorded as bare keys into URIs when it opens, and keeps reading their artifacts', async () => {
    const first = await SqlExperimentTracker.open({ store, artifacts });
    const experiment = await first.createExperiment({ name: 'legacy' });
    const run = await first.createRun({ experimentId: experiment.id });
    const legacyRoot = `experiments/${experiment.id}`;
    const legacyRun = `${legacyRoot}/${run.info.id}/artifacts`;
    // What a tracker from before artifact URIs recorded: the ArtifactStore keys themselves.
    await store.db<TrackerDatabase>().updateTable('experiments').set({ artifact_location: legacyRoot }).execute();
    await store.db<TrackerDatabase>().updateTable('runs').set({ artifact_uri: legacyRun }).execute();
    await artifacts.put(`${legacyRun}/model.bin`, 'old bytes');
    expect((await first.getRun(run.info.id)).info.artifactUri).toBe(legacyRun);

    const reopened = await SqlExperimentTracker.open({ store, artifacts });
    expect((await reopened.getExperiment(experiment.id)).artifactLocation).toBe(artifacts.uri(legacyRoot));
    expect((await reopened.getRun(run.info.id)).info.artifactUri).toBe(artifacts.uri(legacyRun));
    expect(await text((await reopened.openArtifact(run.info.id, 'model.bin')).body)).toBe('old bytes');
    expect((await reopened.listRunArtifacts(run.info.id)).items).toEqual([
      { path: 'model.bin', isDir: false, size: 9 },
    ]);
    // Opening again finds nothing left to convert and changes nothing; a URI without '//' is not taken for a key.
    const foreign = await reopened.createExperiment({ name: 'foreign' });
    await store
      .db<TrackerDatabase>()
      .updateTable('experiments')
      .set({ artifact_location: 'mlflow-artifacts:/9' })
      .where('experiment_id', '=', Number(foreign.id))
      .execute();
    await SqlExperimentTracker.open({ store, artifacts });
    expect((await reopened.getRun(run.info.id)).info.artifactUri).toBe(artifacts.uri(legacyRun));
    expect((await reopened.getExperiment(foreign.id)).artifactLocation).toBe('mlflow-artifacts:/9');
  });

  it('says where artifacts are when the store it was opened on no longer holds them, and loses nothing', async () => {
    const tracker = await SqlExperimentTracker.open({ store, artifacts });
    const experiment = await tracker.createExperiment({ name: 'moved' });
    const run = await tracker.createRun({ experimentId: experiment.id });
    await tracker.logArtifact(run.info.id, 'model.bin', 'kept');

    const elsewhere = await SqlExperimentTracker.open({
      store,
      artifacts: new LocalArtifactStore({ root: join(dir, 'other') }),
    });
    const err = await rejects(elsewhere.openArtifact(run.info.id, 'model.bin'), ConflictError, run.info.artifactUri);
    expect(err.message).toContain("outside this tracker's artifact store");
    await rejects(elsewhere.logArtifact(run.info.id, 'more.bin', 'x'), ConflictError, 'outside');
    await rejects(elsewhere.listRunArtifacts(run.info.id), ConflictError, 'outside');

    const back = await SqlExperimentTracker.open({ store, artifacts });
    expect(await text((await back.openArtifact(run.info.id, 'model.bin')).body)).toBe('kept');
  });

  it('names a directory as such when asked to open it', async () => {
    const tracker = await SqlExperimentTracker.open({ store, artifacts });
    const experiment = await tracker.createExperiment({ name: 'dirs' });
    const run = await tracker.createRun({ experimentId: experiment.id });
    await tracker.logArtifact(run.info.id, 'model/deep/weights.bin', 'w');
    await rejects(tracker.openArtifact(run.info.id, 'model'), NotFoundError, "'model' in run");
    await rejects(tracker.openArtifact(run.info.id, 'model/deep'), NotFoundError, 'is a directory, not a file');
    await rejects(tracker.openArtifact(run.info.id, 'other'), NotFoundError, "has no artifact file 'other'");
    await rejects(tracker.openArtifact(run.info.id, 42 as unknown as string), ValidationError, 'path must be a string');
  });

  it('refuses an ArtifactStore whose URIs do not end with the key', async () => {
    const odd = Object.create(artifacts, { uri: { value: (key: string) => `opaque:${key.length}` } });
    await rejects(
      SqlExperimentTracker.open({ store, artifacts: odd }),
      ValidationError,
      'cannot map its artifact URIs',
    );
  });
});
