import { describe, expect, it } from 'vitest';
import { Redactor } from '../../src/kernel/redactor.js';
import { SECRET_VALUE_MIN_LENGTH } from '../../src/ports/secret-store.js';

// Quotes, a backslash, a slash, '+', '&', '@' and a space: every encoding below changes it.
const SECRET = 'p@ss "w/rd"+&\\ 7Zq';

function redactorOf(...values: string[]): Redactor {
  const redactor = new Redactor();
  for (const v of values) redactor.add(v);
  return redactor;
}

describe('Redactor text', () => {
  const redactor = redactorOf(SECRET);

  it('masks the value as it is and JSON-escaped once and twice', () => {
    const once = JSON.stringify({ password: SECRET });
    const twice = JSON.stringify({ body: once });
    expect(once).not.toContain(SECRET);
    expect(redactor.text(`plain ${SECRET} end`)).toBe('plain *** end');
    expect(redactor.text(once)).toBe('{"password":"***"}');
    expect(redactor.text(twice)).toBe('{"body":"{\\"password\\":\\"***\\"}"}');
  });

  it('masks the URL-encoded forms: component, form and URL userinfo', () => {
    const url = new URL('postgres://app@db.example:5432/ml');
    url.password = SECRET;
    const form = new URLSearchParams({ token: SECRET }).toString();
    for (const text of [url.href, `?token=${encodeURIComponent(SECRET)}`, form, encodeURI(SECRET)]) {
      const out = redactor.text(text);
      expect(out, text).toContain('***');
      expect(out).not.toContain(encodeURIComponent(SECRET));
      expect(out).not.toContain(url.password);
    }
    expect(redactor.text(url.href)).toBe('postgres://app:***@db.example:5432/ml');
  });

  it('masks base64 at every byte alignment, as in a Basic authorization header', () => {
    for (const user of ['a', 'ab', 'abc']) {
      const header = `Authorization: Basic ${Buffer.from(`${user}:${SECRET}`).toString('base64')}`;
      const out = redactor.text(header);
      expect(out, user).toContain('***');
      // What is left of the encoded text decodes to at most the user name and a couple of mixed bytes.
      const left = out.replace('Authorization: Basic ', '').replace('***', '');
      expect(left.length, out).toBeLessThanOrEqual(Math.ceil(((user.length + 1) * 8) / 6) + 3);
    }
    const urlSafe = Buffer.from(`x${SECRET}`).toString('base64url');
    expect(redactor.text(urlSafe)).toContain('***');
  });

  it('masks the longer of two overlapping secrets whole', () => {
    const both = redactorOf('abcdefgh', 'abcdefgh-and-more');
    expect(both.text('token abcdefgh-and-more, short abcdefgh')).toBe('token ***, short ***');
  });

  it('ignores values shorter than the minimum, which stores refuse', () => {
    const short = 'x'.repeat(SECRET_VALUE_MIN_LENGTH - 1);
    const r = redactorOf(short);
    expect(r.size).toBe(0);
    expect(r.text(`say ${short}`)).toBe(`say ${short}`);
  });
});

describe('Redactor value', () => {
  const redactor = redactorOf(SECRET);

  it('copies an error of the same class with message, stack, causes, aggregate members and properties scrubbed', () => {
    class ClientError extends Error {
      readonly options = { url: `https://u:${SECRET}@h/`, retries: 3 };
    }
    const inner = new ClientError(`connect with ${SECRET} refused`);
    const aggregate = new AggregateError([inner, `plain ${SECRET}`], 'every address failed');
    const outer = new Error('start failed', { cause: aggregate });
    const copy = redactor.value({ err: outer }).err;

    expect(copy).toBeInstanceOf(Error);
    expect(copy).not.toBe(outer);
    const copiedAggregate = copy.cause as AggregateError;
    expect(copiedAggregate).toBeInstanceOf(AggregateError);
    const [first, second] = copiedAggregate.errors as [ClientError, string];
    expect(first).toBeInstanceOf(ClientError);
    expect(first.message).toBe('connect with *** refused');
    expect(first.stack).not.toContain(SECRET);
    expect(first.stack).toContain('connect with *** refused');
    expect(first.options).toEqual({ url: 'https://u:***@h/', retries: 3 });
    expect(second).toBe('plain ***');
    // The caller's error is untouched.
    expect(inner.message).toContain(SECRET);
  });

  it('serializes an error copy through the original toJSON, scrubbed, even when it reads private fields', () => {
    class DetailedError extends Error {
      readonly #detail = `detail ${SECRET}`;
      toJSON() {
        return { message: this.message, detail: this.#detail };
      }
    }
    const copy = redactor.value({ err: new DetailedError(`failed with ${SECRET}`) }).err;
    expect(copy).toBeInstanceOf(DetailedError);
    expect(JSON.parse(JSON.stringify(copy))).toEqual({ message: 'failed with ***', detail: 'detail ***' });
  });

  it('copies cyclic structures without overflowing the stack', () => {
    const node: Record<string, unknown> = { secret: SECRET };
    node.self = node;
    const err = new Error(`with ${SECRET}`);
    (err as { cause?: unknown }).cause = err;
    const copy = redactor.value({ node, err });
    expect(copy.node.secret).toBe('***');
    expect(copy.node.self).toBe(copy.node);
    expect(copy.err.message).toBe('with ***');
    expect(copy.err.cause).toBe(copy.err);
  });
});

describe('Redactor error', () => {
  const redactor = redactorOf(SECRET);

  it('scrubs an error in place through causes, aggregate members and attached objects', () => {
    const member = new Error(`member saw ${SECRET}`);
    const aggregate = new AggregateError([member], `all failed for ${SECRET}`);
    const err = new Error('outer', { cause: aggregate }) as Error & { request?: unknown };
    err.request = { headers: { authorization: `Bearer ${SECRET}` } };
    const stringCause = new Error('wrapped', { cause: `raw ${SECRET}` });

    expect(redactor.error(err)).toBe(err);
    redactor.error(stringCause);
    expect(aggregate.message).toBe('all failed for ***');
    expect(aggregate.stack).not.toContain(SECRET);
    expect(member.message).toBe('member saw ***');
    expect(member.stack).not.toContain(SECRET);
    expect(err.request).toEqual({ headers: { authorization: 'Bearer ***' } });
    expect(stringCause.cause).toBe('raw ***');
  });

  it('stops at a cause cycle', () => {
    const a = new Error(`a ${SECRET}`);
    const b = new Error(`b ${SECRET}`, { cause: a });
    (a as { cause?: unknown }).cause = b;
    redactor.error(a);
    expect([a.message, b.message]).toEqual(['a ***', 'b ***']);
  });
});
