import { describe, expect, it } from 'vitest';
import {
  actingAs,
  createKernelPlatform,
  currentLogContext,
  currentTraceContext,
  parseTraceContext,
  ValidationError,
  withLogContext,
  withTraceContext,
} from '../../src/index.js';

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

describe('trace context', () => {
  it('parses a W3C traceparent into trace and span ids, keeping tracestate', () => {
    expect(parseTraceContext({ traceparent: TRACEPARENT, tracestate: 'a=1,b=2' })).toEqual({
      traceparent: TRACEPARENT,
      tracestate: 'a=1,b=2',
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      spanId: '00f067aa0ba902b7',
    });
    // A later version may append fields; a reader of version 00 takes the first four.
    expect(parseTraceContext({ traceparent: `01-${TRACEPARENT.slice(3)}-extra` }).spanId).toBe('00f067aa0ba902b7');
  });

  it.each([
    ['an empty header', ''],
    ['upper-case hex', TRACEPARENT.toUpperCase()],
    ['a short trace id', '00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01'],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`],
    ['an all-zero span id', `00-4bf92f3577b34da6a3ce929d0e0e4736-${'0'.repeat(16)}-01`],
    ['version ff', `ff-${TRACEPARENT.slice(3)}`],
    ['version 00 with extra fields', `${TRACEPARENT}-extra`],
  ])('refuses %s with a ValidationError naming traceparent', (_, traceparent) => {
    const err = (() => {
      try {
        parseTraceContext({ traceparent });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).field).toBe('traceparent');
  });

  it('refuses a tracestate that is not printable ASCII up to 512 chars', () => {
    expect(() => parseTraceContext({ traceparent: TRACEPARENT, tracestate: 'a=\u00e9' })).toThrow(ValidationError);
    expect(() => parseTraceContext({ traceparent: TRACEPARENT, tracestate: `a=${'x'.repeat(511)}` })).toThrow(
      /tracestate/,
    );
  });

  it('is the context of the work inside withTraceContext only; undefined clears it for nested work', async () => {
    expect(currentTraceContext()).toBeUndefined();
    await withTraceContext({ traceparent: TRACEPARENT }, async () => {
      await Promise.resolve();
      expect(currentTraceContext()?.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
      withTraceContext(undefined, () => expect(currentTraceContext()).toBeUndefined());
    });
    expect(currentTraceContext()).toBeUndefined();
  });
});

describe("the platform logger's work context", () => {
  it('adds the log context, the actor and the trace to every line logged inside them, and nothing outside', async () => {
    const lines: Record<string, unknown>[] = [];
    const platform = createKernelPlatform({
      plugins: [],
      config: { platform: { signals: [] } },
      log: { level: 'info', destination: { write: (s: string) => void lines.push(JSON.parse(s)) } },
    });
    const fields = { requestId: 'req-1' } as Record<string, string>;
    await withLogContext(fields, () =>
      withTraceContext({ traceparent: TRACEPARENT }, async () => {
        expect(currentLogContext()).toBe(fields);
        platform.logger.info('before authentication');
        fields.actor = 'alice';
        await actingAs({ actor: 'alice', project: 'vision' }, async () => {
          platform.logger.child({ plugin: 'p' }).info({ requestId: 'explicit' }, 'inside');
        });
      }),
    );
    platform.logger.info('outside');
    const [before, inside, outside] = lines;
    expect(before).toMatchObject({ requestId: 'req-1', trace_id: '4bf92f3577b34da6a3ce929d0e0e4736' });
    expect(before!.actor).toBeUndefined();
    expect(inside).toMatchObject({
      requestId: 'explicit',
      actor: 'alice',
      project: 'vision',
      plugin: 'p',
      trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
      span_id: '00f067aa0ba902b7',
    });
    expect(outside).toEqual(expect.not.objectContaining({ requestId: expect.anything() }));
    expect(outside!.trace_id).toBeUndefined();
  });
});
