import { createHash } from 'node:crypto';
import {
  decodePageToken,
  encodePageToken,
  type JobSpec,
  type JobStatus,
  LIST_JOBS_PAGE,
  type ListJobsOptions,
  type MetadataStore,
  type Migration,
  malformedPageToken,
  type Page,
  resolveMaxResults,
} from '@mlplane/core';
import { type Kysely, sql } from 'kysely';
import * as createLocalJobs from './migrations/20261202T080000_create_local_jobs.js';
import type { ProcessIdentity } from './processes.js';
import type { ReplicaSlots } from './slots.js';

/** Owner of the `mlplane_local_jobs` table's migrations. */
export const LOCAL_JOBS_OWNER = 'local-compute';
export const LOCAL_JOBS_MIGRATIONS: Readonly<Record<string, Migration>> = Object.freeze({
  '20261202T080000_create_local_jobs': createLocalJobs,
});

/** One replica attempt's process and files, kept so that a restarted platform finds them again. */
export interface ProcessRecord extends ProcessIdentity {
  readonly replica: number;
  readonly attempt: number;
}

/** What the backend keeps beside the status; never a secret value. */
export interface JobState {
  /** Slots held while Admitted or Running, one per replica in status order. */
  readonly slots?: readonly ReplicaSlots[];
  /** The live attempt of each replica that has a process. */
  readonly processes: readonly ProcessRecord[];
  /** Replicas (status indexes) waiting for their next attempt after a failure. */
  readonly restart?: readonly number[];
  /** How the job is ending while its replicas are being stopped. */
  readonly ending?: {
    readonly phase: 'Succeeded' | 'Failed' | 'Cancelled';
    readonly reason: string;
    readonly message: string;
    readonly replicaReason: string;
  };
  /** Whether the backend created `status.runId` in the tracker (and so finishes it). */
  readonly createdRun?: boolean;
  /** Epoch ms after which logs are deleted (ttlSecondsAfterFinished); set when the job ends. */
  readonly logsExpireAt?: number;
  /**
   * Attempts (`<replica>-<attempt>`, status indexes) that wrote nothing: no log is kept in the ArtifactStore for them,
   * and `logs` returns no lines.
   */
  readonly emptyLogs?: readonly string[];
  /** The logs were deleted after the TTL: `logs` raises NotFoundError. */
  readonly logsDeleted?: boolean;
}

export interface StoredJob {
  readonly seq: number;
  readonly spec: JobSpec;
  readonly specHash: string;
  readonly status: JobStatus;
  readonly state: JobState;
}

interface JobTable {
  seq: number;
  id: string;
  project: string;
  host: string;
  idempotency_key: string | null;
  spec_hash: string;
  spec: string;
  phase: string;
  run_id: string | null;
  labels: string;
  status: string;
  state: string;
  logs_expire_at: number | null;
}

interface Database {
  mlplane_local_jobs: JobTable;
}

/** Stable JSON (keys sorted) so that equal specs hash equal whatever order their keys were written in. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

export function specHash(spec: JobSpec): string {
  return createHash('sha256').update(canonical(spec)).digest('hex');
}

const DATE_FIELDS = ['submittedAt', 'admittedAt', 'startedAt', 'finishedAt'] as const;

function reviveStatus(json: string): JobStatus {
  const raw = JSON.parse(json) as Record<string, unknown> & { replicas: Record<string, unknown>[] };
  for (const f of DATE_FIELDS) if (typeof raw[f] === 'string') raw[f] = new Date(raw[f] as string);
  for (const r of raw.replicas) {
    for (const f of ['startedAt', 'finishedAt']) if (typeof r[f] === 'string') r[f] = new Date(r[f] as string);
  }
  return raw as unknown as JobStatus;
}

function toStored(row: JobTable): StoredJob {
  return {
    seq: Number(row.seq),
    spec: JSON.parse(row.spec) as JobSpec,
    specHash: row.spec_hash,
    status: reviveStatus(row.status),
    state: JSON.parse(row.state) as JobState,
  };
}

interface GroupedWrite {
  readonly write: (db: Kysely<Database>) => Promise<unknown>;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/** The local backend's jobs as rows of the MetadataStore (SQLite or PostgreSQL). */
export class LocalJobStore {
  readonly #store: MetadataStore;
  readonly #host: string;
  /** Writes waiting for the next group commit. */
  #group: GroupedWrite[] = [];
  #committing = false;

  private constructor(store: MetadataStore, host: string) {
    this.#store = store;
    this.#host = host;
  }

  static async open(store: MetadataStore, host: string): Promise<LocalJobStore> {
    await store.migrate(LOCAL_JOBS_OWNER, LOCAL_JOBS_MIGRATIONS);
    return new LocalJobStore(store, host);
  }

  get #db(): Kysely<Database> {
    return this.#store.db<Database>();
  }

  /**
   * Inserts a new job, in the next group commit; false when its idempotency key was taken meanwhile (the caller reads
   * that job). The key's conflict is answered by the insert itself (nothing inserted), so it never fails the group.
   */
  async insert(spec: JobSpec, status: JobStatus, state: JobState): Promise<boolean> {
    const row = {
      id: status.id,
      project: spec.project,
      host: this.#host,
      idempotency_key: spec.idempotencyKey ?? null,
      spec_hash: specHash(spec),
      spec: JSON.stringify(spec),
      phase: status.phase,
      run_id: status.runId ?? null,
      labels: JSON.stringify(status.labels),
      status: JSON.stringify(status),
      state: JSON.stringify(state),
      logs_expire_at: null,
    };
    let inserted = false;
    await this.#grouped(async (db) => {
      const result = await db
        .insertInto('mlplane_local_jobs')
        .values(row as never)
        .onConflict((oc) => oc.columns(['project', 'idempotency_key']).doNothing())
        .executeTakeFirst();
      inserted = Number(result.numInsertedOrUpdatedRows ?? 1n) > 0;
    });
    return inserted;
  }

  /** Writes the job's status and state; resolves once committed (in a group commit with other jobs' writes). */
  update(status: JobStatus, state: JobState): Promise<void> {
    const set = {
      phase: status.phase,
      run_id: status.runId ?? null,
      status: JSON.stringify(status),
      state: JSON.stringify(state),
      logs_expire_at: state.logsDeleted ? null : (state.logsExpireAt ?? null),
    };
    return this.#grouped((db) => db.updateTable('mlplane_local_jobs').set(set).where('id', '=', status.id).execute());
  }

  /**
   * Group commit: writes asked for while the previous group commits (or within the same turn of the event loop)
   * commit together in one transaction, so that jobs running side by side share one commit (one fsync on SQLite
   * FULL) instead of one each. Each caller resolves only after its write is committed, so what a caller then
   * publishes survives a restart as before. Writes apply in the order they were asked for. When a group fails, its
   * writes are retried one by one, so that one bad write fails alone.
   */
  #grouped(write: (db: Kysely<Database>) => Promise<unknown>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#group.push({ write, resolve, reject });
      if (!this.#committing) {
        this.#committing = true;
        setImmediate(() => void this.#commitGroups());
      }
    });
  }

  async #commitGroups(): Promise<void> {
    try {
      while (this.#group.length > 0) {
        const group = this.#group;
        this.#group = [];
        if (group.length === 1) {
          await this.#writeAlone(group[0]!);
          continue;
        }
        try {
          await this.#store.transaction<void, Database>(async (trx) => {
            for (const w of group) await w.write(trx);
          });
        } catch {
          for (const w of group) await this.#writeAlone(w);
          continue;
        }
        for (const w of group) w.resolve();
      }
    } finally {
      this.#committing = false;
    }
  }

  async #writeAlone(w: GroupedWrite): Promise<void> {
    try {
      await w.write(this.#db);
      w.resolve();
    } catch (err) {
      w.reject(err);
    }
  }

  async get(id: string): Promise<StoredJob | undefined> {
    const row = await this.#db.selectFrom('mlplane_local_jobs').selectAll().where('id', '=', id).executeTakeFirst();
    return row ? toStored(row) : undefined;
  }

  async byIdempotencyKey(project: string, key: string): Promise<StoredJob | undefined> {
    const row = await this.#db
      .selectFrom('mlplane_local_jobs')
      .selectAll()
      .where('project', '=', project)
      .where('idempotency_key', '=', key)
      .executeTakeFirst();
    return row ? toStored(row) : undefined;
  }

  /** Jobs of this host not yet finished, oldest first (the order they were submitted in). */
  async unfinished(): Promise<StoredJob[]> {
    const rows = await this.#db
      .selectFrom('mlplane_local_jobs')
      .selectAll()
      .where('host', '=', this.#host)
      .where('phase', 'not in', ['Succeeded', 'Failed', 'Cancelled'])
      .orderBy('seq', 'asc')
      .execute();
    return rows.map(toStored);
  }

  /** Finished jobs of this host whose logs are still kept and will expire. */
  async expiring(): Promise<StoredJob[]> {
    const rows = await this.#db
      .selectFrom('mlplane_local_jobs')
      .selectAll()
      .where('host', '=', this.#host)
      .where('logs_expire_at', 'is not', null)
      .execute();
    return rows.map(toStored);
  }

  async list(options: ListJobsOptions = {}): Promise<Page<JobStatus>> {
    const limit = resolveMaxResults(options.maxResults, LIST_JOBS_PAGE);
    let query = this.#db.selectFrom('mlplane_local_jobs').select(['seq', 'status']);
    if (options.pageToken !== undefined) {
      const after = decodePageToken<{ seq?: unknown }>(options.pageToken).seq;
      if (typeof after !== 'number' || !Number.isInteger(after) || after < 1) throw malformedPageToken();
      query = query.where('seq', '<', after);
    }
    query = query.where((eb) => eb.and(matchConditions(eb, options, this.#store.dialect)));
    const rows = await query
      .orderBy('seq', 'desc')
      .limit(limit + 1)
      .execute();
    const items = rows.slice(0, limit).map((r) => reviveStatus(r.status));
    const last = rows[limit - 1];
    return {
      items,
      ...(rows.length > limit && last ? { nextPageToken: encodePageToken({ seq: Number(last.seq) }) } : {}),
    };
  }
}

function matchConditions(eb: any, options: Omit<ListJobsOptions, 'maxResults' | 'pageToken'>, dialect: string) {
  const conditions: any[] = [];
  if (options.project !== undefined) conditions.push(eb('project', '=', options.project));
  if (options.runId !== undefined) conditions.push(eb('run_id', '=', options.runId));
  if (options.phases !== undefined) {
    conditions.push(options.phases.length === 0 ? sql<boolean>`1 = 0` : eb('phase', 'in', options.phases));
  }
  for (const [key, value] of Object.entries(options.labels ?? {})) {
    conditions.push(
      dialect === 'postgres'
        ? sql<boolean>`(labels::jsonb ->> ${key}) = ${value}`
        : sql<boolean>`json_extract(labels, ${`$."${key}"`}) = ${value}`,
    );
  }
  return conditions;
}

/** Whether a status matches a watch filter, as `list` would select it. */
export function matchesFilter(status: JobStatus, filter: Omit<ListJobsOptions, 'maxResults' | 'pageToken'>): boolean {
  if (filter.project !== undefined && status.project !== filter.project) return false;
  if (filter.runId !== undefined && status.runId !== filter.runId) return false;
  if (filter.phases !== undefined && !filter.phases.includes(status.phase)) return false;
  for (const [k, v] of Object.entries(filter.labels ?? {})) if (status.labels[k] !== v) return false;
  return true;
}
