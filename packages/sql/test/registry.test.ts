import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MODEL_NAME_LENGTH, ValidationError } from '@mlplane/core';
import { modelRegistryConformance } from '@mlplane/core/testing';
import { LocalArtifactStore, SqliteMetadataStore } from '@mlplane/defaults';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOutbox } from '../src/outbox/outbox.js';
import { SqlModelRegistry } from '../src/registry/sql-model-registry.js';
import { SqlExperimentTracker } from '../src/tracker/sql-experiment-tracker.js';

modelRegistryConformance('SqlModelRegistry on SQLite (temp dir)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-registry-'));
  const store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
  const tracker = await SqlExperimentTracker.open({
    store,
    artifacts: new LocalArtifactStore({ root: join(dir, 'artifacts') }),
  });
  const registry = await SqlModelRegistry.open({ store, tracker });
  return {
    registry,
    tracker,
    events: async () => (await readOutbox(store.db(), { limit: 1_000_000 })).map((e) => e.event),
    aliasHistory: (name) => registry.getAliasHistory(name),
    cleanup: async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('SqlModelRegistry validation', () => {
  let dir: string;
  let store: SqliteMetadataStore;
  let registry: SqlModelRegistry;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mlplane-registry-'));
    store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
    registry = await SqlModelRegistry.open({ store });
    await registry.createModel({ name: 'm' });
    await registry.createVersion({ name: 'm', source: 's3://x' });
  });
  afterAll(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const bad = (value: unknown) => value as never;
  const signature = (inputs: unknown, extra: object = {}) => bad({ inputs, outputs: [], ...extra });

  // [call, field, message]: every ValidationError path the registry has beyond the conformance suite's.
  const cases: [string, () => Promise<unknown>, string, string][] = [
    [
      'name too long',
      () => registry.createModel({ name: 'n'.repeat(MODEL_NAME_LENGTH + 1) }),
      'name',
      'the limit is 256',
    ],
    ['name not a string', () => registry.getModel(bad(7)), 'name', 'non-empty string'],
    ['newName', () => registry.renameModel('m', 'a/b'), 'newName', "may not contain '/'"],
    [
      'model description',
      () => registry.createModel({ name: 'x', description: bad(1) }),
      'description',
      'must be a string',
    ],
    [
      'tags not an object',
      () => registry.createModel({ name: 'x', tags: bad(['a']) }),
      'tags',
      'object of string values',
    ],
    ['tag key not a string', () => registry.setModelTag('m', bad(1), 'v'), 'key', 'tag key must be a string'],
    [
      'tag value not a string',
      () => registry.setVersionTag('m', 1, 'k', bad(1)),
      'key',
      "tag 'k' value must be a string",
    ],
    ['delete tag key', () => registry.deleteModelTag('m', bad(1)), 'key', 'tag key must be a string'],
    ['delete version tag key', () => registry.deleteVersionTag('m', 1, bad(null)), 'key', 'tag key must be a string'],
    ['version description', () => registry.updateVersion('m', 1, bad({})), 'description', 'must be a string'],
    [
      'runLink',
      () => registry.createVersion({ name: 'm', source: 's', runLink: bad(1) }),
      'runLink',
      'must be a string',
    ],
    ['userId', () => registry.createVersion({ name: 'm', source: 's', userId: bad(1) }), 'userId', 'must be a string'],
    [
      'source run id',
      () => registry.createVersion({ name: 'm', source: 'runs:/bad id!/model' }),
      'source',
      'is not a run id',
    ],
    [
      'signature not an object',
      () => registry.createVersion({ name: 'm', source: 's', signature: bad('x') }),
      'signature',
      'must be an object',
    ],
    [
      'spec not an object',
      () => registry.createVersion({ name: 'm', source: 's', signature: signature([1]) }),
      'signature',
      'inputs[0] must be a column or tensor spec',
    ],
    [
      'spec kind',
      () => registry.createVersion({ name: 'm', source: 's', signature: signature([{ kind: 'blob' }]) }),
      'signature',
      "kind must be 'column' or 'tensor'",
    ],
    [
      'spec name',
      () =>
        registry.createVersion({
          name: 'm',
          source: 's',
          signature: signature([{ kind: 'column', type: 'long', name: 1 }]),
        }),
      'signature',
      'inputs[0].name must be a string',
    ],
    [
      'column type',
      () => registry.createVersion({ name: 'm', source: 's', signature: signature([{ kind: 'column', type: '' }]) }),
      'signature',
      'type must be a non-empty string',
    ],
    [
      'column required',
      () =>
        registry.createVersion({
          name: 'm',
          source: 's',
          signature: signature([{ kind: 'column', type: 'long', required: 'yes' }]),
        }),
      'signature',
      'required must be a boolean',
    ],
    [
      'tensor dtype',
      () => registry.createVersion({ name: 'm', source: 's', signature: signature([{ kind: 'tensor', shape: [1] }]) }),
      'signature',
      'dtype must be a non-empty string',
    ],
    [
      'tensor shape',
      () =>
        registry.createVersion({
          name: 'm',
          source: 's',
          signature: signature([{ kind: 'tensor', dtype: 'float32', shape: [-2] }]),
        }),
      'signature',
      'shape must be an array of integers',
    ],
    [
      'params not an array',
      () => registry.createVersion({ name: 'm', source: 's', signature: signature([], { params: {} }) }),
      'signature',
      'params must be an array',
    ],
    [
      'param shape',
      () => registry.createVersion({ name: 'm', source: 's', signature: signature([], { params: [{ name: 'p' }] }) }),
      'signature',
      'params[0] must have a string name and type',
    ],
    ['stages not an array', () => registry.getLatestVersions('m', bad('Production')), 'stages', 'must be an array'],
    [
      'stage not a string',
      () => registry.transitionStage({ name: 'm', version: 1, to: bad(3) }),
      'stage',
      'must be a stage name',
    ],
    [
      'archiveExisting',
      () => registry.transitionStage({ name: 'm', version: 1, to: 'Staging', archiveExisting: bad('yes') }),
      'archiveExisting',
      'must be a boolean',
    ],
    [
      'reason',
      () => registry.transitionStage({ name: 'm', version: 1, to: 'Staging', reason: bad(1) }),
      'reason',
      'must be a string',
    ],
    [
      'actor',
      () => registry.setAlias({ name: 'm', alias: 'a', version: 1, actor: bad(1) }),
      'actor',
      'must be a string',
    ],
    [
      'alias not a string',
      () => registry.setAlias({ name: 'm', alias: bad(1), version: 1 }),
      'alias',
      'alias must be a string',
    ],
    ['delete alias', () => registry.deleteAlias('m', bad(1)), 'alias', 'alias must be a string'],
    ['alias lookup', () => registry.getVersionByAlias('m', bad(1)), 'alias', 'alias must be a string'],
    ['alias history', () => registry.getAliasHistory('m', bad(1)), 'alias', 'must be a string'],
    ['history token', () => registry.getTransitionHistory('m', 1, { pageToken: 'e30' }), 'pageToken', 'malformed'],
    ['uri not a string', () => registry.resolve(bad(1)), 'modelUri', 'must be a string'],
    ['filter not a string', () => registry.searchModels({ filter: bad(1) }), 'filter', 'filter must be a string'],
    ['orderBy not an array', () => registry.searchVersions({ orderBy: bad('name') }), 'orderBy', 'array of strings'],
    ['string compared to a number', () => registry.searchModels({ filter: 'name = 3' }), 'filter', 'compares strings'],
    ['run_id LIKE', () => registry.searchVersions({ filter: "run_id LIKE 'a%'" }), 'filter', 'does not support LIKE'],
    [
      'bad order term',
      () => registry.searchVersions({ orderBy: ['version_number sideways'] }),
      'orderBy',
      'expected ASC, DESC',
    ],
    [
      'versions page size',
      () => registry.searchVersions({ maxResults: 0 }),
      'maxResults',
      'maxResults must be an integer',
    ],
    ['versions token', () => registry.searchVersions({ pageToken: 'e30' }), 'pageToken', 'malformed'],
  ];

  it.each(cases)('refuses %s with ValidationError', async (_label, call, field, message) => {
    const err = await call().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).field).toBe(field);
    expect((err as Error).message).toContain(message);
  });

  it('has assigned no version for any refused call', async () => {
    expect((await registry.getLatestVersions('m')).map((v) => v.version)).toEqual([1]);
    expect((await registry.getModel('m')).tags).toEqual({});
  });
});
