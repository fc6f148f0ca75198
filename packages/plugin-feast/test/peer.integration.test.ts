// Checks the Feast peer (`scripts/peers up feast`): the HTTP feature server reads the materialized values of the
// peer's feature repo from the Redis online store; the expected values come from MLPLANE_FEAST_EXPECTED.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run scripts/peers up feast, then eval "$(scripts/peers env)"`);
  return value;
}

interface Expected {
  project: string;
  entities: { driver_id: number[] };
  missing_driver_id: number;
  features: Record<string, (number | string)[]>;
  event_timestamp: string;
}

interface OnlineFeatures {
  metadata: { feature_names: string[] };
  results: { values: unknown[]; statuses: string[]; event_timestamps: string[] }[];
}

async function getOnlineFeatures(body: Record<string, unknown>): Promise<{ status: number; json: unknown }> {
  const res = await fetch(new URL('/get-online-features', requireEnv('MLPLANE_FEAST_URL')), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

/** One column per feature name: values, statuses and timestamps by entity row. */
function columns(response: OnlineFeatures): Map<string, OnlineFeatures['results'][number]> {
  const { feature_names } = response.metadata;
  expect(response.results).toHaveLength(feature_names.length);
  return new Map(feature_names.map((name, i) => [name, response.results[i]!]));
}

describe('feast peer', () => {
  let expected: Expected;

  beforeAll(() => {
    expected = JSON.parse(readFileSync(requireEnv('MLPLANE_FEAST_EXPECTED'), 'utf8')) as Expected;
  });

  it('answers /health', async () => {
    const res = await fetch(new URL('/health', requireEnv('MLPLANE_FEAST_URL')));
    expect(res.status).toBe(200);
  });

  it('serves the materialized values of both feature views', async () => {
    const ids = expected.entities.driver_id;
    const { status, json } = await getOnlineFeatures({
      entities: { driver_id: ids },
      features: Object.keys(expected.features),
      full_feature_names: true,
    });
    expect(status).toBe(200);
    const cols = columns(json as OnlineFeatures);
    expect(cols.get('driver_id')?.values).toEqual(ids);
    for (const [ref, values] of Object.entries(expected.features)) {
      const col = cols.get(ref.replace(':', '__'));
      expect(col, `column for ${ref}`).toBeDefined();
      expect(col?.values, ref).toEqual(values);
      expect(col?.statuses, ref).toEqual(ids.map(() => 'PRESENT'));
      expect(
        col?.event_timestamps.map((t) => Date.parse(t)),
        ref,
      ).toEqual(ids.map(() => Date.parse(expected.event_timestamp)));
    }
  });

  it('answers an unknown entity with null values', async () => {
    const { status, json } = await getOnlineFeatures({
      entities: { driver_id: [expected.missing_driver_id, expected.entities.driver_id[0]] },
      features: ['driver_profile:city', 'driver_hourly_stats:avg_daily_trips'],
    });
    expect(status).toBe(200);
    const cols = columns(json as OnlineFeatures);
    expect(cols.get('city')?.values).toEqual([null, expected.features['driver_profile:city']?.[0]]);
    expect(cols.get('avg_daily_trips')?.values).toEqual([
      null,
      expected.features['driver_hourly_stats:avg_daily_trips']?.[0],
    ]);
    // Feast 0.67's HTTP server marks the missing row PRESENT (not NOT_FOUND) with a null value and a
    // 1970-01-01 timestamp; a client has to recognise a missing entity by the null value and epoch time.
    expect(cols.get('city')?.statuses).toEqual(['PRESENT', 'PRESENT']);
    expect(cols.get('city')?.event_timestamps.map((t) => Date.parse(t))).toEqual([
      0,
      Date.parse(expected.event_timestamp),
    ]);
  });

  it('rejects an unknown feature view', async () => {
    const { status, json } = await getOnlineFeatures({
      entities: { driver_id: [1001] },
      features: ['no_such_view:x'],
    });
    expect(status).toBeGreaterThanOrEqual(400);
    // The error body is a JSON string that holds a JSON object.
    expect(typeof json).toBe('string');
    expect(JSON.parse(json as string)).toMatchObject({
      module: 'feast.errors',
      class: 'FeatureViewNotFoundException',
    });
  });
});
