// Input limits and types of the SQL management layer on one MetadataStore; run on embedded SQLite and on the
// PostgreSQL peer. Every case runs against the implementations themselves and through validatePortInputs (what
// the kernel puts in front of every provider), which must refuse the same inputs with the same typed error.

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ARTIFACT_METADATA_MAX_BYTES,
  AUDIT_LIMITS,
  type AuditLog,
  auditLogInputs,
  type ExperimentTracker,
  experimentTrackerInputs,
  type LogBatchInput,
  type MetadataStore,
  type ModelRegistry,
  modelRegistryInputs,
  REGISTRY_LIMITS,
  SEARCH_FILTER_LIMITS,
  TRACKER_LIMITS,
  ValidationError,
  validatePortInputs,
} from '@mlplane/core';
import { LocalArtifactStore } from '@mlplane/defaults';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditFromEvent } from '../../src/audit/from-event.js';
import type { SqlAuditLog } from '../../src/audit/sql-audit-log.js';
import { domainEvent } from '../../src/outbox/outbox.js';
import { SqlModelRegistry } from '../../src/registry/sql-model-registry.js';
import { SqlExperimentTracker } from '../../src/tracker/sql-experiment-tracker.js';
import { type AuditSurroundings, auditSurroundings } from '../audit-fixture.js';

interface Ports {
  readonly tracker: ExperimentTracker;
  readonly registry: ModelRegistry;
  readonly audit: AuditLog;
}

/** The ports as a caller meets them: the implementations themselves, or behind the port-boundary check. */
const SURFACES: readonly [string, (ports: Ports) => Ports][] = [
  ['implementation', (ports) => ports],
  [
    'port boundary',
    (ports) => ({
      tracker: validatePortInputs(ports.tracker, experimentTrackerInputs),
      registry: validatePortInputs(ports.registry, modelRegistryInputs),
      audit: validatePortInputs(ports.audit, auditLogInputs),
    }),
  ],
];

/** Asserts a ValidationError on `field` whose message matches `message` and stays short (never the input whole). */
async function refused(
  promise: Promise<unknown>,
  field: string | undefined,
  message: RegExp,
): Promise<ValidationError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected a ValidationError matching ${message}`).toBeInstanceOf(ValidationError);
  const error = err as ValidationError;
  expect(error.message).toMatch(message);
  expect(error.field).toBe(field);
  expect(error.message.length).toBeLessThan(600);
  return error;
}

const and = (n: number, clause: (i: number) => string) => Array.from({ length: n }, (_, i) => clause(i)).join(' and ');
const list = (values: readonly string[]) => values.map((v) => `'${v}'`).join(', ');
const fillers = (n: number) => Array.from({ length: n }, (_, i) => `r${i}`);

export function limitsSuite(name: string, open: () => Promise<{ store: MetadataStore; close(): Promise<void> }>) {
  describe(`input limits and types: ${name}`, () => {
    let store: MetadataStore;
    let close: () => Promise<void>;
    let dir: string;
    let ports: Ports;
    let surroundings: AuditSurroundings;
    let audit: SqlAuditLog;
    /** Holds the three searched runs only; tests that write make their runs in `experimentId`. */
    let searched: string;
    let experimentId: string;
    let runIds: string[];
    let counter = 0;
    const unique = (base: string) => `${base}-${++counter}-${randomBytes(3).toString('hex')}`;

    beforeAll(async () => {
      ({ store, close } = await open());
      dir = await mkdtemp(join(tmpdir(), 'mlplane-limits-'));
      const tracker = await SqlExperimentTracker.open({ store, artifacts: new LocalArtifactStore({ root: dir }) });
      const registry = await SqlModelRegistry.open({ store, tracker });
      surroundings = await auditSurroundings();
      audit = await surroundings.open(store);
      ports = { tracker, registry, audit };
      experimentId = (await tracker.createExperiment({ name: unique('limits') })).id;
      searched = (await tracker.createExperiment({ name: unique('searched') })).id;
      runIds = [];
      for (let i = 0; i < 3; i++) {
        const run = await tracker.createRun({ experimentId: searched, startTime: new Date(1_760_000_000_000 + i) });
        await tracker.logBatch(run.info.id, {
          metrics: Array.from({ length: 12 }, (_, m) => ({ key: `m${m}`, value: i * 10 + m })),
          params: [{ key: 'lr', value: String(i) }],
        });
        runIds.push(run.info.id);
      }
      const model = unique('model');
      await registry.createModel({ name: model });
      await registry.createVersion({ name: model, source: `runs:/${runIds[0]}/model` });
    });
    afterAll(async () => {
      await audit.close();
      await close();
      await surroundings.remove();
      await rm(dir, { recursive: true, force: true });
    });

    for (const [surface, at] of SURFACES) {
      describe(`${surface}: searches (issue: raw SqliteErrors for big filters and lists)`, () => {
        it('refuses a filter with 2,000 and-clauses, naming filterClauses, in every search', async () => {
          const { tracker, registry } = at(ports);
          const message = new RegExp(`the filterClauses limit is ${SEARCH_FILTER_LIMITS.filterClauses}`);
          await refused(
            tracker.searchRuns({ experimentIds: [experimentId], filter: and(2000, (i) => `metrics.m${i} > 0`) }),
            'filter',
            message,
          );
          await refused(tracker.searchExperiments({ filter: and(2000, (i) => `tags.t${i} = 'x'`) }), 'filter', message);
          await refused(registry.searchModels({ filter: and(2000, (i) => `tags.t${i} = 'x'`) }), 'filter', message);
          await refused(registry.searchVersions({ filter: and(2000, (i) => `tags.t${i} = 'x'`) }), 'filter', message);
        });

        it('refuses IN with 40,000 values (filterLength) and with one value over filterInValues', async () => {
          const { tracker, registry } = at(ports);
          const huge = `attributes.run_id IN (${list(fillers(40_000))})`;
          await refused(
            tracker.searchRuns({ experimentIds: [experimentId], filter: huge }),
            'filter',
            new RegExp(`the filterLength limit is ${SEARCH_FILTER_LIMITS.filterLength}`),
          );
          const over = fillers(SEARCH_FILTER_LIMITS.filterInValues + 1);
          const inValues = new RegExp(`the filterInValues limit is ${SEARCH_FILTER_LIMITS.filterInValues}`);
          await refused(
            tracker.searchRuns({ experimentIds: [experimentId], filter: `attributes.run_id NOT IN (${list(over)})` }),
            'filter',
            inValues,
          );
          await refused(registry.searchVersions({ filter: `run_id IN (${list(over)})` }), 'filter', inValues);
        });

        it('refuses 100 metric order-by terms, naming orderByTerms', async () => {
          const { tracker, registry } = at(ports);
          const terms = Array.from({ length: 100 }, (_, i) => `metrics.m${i} DESC`);
          const message = new RegExp(`100 terms; the orderByTerms limit is ${SEARCH_FILTER_LIMITS.orderByTerms}`);
          await refused(tracker.searchRuns({ experimentIds: [experimentId], orderBy: terms }), 'orderBy', message);
          await refused(
            tracker.searchExperiments({ orderBy: Array.from({ length: 100 }, () => 'name') }),
            'orderBy',
            message,
          );
          await refused(
            registry.searchModels({ orderBy: Array.from({ length: 100 }, () => 'name') }),
            'orderBy',
            message,
          );
        });

        it('refuses 50,000 experiment ids, naming experimentIdsPerSearch', async () => {
          const { tracker } = at(ports);
          await refused(
            tracker.searchRuns({ experimentIds: Array.from({ length: 50_000 }, () => experimentId) }),
            'experimentIds',
            new RegExp(
              `50000 experiment ids; the experimentIdsPerSearch limit is ${TRACKER_LIMITS.experimentIdsPerSearch}`,
            ),
          );
        });

        it('shows only an excerpt of an invalid filter', async () => {
          const { tracker } = at(ports);
          const filter = `${and(15, (i) => `params.p${i} = '${'v'.repeat(3000)}'`)} and metrics.acc ~ 1`;
          const err = await refused(
            tracker.searchRuns({ experimentIds: [experimentId], filter }),
            'filter',
            /unexpected character '~'/,
          );
          expect(err.message).not.toContain('v'.repeat(200));
        });

        it('answers searches exactly at every limit, on any database', async () => {
          const { tracker, registry } = at(ports);
          const ids = async (filter: string, orderBy?: string[]) =>
            (
              await tracker.searchRuns({ experimentIds: [searched], filter, ...(orderBy ? { orderBy } : {}) })
            ).items.map((r) => r.info.id);
          // filterClauses clauses, with an IN list of filterInValues values holding two real run ids.
          const inList = [...fillers(SEARCH_FILTER_LIMITS.filterInValues - 2), runIds[0]!, runIds[2]!];
          const clauses = and(SEARCH_FILTER_LIMITS.filterClauses - 1, (i) => `metrics.m${i % 12} >= 0`);
          const found = await ids(`${clauses} and attributes.run_id IN (${list(inList)})`);
          expect(found.sort()).toEqual([runIds[0], runIds[2]].sort());
          // NOT IN with the same list leaves the third run.
          expect(await ids(`attributes.run_id NOT IN (${list(inList)})`)).toEqual([runIds[1]]);
          // orderByTerms metric terms (each a join), the first one deciding.
          const terms = Array.from({ length: SEARCH_FILTER_LIMITS.orderByTerms }, (_, i) => `metrics.m${i} DESC`);
          expect(await ids('', terms)).toEqual([...runIds].reverse());
          // experimentIdsPerSearch ids (the same experiment repeated).
          const many = Array.from({ length: TRACKER_LIMITS.experimentIdsPerSearch }, () => searched);
          expect((await tracker.searchRuns({ experimentIds: many })).items).toHaveLength(3);
          const versions = await registry.searchVersions({ filter: `run_id IN (${list(inList)})` });
          expect(versions.items.map((v) => v.runId)).toEqual([runIds[0]]);
        });
      });

      describe(`${surface}: sizes`, () => {
        it('caps registry descriptions, sources, run links, reasons and tag counts', async () => {
          const { registry } = at(ports);
          const model = unique('sized');
          const long = 'd'.repeat(REGISTRY_LIMITS.descriptionLength + 1);
          const description = /description has 5001 chars; the descriptionLength limit is 5000/;
          await refused(registry.createModel({ name: model, description: long }), 'description', description);
          await registry.createModel({ name: model, description: 'd'.repeat(REGISTRY_LIMITS.descriptionLength) });
          await refused(registry.updateModel(model, { description: long }), 'description', description);
          await refused(
            registry.createVersion({ name: model, source: 's3://x', description: long }),
            'description',
            description,
          );
          await refused(
            registry.createVersion({ name: model, source: `s3://${'x'.repeat(REGISTRY_LIMITS.sourceLength)}` }),
            'source',
            /the sourceLength limit is 500/,
          );
          await refused(
            registry.createVersion({ name: model, source: 's3://x', runLink: 'x'.repeat(501) }),
            'runLink',
            /the runLinkLength limit is 500/,
          );
          const tags = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`t${i}`, 'v']));
          await refused(registry.createVersion({ name: model, source: 's3://x', tags }), 'tags', /tagsPerCreate/);
          // None of the refused versions took a number.
          const version = await registry.createVersion({ name: model, source: 's3://x' });
          expect(version.version).toBe(1);
          await refused(registry.updateVersion(model, 1, { description: long }), 'description', description);
          await refused(
            registry.transitionStage({ name: model, version: 1, to: 'Staging', reason: 'r'.repeat(1001) }),
            'reason',
            /the reasonLength limit is 1000/,
          );
          expect((await registry.getVersion(model, 1)).stage).toBe('None');
        });

        it('caps audit details, and keeps a huge event payload as its size and hash', async () => {
          const { audit } = at(ports);
          const before = await audit.head();
          await refused(
            audit.append({
              actor: 'a',
              action: 'x.y',
              resource: 'r:1',
              project: 'p',
              outcome: 'succeeded',
              details: { blob: 'x'.repeat(AUDIT_LIMITS.detailsBytes) },
            }),
            'details',
            /details take \d+ bytes as JSON; the detailsBytes limit is 65536/,
          );
          expect(await audit.head()).toEqual(before);
          const params = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`p${i}`, 'v'.repeat(6000)]));
          const event = domainEvent('run.params.logged', 'run:abc', { runId: 'abc', params });
          const entry = await audit.append(auditFromEvent(event));
          expect(entry.details.payload).toMatchObject({ bytes: expect.any(Number), sha256: expect.any(String) });
        });

        it('caps artifact metadata, experiment and run tags, and dataset source types', async () => {
          const { tracker } = at(ports);
          const run = await tracker.createRun({ experimentId });
          await refused(
            tracker.logArtifact(run.info.id, 'model.bin', 'x', { metadata: { note: 'n'.repeat(2100) } }),
            'metadata',
            new RegExp(`the limit is ${ARTIFACT_METADATA_MAX_BYTES}`),
          );
          expect((await tracker.listRunArtifacts(run.info.id)).items).toEqual([]);
          const tags = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`t${i}`, 'v']));
          await refused(tracker.createExperiment({ name: unique('tags'), tags }), 'tags', /tagsPerBatch limit is 100/);
          await refused(tracker.createRun({ experimentId, tags }), 'tags', /tagsPerBatch limit is 100/);
          await refused(
            tracker.logInputs(run.info.id, [
              { dataset: { name: 'd', digest: 'x', sourceType: 's'.repeat(37), source: '{}' }, tags: [] },
            ]),
            'inputs[0].dataset.sourceType',
            /datasetSourceTypeLength limit is 36/,
          );
        });
      });

      describe(`${surface}: logBatch types (issue: TypeErrors, a misleading conflict, silent coercion)`, () => {
        const cases: [string, unknown, string, RegExp][] = [
          ['metrics: [null]', { metrics: [null] }, 'metrics[0]', /must be a metric/],
          ['a null key', { metrics: [{ key: null, value: 1 }] }, 'metrics[0].key', /must be a string/],
          ['a null param value', { params: [{ key: 'p', value: null }] }, 'params[0].value', /must be a string/],
          ['an object param value', { params: [{ key: 'p', value: { a: 1 } }] }, 'params[0].value', /must be a string/],
          ['an undefined tag value', { tags: [{ key: 't', value: undefined }] }, 'tags[0].value', /must be a string/],
          ['a numeric param value', { params: [{ key: 'p', value: 0.1 }] }, 'params[0].value', /must be a string/],
          ['a numeric tag value', { tags: [{ key: 't', value: 7 }] }, 'tags[0].value', /must be a string/],
          ['a null batch', null, 'batch', /must be an object/],
        ];
        for (const [label, batch, field, message] of cases) {
          it(`refuses ${label} with ValidationError on ${field}, writing nothing`, async () => {
            const { tracker } = at(ports);
            const run = await tracker.createRun({ experimentId });
            // Twice: a value stored the first time would turn the second into a ConflictError.
            for (let i = 0; i < 2; i++) {
              await refused(tracker.logBatch(run.info.id, batch as LogBatchInput), field, message);
            }
            expect((await tracker.getRun(run.info.id)).data).toEqual({ metrics: {}, params: {}, tags: {} });
          });
        }

        it('refuses the same values in single writes', async () => {
          const { tracker } = at(ports);
          const run = await tracker.createRun({ experimentId });
          await refused(tracker.logParam(run.info.id, { key: 'p', value: 1 as never }), 'value', /string/);
          await refused(tracker.setTag(run.info.id, { key: 't', value: 2 as never }), 'value', /string/);
          await refused(tracker.logMetric(run.info.id, { key: null as never, value: 1 }), 'key', /string/);
          await refused(tracker.logParam(run.info.id, null as never), 'param', /must be a param/);
          expect((await tracker.getRun(run.info.id)).data).toEqual({ metrics: {}, params: {}, tags: {} });
        });
      });
    }

    describe('database limits left after the checks', () => {
      it('turns a statement beyond the database’s parameter limit into a ValidationError, not a driver error', async () => {
        // 70,000 bound parameters: past SQLite's 32,766 and the PostgreSQL protocol's 65,535.
        const query = store.db<any>().selectFrom('runs').select('run_id').where('run_id', 'in', fillers(70_000));
        const err = await refused(query.execute(), undefined, /exceeds a limit of the database/);
        expect(err.cause).toBeInstanceOf(Error);
      });

      it('stores a param value of paramValueLength random characters, or names PostgreSQL’s index limit', async () => {
        const { tracker } = ports;
        const run = await tracker.createRun({ experimentId });
        const value = randomBytes(TRACKER_LIMITS.paramValueLength).toString('base64').slice(0, 6000);
        if (store.dialect === 'postgres') {
          // Known divergence: PostgreSQL's btree index on (key, value) holds at most 2,704 bytes per entry after
          // compression, so an incompressible value near the limit cannot be indexed there.
          await refused(
            tracker.logParam(run.info.id, { key: 'p', value }),
            undefined,
            /exceeds a limit of the database \(index row size \d+ exceeds btree .* "params_key_value"/,
          );
          expect((await tracker.getRun(run.info.id)).data.params).toEqual({});
        } else {
          await tracker.logParam(run.info.id, { key: 'p', value });
          expect((await tracker.getRun(run.info.id)).data.params).toEqual({ p: value });
        }
      });
    });
  });
}
