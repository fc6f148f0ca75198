import { domainEvent } from '@mlplane/sql';
import { describe, expect, it } from 'vitest';
import { registryCacheKeys as k, modelRegistryInvalidation } from '../../src/cache/cached-model-registry.js';

const rule = (type: string, payload: Record<string, unknown>) =>
  modelRegistryInvalidation(domainEvent(type, `model:${String(payload.name)}`, payload));

describe('modelRegistryInvalidation', () => {
  it.each([
    ['model.alias.set', { name: 'fraud', alias: 'champion', version: 4, previousVersion: 3 }],
    ['model.alias.deleted', { name: 'fraud', alias: 'champion', version: 4 }],
    ['model.version.created', { name: 'fraud', version: 2 }],
    ['model.version.updated', { name: 'fraud', version: 2, description: 'x' }],
    ['model.version.stage.transitioned', { name: 'fraud', version: 2, from: 'None', to: 'Production' }],
    ['model.version.tag.set', { name: 'fraud', version: 2, key: 'a', value: 'b' }],
    ['model.version.tag.deleted', { name: 'fraud', version: 2, key: 'a' }],
    ['model.version.deleted', { name: 'fraud', version: 2 }],
    ['model.deleted', { name: 'fraud' }],
    ['model.version.signature.changed', { name: 'fraud' }],
  ])('%s drops every cached entry of the model', (type, payload) => {
    expect(rule(type, payload)).toEqual({ tags: [k.model('fraud')] });
  });

  it('drops both names on a rename', () => {
    expect(rule('model.renamed', { name: 'g', previousName: 'f' })).toEqual({ tags: [k.model('g'), k.model('f')] });
  });

  it('ignores events that change nothing cached', () => {
    expect(rule('model.created', { name: 'f' })).toBeUndefined();
    expect(rule('model.tag.set', { name: 'f', key: 'a', value: 'b' })).toBeUndefined();
    expect(rule('model.updated', { name: 'f', description: 'd' })).toBeUndefined();
    expect(rule('run.created', { name: 'f' })).toBeUndefined();
    expect(rule('model.alias.set', { alias: 'x' })).toBeUndefined();
  });

  it('encodes names so that a colon cannot collide with the key layout', () => {
    expect(k.alias('a:b', 'c')).not.toBe(k.alias('a', 'b:c'));
  });
});
