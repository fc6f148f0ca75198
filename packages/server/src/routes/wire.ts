import {
  type Experiment,
  type Metric,
  type Page,
  PROJECT_PATTERN,
  type Run,
  type RunInfo,
  ValidationError,
} from '@mlplane/core';
import { z } from 'zod';
import { RESERVED_TAG_PREFIX } from '../http/projects.js';

/**
 * The wire forms of the ports' values: JSON has no Date, so instants travel as ISO 8601 strings; metric values
 * that JSON cannot hold (NaN, ±Infinity) travel as the strings 'NaN', 'Infinity', '-Infinity', as in MLflow.
 */

/** The schema of argument `index` of a port operation's argument tuple (`experimentTrackerInputs.createRun`). */
export function argumentSchema(tuple: z.ZodType, index: number): z.ZodType {
  const def = (tuple as unknown as { def: { type: string; items?: z.ZodType[]; in?: z.ZodType } }).def;
  // `.check(...)` on a tuple keeps it a tuple; a pipe would hold it in `in`.
  const items = def.items ?? (def.in as unknown as { def: { items?: z.ZodType[] } } | undefined)?.def.items;
  const item = items?.[index];
  if (!item) throw new Error(`the tuple has no argument ${index}`);
  let inner: z.ZodType = item;
  while ((inner as unknown as { def: { type: string } }).def.type === 'optional') {
    inner = (inner as unknown as { def: { innerType: z.ZodType } }).def.innerType;
  }
  return inner;
}

export const projectParams = z.object({
  project: z.string().regex(PROJECT_PATTERN, { error: 'must be a project name: letters, digits, . _ - (up to 128)' }),
});

/** An integer query parameter: digits only (an empty `index=` is refused, not read as 0), within [min, max]. */
export const queryInteger = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d{1,15}$/, { error: 'must be a non-negative integer' })
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

export const pageQuery = z.object({
  maxResults: z.coerce.number().int().min(1).max(50_000).optional(),
  pageToken: z.string().max(1_048_576).optional(),
});

export const isoDate = z.iso.datetime({ offset: true });
export const iso = (date: Date) => date.toISOString();

export const metricValue = z.union([z.number(), z.enum(['NaN', 'Infinity', '-Infinity'])]);
export const toMetricValue = (value: z.infer<typeof metricValue>): number =>
  typeof value === 'number' ? value : Number(value);
export const fromMetricValue = (value: number): number | 'NaN' | 'Infinity' | '-Infinity' =>
  Number.isFinite(value) ? value : Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity';

export const stringRecord = z.record(z.string(), z.string());

/** ValidationError for a tag key the platform reserves (`mlplane.project` decides who may see a resource). */
export function refuseReservedTags(tags: Readonly<Record<string, string>> | undefined, field = 'tags'): void {
  for (const key of Object.keys(tags ?? {})) assertWritableTag(key, `${field}.${key}`);
}

export function assertWritableTag(key: string, field = 'key'): void {
  if (key.startsWith(RESERVED_TAG_PREFIX)) {
    throw new ValidationError(
      `tag '${key.slice(0, 64)}' is reserved: keys starting with '${RESERVED_TAG_PREFIX}' are the platform's`,
      {
        field,
      },
    );
  }
}

export const experimentSchema = z.object({
  id: z.string(),
  name: z.string(),
  artifactLocation: z.string(),
  lifecycleStage: z.enum(['active', 'deleted']),
  tags: stringRecord,
  createdAt: isoDate,
  updatedAt: isoDate,
});
export const experimentWire = (e: Experiment): z.infer<typeof experimentSchema> => ({
  id: e.id,
  name: e.name,
  artifactLocation: e.artifactLocation,
  lifecycleStage: e.lifecycleStage,
  tags: { ...e.tags },
  createdAt: iso(e.createdAt),
  updatedAt: iso(e.updatedAt),
});

export const metricSchema = z.object({ key: z.string(), value: metricValue, step: z.number(), timestamp: z.number() });
export const metricWire = (m: Metric) => ({
  key: m.key,
  value: fromMetricValue(m.value),
  step: m.step,
  timestamp: m.timestamp,
});

export const runInfoSchema = z.object({
  id: z.string(),
  experimentId: z.string(),
  name: z.string(),
  status: z.enum(['RUNNING', 'SCHEDULED', 'FINISHED', 'FAILED', 'KILLED']),
  startTime: isoDate,
  endTime: isoDate.optional(),
  artifactUri: z.string(),
  lifecycleStage: z.enum(['active', 'deleted']),
  parentRunId: z.string().optional(),
  userId: z.string().optional(),
});
export const runInfoWire = (info: RunInfo): z.infer<typeof runInfoSchema> => ({
  id: info.id,
  experimentId: info.experimentId,
  name: info.name,
  status: info.status,
  startTime: iso(info.startTime),
  ...(info.endTime ? { endTime: iso(info.endTime) } : {}),
  artifactUri: info.artifactUri,
  lifecycleStage: info.lifecycleStage,
  ...(info.parentRunId ? { parentRunId: info.parentRunId } : {}),
  ...(info.userId ? { userId: info.userId } : {}),
});

export const runSchema = z.object({
  info: runInfoSchema,
  data: z.object({ metrics: z.record(z.string(), metricSchema), params: stringRecord, tags: stringRecord }),
  inputs: z.object({ datasetInputs: z.array(z.unknown()) }),
});
export const runWire = (run: Run): z.infer<typeof runSchema> => ({
  info: runInfoWire(run.info),
  data: {
    metrics: Object.fromEntries(Object.entries(run.data.metrics).map(([k, m]) => [k, metricWire(m)])),
    params: { ...run.data.params },
    tags: { ...run.data.tags },
  },
  inputs: { datasetInputs: [...run.inputs.datasetInputs] },
});

/** A page of wire items. */
export const pageSchema = <T extends z.ZodType>(item: T) =>
  z.object({ items: z.array(item), nextPageToken: z.string().optional() });
export const pageWire = <T, W>(page: Page<T>, wire: (item: T) => W) => ({
  items: page.items.map(wire),
  ...(page.nextPageToken ? { nextPageToken: page.nextPageToken } : {}),
});
