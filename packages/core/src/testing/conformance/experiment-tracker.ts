import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConflictError, NotFoundError, ValidationError } from '../../ports/errors.js';
import type { DomainEvent } from '../../ports/event-bus.js';
import {
  ARTIFACT_URI_PATTERN,
  type DatasetInput,
  type ExperimentTracker,
  experimentTrackerInputs,
  type LogBatchInput,
  type Metric,
  type MetricInput,
  type Run,
  SEARCH_RUNS_PAGE,
  type SearchRunsOptions,
  TRACKER_LIMITS,
} from '../../ports/experiment-tracker.js';
import { validatePortInputs } from '../../ports/port-inputs.js';
import { SEARCH_FILTER_LIMITS } from '../../ports/search-filter.js';
import { withTraceContext } from '../../ports/trace-context.js';
import { itWhen, readAll, rejects, sha256Hex, uniqueTag } from './support.js';

export interface ExperimentTrackerFixture {
  readonly tracker: ExperimentTracker;
  /**
   * The domain events the tracker recorded (its outbox), oldest first. Backends without an outbox leave it
   * out and the event cases are skipped.
   */
  readonly events?: () => Promise<readonly DomainEvent[]>;
  /** Reads an artifact the tracker stored, by the key `logArtifact` returned; artifact content cases need it. */
  readonly readArtifact?: (key: string) => Promise<Buffer>;
  /** Releases what the fixture created; runs after each test. */
  readonly cleanup?: () => Promise<void>;
}

const T0 = 1_760_000_000_000;

/**
 * The contract every ExperimentTracker meets, against a fresh tracker from `factory` per test. Names carry a
 * random tag so that a shared backend works; capability-gated cases are skipped where not declared.
 */
export function experimentTrackerConformance(name: string, factory: () => Promise<ExperimentTrackerFixture>): void {
  describe(`ExperimentTracker conformance: ${name}`, async () => {
    const probe = await factory();
    const caps = probe.tracker.capabilities;
    const hasEvents = caps.changeEvents;
    if (hasEvents && probe.events === undefined) {
      throw new Error(`${name}: capabilities.changeEvents is true, so the fixture must give events()`);
    }
    await probe.cleanup?.();
    const unlessUnbounded = itWhen(!caps.unboundedBatches, 'logBatch splits batches over the per-call counts');

    let fixture: ExperimentTrackerFixture;
    let tracker: ExperimentTracker;
    let tag: string;

    beforeEach(async () => {
      fixture = await factory();
      tracker = fixture.tracker;
      tag = uniqueTag();
    });
    afterEach(async () => {
      await fixture?.cleanup?.();
    });

    const uname = (base: string) => `${base}-${tag}`;

    async function newExperiment(base = 'exp'): Promise<string> {
      return (await tracker.createExperiment({ name: uname(base) })).id;
    }

    async function newRun(experimentId?: string, extra: Partial<Parameters<ExperimentTracker['createRun']>[0]> = {}) {
      return tracker.createRun({ experimentId: experimentId ?? (await newExperiment()), ...extra });
    }

    async function history(
      runId: string,
      key: string,
      maxResults?: number,
    ): Promise<{ points: Metric[]; pages: number }> {
      const points: Metric[] = [];
      let pageToken: string | undefined;
      let pages = 0;
      do {
        const page = await tracker.getMetricHistory(runId, key, {
          ...(maxResults ? { maxResults } : {}),
          ...(pageToken ? { pageToken } : {}),
        });
        points.push(...page.items);
        pageToken = page.nextPageToken;
        if (++pages > 10_000) throw new Error('metric history did not terminate');
      } while (pageToken);
      return { points, pages };
    }

    async function searchAll(options: SearchRunsOptions): Promise<{ runs: Run[]; pages: number }> {
      const runs: Run[] = [];
      let pageToken: string | undefined;
      let pages = 0;
      do {
        const page = await tracker.searchRuns({ ...options, ...(pageToken ? { pageToken } : {}) });
        runs.push(...page.items);
        pageToken = page.nextPageToken;
        if (++pages > 10_000) throw new Error('search did not terminate');
      } while (pageToken);
      return { runs, pages };
    }

    async function searchIds(experimentId: string, filter: string, orderBy?: string[]): Promise<string[]> {
      const { runs } = await searchAll({ experimentIds: [experimentId], filter, ...(orderBy ? { orderBy } : {}) });
      return runs.map((r) => r.info.id);
    }

    async function eventsWhere(match: (e: DomainEvent) => boolean): Promise<DomainEvent[]> {
      return [...(await fixture.events!())].filter(match);
    }

    const aboutRun = (runId: string) => (e: DomainEvent) => (e.payload as { runId?: string })?.runId === runId;

    // ------------------------------------------------------------------ experiments
    describe('experiments', () => {
      it('creates an experiment and reads it back by id and by name', async () => {
        const before = Date.now();
        const created = await tracker.createExperiment({ name: uname('create'), tags: { team: 'vision' } });
        expect(created.name).toBe(uname('create'));
        expect(created.lifecycleStage).toBe('active');
        expect(created.tags).toEqual({ team: 'vision' });
        expect(created.artifactLocation).toMatch(ARTIFACT_URI_PATTERN);
        expect(created.createdAt.getTime()).toBeGreaterThanOrEqual(before - 1000);
        expect(await tracker.getExperiment(created.id)).toEqual(created);
        expect(await tracker.getExperimentByName(uname('create'))).toEqual(created);
      });

      it('assigns distinct ids and keeps an explicit artifact location', async () => {
        const b = await tracker.createExperiment({ name: uname('b') });
        // A sibling of a location the backend chose itself is one it can write to, whatever its scheme.
        const custom = `${b.artifactLocation.replace(/\/+$/, '')}-custom-${tag}`;
        const a = await tracker.createExperiment({ name: uname('a'), artifactLocation: custom });
        expect(a.id).not.toBe(b.id);
        expect(a.artifactLocation).toBe(custom);
        const run = await tracker.createRun({ experimentId: a.id });
        expect(run.info.artifactUri).toBe(`${custom}/${run.info.id}/artifacts`);
        await tracker.logArtifact(run.info.id, 'model.txt', 'custom');
        expect((await readAll((await tracker.openArtifact(run.info.id, 'model.txt')).body)).toString()).toBe('custom');
      });

      it('refuses a taken name with ConflictError, even when the holder is deleted', async () => {
        const id = await newExperiment('dup');
        await rejects(
          tracker.createExperiment({ name: uname('dup') }),
          ConflictError,
          `'${uname('dup')}' already exists`,
        );
        await tracker.deleteExperiment(id);
        await rejects(tracker.createExperiment({ name: uname('dup') }), ConflictError, 'already exists');
      });

      it('gives only one of many concurrent creates of a name', async () => {
        const results = await Promise.allSettled(
          Array.from({ length: 8 }, () => tracker.createExperiment({ name: uname('race') })),
        );
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results) {
          if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ConflictError);
        }
      });

      it('raises NotFoundError for unknown ids and names', async () => {
        await rejects(tracker.getExperiment('999999999'), NotFoundError, "experiment '999999999' does not exist");
        await rejects(tracker.getExperiment('not-an-id'), NotFoundError, 'does not exist');
        await rejects(tracker.getExperimentByName(uname('missing')), NotFoundError, uname('missing'));
        await rejects(tracker.deleteExperiment('999999999'), NotFoundError, 'does not exist');
      });

      it('validates names, tags and artifact locations with errors naming the limit', async () => {
        const empty = await rejects(tracker.createExperiment({ name: '' }), ValidationError, 'non-empty');
        expect(empty.field).toBe('name');
        const long = 'x'.repeat(TRACKER_LIMITS.experimentNameLength + 1);
        await rejects(tracker.createExperiment({ name: long }), ValidationError, 'experimentNameLength');
        const value = 'v'.repeat(TRACKER_LIMITS.experimentTagValueLength + 1);
        await rejects(
          tracker.createExperiment({ name: uname('t'), tags: { k: value } }),
          ValidationError,
          'experimentTagValueLength',
        );
        const id = await newExperiment();
        await rejects(tracker.setExperimentTag(id, 'k', value), ValidationError, 'experimentTagValueLength');
        await rejects(tracker.setExperimentTag(id, 'bad$key', 'v'), ValidationError, 'is not a valid key');
        await rejects(
          tracker.createExperiment({ name: uname('r'), artifactLocation: 'runs:/abc/model' }),
          ValidationError,
          'runs:/',
        );
        for (const location of ['relative/dir', '/absolute/path', 'C:\\artifacts']) {
          const err = await rejects(
            tracker.createExperiment({ name: uname('l'), artifactLocation: location }),
            ValidationError,
            'absolute URI with a scheme',
          );
          expect(err.field).toBe('artifactLocation');
        }
        await rejects(tracker.getExperimentByName(uname('l')), NotFoundError, 'does not exist');
      });

      it('stores names in NFC: names equal after normalisation collide, and either spelling finds one', async () => {
        const composed = uname('caf\u00e9');
        const decomposed = uname('cafe\u0301');
        expect(composed).not.toBe(decomposed);
        const created = await tracker.createExperiment({ name: decomposed });
        expect(created.name).toBe(composed);
        await rejects(tracker.createExperiment({ name: composed }), ConflictError, 'already exists');
        expect((await tracker.getExperimentByName(composed)).id).toBe(created.id);
        expect((await tracker.getExperimentByName(decomposed)).id).toBe(created.id);
        const found = await tracker.searchExperiments({ filter: `name = '${decomposed}'` });
        expect(found.items.map((e) => e.id)).toEqual([created.id]);
        const other = await newExperiment('other');
        await rejects(tracker.updateExperiment(other, { name: decomposed }), ConflictError, 'already exists');
        // The Angstrom sign and the letter Å are one character after NFC.
        const angstrom = await tracker.updateExperiment(other, { name: uname('\u212b') });
        expect(angstrom.name).toBe(uname('\u00c5'));
      });

      it('refuses control and bidi characters in names, naming the field', async () => {
        const id = await newExperiment();
        for (const bad of ['\u0000', '\n', '\u001b[31m', '\u0085', '\u202e', '\u2066', '\ud800']) {
          const created = await rejects(tracker.createExperiment({ name: uname(`x${bad}y`) }), ValidationError, /./);
          expect(created.field).toBe('name');
          expect(created.message).toMatch(/control character|lone surrogate/);
          await rejects(tracker.updateExperiment(id, { name: uname(`x${bad}y`) }), ValidationError, /./);
          const run = await rejects(tracker.createRun({ experimentId: id, name: `run${bad}` }), ValidationError, /./);
          expect(run.field).toBe('name');
        }
        const run = await tracker.createRun({ experimentId: id, name: 'cafe\u0301' });
        expect(run.info.name).toBe('caf\u00e9');
        await rejects(tracker.updateRun({ runId: run.info.id, name: 'a\u202eb' }), ValidationError, 'bidirectional');
        expect((await tracker.updateRun({ runId: run.info.id, name: 'nai\u0308ve' })).name).toBe('na\u00efve');
        expect((await tracker.searchExperiments({ filter: `name LIKE '%${tag}%'` })).items).toHaveLength(1);
      });

      it('keeps tabs and line breaks in tag and param values but refuses other control characters', async () => {
        const id = await newExperiment();
        const run = await newRun(id);
        await tracker.setTag(run.info.id, { key: 'note', value: 'line one\nline two\ttabbed\r\n' });
        await tracker.setExperimentTag(id, 'note', 'first\nsecond');
        for (const bad of ['\u0000', '\u0007', '\u001b[2J', '\u009b', '\udfff']) {
          const tag = await rejects(tracker.setTag(run.info.id, { key: 'k', value: `v${bad}` }), ValidationError, /./);
          // A single write names its own field (`value`), as the port boundary does; batches say `tags[0].value`.
          expect(tag.field).toBe('value');
          const param = await rejects(
            tracker.logParam(run.info.id, { key: 'p', value: `v${bad}` }),
            ValidationError,
            /./,
          );
          expect(param.field).toBe('value');
          const batch = await rejects(
            tracker.logBatch(run.info.id, { tags: [{ key: 'k', value: `v${bad}` }] }),
            ValidationError,
            /./,
          );
          expect(batch.field).toBe('tags[0].value');
          await rejects(tracker.setExperimentTag(id, 'k', `v${bad}`), ValidationError, /control character|surrogate/);
        }
        // Keys are refused unless NFC, so two keys never look the same.
        await rejects(tracker.logParam(run.info.id, { key: '\u212b', value: '1' }), ValidationError, 'NFC');
        const read = await tracker.getRun(run.info.id);
        expect(read.data.tags.note).toBe('line one\nline two\ttabbed\r\n');
        expect(read.data.params).toEqual({});
        expect((await tracker.getExperiment(id)).tags).toEqual({ note: 'first\nsecond' });
      });

      it('renames, and refuses a taken name', async () => {
        const id = await newExperiment('old');
        await newExperiment('taken');
        const renamed = await tracker.updateExperiment(id, { name: uname('new') });
        expect(renamed.name).toBe(uname('new'));
        expect((await tracker.getExperimentByName(uname('new'))).id).toBe(id);
        await rejects(tracker.updateExperiment(id, { name: uname('taken') }), ConflictError, 'already exists');
      });

      it('sets experiment tags, last write wins', async () => {
        const id = await newExperiment();
        await tracker.setExperimentTag(id, 'stage', 'a');
        await tracker.setExperimentTag(id, 'stage', 'b');
        expect((await tracker.getExperiment(id)).tags).toEqual({ stage: 'b' });
      });

      it('deletes and restores idempotently, taking the runs deleted with it along', async () => {
        const id = await newExperiment();
        const kept = await newRun(id);
        await tracker.deleteExperiment(id);
        await tracker.deleteExperiment(id);
        expect((await tracker.getExperiment(id)).lifecycleStage).toBe('deleted');
        expect((await tracker.getRun(kept.info.id)).info.lifecycleStage).toBe('deleted');
        await rejects(newRun(id), ConflictError, 'is deleted');
        await tracker.restoreExperiment(id);
        await tracker.restoreExperiment(id);
        expect((await tracker.getExperiment(id)).lifecycleStage).toBe('active');
        expect((await tracker.getRun(kept.info.id)).info.lifecycleStage).toBe('active');
      });

      itWhen(caps.selectiveRestore, 'MLflow restores every run of a restored experiment')(
        'restores only the runs deleted with the experiment',
        async () => {
          const id = await newExperiment();
          const alreadyDeleted = await newRun(id);
          await tracker.deleteRun(alreadyDeleted.info.id);
          await tracker.deleteExperiment(id);
          await tracker.restoreExperiment(id);
          // A run deleted on its own stays deleted.
          expect((await tracker.getRun(alreadyDeleted.info.id)).info.lifecycleStage).toBe('deleted');
        },
      );

      it('searches by name and tags, by view type, in order, over pages without gaps or duplicates', async () => {
        const ids: string[] = [];
        for (let i = 0; i < 7; i++) {
          ids.push(
            (await tracker.createExperiment({ name: uname(`search-${i}`), tags: { parity: i % 2 ? 'odd' : 'even' } }))
              .id,
          );
        }
        await tracker.deleteExperiment(ids[6]!);
        const filter = `name LIKE 'search-%-${tag}'`;
        const all: string[] = [];
        let pageToken: string | undefined;
        do {
          const page = await tracker.searchExperiments({
            filter,
            orderBy: ['name ASC'],
            maxResults: 2,
            ...(pageToken ? { pageToken } : {}),
          });
          all.push(...page.items.map((e) => e.id));
          pageToken = page.nextPageToken;
        } while (pageToken);
        expect(all).toEqual(ids.slice(0, 6));
        const odd = await tracker.searchExperiments({ filter: `${filter} and tags.parity = 'odd'`, orderBy: ['name'] });
        expect(odd.items.map((e) => e.id)).toEqual([ids[1], ids[3], ids[5]]);
        const deleted = await tracker.searchExperiments({ filter, viewType: 'DELETED_ONLY' });
        expect(deleted.items.map((e) => e.id)).toEqual([ids[6]]);
        const everything = await tracker.searchExperiments({ filter, viewType: 'ALL', orderBy: ['name DESC'] });
        expect(everything.items.map((e) => e.id)).toEqual([...ids].reverse());
        await rejects(
          tracker.searchExperiments({ filter: 'metrics.acc > 1' }),
          ValidationError,
          'cannot filter experiments',
        );
      });
    });

    // ------------------------------------------------------------------ runs
    describe('runs', () => {
      it('creates a run with defaults and reads it back', async () => {
        const experimentId = await newExperiment();
        const before = Date.now();
        const run = await tracker.createRun({ experimentId, tags: { team: 'x' }, userId: 'alice' });
        expect(run.info.experimentId).toBe(experimentId);
        expect(run.info.status).toBe('RUNNING');
        expect(run.info.lifecycleStage).toBe('active');
        expect(run.info.name).not.toBe('');
        expect(run.info.userId).toBe('alice');
        expect(run.info.id).toMatch(/^[a-zA-Z0-9][\w-]{0,255}$/);
        expect(run.info.startTime.getTime()).toBeGreaterThanOrEqual(before - 1000);
        expect(run.info.endTime).toBeUndefined();
        expect(run.info.artifactUri).toMatch(new RegExp(`${run.info.id}/artifacts$`));
        expect(run.info.artifactUri).toMatch(ARTIFACT_URI_PATTERN);
        const experiment = await tracker.getExperiment(experimentId);
        expect(run.info.artifactUri).toBe(`${experiment.artifactLocation}/${run.info.id}/artifacts`);
        expect(run.data).toEqual({ metrics: {}, params: {}, tags: { team: 'x' } });
        expect(await tracker.getRun(run.info.id)).toEqual(run);
      });

      it('honours name, start time and SCHEDULED status', async () => {
        const run = await newRun(undefined, { name: 'my run', startTime: new Date(T0), status: 'SCHEDULED' });
        expect(run.info).toMatchObject({ name: 'my run', status: 'SCHEDULED', startTime: new Date(T0) });
      });

      it('nests runs under a parent, visible as parentRunId and the mlflow.parentRunId tag', async () => {
        const experimentId = await newExperiment();
        const parent = await newRun(experimentId);
        const child = await newRun(experimentId, { parentRunId: parent.info.id });
        expect(child.info.parentRunId).toBe(parent.info.id);
        expect((await tracker.getRun(child.info.id)).data.tags['mlflow.parentRunId']).toBe(parent.info.id);
        // MLflow clients nest by tag only.
        const viaTag = await newRun(experimentId, { tags: { 'mlflow.parentRunId': parent.info.id } });
        expect(viaTag.info.parentRunId).toBe(parent.info.id);
        const children = await searchIds(experimentId, `tags.mlflow.parentRunId = '${parent.info.id}'`);
        expect(children.sort()).toEqual([child.info.id, viaTag.info.id].sort());
        await rejects(newRun(experimentId, { parentRunId: 'f'.repeat(32) }), NotFoundError, 'parent run');
      });

      it('raises NotFoundError for unknown runs and experiments', async () => {
        const missing = 'a'.repeat(32);
        await rejects(tracker.getRun(missing), NotFoundError, `run '${missing}' does not exist`);
        await rejects(tracker.createRun({ experimentId: '999999999' }), NotFoundError, "experiment '999999999'");
        await rejects(tracker.logMetric(missing, { key: 'm', value: 1 }), NotFoundError, 'does not exist');
        await rejects(tracker.updateRun({ runId: missing, status: 'FINISHED' }), NotFoundError, 'does not exist');
        await rejects(tracker.getMetricHistory(missing, 'm'), NotFoundError, 'does not exist');
      });

      it('finishes a run: a terminal status without endTime sets it to now', async () => {
        const run = await newRun();
        const before = Date.now();
        const info = await tracker.updateRun({ runId: run.info.id, status: 'FINISHED' });
        expect(info.status).toBe('FINISHED');
        expect(info.endTime!.getTime()).toBeGreaterThanOrEqual(before - 1000);
        expect((await tracker.getRun(run.info.id)).info).toEqual(info);
        const explicit = await tracker.updateRun({
          runId: run.info.id,
          status: 'FAILED',
          endTime: new Date(T0),
          name: 'renamed',
        });
        expect(explicit).toMatchObject({ status: 'FAILED', endTime: new Date(T0), name: 'renamed' });
        // Any status may follow any other; finished runs still accept writes.
        await tracker.updateRun({ runId: run.info.id, status: 'RUNNING' });
        await tracker.logMetric(run.info.id, { key: 'after', value: 1 });
      });

      it('validates run updates', async () => {
        const run = await newRun();
        const err = await rejects(
          tracker.updateRun({ runId: run.info.id, status: 'DONE' as never }),
          ValidationError,
          'status must be one of',
        );
        expect(err.field).toBe('status');
        await rejects(
          tracker.updateRun({ runId: run.info.id, endTime: new Date(Number.NaN) }),
          ValidationError,
          'endTime',
        );
      });

      it('deletes and restores runs idempotently; deleted runs refuse writes', async () => {
        const run = await newRun();
        await tracker.deleteRun(run.info.id);
        await tracker.deleteRun(run.info.id);
        expect((await tracker.getRun(run.info.id)).info.lifecycleStage).toBe('deleted');
        await rejects(tracker.logMetric(run.info.id, { key: 'm', value: 1 }), ConflictError, 'is deleted');
        await rejects(tracker.logParam(run.info.id, { key: 'p', value: '1' }), ConflictError, 'is deleted');
        await rejects(tracker.setTag(run.info.id, { key: 't', value: '1' }), ConflictError, 'is deleted');
        await rejects(tracker.updateRun({ runId: run.info.id, status: 'FINISHED' }), ConflictError, 'is deleted');
        await tracker.restoreRun(run.info.id);
        await tracker.restoreRun(run.info.id);
        await tracker.logMetric(run.info.id, { key: 'm', value: 1 });
        expect((await tracker.getRun(run.info.id)).info.lifecycleStage).toBe('active');
      });
    });

    // ------------------------------------------------------------------ params, tags
    describe('params and tags', () => {
      it('keeps params immutable: the same value again is fine, another value is a conflict naming both', async () => {
        const run = await newRun();
        await tracker.logParam(run.info.id, { key: 'lr', value: '0.01' });
        await tracker.logParam(run.info.id, { key: 'lr', value: '0.01' });
        await tracker.logBatch(run.info.id, { params: [{ key: 'lr', value: '0.01' }] });
        const err = await rejects(
          tracker.logParam(run.info.id, { key: 'lr', value: '0.02' }),
          ConflictError,
          "param 'lr'",
        );
        expect(err.message).toContain("'0.01'");
        expect(err.message).toContain("'0.02'");
        expect((await tracker.getRun(run.info.id)).data.params).toEqual({ lr: '0.01' });
      });

      it('refuses one batch holding a param twice with different values', async () => {
        const run = await newRun();
        const err = await rejects(
          tracker.logBatch(run.info.id, {
            params: [
              { key: 'a', value: '1' },
              { key: 'a', value: '2' },
            ],
          }),
          ValidationError,
          "param 'a' a second time with a different value",
        );
        expect(err.field).toBe('params[1].key');
      });

      it('sets tags with last write wins and deletes them', async () => {
        const run = await newRun();
        await tracker.setTag(run.info.id, { key: 'note', value: 'a' });
        await tracker.setTag(run.info.id, { key: 'note', value: 'b' });
        await tracker.logBatch(run.info.id, {
          tags: [
            { key: 'x', value: '1' },
            { key: 'x', value: '2' },
          ],
        });
        expect((await tracker.getRun(run.info.id)).data.tags).toEqual({ note: 'b', x: '2' });
        await tracker.deleteTag(run.info.id, 'note');
        expect((await tracker.getRun(run.info.id)).data.tags).toEqual({ x: '2' });
        await rejects(tracker.deleteTag(run.info.id, 'note'), NotFoundError, "no tag 'note'");
      });
    });

    // ------------------------------------------------------------------ metrics
    describe('metrics', () => {
      it('appends every point (identical ones as capabilities.duplicateMetricPoints says) and returns history by step then timestamp', async () => {
        const run = await newRun();
        const id = run.info.id;
        await tracker.logMetric(id, { key: 'loss', value: 0.5, step: 2, timestamp: T0 + 5 });
        await tracker.logMetric(id, { key: 'loss', value: 0.9, step: 1, timestamp: T0 + 9 });
        await tracker.logMetric(id, { key: 'loss', value: 0.7, step: 1, timestamp: T0 + 1 });
        await tracker.logMetric(id, { key: 'loss', value: 0.7, step: 1, timestamp: T0 + 1 });
        const { points } = await history(id, 'loss');
        const repeated = { key: 'loss', value: 0.7, step: 1, timestamp: T0 + 1 };
        // MLflow keys a point by all its fields, so it keeps one of two identical points.
        expect(points).toEqual([
          ...(caps.duplicateMetricPoints ? [repeated, repeated] : [repeated]),
          { key: 'loss', value: 0.9, step: 1, timestamp: T0 + 9 },
          { key: 'loss', value: 0.5, step: 2, timestamp: T0 + 5 },
        ]);
        // Latest is the highest step even though another point has a later timestamp.
        expect((await tracker.getRun(id)).data.metrics.loss).toEqual({
          key: 'loss',
          value: 0.5,
          step: 2,
          timestamp: T0 + 5,
        });
      });

      it('defaults step to 0 and timestamp to now', async () => {
        const run = await newRun();
        const before = Date.now();
        await tracker.logMetric(run.info.id, { key: 'acc', value: 1 });
        const [point] = (await history(run.info.id, 'acc')).points;
        expect(point?.step).toBe(0);
        expect(point?.timestamp).toBeGreaterThanOrEqual(before - 1000);
      });

      it("keeps each key's latest value by step, then timestamp, then value (NaN as capabilities.nanRanksHighest says)", async () => {
        const run = await newRun();
        const id = run.info.id;
        const latest = async (key: string) => (await tracker.getRun(id)).data.metrics[key];
        await tracker.logBatch(id, { metrics: [{ key: 'a', value: 5, step: 5, timestamp: T0 }] });
        // An older step arriving later changes nothing.
        await tracker.logBatch(id, { metrics: [{ key: 'a', value: 3, step: 3, timestamp: T0 + 9 }] });
        expect(await latest('a')).toEqual({ key: 'a', value: 5, step: 5, timestamp: T0 });
        // Same step: the later timestamp wins; then, at the same timestamp, NaN; then the larger value.
        await tracker.logBatch(id, { metrics: [{ key: 'a', value: 1, step: 5, timestamp: T0 + 1 }] });
        expect((await latest('a'))?.value).toBe(1);
        await tracker.logBatch(id, { metrics: [{ key: 'a', value: Number.NaN, step: 5, timestamp: T0 + 1 }] });
        // MLflow ranks a NaN point as 0, so 1 stays the latest and 7 then wins.
        if (caps.nanRanksHighest) expect((await latest('a'))?.value).toBeNaN();
        else expect((await latest('a'))?.value).toBe(1);
        await tracker.logBatch(id, { metrics: [{ key: 'a', value: 7, step: 5, timestamp: T0 + 1 }] });
        if (caps.nanRanksHighest) expect((await latest('a'))?.value).toBeNaN();
        else expect((await latest('a'))?.value).toBe(7);
        // Within one batch the same order picks the point, whatever the input order.
        await tracker.logBatch(id, {
          metrics: [
            { key: 'b', value: 2, step: 9, timestamp: T0 },
            { key: 'b', value: 4, step: 9, timestamp: T0 },
            { key: 'b', value: 8, step: 2, timestamp: T0 + 50 },
          ],
        });
        expect(await latest('b')).toEqual({ key: 'b', value: 4, step: 9, timestamp: T0 });
        expect((await history(id, 'b')).points).toHaveLength(3);
      });

      it('writes nothing of a metric batch for a run that is missing or deleted', async () => {
        const metrics = [{ key: 'm', value: 1, step: 0, timestamp: T0 }];
        await rejects(tracker.logBatch('0'.repeat(32), { metrics }), NotFoundError, 'does not exist');
        const run = await newRun();
        await tracker.deleteRun(run.info.id);
        await rejects(tracker.logBatch(run.info.id, { metrics }), ConflictError, 'is deleted');
        await tracker.restoreRun(run.info.id);
        expect((await history(run.info.id, 'm')).points).toEqual([]);
        expect((await tracker.getRun(run.info.id)).data.metrics).toEqual({});
      });

      it('stores NaN and ±Infinity', async () => {
        const run = await newRun();
        await tracker.logBatch(run.info.id, {
          metrics: [
            { key: 'nan', value: Number.NaN, step: 0, timestamp: T0 },
            { key: 'inf', value: Number.POSITIVE_INFINITY, step: 0, timestamp: T0 },
            { key: 'ninf', value: Number.NEGATIVE_INFINITY, step: 0, timestamp: T0 },
          ],
        });
        const { metrics } = (await tracker.getRun(run.info.id)).data;
        expect(metrics.nan?.value).toBeNaN();
        expect(metrics.inf?.value).toBe(Number.POSITIVE_INFINITY);
        expect(metrics.ninf?.value).toBe(Number.NEGATIVE_INFINITY);
        expect((await history(run.info.id, 'nan')).points[0]?.value).toBeNaN();
      });

      it('ingests a 1000-metric batch and pages its history without gaps or duplicates', async () => {
        const run = await newRun();
        const metrics: MetricInput[] = Array.from({ length: TRACKER_LIMITS.metricsPerBatch }, (_, i) => ({
          key: 'loss',
          value: 1 / (i + 1),
          step: i,
          timestamp: T0 + i,
        }));
        await tracker.logBatch(run.info.id, { metrics });
        await tracker.logBatch(run.info.id, {
          metrics: metrics.slice(0, 500).map((m) => ({ ...m, step: m.step! + 1000 })),
        });
        const { points, pages } = await history(run.info.id, 'loss', 300);
        expect(pages).toBe(5);
        expect(points).toHaveLength(1500);
        expect(points.map((p) => p.step)).toEqual(Array.from({ length: 1500 }, (_, i) => i));
        expect((await tracker.getRun(run.info.id)).data.metrics.loss?.step).toBe(1499);
      });

      it('loses nothing under 20 concurrent batches to one run', async () => {
        const run = await newRun();
        await Promise.all(
          Array.from({ length: 20 }, (_, w) =>
            tracker.logBatch(run.info.id, {
              metrics: Array.from({ length: 50 }, (_, i) => ({
                key: `m${i % 5}`,
                value: w,
                step: w * 10 + Math.floor(i / 5),
                timestamp: T0,
              })),
              params: [
                { key: 'shared', value: 'same' },
                { key: `p${w}`, value: String(w) },
              ],
              tags: [{ key: 'writer', value: String(w) }],
            }),
          ),
        );
        const data = (await tracker.getRun(run.info.id)).data;
        for (let k = 0; k < 5; k++) {
          expect((await history(run.info.id, `m${k}`)).points).toHaveLength(200);
          expect(data.metrics[`m${k}`]).toMatchObject({ step: 199, value: 19 });
        }
        expect(Object.keys(data.params)).toHaveLength(21);
        expect(data.tags.writer).toMatch(/^\d+$/);
      });

      it('pages history with tokens tied to the run and key', async () => {
        const run = await newRun();
        await tracker.logBatch(run.info.id, {
          metrics: Array.from({ length: 5 }, (_, i) => ({ key: 'k', value: i, step: i })),
        });
        const first = await tracker.getMetricHistory(run.info.id, 'k', { maxResults: 2 });
        expect(first.items.map((p) => p.step)).toEqual([0, 1]);
        expect(first.nextPageToken).toBeDefined();
        const err = await rejects(
          tracker.getMetricHistory(run.info.id, 'other', { pageToken: first.nextPageToken! }),
          ValidationError,
          'pageToken',
        );
        expect(err.field).toBe('pageToken');
        await rejects(tracker.getMetricHistory(run.info.id, 'k', { pageToken: '%%%' }), ValidationError, 'pageToken');
        await rejects(
          tracker.getMetricHistory(run.info.id, 'k', { maxResults: 25_001 }),
          ValidationError,
          'maxResults',
        );
        const last = await tracker.getMetricHistory(run.info.id, 'k', { maxResults: 5 });
        expect(last.nextPageToken).toBeUndefined();
        expect((await tracker.getMetricHistory(run.info.id, 'never-logged')).items).toEqual([]);
      });
    });

    // ------------------------------------------------------------------ limits
    describe('limits and validation', () => {
      const metric = (i: number): MetricInput => ({ key: `m${i}`, value: i });
      const cases: [string, LogBatchInput, RegExp, string][] = [
        [
          'too many metrics',
          { metrics: Array.from({ length: 1001 }, (_, i) => metric(i)) },
          /metricsPerBatch limit is 1000/,
          'metrics',
        ],
        [
          'too many params',
          { params: Array.from({ length: 101 }, (_, i) => ({ key: `p${i}`, value: '1' })) },
          /paramsPerBatch limit is 100/,
          'params',
        ],
        [
          'too many tags',
          { tags: Array.from({ length: 101 }, (_, i) => ({ key: `t${i}`, value: '1' })) },
          /tagsPerBatch limit is 100/,
          'tags',
        ],
        [
          'too many entities',
          {
            metrics: Array.from({ length: 900 }, (_, i) => metric(i)),
            params: Array.from({ length: 100 }, (_, i) => ({ key: `p${i}`, value: '1' })),
            tags: [{ key: 't', value: '1' }],
          },
          /entitiesPerBatch limit is 1000/,
          'batch',
        ],
        ['a long key', { metrics: [{ key: 'k'.repeat(251), value: 1 }] }, /keyLength limit of 250/, 'metrics[0].key'],
        ['a bad key', { metrics: [{ key: 'a$b', value: 1 }] }, /is not a valid key/, 'metrics[0].key'],
        [
          'a path-like key',
          { params: [{ key: 'a//b', value: '1' }] },
          /must not resolve to another path/,
          'params[0].key',
        ],
        [
          'a long param value',
          { params: [{ key: 'p', value: 'v'.repeat(6001) }] },
          /paramValueLength limit is 6000/,
          'params[0].value',
        ],
        [
          'a long tag value',
          { tags: [{ key: 't', value: 'v'.repeat(8001) }] },
          /runTagValueLength limit is 8000/,
          'tags[0].value',
        ],
        [
          'a fractional step',
          { metrics: [{ key: 'm', value: 1, step: 1.5 }] },
          /step must be an integer/,
          'metrics[0].step',
        ],
        [
          'a negative timestamp',
          { metrics: [{ key: 'm', value: 1, timestamp: -1 }] },
          /timestamp must be non-negative/,
          'metrics[0].timestamp',
        ],
        [
          'a non-numeric value',
          { metrics: [{ key: 'm', value: '1' as unknown as number }] },
          /value must be a number/,
          'metrics[0].value',
        ],
        ['the parent tag', { tags: [{ key: 'mlflow.parentRunId', value: 'x' }] }, /mlflow.parentRunId/, 'tags[0].key'],
      ];
      const counted = new Set(['too many metrics', 'too many params', 'too many tags', 'too many entities']);
      for (const [label, batch, message, field] of cases) {
        (counted.has(label) ? unlessUnbounded : it)(
          `refuses ${label} with ValidationError naming the limit, writing nothing`,
          async () => {
            const run = await newRun();
            const err = await rejects(tracker.logBatch(run.info.id, batch), ValidationError, message);
            expect(err.field).toBe(field);
            const data = (await tracker.getRun(run.info.id)).data;
            expect(data).toEqual({ metrics: {}, params: {}, tags: {} });
          },
        );
      }

      it('accepts batches exactly at the limits', async () => {
        const run = await newRun();
        await tracker.logBatch(run.info.id, {
          metrics: Array.from({ length: 800 }, (_, i) => metric(i)),
          params: Array.from({ length: 100 }, (_, i) => ({ key: `p${i}`, value: 'v'.repeat(6000) })),
          tags: Array.from({ length: 100 }, (_, i) => ({ key: `t${i}`, value: 'v'.repeat(8000) })),
        });
        const data = (await tracker.getRun(run.info.id)).data;
        expect(Object.keys(data.metrics)).toHaveLength(800);
        expect(Object.keys(data.params)).toHaveLength(100);
        expect(Object.keys(data.tags)).toHaveLength(100);
        await tracker.logMetric(run.info.id, { key: 'k'.repeat(250), value: 1 });
      });

      it('validates single writes like batches', async () => {
        const run = await newRun();
        await rejects(tracker.logMetric(run.info.id, { key: '', value: 1 }), ValidationError, 'is not a valid key');
        await rejects(
          tracker.logParam(run.info.id, { key: 'p', value: 'v'.repeat(6001) }),
          ValidationError,
          'paramValueLength',
        );
        await rejects(
          tracker.setTag(run.info.id, { key: 't', value: 'v'.repeat(8001) }),
          ValidationError,
          'runTagValueLength',
        );
        await rejects(tracker.deleteTag(run.info.id, '../x'), ValidationError, 'not a valid key');
      });
    });

    // ------------------------------------------------------------------ port boundary
    describe('inputs at the port boundary (validatePortInputs, as the kernel wraps every provider)', () => {
      const boundary = () => validatePortInputs(tracker, experimentTrackerInputs);

      const badBatches: [string, unknown, string][] = [
        ['a null metric', { metrics: [null] }, 'metrics[0]'],
        ['a null key', { metrics: [{ key: null, value: 1 }] }, 'metrics[0].key'],
        ['a null param value', { params: [{ key: 'p', value: null }] }, 'params[0].value'],
        ['an object param value', { params: [{ key: 'p', value: { lr: 1 } }] }, 'params[0].value'],
        ['a numeric param value', { params: [{ key: 'p', value: 0.1 }] }, 'params[0].value'],
        ['an undefined tag value', { tags: [{ key: 't', value: undefined }] }, 'tags[0].value'],
        ['a numeric tag value', { tags: [{ key: 't', value: 3 }] }, 'tags[0].value'],
      ];
      for (const [label, batch, field] of badBatches) {
        it(`refuses a logBatch with ${label} (ValidationError on ${field}), writing nothing`, async () => {
          const run = await newRun();
          const err = await rejects(boundary().logBatch(run.info.id, batch as LogBatchInput), ValidationError, field);
          expect(err.field).toBe(field);
          expect(err.message).toMatch(/must be a (string|metric)/);
          expect((await tracker.getRun(run.info.id)).data).toEqual({ metrics: {}, params: {}, tags: {} });
        });
      }

      it('refuses searches beyond SEARCH_FILTER_LIMITS and experimentIdsPerSearch, naming the limit', async () => {
        const exp = await newExperiment();
        const clauses = Array.from({ length: SEARCH_FILTER_LIMITS.filterClauses + 1 }, (_, i) => `metrics.m${i} > 0`);
        const tooMany = await rejects(
          boundary().searchRuns({ experimentIds: [exp], filter: clauses.join(' and ') }),
          ValidationError,
          'filterClauses',
        );
        expect(tooMany.field).toBe('filter');
        const values = Array.from({ length: SEARCH_FILTER_LIMITS.filterInValues + 1 }, (_, i) => `'r${i}'`);
        await rejects(
          boundary().searchRuns({ experimentIds: [exp], filter: `attributes.run_id IN (${values.join(',')})` }),
          ValidationError,
          'filterInValues',
        );
        const terms = Array.from({ length: SEARCH_FILTER_LIMITS.orderByTerms + 1 }, (_, i) => `metrics.m${i}`);
        const order = await rejects(
          boundary().searchRuns({ experimentIds: [exp], orderBy: terms }),
          ValidationError,
          'orderByTerms',
        );
        expect(order.field).toBe('orderBy');
        const ids = Array.from({ length: TRACKER_LIMITS.experimentIdsPerSearch + 1 }, () => exp);
        const many = await rejects(
          boundary().searchRuns({ experimentIds: ids }),
          ValidationError,
          'experimentIdsPerSearch',
        );
        expect(many.field).toBe('experimentIds');
        const long = `params.p = '${'x'.repeat(SEARCH_FILTER_LIMITS.filterLength)}'`;
        const length = await rejects(boundary().searchExperiments({ filter: long }), ValidationError, 'filterLength');
        expect(length.message.length).toBeLessThan(300);
      });

      it('passes valid calls through unchanged', async () => {
        const wrapped = boundary();
        const exp = (await wrapped.createExperiment({ name: uname('boundary') })).id;
        const run = await wrapped.createRun({ experimentId: exp });
        await wrapped.logBatch(run.info.id, {
          metrics: [{ key: 'nan', value: Number.NaN }],
          params: [{ key: 'p', value: '1' }],
          tags: [{ key: 't', value: 'v' }],
        });
        const data = (await wrapped.getRun(run.info.id)).data;
        expect(data.params).toEqual({ p: '1' });
        expect(data.tags).toEqual({ t: 'v' });
        expect(data.metrics.nan?.value).toBeNaN();
        expect(wrapped.capabilities).toEqual(tracker.capabilities);
      });
    });

    // ------------------------------------------------------------------ atomicity
    describe('atomic batches', () => {
      itWhen(caps.atomicBatch, 'logBatch is not atomic')(
        'writes nothing of a batch whose param conflicts',
        async () => {
          const run = await newRun();
          await tracker.logParam(run.info.id, { key: 'lr', value: '0.1' });
          const eventsBefore = hasEvents ? (await eventsWhere(aboutRun(run.info.id))).length : 0;
          await rejects(
            tracker.logBatch(run.info.id, {
              metrics: Array.from({ length: 100 }, (_, i) => ({ key: 'loss', value: i, step: i })),
              params: [
                { key: 'new', value: '1' },
                { key: 'lr', value: '0.2' },
              ],
              tags: [{ key: 'note', value: 'x' }],
            }),
            ConflictError,
            "param 'lr'",
          );
          const run2 = await tracker.getRun(run.info.id);
          expect(run2.data).toEqual({ metrics: {}, params: { lr: '0.1' }, tags: {} });
          expect((await history(run.info.id, 'loss')).points).toEqual([]);
          if (hasEvents) expect(await eventsWhere(aboutRun(run.info.id))).toHaveLength(eventsBefore);
        },
      );
    });

    // ------------------------------------------------------------------ search
    describe('searchRuns', () => {
      let experimentId: string;
      let runs: Record<string, string>;

      async function seed(): Promise<void> {
        experimentId = await newExperiment('search');
        runs = {};
        const specs = [
          { name: 'alpha', acc: 0.95, lr: '0.01', team: 'x', status: 'FINISHED', start: T0 + 1000 },
          { name: 'beta', acc: 0.85, lr: '0.01', team: 'y', status: 'FINISHED', start: T0 + 2000 },
          { name: 'Gamma', acc: 0.92, lr: '0.1', team: 'x', status: 'FAILED', start: T0 + 3000 },
          { name: 'delta', acc: undefined, lr: '0.001', team: 'X', status: 'RUNNING', start: T0 + 4000 },
        ] as const;
        for (const s of specs) {
          const run = await tracker.createRun({ experimentId, name: s.name, startTime: new Date(s.start) });
          runs[s.name] = run.info.id;
          await tracker.logBatch(run.info.id, {
            ...(s.acc !== undefined
              ? {
                  metrics: [
                    { key: 'acc', value: s.acc, step: 1 },
                    { key: 'val loss', value: 1 - s.acc, step: 1 },
                  ],
                }
              : {}),
            params: [{ key: 'lr', value: s.lr }],
            tags: [{ key: 'team', value: s.team }],
          });
          if (s.status !== 'RUNNING')
            await tracker.updateRun({ runId: run.info.id, status: s.status, endTime: new Date(s.start + 500) });
        }
      }

      const ids = (...names: string[]) => names.map((n) => runs[n]);

      it('filters on metrics, params, tags and attributes, joined with AND', async () => {
        await seed();
        const cases: [string, string[]][] = [
          ['metrics.acc > 0.9', ['Gamma', 'alpha']],
          ['metrics.acc >= 0.92 and metrics.acc <= 0.92', ['Gamma']],
          ['metrics.acc != 0.95', ['Gamma', 'beta']],
          ["params.lr = '0.01'", ['beta', 'alpha']],
          ["params.lr != '0.01'", ['delta', 'Gamma']],
          ["tags.team = 'x'", ['Gamma', 'alpha']],
          ["attributes.status = 'FINISHED'", ['beta', 'alpha']],
          [
            "metrics.acc > 0.9 and params.lr = '0.01' and tags.team = 'x' and attributes.status = 'FINISHED'",
            ['alpha'],
          ],
          [`attributes.start_time >= ${T0 + 2000} and attributes.start_time < ${T0 + 4000}`, ['Gamma', 'beta']],
          [`attributes.end_time > ${T0}`, ['Gamma', 'beta', 'alpha']],
          ["attributes.run_name = 'beta'", ['beta']],
          ["attributes.run_name LIKE '%a'", ['delta', 'Gamma', 'beta', 'alpha']],
          ["attributes.run_name LIKE 'g%'", []],
          ["attributes.run_name ILIKE 'g%'", ['Gamma']],
          ["tags.team LIKE 'x'", ['Gamma', 'alpha']],
          ["tags.team ILIKE 'x'", ['delta', 'Gamma', 'alpha']],
          ["params.lr LIKE '0.0_'", ['beta', 'alpha']],
          ["attributes.status IN ('FAILED', 'RUNNING')", ['delta', 'Gamma']],
          ["attributes.status NOT IN ('FAILED', 'RUNNING')", ['beta', 'alpha']],
          ['metrics.`val loss` < 0.1', ['alpha', 'Gamma'].sort() as string[]],
          ['metrics."val loss" < 0.1', ['alpha', 'Gamma'].sort() as string[]],
          ['METRICS.acc > 0.9 AND PARAMS.lr = "0.1"', ['Gamma']],
          ["tags.missing = 'x'", []],
          ['', ['delta', 'Gamma', 'beta', 'alpha']],
        ];
        for (const [filter, expected] of cases) {
          const found = await searchIds(experimentId, filter);
          if (filter.includes('val loss')) expect(found.sort(), filter).toEqual(ids(...expected).sort());
          else expect(found, filter).toEqual(ids(...expected));
        }
        const inIds = await searchIds(experimentId, `attributes.run_id IN ('${runs.alpha}', '${runs.delta}')`);
        expect(inIds).toEqual(ids('delta', 'alpha'));
      });

      it('orders by metrics, params and attributes, with runs lacking the key last', async () => {
        await seed();
        expect(await searchIds(experimentId, '', ['metrics.acc DESC'])).toEqual(ids('alpha', 'Gamma', 'beta', 'delta'));
        expect(await searchIds(experimentId, '', ['metrics.acc ASC'])).toEqual(ids('beta', 'Gamma', 'alpha', 'delta'));
        expect(await searchIds(experimentId, '', ['attributes.start_time'])).toEqual(
          ids('alpha', 'beta', 'Gamma', 'delta'),
        );
        expect(await searchIds(experimentId, '', ['params.lr DESC', 'attributes.start_time ASC'])).toEqual(
          ids('Gamma', 'alpha', 'beta', 'delta'),
        );
        // Default order: start_time DESC.
        expect(await searchIds(experimentId, '')).toEqual(ids('delta', 'Gamma', 'beta', 'alpha'));
      });

      it('reports a malformed filter as ValidationError with the position', async () => {
        await seed();
        const bad: [string, RegExp][] = [
          ['metrics.acc >', /position 13: expected a value/],
          ['metrics.acc ~ 1', /position 12: unexpected character '~'/],
          ["params.lr = 'unterminated", /position 12: unterminated quote/],
          ['metrics.acc > 0.9 or metrics.acc < 0.1', /position 18: OR is not supported/],
          ['metrics.acc > 0.9 metrics.acc < 0.1', /position 18: expected AND/],
          ["foo.bar = 'x'", /position 0: unknown entity 'foo'/],
          ["metrics.acc = 'high'", /position 0: metrics.acc compares numbers/],
          ['params.lr = 0.01', /position 0: params.lr compares strings/],
          ['metrics.acc LIKE 1', /metrics.acc does not support LIKE/],
          ["attributes.colour = 'red'", /attributes.colour is not a run attribute/],
          ["attributes.run_id IN ('a' 'b')", /expected ',' or '\)'/],
        ];
        for (const [filter, message] of bad) {
          const err = await rejects(
            tracker.searchRuns({ experimentIds: [experimentId], filter }),
            ValidationError,
            message,
          );
          expect(err.field, filter).toBe('filter');
        }
        const order = await rejects(
          tracker.searchRuns({ experimentIds: [experimentId], orderBy: ['metrics.acc SIDEWAYS'] }),
          ValidationError,
          /position 12: expected ASC, DESC/,
        );
        expect(order.field).toBe('orderBy');
      });

      it('treats filter values as data, never as SQL', async () => {
        await seed();
        const hostile = ["params.lr = '0.01'' OR ''1''=''1'", "tags.team = 'x; DROP TABLE runs; --'"];
        for (const filter of hostile) expect(await searchIds(experimentId, filter)).toEqual([]);
        expect(await searchIds(experimentId, '')).toHaveLength(4);
      });

      it('pages through many runs without gaps or duplicates, in the query order', async () => {
        const exp = await newExperiment('paging');
        const created: string[] = [];
        for (let i = 0; i < 23; i++) {
          const run = await tracker.createRun({
            experimentId: exp,
            startTime: new Date(T0 + (i % 5) * 1000),
            // Every third run has no user: a nullable attribute with ties.
            ...(i % 3 === 0 ? {} : { userId: `user${i % 2}` }),
          });
          created.push(run.info.id);
          // Every fourth run lacks the metric, so metric-ordered pages cross from runs with it to runs without;
          // one has NaN, which sorts above every number.
          if (i % 4 !== 0) await tracker.logMetric(run.info.id, { key: 'score', value: i === 5 ? Number.NaN : i % 7 });
          await tracker.setTag(run.info.id, { key: 'group', value: String(i % 3) });
          if (i % 2 === 0) await tracker.logParam(run.info.id, { key: 'lr', value: String(i % 3) });
        }
        const orders = [
          undefined,
          ['metrics.score DESC'],
          ['metrics.score ASC', 'tags.group DESC'],
          ['attributes.start_time ASC'],
          ['tags.group', 'metrics.score DESC'],
          ['params.lr DESC', 'metrics.score ASC'],
          ['attributes.user_id ASC', 'attributes.run_name DESC'],
          ['metrics.score DESC', 'params.lr ASC', 'attributes.start_time ASC'],
        ];
        for (const orderBy of orders) {
          const unpaged = await tracker.searchRuns({ experimentIds: [exp], ...(orderBy ? { orderBy } : {}) });
          expect(unpaged.nextPageToken).toBeUndefined();
          const { runs: paged, pages } = await searchAll({
            experimentIds: [exp],
            maxResults: 5,
            ...(orderBy ? { orderBy } : {}),
          });
          expect(pages, String(orderBy)).toBe(5);
          expect(
            paged.map((r) => r.info.id),
            String(orderBy),
          ).toEqual(unpaged.items.map((r) => r.info.id));
          expect(new Set(paged.map((r) => r.info.id)).size).toBe(23);
          if (orderBy?.[0]?.startsWith('metrics.')) {
            // Runs without the metric come last, whatever the direction.
            expect(paged.slice(-6).every((r) => r.data.metrics.score === undefined)).toBe(true);
            const scores = paged.slice(0, 17).map((r) => r.data.metrics.score!.value);
            // NaN sorts above every number (first descending, last ascending), or after every number in both
            // directions where capabilities.nanRanksHighest is false (MLflow).
            const descending = orderBy[0]!.endsWith('DESC');
            const rank = (v: number) => (Number.isNaN(v) ? Number.POSITIVE_INFINITY : v);
            const sorted = [...scores].sort((a, b) => {
              if (!caps.nanRanksHighest && Number.isNaN(a) !== Number.isNaN(b)) return Number.isNaN(a) ? 1 : -1;
              return descending ? rank(b) - rank(a) : rank(a) - rank(b);
            });
            expect(scores).toEqual(sorted);
          }
        }
      });

      itWhen(caps.stablePaging, 'MLflow pages runs by offset')(
        'resumes a page after the last run returned, so runs created while paging shift nothing already seen',
        async () => {
          const exp = await newExperiment('paging-stable');
          for (let i = 0; i < 6; i++) {
            const run = await tracker.createRun({ experimentId: exp, startTime: new Date(T0 + i * 1000) });
            await tracker.logMetric(run.info.id, { key: 'score', value: i });
          }
          for (const orderBy of [undefined, ['metrics.score DESC']]) {
            const options = { experimentIds: [exp], maxResults: 3, ...(orderBy ? { orderBy } : {}) };
            const first = await tracker.searchRuns(options);
            // A run that sorts first in both orders arrives between the pages.
            const late = await tracker.createRun({ experimentId: exp, startTime: new Date(T0 + 60_000) });
            await tracker.logMetric(late.info.id, { key: 'score', value: 100 });
            const second = await tracker.searchRuns({ ...options, pageToken: first.nextPageToken! });
            const seen = [...first.items, ...second.items].map((r) => r.info.id);
            expect(new Set(seen).size, String(orderBy)).toBe(6);
            expect(seen, String(orderBy)).not.toContain(late.info.id);
            await tracker.deleteRun(late.info.id);
          }
        },
      );

      it('validates paging, view and experiment ids', async () => {
        const exp = await newExperiment();
        await newRun(exp);
        await newRun(exp);
        const first = await tracker.searchRuns({ experimentIds: [exp], maxResults: 1 });
        expect(first.nextPageToken).toBeDefined();
        const foreign = await rejects(
          tracker.searchRuns({
            experimentIds: [exp],
            maxResults: 1,
            filter: "tags.a = 'b'",
            pageToken: first.nextPageToken!,
          }),
          ValidationError,
          'different query',
        );
        expect(foreign.field).toBe('pageToken');
        await rejects(
          tracker.searchRuns({ experimentIds: [exp], pageToken: 'not a token' }),
          ValidationError,
          'pageToken',
        );
        const max = await rejects(
          tracker.searchRuns({ experimentIds: [exp], maxResults: SEARCH_RUNS_PAGE.max + 1 }),
          ValidationError,
          `1 to ${SEARCH_RUNS_PAGE.max}`,
        );
        expect(max.field).toBe('maxResults');
        await rejects(tracker.searchRuns({ experimentIds: [] }), ValidationError, 'at least one experiment');
        await rejects(tracker.searchRuns({ experimentIds: [exp, '999999999'] }), NotFoundError, "'999999999'");
      });

      it('searches several experiments and honours the run view type', async () => {
        const a = await newExperiment('a');
        const b = await newExperiment('b');
        const ra = await newRun(a);
        const rb = await newRun(b);
        await tracker.deleteRun(rb.info.id);
        const active = await tracker.searchRuns({ experimentIds: [a, b] });
        expect(active.items.map((r) => r.info.id)).toEqual([ra.info.id]);
        const deleted = await tracker.searchRuns({ experimentIds: [a, b], runViewType: 'DELETED_ONLY' });
        expect(deleted.items.map((r) => r.info.id)).toEqual([rb.info.id]);
        const all = await tracker.searchRuns({ experimentIds: [a, b], runViewType: 'ALL' });
        expect(all.items).toHaveLength(2);
      });

      it('returns whole runs: latest metrics, params, tags', async () => {
        await seed();
        const [alpha] = (
          await tracker.searchRuns({ experimentIds: [experimentId], filter: "attributes.run_name = 'alpha'" })
        ).items;
        expect(alpha).toEqual(await tracker.getRun(runs.alpha!));
        expect(alpha?.data.params).toEqual({ lr: '0.01' });
      });
    });

    // ------------------------------------------------------------------ datasets
    describe('dataset inputs', () => {
      const dataset = (name: string, digest: string, context = 'training'): DatasetInput => ({
        dataset: {
          name,
          digest,
          sourceType: 'local',
          source: JSON.stringify({ uri: `/data/${name}` }),
          schema: '{"mlflow_colspec":[]}',
        },
        tags: [{ key: 'mlflow.data.context', value: context }],
      });

      itWhen(caps.datasetInputs, 'no dataset inputs')('logs dataset inputs once each, in logging order', async () => {
        const run = await newRun();
        await tracker.logInputs(run.info.id, [dataset('train', 'd1'), dataset('eval', 'd2', 'evaluation')]);
        await tracker.logInputs(run.info.id, [dataset('train', 'd1')]);
        const inputs = (await tracker.getRun(run.info.id)).inputs.datasetInputs;
        expect(inputs.map((i) => `${i.dataset.name}@${i.dataset.digest}`)).toEqual(['train@d1', 'eval@d2']);
        expect(inputs[0]).toEqual(dataset('train', 'd1'));
        const long = await rejects(
          tracker.logInputs(run.info.id, [dataset('x', 'd'.repeat(TRACKER_LIMITS.datasetDigestLength + 1))]),
          ValidationError,
          'datasetDigestLength',
        );
        expect(long.field).toBe('inputs[0].dataset.digest');
      });

      itWhen(caps.datasetFilters, 'no datasets.* filters')(
        'filters runs by dataset name, digest and context',
        async () => {
          const exp = await newExperiment();
          const a = await newRun(exp);
          const b = await newRun(exp);
          await tracker.logInputs(a.info.id, [dataset('train', 'd1')]);
          await tracker.logInputs(b.info.id, [dataset('train', 'd2', 'evaluation')]);
          expect(await searchIds(exp, "datasets.name = 'train'")).toHaveLength(2);
          expect(await searchIds(exp, "datasets.digest = 'd2'")).toEqual([b.info.id]);
          expect(await searchIds(exp, "datasets.context = 'training'")).toEqual([a.info.id]);
          await rejects(
            tracker.searchRuns({ experimentIds: [exp], filter: "datasets.size = '1'" }),
            ValidationError,
            'not a dataset field',
          );
        },
      );
    });

    // ------------------------------------------------------------------ artifacts
    describe('run artifacts', () => {
      it('stores artifacts below the run root and lists one level at a time', async () => {
        const run = await newRun();
        const info = await tracker.logArtifact(run.info.id, 'model/weights.bin', new Uint8Array([1, 2, 3]));
        expect(info.key.endsWith(`${run.info.id}/artifacts/model/weights.bin`)).toBe(true);
        expect(info.size).toBe(3);
        await tracker.logArtifact(run.info.id, 'model/config.json', '{}');
        await tracker.logArtifact(run.info.id, 'README.md', '# run');
        const root = await tracker.listRunArtifacts(run.info.id);
        expect(root.items).toEqual([
          { path: 'README.md', isDir: false, size: 5 },
          { path: 'model', isDir: true },
        ]);
        const model = await tracker.listRunArtifacts(run.info.id, { path: 'model' });
        expect(model.items).toEqual([
          { path: 'model/config.json', isDir: false, size: 2 },
          { path: 'model/weights.bin', isDir: false, size: 3 },
        ]);
        if (fixture.readArtifact) expect([...(await fixture.readArtifact(info.key))]).toEqual([1, 2, 3]);
      });

      it('pages artifact listings and refuses paths that leave the run root', async () => {
        const run = await newRun();
        for (let i = 0; i < 5; i++) await tracker.logArtifact(run.info.id, `f${i}.txt`, String(i));
        const seen: string[] = [];
        let pageToken: string | undefined;
        do {
          const page = await tracker.listRunArtifacts(run.info.id, {
            maxResults: 2,
            ...(pageToken ? { pageToken } : {}),
          });
          seen.push(...page.items.map((i) => i.path));
          pageToken = page.nextPageToken;
        } while (pageToken);
        expect(seen).toEqual(['f0.txt', 'f1.txt', 'f2.txt', 'f3.txt', 'f4.txt']);
        for (const path of ['../escape.txt', '/abs.txt', 'a//b', './a']) {
          await rejects(tracker.logArtifact(run.info.id, path, 'x'), ValidationError, 'must be relative');
        }
        await rejects(tracker.listRunArtifacts(run.info.id, { maxResults: 1001 }), ValidationError, 'maxResults');
      });

      it('opens a logged file as a stream with its listing entry', async () => {
        const run = await newRun();
        const big = Buffer.alloc(3 * 1024 * 1024 + 7, 'mlplane');
        await tracker.logArtifact(run.info.id, 'model/weights.bin', big);
        await tracker.logArtifact(run.info.id, 'notes/a b.txt', 'spaced');
        const opened = await tracker.openArtifact(run.info.id, 'model/weights.bin');
        expect(opened.info).toEqual({ path: 'model/weights.bin', isDir: false, size: big.length });
        expect(sha256Hex(await readAll(opened.body))).toBe(sha256Hex(big));
        const spaced = await tracker.openArtifact(run.info.id, 'notes/a b.txt');
        expect(spaced.info).toEqual({ path: 'notes/a b.txt', isDir: false, size: 6 });
        expect((await readAll(spaced.body)).toString()).toBe('spaced');
        // A replaced file reads back as its latest content.
        await tracker.logArtifact(run.info.id, 'notes/a b.txt', 'replaced');
        expect((await readAll((await tracker.openArtifact(run.info.id, 'notes/a b.txt')).body)).toString()).toBe(
          'replaced',
        );
      });

      it('refuses to open a missing file, a directory, a bad path or an unknown run', async () => {
        const run = await newRun();
        await tracker.logArtifact(run.info.id, 'model/weights.bin', 'w');
        await rejects(tracker.openArtifact(run.info.id, 'model/missing.bin'), NotFoundError, 'missing.bin');
        await rejects(tracker.openArtifact(run.info.id, 'model'), NotFoundError, 'model');
        const unknown = '0123456789abcdef0123456789abcdef';
        await rejects(tracker.openArtifact(unknown, 'model/weights.bin'), NotFoundError, unknown);
        for (const path of ['../escape.txt', '/abs.txt', 'a//b', './a', '']) {
          const err = await rejects(tracker.openArtifact(run.info.id, path), ValidationError, 'must be relative');
          expect(err.field).toBe('path');
        }
      });

      it('still opens the artifacts of a deleted run', async () => {
        const run = await newRun();
        await tracker.logArtifact(run.info.id, 'kept.txt', 'kept');
        await tracker.deleteRun(run.info.id);
        expect((await readAll((await tracker.openArtifact(run.info.id, 'kept.txt')).body)).toString()).toBe('kept');
      });
    });

    // ------------------------------------------------------------------ events
    describe.skipIf(!hasEvents)(
      hasEvents ? 'domain events (outbox)' : 'domain events (outbox) [skipped: capabilities.changeEvents is false]',
      () => {
        it('records one event per change, in the same transaction', async () => {
          const experiment = await tracker.createExperiment({ name: uname('events') });
          const created = await eventsWhere(
            (e) => (e.payload as { experimentId?: string })?.experimentId === experiment.id,
          );
          expect(created.map((e) => e.type)).toEqual(['experiment.created']);
          expect(created[0]).toMatchObject({ version: 1, subject: `experiment:${experiment.id}` });
          expect(created[0]?.id).toMatch(/^[0-9a-f-]{36}$/);
          expect(Number.isNaN(Date.parse(created[0]!.occurredAt))).toBe(false);

          const run = await tracker.createRun({ experimentId: experiment.id, userId: 'alice' });
          const id = run.info.id;
          await tracker.logBatch(id, {
            metrics: Array.from({ length: 500 }, (_, i) => ({ key: `m${i % 10}`, value: i, step: i })),
            params: [{ key: 'lr', value: '0.01' }],
            tags: [{ key: 'team', value: 'x' }],
          });
          await tracker.logMetric(id, { key: 'single', value: 1 });
          await tracker.logParam(id, { key: 'lr', value: '0.01' });
          await tracker.updateRun({ runId: id, status: 'FINISHED' });
          await tracker.updateRun({ runId: id, status: 'FAILED' });
          await tracker.deleteTag(id, 'team');
          await tracker.deleteRun(id);
          await tracker.deleteRun(id);
          await tracker.restoreRun(id);
          const events = await eventsWhere(aboutRun(id));
          expect(events.map((e) => e.type)).toEqual([
            'run.created',
            'run.params.logged',
            'run.metrics.logged',
            'run.tags.set',
            'run.metrics.logged',
            'run.updated',
            'run.finished',
            'run.updated',
            'run.tag.deleted',
            'run.deleted',
            'run.restored',
          ]);
          expect(events[0]).toMatchObject({ actor: 'alice', subject: `run:${id}` });
          expect(events[2]?.payload).toMatchObject({ count: 500, minStep: 0, maxStep: 499 });
          expect((events[2]?.payload as { keys?: string[] } | undefined)?.keys).toHaveLength(10);
          expect(events[6]?.payload).toMatchObject({ status: 'FINISHED' });
          expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
        });

        it('records the trace context of the work that made each change on its events', async () => {
          const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
          const run = await newRun();
          await withTraceContext({ traceparent, tracestate: 'vendor=opaque' }, async () => {
            // A metrics-only batch is the path some stores take in one statement; params and tags take the other.
            await tracker.logBatch(run.info.id, { metrics: [{ key: 'loss', value: 1, step: 0 }] });
            await tracker.logBatch(run.info.id, { params: [{ key: 'traced', value: 'yes' }] });
          });
          await tracker.setTag(run.info.id, { key: 'untraced', value: 'yes' });
          const events = await eventsWhere(aboutRun(run.info.id));
          const byType = (type: string) => events.find((e) => e.type === type);
          expect(byType('run.metrics.logged')?.traceContext).toEqual({ traceparent, tracestate: 'vendor=opaque' });
          expect(byType('run.params.logged')?.traceContext).toEqual({ traceparent, tracestate: 'vendor=opaque' });
          expect(byType('run.tags.set')?.traceContext).toBeUndefined();
        });

        it('records no event for a write that failed', async () => {
          const run = await newRun();
          const before = (await eventsWhere(aboutRun(run.info.id))).length;
          await tracker.logParam(run.info.id, { key: 'p', value: '1' });
          await rejects(tracker.logParam(run.info.id, { key: 'p', value: '2' }), ConflictError, "param 'p'");
          await rejects(
            tracker.logBatch(run.info.id, { metrics: [{ key: 'bad$', value: 1 }] }),
            ValidationError,
            'valid key',
          );
          expect(await eventsWhere(aboutRun(run.info.id))).toHaveLength(before + 1);
        });
      },
    );
  });
}
