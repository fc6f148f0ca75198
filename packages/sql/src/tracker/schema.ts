import type { Migration } from '@mlplane/core';
import type { Generated, Insertable, Selectable } from 'kysely';
import * as createTracker from './migrations/20261126T160000_create_tracker.js';
import * as searchStatistics from './migrations/20261126T190000_search_statistics.js';

/** Owner of the tracker's tables and migrations. */
export const TRACKER_OWNER = 'tracker';

export const TRACKER_MIGRATIONS: Readonly<Record<string, Migration>> = Object.freeze({
  '20261126T160000_create_tracker': createTracker,
  '20261126T190000_search_statistics': searchStatistics,
});

/** Times are epoch milliseconds; booleans are 0/1 smallints so that both dialects bind them the same way. */
export interface ExperimentTable {
  experiment_id: Generated<number>;
  name: string;
  artifact_location: string;
  lifecycle_stage: 'active' | 'deleted';
  creation_time: number;
  last_update_time: number;
}

export interface KeyValueTable {
  key: string;
  value: string;
}

export interface ExperimentTagTable extends KeyValueTable {
  experiment_id: number;
}

export interface RunTable {
  run_id: string;
  experiment_id: number;
  name: string;
  status: string;
  start_time: number;
  end_time: number | null;
  artifact_uri: string;
  lifecycle_stage: 'active' | 'deleted';
  parent_run_id: string | null;
  user_id: string | null;
  deleted_time: number | null;
  deleted_with_experiment: Generated<number>;
}

export interface RunKeyValueTable extends KeyValueTable {
  run_id: string;
}

export interface MetricTable {
  id: Generated<number>;
  run_id: string;
  key: string;
  value: number;
  is_nan: number;
  step: number;
  timestamp: number;
}

export interface LatestMetricTable {
  run_id: string;
  experiment_id: number;
  key: string;
  value: number;
  is_nan: number;
  step: number;
  timestamp: number;
}

export interface DatasetTable {
  dataset_id: Generated<number>;
  experiment_id: number;
  name: string;
  digest: string;
  source_type: string;
  source: string;
  schema: string | null;
  profile: string | null;
}

export interface RunInputTable {
  input_id: Generated<number>;
  run_id: string;
  dataset_id: number;
  context: string | null;
  /** JSON array of `{key, value}`. */
  tags: string;
}

export interface TrackerDatabase {
  experiments: ExperimentTable;
  experiment_tags: ExperimentTagTable;
  runs: RunTable;
  run_tags: RunKeyValueTable;
  params: RunKeyValueTable;
  metrics: MetricTable;
  latest_metrics: LatestMetricTable;
  datasets: DatasetTable;
  run_inputs: RunInputTable;
}

export type ExperimentRow = Selectable<ExperimentTable>;
export type RunRow = Selectable<RunTable>;
export type NewRun = Insertable<RunTable>;
export type MetricRow = Selectable<MetricTable>;
export type NewMetric = Insertable<MetricTable>;
export type LatestMetricRow = Selectable<LatestMetricTable>;
