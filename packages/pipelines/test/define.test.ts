import { ValidationError } from '@mlplane/core';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { artifact, pipeline, type Ref, step, when } from '../src/index.js';

const ingest = step({
  name: 'ingest',
  version: '1',
  inputs: { source: z.string() },
  outputs: { data: artifact(), rows: z.number().int() },
  job: { command: ['true'] },
});
const train = step({
  name: 'train',
  version: '1',
  inputs: { data: artifact(), c: z.number() },
  outputs: { model: artifact(), accuracy: z.number() },
  job: ({ c }) => ({ command: ['true'], args: ['--c', String(c)] }),
});
const label = step({
  name: 'label',
  version: '1',
  inputs: { text: z.string() },
  job: { command: ['true'] },
});
const pick = step({
  name: 'pick',
  version: '1',
  inputs: { scores: z.array(z.number()) },
  outputs: { best: z.number().int() },
  job: { command: ['true'] },
});

function validationError(fn: () => unknown): ValidationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return err as ValidationError;
  }
  throw new Error('expected a ValidationError');
}

describe('pipeline definitions', () => {
  it('orders steps after what they need and wires fan-out, fan-in and conditions', () => {
    const p = pipeline({ name: 'demo', params: { source: z.string(), cs: z.array(z.number()) } }, (b) => {
      const raw = b.step(ingest, { source: b.params.source });
      const models = b.map(train, b.params.cs, (c) => ({ data: raw.data, c }));
      const best = b.step(pick, { scores: models.accuracy });
      b.step(label, { text: 'done' }, { after: [best], when: when({ rows: raw.rows }, ({ rows }) => rows > 0) });
    });
    expect(p.nodes.map((n) => n.id)).toEqual(['ingest', 'train', 'pick', 'label']);
    expect(p.nodes[1]!.over).toEqual({ kind: 'ref', node: '$params', output: 'cs' });
    expect(p.nodes[1]!.inputs.c).toEqual({ kind: 'item' });
    expect(p.nodes[3]!.after).toEqual(['pick']);
    expect(p.definitionHash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('hashes the definition: the same wiring hashes alike, a new code version differently', () => {
    const build = (version: string) =>
      pipeline({ name: 'demo', params: { source: z.string() } }, (b) => {
        b.step({ ...ingest, version }, { source: b.params.source });
      });
    expect(build('1').definitionHash).toBe(build('1').definitionHash);
    expect(build('2').definitionHash).not.toBe(build('1').definitionHash);
  });

  it('refuses a cycle, naming the steps on it', () => {
    const err = validationError(() =>
      pipeline({ name: 'cyclic' }, (b) => {
        b.step(label, { text: 'a' }, { name: 'a', after: ['c'] });
        b.step(label, { text: 'b' }, { name: 'b', after: ['a'] });
        b.step(label, { text: 'c' }, { name: 'c', after: ['b'] });
      }),
    );
    expect(err.field).toBe('steps.a.after');
    expect(err.message).toContain('a -> c -> b -> a');
  });

  it('refuses a step that waits for itself', () => {
    const err = validationError(() =>
      pipeline({ name: 'selfish' }, (b) => {
        b.step(label, { text: 'a' }, { name: 'a', after: ['a'] });
      }),
    );
    expect(err.field).toBe('steps.a.after');
    expect(err.message).toContain('a -> a');
  });

  it('refuses inputs from an unknown step or an unknown output', () => {
    const unknownStep = validationError(() =>
      pipeline({ name: 'broken' }, (b) => {
        b.step(train, { data: b.ref('features', 'train'), c: 1 });
      }),
    );
    expect(unknownStep.field).toBe('steps.train.inputs.data');
    expect(unknownStep.message).toContain("unknown step 'features'");

    const unknownOutput = validationError(() =>
      pipeline({ name: 'broken' }, (b) => {
        b.step(ingest, { source: 'x' });
        b.step(train, { data: b.ref('ingest', 'dataset'), c: 1 });
      }),
    );
    expect(unknownOutput.field).toBe('steps.train.inputs.data');
    expect(unknownOutput.message).toContain("step 'ingest' has no output 'dataset'");

    const unknownAfter = validationError(() =>
      pipeline({ name: 'broken' }, (b) => {
        b.step(label, { text: 'x' }, { after: ['nowhere'] });
      }),
    );
    expect(unknownAfter.field).toBe('steps.label.after');
  });

  it('refuses wiring an output of the wrong type, at compile time and at run time', () => {
    const err = validationError(() =>
      pipeline({ name: 'mistyped' }, (b) => {
        const raw = b.step(ingest, { source: 'x' });
        // @ts-expect-error rows is a number, text takes a string
        b.step(label, { text: raw.rows });
      }),
    );
    expect(err.field).toBe('steps.label.inputs.text');
    expect(err.message).toContain('ingest.rows is number');

    const artifactForNumber = validationError(() =>
      pipeline({ name: 'mistyped' }, (b) => {
        const raw = b.step(ingest, { source: 'x' });
        // @ts-expect-error data is an artifact, c takes a number
        b.step(train, { data: raw.data, c: raw.data });
      }),
    );
    expect(artifactForNumber.field).toBe('steps.train.inputs.c');
    expect(artifactForNumber.message).toContain('is artifact');

    // An untyped reference compiles; the definition check still catches it.
    const untyped = validationError(() =>
      pipeline({ name: 'mistyped' }, (b) => {
        b.step(ingest, { source: 'x' });
        b.step(pick, { scores: b.ref<number[]>('ingest', 'rows') });
      }),
    );
    expect(untyped.field).toBe('steps.pick.inputs.scores');
    expect(untyped.message).toContain('takes number[]');
  });

  it('checks the types of a fan-in: a fan-out output is a list', () => {
    const ok = pipeline({ name: 'fanin' }, (b) => {
      const raw = b.step(ingest, { source: 'x' });
      const models = b.map(train, [0.1, 1], (c) => ({ data: raw.data, c }));
      const scores: Ref<number[]> = models.accuracy;
      b.step(pick, { scores });
    });
    expect(ok.nodes).toHaveLength(3);
    const err = validationError(() =>
      pipeline({ name: 'fanin' }, (b) => {
        const raw = b.step(ingest, { source: 'x' });
        const models = b.map(train, [0.1, 1], (c) => ({ data: raw.data, c }));
        // @ts-expect-error a list of numbers is not a number
        b.step(train, { data: raw.data, c: models.accuracy }, { name: 'again' });
      }),
    );
    expect(err.field).toBe('steps.again.inputs.c');
  });

  it('refuses constants that fail their schema, missing and unknown inputs', () => {
    const constant = validationError(() =>
      pipeline({ name: 'consts' }, (b) => {
        const raw = b.step(ingest, { source: 'x' });
        // @ts-expect-error c takes a number
        b.step(train, { data: raw.data, c: 'high' });
      }),
    );
    expect(constant.field).toBe('steps.train.inputs.c');

    const missing = validationError(() =>
      pipeline({ name: 'consts' }, (b) => {
        // @ts-expect-error source is missing
        b.step(ingest, {});
      }),
    );
    expect(missing.field).toBe('steps.ingest.inputs.source');

    const extra = validationError(() =>
      pipeline({ name: 'consts' }, (b) => {
        // @ts-expect-error ingest has no input 'extra'
        b.step(ingest, { source: 'x', extra: 1 });
      }),
    );
    expect(extra.field).toBe('steps.ingest.inputs.extra');
  });

  it('refuses two steps with one id, bad names and a fan-out over a non-list', () => {
    const twice = validationError(() =>
      pipeline({ name: 'dupes' }, (b) => {
        b.step(label, { text: 'a' });
        b.step(label, { text: 'b' });
      }),
    );
    expect(twice.field).toBe('steps.label');
    expect(validationError(() => pipeline({ name: 'Bad Name' }, () => {})).field).toBe('name');
    expect(validationError(() => step({ name: 'x_y', version: '1', job: { command: ['true'] } })).field).toBe('name');
    const notList = validationError(() =>
      pipeline({ name: 'fan' }, (b) => {
        const raw = b.step(ingest, { source: 'x' });
        // @ts-expect-error rows is not a list
        b.map(label, raw.rows, () => ({ text: 'x' }));
      }),
    );
    expect(notList.field).toBe('steps.label.over');
  });

  it('refuses an unknown parameter', () => {
    const err = validationError(() =>
      pipeline({ name: 'params', params: { source: z.string() } }, (b) => {
        b.step(label, { text: b.ref<string>('$params', 'missing') });
      }),
    );
    expect(err.field).toBe('steps.label.inputs.text');
    expect(err.message).toContain("unknown parameter 'missing'");
  });
});
