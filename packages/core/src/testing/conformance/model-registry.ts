import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ModelPromotion } from '../../kernel/hook-types.js';
import { STAGE_POLICY, veto } from '../../kernel/hooks.js';
import { createPlatformHooks, type PlatformHooks } from '../../kernel/platform-hooks.js';
import { ConflictError, NotFoundError, ValidationError, VetoedError } from '../../ports/errors.js';
import type { DomainEvent } from '../../ports/event-bus.js';
import type { ExperimentTracker } from '../../ports/experiment-tracker.js';
import {
  type ModelRegistry,
  type ModelSignature,
  type ModelVersion,
  modelRegistryInputs,
  modelRegistryPort,
  REGISTRY_LIMITS,
  SEARCH_MODELS_PAGE,
  type SearchVersionsOptions,
  TRANSITION_HISTORY_PAGE,
} from '../../ports/model-registry.js';
import { validatePortInputs } from '../../ports/port-inputs.js';
import { SEARCH_FILTER_LIMITS } from '../../ports/search-filter.js';
import { guarded } from '../guarded.js';
import { itWhen, rejects, uniqueTag } from './support.js';

/** One alias move as a backend that keeps them reports it. */
export interface AliasMoveRecord {
  readonly alias: string;
  readonly fromVersion?: number;
  readonly toVersion?: number;
  readonly actor?: string;
  readonly reason?: string;
}

export interface ModelRegistryFixture {
  /** The provider under test, unwrapped: the suite wraps it in the port's guard (as a platform does) with fresh hooks. */
  readonly registry: ModelRegistry;
  /** The tracker whose runs the registry's versions link to; lineage cases need it. */
  readonly tracker?: ExperimentTracker;
  /** The domain events the registry recorded (its outbox), oldest first; event cases need it. */
  readonly events?: () => Promise<readonly DomainEvent[]>;
  /** Every move of a model's aliases, oldest first, where the backend keeps them; alias history cases need it. */
  readonly aliasHistory?: (name: string) => Promise<readonly AliasMoveRecord[]>;
  /** Releases what the fixture created; runs after each test. */
  readonly cleanup?: () => Promise<void>;
}

const SIGNATURE: ModelSignature = {
  inputs: [
    { kind: 'column', name: 'amount', type: 'double' },
    { kind: 'column', name: 'country', type: 'string', required: false },
  ],
  outputs: [{ kind: 'tensor', name: 'score', dtype: 'float32', shape: [-1, 1] }],
  params: [{ name: 'threshold', type: 'double', default: 0.5 }],
};

/**
 * The contract every ModelRegistry meets, against a fresh registry from `factory` per test. Model names carry a
 * random tag so that a shared backend works; cases needing a tracker, events or alias history run only where the
 * fixture provides them.
 */
export function modelRegistryConformance(name: string, factory: () => Promise<ModelRegistryFixture>): void {
  describe(`ModelRegistry conformance: ${name}`, async () => {
    const probe = await factory();
    const caps = probe.registry.capabilities;
    const hasEvents = caps.changeEvents;
    if (hasEvents && probe.events === undefined) {
      throw new Error(`${name}: capabilities.changeEvents is true, so the fixture must give events()`);
    }
    const withHistory = itWhen(caps.transitionHistory, 'capabilities.transitionHistory is false');
    const hasTracker = probe.tracker !== undefined;
    const hasAliasHistory = probe.aliasHistory !== undefined;
    await probe.cleanup?.();

    let fixture: ModelRegistryFixture;
    let registry: ModelRegistry;
    let hooks: PlatformHooks;
    let tag: string;

    beforeEach(async () => {
      fixture = await factory();
      hooks = createPlatformHooks();
      registry = guarded(modelRegistryPort, fixture.registry, hooks);
      tag = uniqueTag();
    });
    afterEach(async () => {
      await fixture?.cleanup?.();
    });

    const uname = (base: string) => `${base}-${tag}`;

    async function newModel(base = 'model', versions = 0): Promise<string> {
      const model = uname(base);
      await registry.createModel({ name: model });
      for (let i = 0; i < versions; i++)
        await registry.createVersion({ name: model, source: `s3://models/${model}/${i + 1}` });
      return model;
    }

    async function versionsOf(options: SearchVersionsOptions): Promise<string[]> {
      const out: string[] = [];
      let pageToken: string | undefined;
      let pages = 0;
      do {
        const page = await registry.searchVersions({ ...options, ...(pageToken ? { pageToken } : {}) });
        out.push(...page.items.map((v) => `${v.name.slice(0, -tag.length - 1)}/${v.version}`));
        pageToken = page.nextPageToken;
        if (++pages > 10_000) throw new Error('search did not terminate');
      } while (pageToken);
      return out;
    }

    async function eventsOf(model: string): Promise<DomainEvent[]> {
      return [...(await fixture.events!())].filter((e) => e.subject === `model:${model}`);
    }

    /** Records every promotion the hook sees and vetoes those `refuse` picks. */
    function policy(refuse: (version: ModelVersion, to: string, promotion: ModelPromotion) => string | undefined) {
      const seen: { version: ModelVersion; to: string; promotion: ModelPromotion }[] = [];
      hooks.model.beforePromote.tapPromise(
        { name: 'risk-review', stage: STAGE_POLICY },
        async (version, to, promotion) => {
          seen.push({ version, to, promotion });
          const reason = refuse(version, to, promotion);
          return reason === undefined ? undefined : veto(reason);
        },
      );
      return seen;
    }

    // ------------------------------------------------------------------ models
    describe('registered models', () => {
      it('creates a model and reads it back', async () => {
        const before = Date.now();
        const created = await registry.createModel({
          name: uname('fraud'),
          description: 'scores payments',
          tags: { team: 'risk' },
        });
        expect(created).toMatchObject({
          name: uname('fraud'),
          description: 'scores payments',
          tags: { team: 'risk' },
          aliases: {},
          latestVersions: [],
        });
        expect(created.createdAt.getTime()).toBeGreaterThanOrEqual(before - 1000);
        expect(await registry.getModel(uname('fraud'))).toEqual(created);
      });

      it('refuses a taken name with ConflictError, and gives one of many concurrent creates', async () => {
        await newModel('dup');
        await rejects(registry.createModel({ name: uname('dup') }), ConflictError, `'${uname('dup')}' already exists`);
        const results = await Promise.allSettled(
          Array.from({ length: 8 }, () => registry.createModel({ name: uname('race') })),
        );
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ConflictError);
      });

      it('raises NotFoundError for unknown models', async () => {
        const missing = uname('missing');
        const msg = `'${missing}' does not exist`;
        await rejects(registry.getModel(missing), NotFoundError, msg);
        await rejects(registry.updateModel(missing, { description: 'x' }), NotFoundError, msg);
        await rejects(registry.renameModel(missing, uname('other')), NotFoundError, msg);
        await rejects(registry.deleteModel(missing), NotFoundError, msg);
        await rejects(registry.createVersion({ name: missing, source: 's3://models/x' }), NotFoundError, msg);
        await rejects(registry.setModelTag(missing, 'k', 'v'), NotFoundError, msg);
        await rejects(registry.getLatestVersions(missing), NotFoundError, msg);
        await rejects(registry.getTransitionHistory(missing), NotFoundError, msg);
        await rejects(registry.getVersionByAlias(missing, 'champion'), NotFoundError, msg);
      });

      it('validates names and tags with errors naming the field and limit', async () => {
        const empty = await rejects(registry.createModel({ name: '' }), ValidationError, 'non-empty');
        expect(empty.field).toBe('name');
        await rejects(registry.createModel({ name: 'a/b' }), ValidationError, "may not contain '/'");
        const longKey = 'k'.repeat(REGISTRY_LIMITS.tagKeyLength + 1);
        const longValue = 'v'.repeat(REGISTRY_LIMITS.tagValueLength + 1);
        const key = await rejects(
          registry.createModel({ name: uname('t'), tags: { [longKey]: 'v' } }),
          ValidationError,
          'tagKeyLength',
        );
        expect(key.field).toBe(`tags.${longKey}`);
        await rejects(
          registry.createModel({ name: uname('t'), tags: { k: longValue } }),
          ValidationError,
          'tagValueLength',
        );
        const model = await newModel();
        await rejects(registry.setModelTag(model, 'k', longValue), ValidationError, 'tagValueLength');
        await rejects(registry.setModelTag(model, 'bad$key', 'v'), ValidationError, 'is not a valid key');
        await rejects(
          registry.updateModel(model, { description: 42 as unknown as string }),
          ValidationError,
          'description must be a string',
        );
        // Nothing was created by the refused calls.
        await rejects(registry.getModel(uname('t')), NotFoundError, 'does not exist');
      });

      it('stores model names in NFC: names equal after normalisation collide, and either spelling finds one', async () => {
        const composed = uname('caf\u00e9');
        const decomposed = uname('cafe\u0301');
        const created = await registry.createModel({ name: decomposed });
        expect(created.name).toBe(composed);
        await rejects(registry.createModel({ name: composed }), ConflictError, 'already exists');
        expect((await registry.getModel(decomposed)).name).toBe(composed);
        const v1 = await registry.createVersion({ name: decomposed, source: 's3://bucket/model' });
        expect(v1.name).toBe(composed);
        expect((await registry.resolve(`models:/${decomposed}/1`)).version).toBe(1);
        await registry.setAlias({ name: decomposed, alias: 'champion', version: 1 });
        expect((await registry.getVersionByAlias(composed, 'champion')).version).toBe(1);
        await rejects(
          registry.setAlias({ name: composed, alias: '\u212bngstrom', version: 1 }),
          ValidationError,
          'NFC',
        );
        const found = await registry.searchModels({ filter: `name = '${decomposed}'` });
        expect(found.items.map((m) => m.name)).toEqual([composed]);
        const other = await newModel('other');
        await rejects(registry.renameModel(other, decomposed), ConflictError, 'already exists');
      });

      it('refuses control and bidi characters in model names, and control characters in free text', async () => {
        for (const bad of ['\u0000', '\r\n', '\u001b[1m', '\u0085', '\u202e', '\u2069', '\ud800']) {
          const err = await rejects(registry.createModel({ name: uname(`m${bad}x`) }), ValidationError, /./);
          expect(err.field).toBe('name');
          expect(err.message).toMatch(/control character|lone surrogate/);
        }
        const model = await newModel();
        await rejects(registry.renameModel(model, `${model}\u202e`), ValidationError, 'bidirectional');
        await rejects(registry.updateModel(model, { description: 'a\u0000b' }), ValidationError, 'control character');
        await rejects(registry.setModelTag(model, 'k', 'v\u001b[0m'), ValidationError, 'control character');
        await rejects(
          registry.createVersion({ name: model, source: 's3://bucket/model\r\nX: 1' }),
          ValidationError,
          'control character',
        );
        const updated = await registry.updateModel(model, { description: 'line one\n\tline two' });
        expect(updated.description).toBe('line one\n\tline two');
        expect((await registry.getModel(model)).tags).toEqual({});
      });

      it('updates the description and sets tags, last write wins; deleting a tag is idempotent', async () => {
        const model = await newModel();
        const updated = await registry.updateModel(model, { description: 'v2 of the docs' });
        expect(updated.description).toBe('v2 of the docs');
        await registry.setModelTag(model, 'owner', 'a');
        await registry.setModelTag(model, 'owner', 'b');
        await registry.setModelTag(model, 'tier', '1');
        expect((await registry.getModel(model)).tags).toEqual({ owner: 'b', tier: '1' });
        await registry.deleteModelTag(model, 'owner');
        await registry.deleteModelTag(model, 'owner');
        expect((await registry.getModel(model)).tags).toEqual({ tier: '1' });
      });

      it('renames a model with its versions, aliases and history, and refuses a taken name', async () => {
        const model = await newModel('old', 2);
        await registry.setAlias({ name: model, alias: 'champion', version: 2 });
        await registry.transitionStage({ name: model, version: 1, to: 'Staging' });
        await newModel('taken');
        await rejects(registry.renameModel(model, uname('taken')), ConflictError, 'already exists');
        const renamed = await registry.renameModel(model, uname('new'));
        expect(renamed.name).toBe(uname('new'));
        expect(renamed.aliases).toEqual({ champion: 2 });
        await rejects(registry.getModel(model), NotFoundError, 'does not exist');
        expect((await registry.getVersion(uname('new'), 2)).name).toBe(uname('new'));
        expect((await registry.getVersion(uname('new'), 1)).stage).toBe('Staging');
        // Numbering continues where it was.
        expect((await registry.createVersion({ name: uname('new'), source: 's3://models/x' })).version).toBe(3);
      });

      withHistory('moves the stage history with a rename', async () => {
        const model = await newModel('old', 1);
        await registry.transitionStage({ name: model, version: 1, to: 'Staging' });
        await registry.renameModel(model, uname('new'));
        const history = await registry.getTransitionHistory(uname('new'));
        expect(history.items.map((t) => [t.name, t.version, t.to])).toEqual([[uname('new'), 1, 'Staging']]);
      });

      it('deletes a model with everything in it; a new model of the same name starts at version 1', async () => {
        const model = await newModel('gone', 3);
        await registry.setAlias({ name: model, alias: 'champion', version: 3 });
        await registry.deleteModel(model);
        await rejects(registry.getModel(model), NotFoundError, 'does not exist');
        await rejects(registry.getVersion(model, 1), NotFoundError, 'does not exist');
        expect(await versionsOf({ filter: `name = '${model}'` })).toEqual([]);
        await registry.createModel({ name: model });
        expect((await registry.createVersion({ name: model, source: 's3://models/x' })).version).toBe(1);
        expect((await registry.getModel(model)).aliases).toEqual({});
      });

      it('searches by name and tags, in order, over pages without gaps or duplicates', async () => {
        const names: string[] = [];
        for (let i = 0; i < 7; i++) {
          names.push(uname(`search-${i}`));
          await registry.createModel({ name: uname(`search-${i}`), tags: { parity: i % 2 ? 'odd' : 'even' } });
        }
        await newModel('other');
        const filter = `name LIKE 'search-%-${tag}'`;
        const all: string[] = [];
        let pageToken: string | undefined;
        let pages = 0;
        do {
          const page = await registry.searchModels({ filter, maxResults: 2, ...(pageToken ? { pageToken } : {}) });
          all.push(...page.items.map((m) => m.name));
          pageToken = page.nextPageToken;
          pages++;
        } while (pageToken);
        expect(all).toEqual(names);
        expect(pages).toBe(4);
        const odd = await registry.searchModels({
          filter: `${filter} and tags.parity = 'odd'`,
          orderBy: ['name DESC'],
        });
        expect(odd.items.map((m) => m.name)).toEqual([names[5], names[3], names[1]]);
        const exact = await registry.searchModels({ filter: `name = '${names[2]}'` });
        expect(exact.items.map((m) => m.name)).toEqual([names[2]]);
        const ilike = await registry.searchModels({ filter: `name ILIKE 'SEARCH-1-${tag.toUpperCase()}'` });
        expect(ilike.items.map((m) => m.name)).toEqual([names[1]]);
        // LIKE is case-sensitive, as in MLflow.
        expect((await registry.searchModels({ filter: `name LIKE 'SEARCH-%-${tag}'` })).items).toEqual([]);
      });

      itWhen(caps.modelOrderBy.includes('creation_timestamp'), 'models cannot be ordered by creation_timestamp')(
        'orders models by creation time',
        async () => {
          const names: string[] = [];
          for (let i = 0; i < 3; i++) names.push(await newModel(`created-${i}`));
          const newest = await registry.searchModels({
            filter: `name LIKE 'created-%-${tag}'`,
            orderBy: ['creation_timestamp DESC', 'name DESC'],
            maxResults: 1,
          });
          expect(newest.items[0]?.name).toBe(names[2]);
        },
      );

      it('validates searches: filter syntax with the position, unsupported fields, paging', async () => {
        const bad = await rejects(
          registry.searchModels({ filter: "name = 'a' or name = 'b'" }),
          ValidationError,
          'position',
        );
        expect(bad.field).toBe('filter');
        await rejects(registry.searchModels({ filter: 'metrics.acc > 1' }), ValidationError, 'cannot be filtered on');
        await rejects(registry.searchModels({ filter: 'name > 3' }), ValidationError, 'does not support >');
        await rejects(registry.searchModels({ orderBy: ['size DESC'] }), ValidationError, 'cannot be ordered by');
        const max = await rejects(
          registry.searchModels({ maxResults: SEARCH_MODELS_PAGE.max + 1 }),
          ValidationError,
          `1 to ${SEARCH_MODELS_PAGE.max}`,
        );
        expect(max.field).toBe('maxResults');
        await rejects(registry.searchModels({ pageToken: '%%%' }), ValidationError, 'pageToken');
        for (let i = 0; i < 3; i++) await newModel(`p${i}`);
        const first = await registry.searchModels({ filter: `name LIKE '%-${tag}'`, maxResults: 1 });
        expect(first.nextPageToken).toBeDefined();
        const foreign = await rejects(
          registry.searchModels({ filter: `name LIKE 'p%-${tag}'`, maxResults: 1, pageToken: first.nextPageToken! }),
          ValidationError,
          'different query',
        );
        expect(foreign.field).toBe('pageToken');
      });

      it('treats filter values as data, never as SQL', async () => {
        await newModel();
        const hostile = "x' OR '1'='1";
        const page = await registry.searchModels({ filter: `name = '${hostile.replaceAll("'", "''")}'` });
        expect(page.items).toEqual([]);
        expect((await registry.searchModels({ filter: `name LIKE '%-${tag}'` })).items).toHaveLength(1);
      });
    });

    // ------------------------------------------------------------------ versions
    describe('model versions', () => {
      it('creates versions numbered 1, 2, 3 with source, run, signature, tags and description', async () => {
        const model = await newModel();
        const before = Date.now();
        const v1 = await registry.createVersion({
          name: model,
          source: 's3://models/fraud/1',
          runLink: 'https://mlflow.example/runs/abc',
          runId: 'abc123',
          ...(caps.signatures ? { signature: SIGNATURE } : {}),
          description: 'first',
          tags: { framework: 'sklearn' },
          userId: 'alice',
        });
        expect(v1).toMatchObject({
          name: model,
          version: 1,
          source: 's3://models/fraud/1',
          runId: 'abc123',
          runLink: 'https://mlflow.example/runs/abc',
          status: 'READY',
          stage: 'None',
          tags: { framework: 'sklearn' },
          description: 'first',
          aliases: [],
          userId: 'alice',
        });
        if (caps.signatures) expect(v1.signature).toEqual(SIGNATURE);
        expect(v1.createdAt.getTime()).toBeGreaterThanOrEqual(before - 1000);
        expect(await registry.getVersion(model, 1)).toEqual(v1);
        expect((await registry.createVersion({ name: model, source: 's3://models/fraud/2' })).version).toBe(2);
        expect((await registry.createVersion({ name: model, source: 's3://models/fraud/3' })).version).toBe(3);
        expect((await registry.getModel(model)).latestVersions.map((v) => [v.version, v.stage])).toEqual([[3, 'None']]);
      });

      it('gives 20 concurrent createVersion calls the versions 1..20', async () => {
        const model = await newModel();
        const created = await Promise.all(
          Array.from({ length: 20 }, (_, i) => registry.createVersion({ name: model, source: `s3://m/${i}` })),
        );
        expect(created.map((v) => v.version).sort((a, b) => a - b)).toEqual(
          Array.from({ length: 20 }, (_, i) => i + 1),
        );
        const bySource = new Map(created.map((v) => [v.source, v.version]));
        for (const v of created) expect((await registry.getVersion(model, v.version)).source).toBe(v.source);
        expect(bySource.size).toBe(20);
      });

      it('never reuses a version number, even after deleting the latest', async () => {
        const model = await newModel('m', 3);
        await registry.deleteVersion(model, 3);
        await registry.deleteVersion(model, 2);
        expect((await registry.createVersion({ name: model, source: 's3://models/x' })).version).toBe(4);
        await rejects(registry.getVersion(model, 3), NotFoundError, `version 3 of model '${model}' does not exist`);
      });

      it('validates versions: numbers, sources, signatures, run ids, tags', async () => {
        const model = await newModel('m', 1);
        for (const bad of [0, -1, 1.5, Number.NaN]) {
          const err = await rejects(registry.getVersion(model, bad), ValidationError, 'positive integer');
          expect(err.field).toBe('version');
        }
        await rejects(registry.createVersion({ name: model, source: '' }), ValidationError, 'source');
        await rejects(
          registry.createVersion({
            name: model,
            source: 's3://models/x',
            signature: {
              inputs: [
                { kind: 'column', type: 'double' },
                { kind: 'tensor', dtype: 'float32', shape: [-1] },
              ],
              outputs: [],
            },
          }),
          ValidationError,
          'mixes columns and tensors',
        );
        await rejects(
          registry.createVersion({
            name: model,
            source: 's3://models/x',
            signature: { inputs: 'x' } as unknown as ModelSignature,
          }),
          ValidationError,
          'inputs must be an array',
        );
        await rejects(
          registry.createVersion({ name: model, source: 's3://models/x', runId: 'bad id!' }),
          ValidationError,
          'run id',
        );
        await rejects(
          registry.createVersion({ name: model, source: 'runs:/abc/model', runId: 'def', runLink: 'https://x' }),
          ValidationError,
          "names run 'abc'",
        );
        await rejects(
          registry.createVersion({
            name: model,
            source: 's3://models/x',
            tags: { k: 'v'.repeat(REGISTRY_LIMITS.tagValueLength + 1) },
          }),
          ValidationError,
          'tagValueLength',
        );
        await rejects(registry.setVersionTag(model, 1, 'bad$key', 'v'), ValidationError, 'is not a valid key');
        await rejects(registry.setVersionTag(model, 9, 'k', 'v'), NotFoundError, 'version 9');
        // Refused calls assigned no numbers.
        expect((await registry.createVersion({ name: model, source: 's3://models/x' })).version).toBe(2);
      });

      it('keeps tags named like Object.prototype members as ordinary tags', async () => {
        const model = await newModel('m', 1);
        await registry.setModelTag(model, '__proto__', 'x');
        await registry.setVersionTag(model, 1, '__proto__', 'y');
        await registry.setVersionTag(model, 1, 'constructor', 'z');
        expect(Object.entries((await registry.getModel(model)).tags)).toEqual([['__proto__', 'x']]);
        const tags = (await registry.getVersion(model, 1)).tags;
        expect(Object.entries(tags).sort()).toEqual([
          ['__proto__', 'y'],
          ['constructor', 'z'],
        ]);
      });

      it('updates descriptions and version tags; deleting a version removes its aliases', async () => {
        const model = await newModel('m', 2);
        expect((await registry.updateVersion(model, 1, { description: 'baseline' })).description).toBe('baseline');
        await registry.setVersionTag(model, 1, 'validated', 'no');
        await registry.setVersionTag(model, 1, 'validated', 'yes');
        await registry.setVersionTag(model, 1, 'gone', 'x');
        await registry.deleteVersionTag(model, 1, 'gone');
        await registry.deleteVersionTag(model, 1, 'gone');
        expect((await registry.getVersion(model, 1)).tags).toEqual({ validated: 'yes' });
        await registry.setAlias({ name: model, alias: 'champion', version: 2 });
        await registry.setAlias({ name: model, alias: 'backup', version: 1 });
        await registry.deleteVersion(model, 2);
        expect((await registry.getModel(model)).aliases).toEqual({ backup: 1 });
        await rejects(registry.getVersionByAlias(model, 'champion'), NotFoundError, "no alias 'champion'");
        await rejects(registry.deleteVersion(model, 2), NotFoundError, 'version 2');
        await rejects(registry.updateVersion(model, 2, { description: 'x' }), NotFoundError, 'version 2');
      });

      it('searches versions by name, number, run id, source and tags, in order, over pages', async () => {
        const a = await newModel('a');
        const b = await newModel('b');
        for (let i = 1; i <= 4; i++) {
          await registry.createVersion({
            name: a,
            source: `s3://bucket/a/${i}`,
            runId: i % 2 ? 'run-odd' : 'run-even',
            tags: { parity: i % 2 ? 'odd' : 'even' },
            runLink: 'https://elsewhere',
          });
        }
        await registry.createVersion({
          name: b,
          source: 's3://bucket/b/1',
          runId: 'run-odd',
          runLink: 'https://elsewhere',
        });
        const mine = `name LIKE '%-${tag}'`;
        expect(await versionsOf({ filter: mine })).toEqual(['a/4', 'a/3', 'a/2', 'a/1', 'b/1']);
        expect(await versionsOf({ filter: mine, maxResults: 2 })).toEqual(['a/4', 'a/3', 'a/2', 'a/1', 'b/1']);
        expect(await versionsOf({ filter: `${mine} and version_number > 2` })).toEqual(['a/4', 'a/3']);
        expect(await versionsOf({ filter: `${mine} and run_id = 'run-odd'` })).toEqual(['a/3', 'a/1', 'b/1']);
        expect(await versionsOf({ filter: `${mine} and run_id IN ('run-even', 'none')` })).toEqual(['a/4', 'a/2']);
        expect(await versionsOf({ filter: `${mine} and source_path LIKE 's3://bucket/b/%'` })).toEqual(['b/1']);
        expect(await versionsOf({ filter: `${mine} and tags.parity = 'even'` })).toEqual(['a/4', 'a/2']);
        expect(await versionsOf({ filter: `name = '${a}'`, orderBy: ['version_number ASC'] })).toEqual([
          'a/1',
          'a/2',
          'a/3',
          'a/4',
        ]);
        await rejects(
          registry.searchVersions({ filter: "current_size = '1'" }),
          ValidationError,
          'cannot be filtered on',
        );
        await rejects(registry.searchVersions({ filter: "version_number = '1'" }), ValidationError, 'compares numbers');
      });

      it('returns the latest version per stage, ordered by stage, for the stages asked', async () => {
        const model = await newModel('m', 5);
        await registry.transitionStage({ name: model, version: 1, to: 'Production' });
        await registry.transitionStage({ name: model, version: 2, to: 'Staging' });
        await registry.transitionStage({ name: model, version: 3, to: 'Staging' });
        await registry.transitionStage({ name: model, version: 4, to: 'Archived' });
        const all = await registry.getLatestVersions(model);
        expect(all.map((v) => [v.stage, v.version])).toEqual([
          ['None', 5],
          ['Staging', 3],
          ['Production', 1],
          ['Archived', 4],
        ]);
        const some = await registry.getLatestVersions(model, ['production' as never, 'Staging']);
        expect(some.map((v) => v.version)).toEqual([3, 1]);
        expect((await registry.getModel(model)).latestVersions.map((v) => v.version)).toEqual([5, 3, 1, 4]);
        await rejects(registry.getLatestVersions(model, ['Prod' as never]), ValidationError, "unknown stage 'Prod'");
      });
    });

    // ------------------------------------------------------------------ port boundary
    describe('inputs at the port boundary (validatePortInputs, as the kernel wraps every provider)', () => {
      const boundary = () => validatePortInputs(registry, modelRegistryInputs);

      it('refuses over-long descriptions, sources and run links and mistyped values, changing nothing', async () => {
        const model = await newModel('bounded', 1);
        const long = 'd'.repeat(REGISTRY_LIMITS.descriptionLength + 1);
        const cases: [() => Promise<unknown>, string, string][] = [
          [() => boundary().updateModel(model, { description: long }), 'description', 'descriptionLength'],
          [() => boundary().updateVersion(model, 1, { description: long }), 'description', 'descriptionLength'],
          [
            () => boundary().createVersion({ name: model, source: `s3://${'x'.repeat(REGISTRY_LIMITS.sourceLength)}` }),
            'source',
            'sourceLength',
          ],
          [
            () => boundary().createVersion({ name: model, source: 's3://x', runLink: 'x'.repeat(501) }),
            'runLink',
            'runLinkLength',
          ],
          [() => boundary().setModelTag(model, 'k', 42 as never), 'value', 'must be a string'],
          [() => boundary().getVersion(model, '1' as never), 'version', 'positive integer'],
          [() => boundary().createModel(null as never), 'input', 'must be an object'],
        ];
        for (const [call, field, message] of cases) {
          const err = await rejects(call(), ValidationError, message);
          expect(err.field).toBe(field);
        }
        expect((await registry.getModel(model)).description).toBe('');
        expect((await registry.searchVersions({ filter: `name = '${model}'` })).items).toHaveLength(1);
      });

      it('refuses searches beyond SEARCH_FILTER_LIMITS', async () => {
        const clauses = Array.from({ length: SEARCH_FILTER_LIMITS.filterClauses + 1 }, (_, i) => `tags.t${i} = 'x'`);
        const err = await rejects(
          boundary().searchModels({ filter: clauses.join(' and ') }),
          ValidationError,
          'filterClauses',
        );
        expect(err.field).toBe('filter');
        const terms = Array.from({ length: SEARCH_FILTER_LIMITS.orderByTerms + 1 }, () => 'name');
        await rejects(boundary().searchVersions({ orderBy: terms }), ValidationError, 'orderByTerms');
      });
    });

    // ------------------------------------------------------------------ stages
    describe('stage transitions', () => {
      it('moves a version from stage to stage, in any case of the stage name', async () => {
        const model = await newModel('m', 1);
        const staged = await registry.transitionStage({ name: model, version: 1, to: 'Staging', actor: 'alice' });
        expect(staged.stage).toBe('Staging');
        const prod = await registry.transitionStage({ name: model, version: 1, to: 'production' as never });
        expect(prod.stage).toBe('Production');
        expect(await registry.getVersion(model, 1)).toEqual(prod);
      });

      withHistory('records who, when, from, to and why of each stage move', async () => {
        const model = await newModel('m', 1);
        const before = Date.now();
        const staged = await registry.transitionStage({
          name: model,
          version: 1,
          to: 'Staging',
          actor: 'alice',
          reason: 'passed eval',
        });
        expect(staged.stage).toBe('Staging');
        const prod = await registry.transitionStage({
          name: model,
          version: 1,
          to: 'production' as never,
          actor: 'bob',
        });
        expect(prod.stage).toBe('Production');
        expect(await registry.getVersion(model, 1)).toEqual(prod);
        const history = (await registry.getTransitionHistory(model, 1)).items;
        expect(history.map(({ at: _at, ...t }) => t)).toEqual([
          { name: model, version: 1, from: 'None', to: 'Staging', actor: 'alice', reason: 'passed eval' },
          { name: model, version: 1, from: 'Staging', to: 'Production', actor: 'bob' },
        ]);
        expect(history[0]!.at.getTime()).toBeGreaterThanOrEqual(before - 1000);
        expect(history[1]!.at.getTime()).toBeGreaterThanOrEqual(history[0]!.at.getTime());
      });

      it('changes nothing, runs no hook and records nothing for a transition to the current stage', async () => {
        const model = await newModel('m', 1);
        const seen = policy(() => undefined);
        const same = await registry.transitionStage({ name: model, version: 1, to: 'None' });
        expect(same.stage).toBe('None');
        expect(seen).toHaveLength(0);
        if (caps.transitionHistory) expect((await registry.getTransitionHistory(model)).items).toEqual([]);
      });

      it('archives the versions already in the target stage with archiveExisting, all recorded', async () => {
        const model = await newModel('m', 4);
        await registry.transitionStage({ name: model, version: 1, to: 'Production' });
        await registry.transitionStage({ name: model, version: 2, to: 'Production' });
        await registry.transitionStage({ name: model, version: 3, to: 'Staging' });
        await registry.transitionStage({
          name: model,
          version: 4,
          to: 'Production',
          archiveExisting: true,
          actor: 'carol',
        });
        const stages = await Promise.all([1, 2, 3, 4].map(async (v) => (await registry.getVersion(model, v)).stage));
        expect(stages).toEqual(['Archived', 'Archived', 'Staging', 'Production']);
        for (const to of ['Archived', 'None'] as const) {
          const err = await rejects(
            registry.transitionStage({ name: model, version: 3, to, archiveExisting: true }),
            ValidationError,
            'archiveExisting applies only',
          );
          expect(err.field).toBe('archiveExisting');
        }
        await rejects(
          registry.transitionStage({ name: model, version: 3, to: 'Live' as never }),
          ValidationError,
          "unknown stage 'Live'",
        );
        await rejects(registry.transitionStage({ name: model, version: 9, to: 'Staging' }), NotFoundError, 'version 9');
      });

      withHistory('records each version archiveExisting moves, caused by the promoted one', async () => {
        const model = await newModel('m', 3);
        await registry.transitionStage({ name: model, version: 1, to: 'Production' });
        await registry.transitionStage({ name: model, version: 2, to: 'Production' });
        await registry.transitionStage({
          name: model,
          version: 3,
          to: 'Production',
          archiveExisting: true,
          actor: 'carol',
        });
        const history = (await registry.getTransitionHistory(model)).items.slice(2);
        expect(history.map((t) => [t.version, t.from, t.to, t.causedBy?.version, t.actor])).toEqual(
          expect.arrayContaining([
            [3, 'None', 'Production', undefined, 'carol'],
            [1, 'Production', 'Archived', 3, 'carol'],
            [2, 'Production', 'Archived', 3, 'carol'],
          ]),
        );
        expect(history).toHaveLength(3);
      });

      it('lets a beforePromote policy veto: VetoedError with its reason, nothing changed or recorded', async () => {
        const model = await newModel('m', 2);
        await registry.setVersionTag(model, 2, 'reviewed', 'true');
        const seen = policy((version, to) =>
          to === 'Production' && version.tags.reviewed !== 'true' ? 'needs a risk review' : undefined,
        );
        const err = await rejects(
          registry.transitionStage({ name: model, version: 1, to: 'Production', actor: 'dave', reason: 'ship it' }),
          VetoedError,
          'needs a risk review',
        );
        expect(err.reason).toBe('needs a risk review');
        expect(err.by).toBe('risk-review');
        expect(err.message).toContain(`${model} v1 to Production`);
        expect(seen[0]?.to).toBe('Production');
        expect(seen[0]?.version).toMatchObject({ name: model, version: 1, stage: 'None' });
        expect(seen[0]?.promotion).toEqual({
          kind: 'stage',
          from: 'None',
          to: 'Production',
          actor: 'dave',
          reason: 'ship it',
        });
        expect((await registry.getVersion(model, 1)).stage).toBe('None');
        if (caps.transitionHistory) expect((await registry.getTransitionHistory(model)).items).toEqual([]);
        // The reviewed version passes the same policy.
        expect((await registry.transitionStage({ name: model, version: 2, to: 'Production' })).stage).toBe(
          'Production',
        );
        // A veto of the main promotion also spares the versions archiveExisting would have moved.
        await rejects(
          registry.transitionStage({ name: model, version: 1, to: 'Production', archiveExisting: true }),
          VetoedError,
          'needs a risk review',
        );
        expect((await registry.getVersion(model, 2)).stage).toBe('Production');
      });

      it('runs model.registered and model.promoted after the change committed', async () => {
        const model = await newModel();
        const registered: ModelVersion[] = [];
        const promoted: [ModelVersion, ModelPromotion][] = [];
        hooks.model.registered.tapPromise('watch', async (v) => {
          registered.push(v);
          // The version is already readable through the registry.
          expect((await registry.getVersion(v.name, v.version)).source).toBe(v.source);
        });
        hooks.model.promoted.tapPromise('watch', async (v, p) => {
          promoted.push([v, p]);
        });
        hooks.model.promoted.tapPromise('broken', async () => {
          throw new Error('a failing tap does not undo a committed promotion');
        });
        const v1 = await registry.createVersion({ name: model, source: 's3://models/x' });
        expect(registered.map((v) => v.version)).toEqual([1]);
        expect(registered[0]).toEqual(v1);
        const staged = await registry.transitionStage({ name: model, version: 1, to: 'Staging', actor: 'erin' });
        await registry.setAlias({ name: model, alias: 'champion', version: 1, actor: 'erin' });
        expect(promoted.map(([v, p]) => [v.version, v.stage, p.kind, p.from, p.to, p.actor])).toEqual([
          [1, 'Staging', 'stage', 'None', 'Staging', 'erin'],
          [1, 'Staging', 'alias', undefined, 'champion', 'erin'],
        ]);
        expect(promoted[0]![0]).toEqual(staged);
        expect(promoted[1]![0].aliases).toEqual(['champion']);
      });

      withHistory('keeps the history a chain under concurrent transitions of one version', async () => {
        const model = await newModel('m', 2);
        const targets = ['Staging', 'Production', 'Archived', 'Staging', 'Production', 'None'] as const;
        const results = await Promise.allSettled(
          targets.map((to, i) => registry.transitionStage({ name: model, version: 1 + (i % 2), to })),
        );
        for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ConflictError);
        for (const version of [1, 2]) {
          const history = (await registry.getTransitionHistory(model, version)).items;
          history.forEach((t, i) => {
            expect(t.from).toBe(i === 0 ? 'None' : history[i - 1]!.to);
          });
          expect((await registry.getVersion(model, version)).stage).toBe(history.at(-1)?.to ?? 'None');
        }
      });

      withHistory('pages the history oldest first, per version or per model', async () => {
        const model = await newModel('m', 2);
        const moves = ['Staging', 'Production', 'Archived', 'Staging'] as const;
        for (const to of moves) await registry.transitionStage({ name: model, version: 1, to });
        await registry.transitionStage({ name: model, version: 2, to: 'Staging' });
        const seen: string[] = [];
        let pageToken: string | undefined;
        do {
          const page = await registry.getTransitionHistory(model, 1, {
            maxResults: 1,
            ...(pageToken ? { pageToken } : {}),
          });
          seen.push(...page.items.map((t) => t.to));
          pageToken = page.nextPageToken;
        } while (pageToken);
        expect(seen).toEqual([...moves]);
        const whole = await registry.getTransitionHistory(model);
        expect(whole.items.map((t) => `${t.version}:${t.to}`)).toEqual([...moves.map((m) => `1:${m}`), '2:Staging']);
        const first = await registry.getTransitionHistory(model, 1, { maxResults: 2 });
        await rejects(
          registry.getTransitionHistory(model, 2, { pageToken: first.nextPageToken! }),
          ValidationError,
          'another history',
        );
        await rejects(
          registry.getTransitionHistory(model, 1, { maxResults: TRANSITION_HISTORY_PAGE.max + 1 }),
          ValidationError,
          'maxResults',
        );
        await rejects(registry.getTransitionHistory(model, 99), NotFoundError, 'version 99');
      });
    });

    // ------------------------------------------------------------------ aliases
    describe('aliases', () => {
      it('points an alias at a version, moves it, resolves it and deletes it idempotently', async () => {
        const model = await newModel('m', 3);
        await registry.setAlias({ name: model, alias: 'champion', version: 1 });
        await registry.setAlias({ name: model, alias: 'challenger', version: 1 });
        expect((await registry.getVersion(model, 1)).aliases).toEqual(['challenger', 'champion']);
        await registry.setAlias({ name: model, alias: 'champion', version: 3 });
        expect((await registry.getVersionByAlias(model, 'champion')).version).toBe(3);
        expect((await registry.getVersion(model, 1)).aliases).toEqual(['challenger']);
        expect((await registry.getModel(model)).aliases).toEqual({ challenger: 1, champion: 3 });
        // Setting it where it already points is a no-op.
        await registry.setAlias({ name: model, alias: 'champion', version: 3 });
        await registry.deleteAlias(model, 'champion');
        await registry.deleteAlias(model, 'champion');
        await rejects(registry.getVersionByAlias(model, 'champion'), NotFoundError, "no alias 'champion'");
        await rejects(registry.setAlias({ name: model, alias: 'x', version: 7 }), NotFoundError, 'version 7');
      });

      it('moves an alias consistently under concurrent setAlias calls', async () => {
        const model = await newModel('m', 5);
        const results = await Promise.allSettled(
          [1, 2, 3, 4, 5].map((version) => registry.setAlias({ name: model, alias: 'champion', version })),
        );
        for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ConflictError);
        expect(results.some((r) => r.status === 'fulfilled')).toBe(true);
        const points = (await registry.getVersionByAlias(model, 'champion')).version;
        expect((await registry.getModel(model)).aliases).toEqual({ champion: points });
        if (fixture.aliasHistory) {
          const moves = await fixture.aliasHistory(model);
          moves.forEach((m, i) => {
            expect(m.fromVersion).toBe(i === 0 ? undefined : moves[i - 1]!.toVersion);
          });
          expect(moves.at(-1)?.toVersion).toBe(points);
        }
      });

      itWhen(caps.atomicPromotionCheck, 'MLflow has no compare-and-set for promotions')(
        'refuses a promotion whose alias moved while the policy decided, with ConflictError',
        async () => {
          const model = await newModel('m', 3);
          await registry.setAlias({ name: model, alias: 'champion', version: 1 });
          let moved = false;
          // Another promotion of the same alias lands while this one is being checked.
          hooks.model.beforePromote.tapPromise({ name: 'concurrent-move', stage: STAGE_POLICY }, async (_v, to) => {
            if (to === 'champion' && !moved) {
              moved = true;
              await registry.setAlias({ name: model, alias: 'champion', version: 3 });
            }
            return undefined;
          });
          await rejects(
            registry.setAlias({ name: model, alias: 'champion', version: 2 }),
            ConflictError,
            'moved while the promotion was being checked',
          );
          expect((await registry.getVersionByAlias(model, 'champion')).version).toBe(3);
        },
      );

      it('validates alias names: reserved words, characters and length', async () => {
        const model = await newModel('m', 1);
        const cases: [string, string][] = [
          ['latest', 'reserved'],
          ['LATEST', 'reserved'],
          ['v3', 'reserved'],
          ['bad alias!', 'may only contain'],
          ['', 'may only contain'],
          ['a'.repeat(REGISTRY_LIMITS.aliasLength + 1), 'aliasLength'],
        ];
        for (const [alias, message] of cases) {
          const err = await rejects(registry.setAlias({ name: model, alias, version: 1 }), ValidationError, message);
          expect(err.field).toBe('alias');
        }
        expect((await registry.getModel(model)).aliases).toEqual({});
      });

      it('passes alias moves through beforePromote (kind alias); a veto leaves the alias where it was', async () => {
        const model = await newModel('m', 3);
        await registry.setAlias({ name: model, alias: 'champion', version: 1 });
        const seen = policy((_v, to, p) =>
          to === 'champion' && p.from === '1' ? 'champion moves only after the A/B test' : undefined,
        );
        const err = await rejects(
          registry.setAlias({ name: model, alias: 'champion', version: 2, actor: 'frank', reason: 'better AUC' }),
          VetoedError,
          'champion moves only after the A/B test',
        );
        expect(err.message).toContain(`${model} v2`);
        expect(seen[0]?.promotion).toEqual({
          kind: 'alias',
          from: '1',
          to: 'champion',
          actor: 'frank',
          reason: 'better AUC',
        });
        expect(seen[0]?.version.version).toBe(2);
        expect((await registry.getVersionByAlias(model, 'champion')).version).toBe(1);
        await registry.setAlias({ name: model, alias: 'challenger', version: 2 });
        expect(seen[1]?.promotion).toMatchObject({ kind: 'alias', from: undefined, to: 'challenger' });
      });

      itWhen(hasAliasHistory, 'the fixture keeps no alias history')(
        'records every alias move: who, from, to and why',
        async () => {
          const model = await newModel('m', 2);
          await registry.setAlias({ name: model, alias: 'champion', version: 1, actor: 'gina', reason: 'first' });
          await registry.setAlias({ name: model, alias: 'champion', version: 2, actor: 'hugo' });
          await registry.deleteAlias(model, 'champion');
          await registry.setAlias({ name: model, alias: 'backup', version: 1 });
          await registry.deleteVersion(model, 1);
          const moves = (await fixture.aliasHistory!(model)).map((m) => ({
            alias: m.alias,
            fromVersion: m.fromVersion,
            toVersion: m.toVersion,
            actor: m.actor,
            reason: m.reason,
          }));
          expect(moves).toEqual([
            { alias: 'champion', fromVersion: undefined, toVersion: 1, actor: 'gina', reason: 'first' },
            { alias: 'champion', fromVersion: 1, toVersion: 2, actor: 'hugo', reason: undefined },
            { alias: 'champion', fromVersion: 2, toVersion: undefined, actor: undefined, reason: undefined },
            { alias: 'backup', fromVersion: undefined, toVersion: 1, actor: undefined, reason: undefined },
            {
              alias: 'backup',
              fromVersion: 1,
              toVersion: undefined,
              actor: undefined,
              reason: 'version 1 was deleted',
            },
          ]);
        },
      );
    });

    // ------------------------------------------------------------------ URIs
    describe('resolve', () => {
      it('resolves models:/ URIs by version, alias, stage and latest', async () => {
        const model = await newModel('m', 4);
        await registry.transitionStage({ name: model, version: 2, to: 'Production' });
        await registry.transitionStage({ name: model, version: 3, to: 'Production' });
        await registry.setAlias({ name: model, alias: 'champion', version: 1 });
        expect((await registry.resolve(`models:/${model}/2`)).version).toBe(2);
        expect((await registry.resolve(`models:/${model}@champion`)).version).toBe(1);
        expect((await registry.resolve(`models:/${model}/Production`)).version).toBe(3);
        expect((await registry.resolve(`models:/${model}/production`)).version).toBe(3);
        expect((await registry.resolve(`models:/${model}/latest`)).version).toBe(4);
      });

      it('returns the whole version by alias and by number: every tag and alias, signature, description', async () => {
        const model = await newModel('whole', 2);
        const { version } = await registry.createVersion({
          name: model,
          source: `s3://models/${model}/3`,
          description: 'third',
          ...(caps.signatures ? { signature: SIGNATURE } : {}),
        });
        await registry.setVersionTag(model, version, 'stage', 'canary');
        await registry.setVersionTag(model, version, '__proto__', 'x');
        await registry.setAlias({ name: model, alias: 'champion', version });
        await registry.setAlias({ name: model, alias: 'blue', version });
        await registry.setAlias({ name: model, alias: 'other', version: 1 });
        const byAlias = await registry.getVersionByAlias(model, 'champion');
        expect(byAlias).toMatchObject({ name: model, version, description: 'third', aliases: ['blue', 'champion'] });
        expect(Object.entries(byAlias.tags).sort()).toEqual([
          ['__proto__', 'x'],
          ['stage', 'canary'],
        ]);
        if (caps.signatures) expect(byAlias.signature).toEqual(SIGNATURE);
        expect(await registry.getVersion(model, version)).toEqual(byAlias);
        expect(await registry.resolve(`models:/${model}@blue`)).toEqual(byAlias);
        // A version without tags or aliases comes back with empty ones.
        expect(await registry.getVersion(model, 2)).toMatchObject({ version: 2, tags: {}, aliases: [] });
      });

      it('reports malformed URIs as ValidationError and unmatched ones as NotFoundError', async () => {
        const model = await newModel('m', 1);
        for (const uri of [
          's3://models/x',
          'models:/',
          `models:/${model}`,
          `models:/${model}/Prod`,
          `models:/${model}/1/2`,
        ]) {
          const err = await rejects(registry.resolve(uri), ValidationError, 'is not a models:/ URI');
          expect(err.field).toBe('modelUri');
        }
        await rejects(registry.resolve(`models:/${model}/Staging`), NotFoundError, 'no version in stage Staging');
        await rejects(registry.resolve(`models:/${model}/5`), NotFoundError, 'version 5');
        await rejects(registry.resolve(`models:/${model}@champion`), NotFoundError, "no alias 'champion'");
        await rejects(registry.resolve(`models:/${uname('missing')}/latest`), NotFoundError, 'does not exist');
        const empty = await newModel('empty');
        await rejects(registry.resolve(`models:/${empty}/latest`), NotFoundError, 'has no versions');
      });
    });

    // ------------------------------------------------------------------ lineage
    describe.runIf(hasTracker)('lineage', () => {
      it('follows a version to its run: params, metrics, tags, dataset inputs and artifacts', async () => {
        const tracker = fixture.tracker!;
        const experiment = await tracker.createExperiment({ name: uname('lineage') });
        const run = await tracker.createRun({ experimentId: experiment.id, tags: { team: 'risk' } });
        const runId = run.info.id;
        await tracker.logBatch(runId, {
          params: [{ key: 'lr', value: '0.01' }],
          metrics: [
            { key: 'auc', value: 0.91, step: 1 },
            { key: 'auc', value: 0.93, step: 2 },
          ],
        });
        await tracker.logInputs(runId, [
          {
            dataset: { name: 'payments', digest: 'd1', sourceType: 's3', source: '{"uri":"s3://data/payments"}' },
            tags: [{ key: 'mlflow.data.context', value: 'training' }],
          },
        ]);
        await tracker.logArtifact(runId, 'model/model.onnx', new Uint8Array([1, 2, 3]));
        await tracker.logArtifact(runId, 'model/MLmodel', 'flavors: {}');
        const model = await newModel();
        const version = await registry.createVersion({ name: model, source: `runs:/${runId}/model` });
        expect(version.runId).toBe(runId);
        const lineage = await registry.getLineage(model, 1);
        expect(lineage).toMatchObject({
          name: model,
          version: 1,
          source: `runs:/${runId}/model`,
          runId,
          experimentId: experiment.id,
        });
        expect(lineage.run?.data.params).toEqual({ lr: '0.01' });
        expect(lineage.run?.data.metrics.auc?.value).toBe(0.93);
        expect(lineage.run?.data.tags.team).toBe('risk');
        expect(lineage.run?.inputs.datasetInputs.map((d) => `${d.dataset.name}@${d.dataset.digest}`)).toEqual([
          'payments@d1',
        ]);
        expect(lineage.artifacts?.map((a) => a.path)).toEqual(['model', 'model/MLmodel', 'model/model.onnx']);
      });

      it('follows a run to every version it produced (reverse lineage)', async () => {
        const tracker = fixture.tracker!;
        const experiment = await tracker.createExperiment({ name: uname('reverse') });
        const run = await tracker.createRun({ experimentId: experiment.id });
        const other = await tracker.createRun({ experimentId: experiment.id });
        const a = await newModel('a');
        const b = await newModel('b');
        await registry.createVersion({ name: a, source: 's3://a/1', runId: run.info.id });
        await registry.createVersion({ name: a, source: 's3://a/2', runId: other.info.id });
        await registry.createVersion({ name: b, source: `runs:/${run.info.id}/model` });
        expect(await versionsOf({ filter: `run_id = '${run.info.id}'` })).toEqual(['a/1', 'b/1']);
      });

      it('refuses a run the tracker does not know, and gives source-only lineage without a run', async () => {
        const model = await newModel();
        await rejects(
          registry.createVersion({ name: model, source: 's3://models/x', runId: 'f'.repeat(32) }),
          NotFoundError,
          'does not exist',
        );
        // A run on another tracking server is linked, not checked.
        await registry.createVersion({
          name: model,
          source: 's3://models/x',
          runId: 'remote1',
          runLink: 'https://mlflow.example/r/remote1',
        });
        expect(await registry.getLineage(model, 1)).toEqual({
          name: model,
          version: 1,
          source: 's3://models/x',
          runId: 'remote1',
          runLink: 'https://mlflow.example/r/remote1',
        });
        await registry.createVersion({ name: model, source: 's3://models/y' });
        expect(await registry.getLineage(model, 2)).toEqual({ name: model, version: 2, source: 's3://models/y' });
      });
    });

    // ------------------------------------------------------------------ events
    describe.skipIf(!hasEvents)(
      hasEvents ? 'domain events (outbox)' : 'domain events (outbox) [skipped: capabilities.changeEvents is false]',
      () => {
        it('records one event per change, in order, with the actor', async () => {
          const model = uname('events');
          await registry.createModel({ name: model, tags: { a: '1' } });
          await registry.createVersion({ name: model, source: 's3://models/x', userId: 'ivy' });
          await registry.createVersion({ name: model, source: 's3://models/y' });
          await registry.updateModel(model, { description: 'd' });
          await registry.setModelTag(model, 'k', 'v');
          await registry.deleteModelTag(model, 'k');
          await registry.deleteModelTag(model, 'k');
          await registry.setVersionTag(model, 1, 'k', 'v');
          await registry.deleteVersionTag(model, 1, 'k');
          await registry.updateVersion(model, 1, { description: 'd' });
          await registry.transitionStage({ name: model, version: 1, to: 'Production', actor: 'jack', reason: 'go' });
          await registry.transitionStage({
            name: model,
            version: 2,
            to: 'Production',
            archiveExisting: true,
            actor: 'jack',
          });
          await registry.transitionStage({ name: model, version: 2, to: 'Production' });
          await registry.setAlias({ name: model, alias: 'champion', version: 1, actor: 'kim' });
          await registry.setAlias({ name: model, alias: 'champion', version: 2, actor: 'kim' });
          await registry.deleteAlias(model, 'champion');
          await registry.deleteAlias(model, 'champion');
          await registry.deleteVersion(model, 1);
          const events = await eventsOf(model);
          expect(events.map((e) => e.type)).toEqual([
            'model.created',
            'model.version.created',
            'model.version.created',
            'model.updated',
            'model.tag.set',
            'model.tag.deleted',
            'model.version.tag.set',
            'model.version.tag.deleted',
            'model.version.updated',
            'model.version.stage.transitioned',
            'model.version.stage.transitioned',
            'model.version.stage.transitioned',
            'model.alias.set',
            'model.alias.set',
            'model.alias.deleted',
            'model.version.deleted',
          ]);
          expect(events[1]).toMatchObject({
            version: 1,
            actor: 'ivy',
            payload: { name: model, version: 1, source: 's3://models/x' },
          });
          expect(events[9]).toMatchObject({
            actor: 'jack',
            payload: { version: 1, from: 'None', to: 'Production', reason: 'go' },
          });
          const archived = events.slice(10, 12).map((e) => e.payload);
          expect(archived).toEqual(
            expect.arrayContaining([
              expect.objectContaining({ version: 2, from: 'None', to: 'Production' }),
              expect.objectContaining({ version: 1, from: 'Production', to: 'Archived', causedBy: { version: 2 } }),
            ]),
          );
          expect(events[13]).toMatchObject({
            actor: 'kim',
            payload: { alias: 'champion', version: 2, previousVersion: 1 },
          });
          expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
          await registry.renameModel(model, uname('renamed'));
          await registry.deleteModel(uname('renamed'));
          expect((await eventsOf(uname('renamed'))).map((e) => e.type)).toEqual(['model.renamed', 'model.deleted']);
        });

        it('records nothing for a vetoed promotion or a refused write', async () => {
          const model = await newModel('m', 1);
          const before = (await eventsOf(model)).length;
          policy(() => 'frozen');
          await rejects(registry.transitionStage({ name: model, version: 1, to: 'Staging' }), VetoedError, 'frozen');
          await rejects(registry.setAlias({ name: model, alias: 'champion', version: 1 }), VetoedError, 'frozen');
          await rejects(registry.setModelTag(model, 'bad$', 'v'), ValidationError, 'valid key');
          await rejects(registry.createModel({ name: model }), ConflictError, 'already exists');
          expect(await eventsOf(model)).toHaveLength(before);
        });
      },
    );
  });
}
