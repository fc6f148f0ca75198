import { describe, expect, it } from 'vitest';
import { UnavailableError, ValidationError } from '../../src/ports/errors.js';
import {
  checkHistoricalInlineSize,
  type FeatureJobState,
  HISTORICAL_INLINE_LIMITS,
  materializationProgress,
  validateFeatureProject,
  waitForFeatureJob,
} from '../../src/ports/feature-store.js';

describe('feature store helpers', () => {
  it('accepts Feast project names and refuses the others', () => {
    for (const ok of ['driver_ranking', 'p1', '1234567890123456', 'trailing_']) {
      expect(() => validateFeatureProject(ok)).not.toThrow();
    }
    for (const bad of ['_hidden', 'has-dash', 'has space', '', 'a$b']) {
      expect(() => validateFeatureProject(bad)).toThrow(ValidationError);
    }
  });

  it('measures a materialization by finished views and the progress of the running one', () => {
    expect(materializationProgress([])).toBe(1);
    expect(
      materializationProgress([
        { state: 'Succeeded' },
        { state: 'Running', progress: 0.5 },
        { state: 'Pending' },
        { state: 'Pending' },
      ]),
    ).toBe(0.375);
    expect(materializationProgress([{ state: 'Failed' }, { state: 'Cancelled' }])).toBe(1);
    expect(materializationProgress([{ state: 'Running', progress: 7 }, { state: 'Running' }])).toBe(0.5);
  });

  it('bounds the inline historical answer before any work, pointing to the job', () => {
    const rows = (n: number, columns = 2) =>
      Array.from({ length: n }, (_, i) =>
        Object.fromEntries(Array.from({ length: columns }, (_, c) => [`c${c}`, i] as const)),
      );
    expect(() => checkHistoricalInlineSize({ entityRows: rows(HISTORICAL_INLINE_LIMITS.rows) }, 3)).not.toThrow();
    expect(() => checkHistoricalInlineSize({ entityRows: rows(HISTORICAL_INLINE_LIMITS.rows + 1) }, 1)).toThrow(
      /10001 entity rows exceed the inline limit of 10000: use startHistoricalRetrieval/,
    );
    // 10,000 rows x (2 columns + 99 features) = 1,010,000 cells.
    expect(() => checkHistoricalInlineSize({ entityRows: rows(10_000) }, 99)).toThrow(
      /1010000 cells \(10000 rows x 101 columns\), over the inline limit of 1000000/,
    );
  });

  it('polls a job until it is terminal and reports each state; a Failed job is returned, not thrown', async () => {
    const states: FeatureJobState[] = ['Pending', 'Running', 'Running', 'Succeeded'];
    let reads = 0;
    const seen: FeatureJobState[] = [];
    const job = await waitForFeatureJob(async () => ({ id: 'm1', state: states[reads++]! }), {
      intervalMs: 5,
      maxIntervalMs: 10,
      onPoll: (j) => seen.push(j.state),
    });
    expect(job).toEqual({ id: 'm1', state: 'Succeeded' });
    expect(seen).toEqual(states);
    const failed = await waitForFeatureJob(async () => ({ state: 'Failed' as const, error: 'boom' }));
    expect(failed.error).toBe('boom');
  });

  it('gives up after its timeout with UnavailableError, and stops when aborted', async () => {
    let reads = 0;
    const running = async () => {
      reads++;
      return { state: 'Running' as const };
    };
    await expect(waitForFeatureJob(running, { intervalMs: 5, timeoutMs: 30 })).rejects.toThrow(
      new UnavailableError('the feature job is still Running after 30 ms; it goes on running: poll it again later'),
    );
    expect(reads).toBeGreaterThan(1);
    const controller = new AbortController();
    const waiting = waitForFeatureJob(running, { intervalMs: 1000, signal: controller.signal });
    setTimeout(() => controller.abort(new Error('user left')), 10);
    await expect(waiting).rejects.toThrow();
    const before = reads;
    await new Promise((r) => setTimeout(r, 20));
    expect(reads).toBe(before);
  });
});
