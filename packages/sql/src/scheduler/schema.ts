import type { Migration } from '@mlplane/core';
import type { Generated } from 'kysely';
import * as createScheduler from './migrations/20261202T090000_create_scheduler.js';

/** Owner of the scheduler tables' migrations. */
export const SCHEDULER_OWNER = 'scheduler';

export const SCHEDULER_MIGRATIONS: Readonly<Record<string, Migration>> = Object.freeze({
  '20261202T090000_create_scheduler': createScheduler,
});

/** The scheduler's phases: a subset of JobPhase (a job enters as Queued; Pending is the backend's own). */
export type StoredPhase = 'Queued' | 'Admitted' | 'Running' | 'Succeeded' | 'Failed' | 'Cancelled';

export interface SchedulerJobTable {
  seq: Generated<number>;
  id: string;
  name: string;
  project: string;
  queue: string;
  priority_class: string;
  priority: number;
  run_id: string | null;
  idempotency_key: string | null;
  /** The spec as submitted, canonical JSON. */
  spec: string;
  labels: string;
  cpu_milli: number;
  memory_bytes: number;
  gpus: number;
  gpu_type: string | null;
  phase: StoredPhase;
  owner_token: number | null;
  backend_id: string | null;
  retries_used: Generated<number>;
  /** The backend's latest replica statuses, JSON; null until dispatched. */
  replicas: string | null;
  reason: string | null;
  message: string | null;
  submitted_at: number;
  admitted_at: number | null;
  started_at: number | null;
  finished_at: number | null;
  version: Generated<number>;
}

export interface SchedulerReplicaTable {
  fencing_token: Generated<number>;
  replica: string;
  expires_at: number;
}

export interface SchedulerScheduleTable {
  name: string;
  cron: string;
  timezone: string | null;
  spec: string;
  next_fire_at: number;
  last_fired_at: number | null;
  last_job_id: string | null;
  created_at: number;
}

export interface SchedulerDatabase {
  scheduler_jobs: SchedulerJobTable;
  scheduler_replicas: SchedulerReplicaTable;
  scheduler_locks: { name: string };
  scheduler_schedules: SchedulerScheduleTable;
}
