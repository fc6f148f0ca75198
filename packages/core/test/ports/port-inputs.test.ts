import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ValidationError } from '../../src/ports/errors.js';
import {
  experimentTrackerInputs,
  type LogBatchInput,
  TRACKER_LIMITS,
  validateLogBatch,
} from '../../src/ports/experiment-tracker.js';
import { modelRegistryInputs, REGISTRY_LIMITS } from '../../src/ports/model-registry.js';
import {
  argumentsError,
  type PortInputs,
  portArg,
  portInput,
  synchronous,
  validatePortInputs,
} from '../../src/ports/port-inputs.js';

/** A small port, to watch what the wrapper passes on and what it keeps from the implementation. */
interface Mailer {
  readonly capabilities: { readonly attachments: boolean };
  send(
    to: { readonly address: string },
    body: Readable | string,
    options?: { readonly urgent?: boolean },
  ): Promise<string>;
  stamp(at: Date): Promise<Date>;
  outbox(): Promise<readonly string[]>;
  cancel?(id: string): Promise<void>;
}

class PrivateMailer implements Mailer {
  readonly capabilities = { attachments: false };
  readonly #sent: string[] = [];
  readonly received: unknown[][] = [];

  async send(to: { readonly address: string }, body: Readable | string, options?: { readonly urgent?: boolean }) {
    this.received.push([to, body, options]);
    this.#sent.push(to.address);
    return `sent to ${to.address}`;
  }

  async stamp(at: Date) {
    this.received.push([at]);
    return at;
  }

  async outbox() {
    return [...this.#sent];
  }
}

const mailerInputs = {
  send: z.tuple([
    portArg('to', z.object({ address: z.string().max(20) })),
    portArg(
      'body',
      z.custom<Readable | string>((b) => typeof b === 'string' || b instanceof Readable),
    ),
    portInput('options', z.object({ urgent: z.boolean().optional() })).optional(),
  ]),
  stamp: z.tuple([portArg('at', z.date())]),
} satisfies PortInputs<Mailer>;

async function rejection(promise: Promise<unknown>): Promise<ValidationError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ValidationError);
  return err as ValidationError;
}

describe('validatePortInputs', () => {
  it('passes a valid call on with the caller’s own arguments, `this` and result', async () => {
    const impl = new PrivateMailer();
    const mailer = validatePortInputs(impl, mailerInputs);
    const to = { address: 'a@example.com', extra: 'kept' };
    const body = Readable.from(['never read by the check']);
    expect(await mailer.send(to, body, { urgent: true })).toBe('sent to a@example.com');
    const at = new Date(0);
    expect(await mailer.stamp(at)).toBe(at);
    // Same objects, not parsed copies: the stream is unread, unknown fields survive, the Date is the caller's.
    expect(impl.received[0]![0]).toBe(to);
    expect(impl.received[0]![1]).toBe(body);
    expect(body.readableDidRead).toBe(false);
    expect(impl.received[1]![0]).toBe(at);
    // Private fields work: methods run on the implementation, not on the wrapper.
    expect(await mailer.outbox()).toEqual(['a@example.com']);
  });

  it('refuses a bad call with a rejected promise and never reaches the implementation', async () => {
    const impl = new PrivateMailer();
    const mailer = validatePortInputs(impl, mailerInputs);
    const call = mailer.send({ address: 42 as never }, 'hi');
    expect(call).toBeInstanceOf(Promise);
    const err = await rejection(call);
    expect(err.field).toBe('to.address');
    expect(err.message).toBe('to.address must be a string, got the number 42');
    expect(impl.received).toEqual([]);
  });

  it('names fields by argument: prefixed for named arguments, as they are for input objects', async () => {
    const mailer = validatePortInputs(new PrivateMailer(), mailerInputs);
    const body = await rejection(mailer.send({ address: 'a' }, 42 as never));
    expect(body.field).toBe('body');
    const option = await rejection(mailer.send({ address: 'a' }, 'x', { urgent: 'yes' as never }));
    expect(option.field).toBe('urgent');
    expect(option.message).toBe('urgent must be a boolean, got a string of 3 chars');
    const options = await rejection(mailer.send({ address: 'a' }, 'x', null as never));
    expect(options.field).toBe('options');
    const date = await rejection(mailer.stamp(new Date('not a date')));
    expect(date.message).toBe('at must be a valid Date, got an invalid Date');
  });

  it('counts arguments: a missing required one is named, extra ones are refused', async () => {
    const mailer = validatePortInputs(new PrivateMailer(), mailerInputs);
    const missing = await rejection((mailer.send as (...args: unknown[]) => Promise<string>)({ address: 'a' }));
    expect(missing.field).toBe('body');
    expect(missing.message).toBe('body is missing: send takes at least 2 arguments, got 1');
    const extra = await rejection((mailer.stamp as (...args: unknown[]) => Promise<Date>)(new Date(), 'more'));
    expect(extra.field).toBeUndefined();
    expect(extra.message).toBe('stamp takes at most 1 arguments, got 2');
  });

  it('throws at once for an operation marked synchronous (it returns its result, not a promise)', () => {
    const store = { uri: (key: string) => `file:///${key}` };
    const checked = validatePortInputs(store, { uri: synchronous(z.tuple([portArg('key', z.string().min(1))])) });
    expect(checked.uri('a')).toBe('file:///a');
    expect(() => checked.uri('')).toThrow(ValidationError);
  });

  it('lets members without a schema through: other methods, properties, absent optional methods', async () => {
    const impl = new PrivateMailer();
    const mailer = validatePortInputs<Mailer>(impl, mailerInputs);
    expect(mailer.capabilities).toBe(impl.capabilities);
    expect(mailer.cancel).toBeUndefined();
    expect(await mailer.outbox()).toEqual([]);
    // The same function each time, so callers may keep a reference.
    expect(mailer.send).toBe(mailer.send);
  });

  it('can wrap a wrapped implementation again (the kernel and a conformance suite both wrap)', async () => {
    const impl = new PrivateMailer();
    const twice = validatePortInputs(validatePortInputs(impl, mailerInputs), mailerInputs);
    expect(await twice.send({ address: 'b' }, 'x')).toBe('sent to b');
    expect((await rejection(twice.send({ address: 'c'.repeat(21) }, 'x'))).field).toBe('to.address');
    expect(await twice.outbox()).toEqual(['b']);
  });

  it('never echoes a huge input and counts the problems it does not show', async () => {
    const mailer = validatePortInputs(new PrivateMailer(), mailerInputs);
    const huge = await rejection(mailer.send({ address: 'x'.repeat(1_000_000) }, 'x'));
    expect(huge.message).toBe('to.address has 1000000 chars; the limit is 20');
    const batch = { metrics: Array.from({ length: 1000 }, () => null) } as unknown as LogBatchInput;
    const err = argumentsError(experimentTrackerInputs.logBatch, ['run1', batch], 'logBatch')!;
    expect(err.field).toBe('metrics[0]');
    expect(err.message).toBe(
      'metrics[0] must be a metric { key, value, step?, timestamp? }, got null (and 999 more problems)',
    );
  });
});

describe('experimentTrackerInputs.logBatch', () => {
  const check = (batch: unknown) =>
    argumentsError(experimentTrackerInputs.logBatch, ['run1', batch], 'logBatch') ?? undefined;
  const cases: [string, unknown, string, RegExp][] = [
    ['a null metric', { metrics: [null] }, 'metrics[0]', /must be a metric .*got null/],
    ['a null key', { metrics: [{ key: null, value: 1 }] }, 'metrics[0].key', /must be a string, got null/],
    ['a null param value', { params: [{ key: 'p', value: null }] }, 'params[0].value', /must be a string, got null/],
    [
      'an object param value',
      { params: [{ key: 'p', value: { lr: 1 } }] },
      'params[0].value',
      /must be a string, got an object/,
    ],
    [
      'a numeric param value',
      { params: [{ key: 'p', value: 0.1 }] },
      'params[0].value',
      /must be a string, got the number 0.1/,
    ],
    ['an undefined tag value', { tags: [{ key: 't', value: undefined }] }, 'tags[0].value', /got nothing/],
    ['a numeric tag value', { tags: [{ key: 't', value: 3 }] }, 'tags[0].value', /must be a string, got the number 3/],
    ['a null batch', null, 'batch', /must be an object, got null/],
    [
      'more entries than any backend takes',
      { metrics: Array.from({ length: TRACKER_LIMITS.entitiesPerSplitBatch + 1 }, (_, i) => ({ key: 'm', value: i })) },
      'metrics',
      /holds 100001 items; the entitiesPerSplitBatch limit is 100000/,
    ],
    [
      'a long key',
      { metrics: [{ key: 'k'.repeat(TRACKER_LIMITS.keyLength + 1), value: 1 }] },
      'metrics[0].key',
      /exceeds the keyLength limit of 250/,
    ],
  ];
  for (const [label, batch, field, message] of cases) {
    it(`refuses ${label}, naming ${field}`, () => {
      const err = check(batch);
      expect(err).toBeInstanceOf(ValidationError);
      expect(err!.field).toBe(field);
      expect(err!.message).toMatch(message);
      expect(err!.message.startsWith(`${field} `)).toBe(true);
    });
  }

  it('leaves the per-call counts to the backend, which may split batches (capabilities.unboundedBatches)', () => {
    const batch = { metrics: Array.from({ length: 1001 }, (_, i) => ({ key: `m${i}`, value: i })) };
    expect(check(batch)).toBeUndefined();
    const counted = (() => {
      try {
        validateLogBatch(batch);
      } catch (err) {
        return err as ValidationError;
      }
    })();
    expect(counted?.field).toBe('metrics');
    expect(counted?.message).toContain('holds 1001 items; the metricsPerBatch limit is 1000');
    expect(() => validateLogBatch(batch, { counts: false })).not.toThrow();
  });

  it('accepts NaN and ±Infinity metric values, as the tracker stores them', () => {
    expect(
      check({
        metrics: [
          { key: 'a', value: Number.NaN },
          { key: 'b', value: Number.POSITIVE_INFINITY },
          { key: 'c', value: Number.NEGATIVE_INFINITY, step: -3, timestamp: 0 },
        ],
      }),
    ).toBeUndefined();
  });
});

describe('modelRegistryInputs', () => {
  it('names record keys in fields, cutting only keys longer than any limit', () => {
    const longKey = 'k'.repeat(REGISTRY_LIMITS.tagKeyLength + 1);
    const err = argumentsError(modelRegistryInputs.createModel, [{ name: 'm', tags: { [longKey]: 'v' } }], 'c')!;
    expect(err.field).toBe(`tags.${longKey}`);
    expect(err.message).toContain('exceeds the tagKeyLength limit of 250');
    const huge = argumentsError(
      modelRegistryInputs.createModel,
      [{ name: 'm', tags: { ['x'.repeat(5000)]: 'v' } }],
      'c',
    )!;
    expect(huge.field).toBe(`tags.${'x'.repeat(100)}...`);
    expect(huge.message.length).toBeLessThan(300);
  });

  it('checks descriptions and sources against their limits', () => {
    const description = argumentsError(
      modelRegistryInputs.updateModel,
      ['m', { description: 'd'.repeat(REGISTRY_LIMITS.descriptionLength + 1) }],
      'updateModel',
    )!;
    expect(description.field).toBe('description');
    expect(description.message).toBe('description has 5001 chars; the descriptionLength limit is 5000');
    const source = argumentsError(
      modelRegistryInputs.createVersion,
      [{ name: 'm', source: `s3://${'x'.repeat(REGISTRY_LIMITS.sourceLength)}` }],
      'createVersion',
    )!;
    expect(source.message).toContain('the sourceLength limit is 500');
  });
});
