import { describe, expect, it } from 'vitest';
import { registryCacheKeys as k, modelRegistryInvalidation } from '../../src/infra/cache/cached-model-registry.js';
import { domainEvent } from '../../src/infra/sql/outbox.js';

const rule = (type: string, payload: Record<string, unknown>) =>
  modelRegistryInvalidation(domainEvent(type, `model:${String(payload.name)}`, payload));

describe('modelRegistryInvalidation', () => {
  it('maps alias moves to the alias key and both versions whose alias lists changed', () => {
    expect(rule('model.alias.set', { name: 'fraud', alias: 'champion', version: 4, previousVersion: 3 })).toEqual({
      keys: [k.alias('fraud', 'champion'), k.version('fraud', 4), k.version('fraud', 3)],
    });
    expect(rule('model.alias.deleted', { name: 'fraud', alias: 'champion', version: 4 })).toEqual({
      keys: [k.alias('fraud', 'champion'), k.version('fraud', 4)],
    });
  });

  it('maps version and stage changes to their keys', () => {
    expect(rule('model.version.created', { name: 'f', version: 2 })).toEqual({
      keys: [k.latest('f'), k.stage('f', 'None')],
    });
    expect(rule('model.version.stage.transitioned', { name: 'f', version: 2, from: 'None', to: 'Production' })).toEqual(
      { keys: [k.version('f', 2), k.stage('f', 'None'), k.stage('f', 'Production')] },
    );
    expect(rule('model.version.tag.set', { name: 'f', version: 2, key: 'a', value: 'b' })).toEqual({
      keys: [k.version('f', 2)],
    });
  });

  it('drops the whole model on delete, rename (both names) and unknown model events', () => {
    expect(rule('model.version.deleted', { name: 'f', version: 2 })).toEqual({ tags: [k.model('f')] });
    expect(rule('model.deleted', { name: 'f' })).toEqual({ tags: [k.model('f')] });
    expect(rule('model.renamed', { name: 'g', previousName: 'f' })).toEqual({ tags: [k.model('g'), k.model('f')] });
    expect(rule('model.version.signature.changed', { name: 'f' })).toEqual({ tags: [k.model('f')] });
  });

  it('ignores events that change nothing cached', () => {
    expect(rule('model.tag.set', { name: 'f', key: 'a', value: 'b' })).toBeUndefined();
    expect(rule('run.created', { name: 'f' })).toBeUndefined();
  });

  it('encodes names so that a colon cannot collide with the key layout', () => {
    expect(k.alias('a:b', 'c')).not.toBe(k.alias('a', 'b:c'));
  });
});
