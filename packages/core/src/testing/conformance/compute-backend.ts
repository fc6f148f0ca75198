import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createPlatformHooks, type PlatformHooks } from '../../kernel/platform-hooks.js';
import {
  type ComputeBackend,
  ConflictError,
  computeBackendPort,
  isTerminalJobPhase,
  JOB_ENV,
  type JobPhase,
  type JobSpec,
  type JobStatus,
  type LogOptions,
  NotFoundError,
  type ReplicaGroup,
  ValidationError,
} from '../../ports/compute-backend.js';
import type { JobEvent } from '../../ports/guards/compute-backend.js';
import { guarded } from '../guarded.js';
import { delay, eventually, rejects, uniqueTag } from './support.js';

/** How a backend runs a replica group's program: the fields of ReplicaGroup that say what to execute. */
export type Program = Pick<ReplicaGroup, 'image' | 'command' | 'args'>;

export interface ComputeBackendFixture {
  /** The provider under test, unwrapped: the suite wraps it in the port's guard (as a platform does) with fresh hooks. */
  readonly backend: ComputeBackend;
  /**
   * A POSIX `sh` script as this backend runs it: the local backend `{ command: ['sh', '-c', script] }`, a
   * Kubernetes one the same command in a small image that has `sh`. Every workload of the suite (exit with a
   * code, sleep, print lines, print an environment variable) is such a script, so the suite stays backend-neutral.
   */
  readonly shell: (script: string) => Program;
  /** Stores a SecretStore secret that `{ kind: 'secretStore', name }` references resolve to; the secretEnv case needs it. */
  readonly putSecret?: (name: string, value: string) => Promise<void>;
  /** Cancels what is left and removes what the backend created; runs after each test. */
  readonly cleanup?: () => Promise<void>;
  /** Longest a short job may take from submit to its end on this backend (scheduling, image pulls). Default 20 s. */
  readonly jobTimeoutMs?: number;
}

const PHASE_ORDER: readonly JobPhase[] = [
  'Pending',
  'Queued',
  'Admitted',
  'Running',
  'Succeeded',
  'Failed',
  'Cancelled',
];
const rank = (phase: JobPhase) => Math.min(PHASE_ORDER.indexOf(phase), 4);
const ISO_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d) /;

/**
 * The contract every ComputeBackend meets, run against a fresh backend from `factory` per test, through the port's
 * guard so that the `job.*` hooks fire as on a platform. Jobs live in a random project per test, so a shared backend
 * (one cluster) works too. Cases needing a capability the backend lacks are skipped with the reason in their name;
 * for each feature it lacks, the suite checks that a spec using it is refused with a ValidationError naming the field.
 */
export function computeBackendConformance(name: string, factory: () => Promise<ComputeBackendFixture>): void {
  describe(`ComputeBackend conformance: ${name}`, async () => {
    // Capabilities decide which cases exist, so one backend is created at collection time to read them.
    const probe = await factory();
    const caps = probe.backend.capabilities;
    const canPutSecrets = probe.putSecret !== undefined && caps.secretRefKinds.includes('secretStore');
    const jobTimeoutMs = probe.jobTimeoutMs ?? 20_000;
    await probe.cleanup?.();

    let fixture: ComputeBackendFixture;
    let hooks: PlatformHooks;
    let backend: ComputeBackend;
    let project: string;

    beforeEach(async () => {
      fixture = await factory();
      hooks = createPlatformHooks();
      backend = guarded(computeBackendPort, fixture.backend, hooks);
      project = `conformance-${uniqueTag()}`;
    });
    afterEach(async () => {
      await fixture?.cleanup?.();
    });

    const test = (title: string, fn: () => Promise<void>) => it(title, fn, jobTimeoutMs * 3);
    const testWhen = (capable: boolean, reason: string) => (title: string, fn: () => Promise<void>) =>
      capable ? test(title, fn) : it.skip(`${title} [skipped: ${reason}]`, fn);

    const sh = (script: string) => fixture.shell(script);
    /** Cases about several roles; a backend without multipleRoles refuses such specs (checked under validation). */
    const testRoles = testWhen(caps.multipleRoles, 'multipleRoles is false');
    /** A second group `side` where the backend has several roles, else none. */
    const sideGroup = (script: string): ReplicaGroup[] => (caps.multipleRoles ? [{ role: 'side', ...sh(script) }] : []);
    const main = (script: string, extra: Partial<ReplicaGroup> = {}): ReplicaGroup => ({
      role: 'main',
      ...sh(script),
      ...extra,
    });
    const job = (script: string, extra: Partial<JobSpec> = {}): JobSpec => ({
      name: 'conformance',
      project,
      replicaGroups: [main(script)],
      ...extra,
    });

    /** Every status of the job from now until its end, as `watch` delivers them. */
    async function untilEnd(id: string): Promise<JobStatus[]> {
      const seen: JobStatus[] = [];
      for await (const s of backend.watch({ id }, { signal: AbortSignal.timeout(jobTimeoutMs * 2) })) seen.push(s);
      const last = seen.at(-1);
      if (!last || !isTerminalJobPhase(last.phase)) {
        throw new Error(`job ${id} did not end within ${jobTimeoutMs * 2} ms; last status: ${JSON.stringify(last)}`);
      }
      return seen;
    }
    async function run(spec: JobSpec): Promise<JobStatus> {
      const submitted = await backend.submit(spec);
      return (await untilEnd(submitted.id)).at(-1)!;
    }
    async function waitFor(id: string, ok: (s: JobStatus) => boolean): Promise<JobStatus> {
      for await (const s of backend.watch({ id }, { signal: AbortSignal.timeout(jobTimeoutMs) })) {
        if (ok(s)) return s;
        if (isTerminalJobPhase(s.phase)) throw new Error(`job ${id} ended ${s.phase} (${s.reason}) first`);
      }
      throw new Error(`job ${id} never got there within ${jobTimeoutMs} ms`);
    }
    const running = (id: string) => waitFor(id, (s) => s.phase === 'Running');
    async function lines(id: string, options: LogOptions = {}): Promise<string[]> {
      const out: string[] = [];
      for await (const line of backend.logs(id, options)) out.push(line);
      return out;
    }
    async function all(options: Parameters<ComputeBackend['list']>[0] = {}): Promise<JobStatus[]> {
      const items: JobStatus[] = [];
      let pageToken: string | undefined;
      do {
        const page = await backend.list({ ...options, ...(pageToken ? { pageToken } : {}) });
        items.push(...page.items);
        pageToken = page.nextPageToken;
      } while (pageToken);
      return items;
    }
    /** Phases move forward only; Queued may follow Admitted or Running only as a preemption. */
    function expectForward(statuses: readonly JobStatus[]): void {
      for (let i = 1; i < statuses.length; i++) {
        const [a, b] = [statuses[i - 1]!, statuses[i]!];
        if (rank(b.phase) >= rank(a.phase)) continue;
        const preempted = caps.preemption && b.phase === 'Queued' && b.reason === 'Preempted';
        expect(preempted, `phase went back from ${a.phase} to ${b.phase}`).toBe(true);
      }
    }

    describe('submit and phases', () => {
      test('returns the first status at once, one replica status per replica in group order', async () => {
        const spec = job('sleep 1', {
          replicaGroups: [main('sleep 1', { replicas: 2 }), ...sideGroup('sleep 1')],
          labels: { team: 'vision' },
        });
        const s = await backend.submit(spec);
        expect(s.id).toMatch(/./);
        expect(s).toMatchObject({ name: 'conformance', project, labels: { team: 'vision' }, retriesUsed: 0 });
        expect(isTerminalJobPhase(s.phase)).toBe(false);
        expect(s.submittedAt).toBeInstanceOf(Date);
        expect(s.replicas.map((r) => `${r.role}-${r.index}`)).toEqual(
          caps.multipleRoles ? ['main-0', 'main-1', 'side-0'] : ['main-0', 'main-1'],
        );
        expect(await backend.get(s.id)).toMatchObject({ id: s.id, project });
        const end = (await untilEnd(s.id)).at(-1)!;
        expect(end.phase).toBe('Succeeded');
      });

      test('a job that exits 0 moves forward only to Succeeded, with times and exit codes per replica', async () => {
        const submitted = await backend.submit(job('echo hi'));
        const seen = await untilEnd(submitted.id);
        expectForward([submitted, ...seen]);
        const end = seen.at(-1)!;
        expect(end.phase).toBe('Succeeded');
        expect(seen.some((s) => s.phase === 'Running') || end.startedAt !== undefined).toBe(true);
        expect(end.startedAt).toBeInstanceOf(Date);
        expect(end.finishedAt!.getTime()).toBeGreaterThanOrEqual(end.startedAt!.getTime());
        expect(end.replicas).toHaveLength(1);
        expect(end.replicas[0]).toMatchObject({ phase: 'Succeeded', exitCode: 0, attempt: 1, reason: 'Completed' });
        expect(end.replicas[0]!.finishedAt).toBeInstanceOf(Date);
      });

      test('a non-zero exit fails the job (BackoffLimitExceeded) and reports the code and replica', async () => {
        const end = await run(job('exit 3'));
        expect(end).toMatchObject({ phase: 'Failed', reason: 'BackoffLimitExceeded', retriesUsed: 1 });
        expect(end.replicas[0]).toMatchObject({ phase: 'Failed', exitCode: 3, attempt: 1 });
        expect(end.message).toContain('3');
      });

      test('every replica gets its job id, role, index and the spec run id in its environment', async () => {
        const runId = 'ab'.repeat(16);
        const print = `echo "$${JOB_ENV.jobId} $${JOB_ENV.role} $${JOB_ENV.replicaIndex} $${JOB_ENV.runId}"`;
        const spec = job(print, {
          runId,
          replicaGroups: [main(print, { replicas: 2 }), ...sideGroup(print)],
        });
        const end = await run(spec);
        expect(end.phase).toBe('Succeeded');
        expect(end.runId).toBe(runId);
        expect(await lines(end.id, { index: 0 })).toEqual([`${end.id} main 0 ${runId}`]);
        expect(await lines(end.id, { index: 1 })).toEqual([`${end.id} main 1 ${runId}`]);
        if (caps.multipleRoles) expect(await lines(end.id, { role: 'side' })).toEqual([`${end.id} side 0 ${runId}`]);
        expect((await all({ runId })).map((j) => j.id)).toContain(end.id);
      });

      test('a job whose command cannot start fails and says so', async () => {
        const end = await run({
          ...job('true'),
          replicaGroups: [{ role: 'main', ...sh('true'), command: ['/nonexistent/mlplane-conformance'] }],
        });
        expect(end.phase).toBe('Failed');
        expect(end.replicas[0]!.phase).toBe('Failed');
      });
    });

    describe('retries', () => {
      test('counted failures restart the job until `retries` is spent, keeping each attempt', async () => {
        const end = await run(job('echo try; exit 1', { retries: 2 }));
        expect(end).toMatchObject({ phase: 'Failed', reason: 'BackoffLimitExceeded', retriesUsed: 3 });
        expect(end.replicas[0]).toMatchObject({ attempt: 3, exitCode: 1 });
        for (const attempt of [1, 2, 3]) expect(await lines(end.id, { attempt })).toEqual(['try']);
        await rejects(lines(end.id, { attempt: 4 }), NotFoundError, 'attempt');
      });

      testRoles("restartScope 'replica' restarts only the failed replica", async () => {
        const spec = job('exit 1', {
          retries: 1,
          restartScope: 'replica',
          replicaGroups: [main('exit 0'), { role: 'flaky', ...sh('exit 1') }],
        });
        const end = await run(spec);
        expect(end).toMatchObject({ phase: 'Failed', retriesUsed: 2 });
        const [ok, flaky] = end.replicas;
        expect(ok).toMatchObject({ role: 'main', phase: 'Succeeded', attempt: 1 });
        expect(flaky).toMatchObject({ role: 'flaky', phase: 'Failed', attempt: 2 });
      });

      test("restartScope 'replica' restarts only the failed replica of a group", async () => {
        const script = `[ "$${JOB_ENV.replicaIndex}" = 1 ] && exit 1; exit 0`;
        const end = await run(
          job(script, { retries: 1, restartScope: 'replica', replicaGroups: [main(script, { replicas: 2 })] }),
        );
        expect(end).toMatchObject({ phase: 'Failed', retriesUsed: 2 });
        const [ok, flaky] = end.replicas;
        expect(ok).toMatchObject({ index: 0, phase: 'Succeeded', attempt: 1, exitCode: 0 });
        expect(flaky).toMatchObject({ index: 1, phase: 'Failed', attempt: 2, exitCode: 1 });
      });

      testRoles("restartScope 'job' restarts every replica when one fails", async () => {
        const spec = job('sleep 1', {
          retries: 1,
          replicaGroups: [main('sleep 1'), { role: 'flaky', ...sh('exit 1') }],
        });
        const end = await run(spec);
        expect(end).toMatchObject({ phase: 'Failed', reason: 'BackoffLimitExceeded', retriesUsed: 2 });
        expect(end.replicas.map((r) => r.attempt)).toEqual([2, 2]);
      });

      test('a FailJob rule on an exit code ends the job at once, whatever retries remain', async () => {
        const end = await run(
          job('exit 42', {
            retries: 5,
            retryRules: [{ action: 'FailJob', onExitCodes: { operator: 'In', values: [41, 42] } }],
          }),
        );
        expect(end).toMatchObject({ phase: 'Failed', reason: 'PodFailurePolicy', retriesUsed: 0 });
        expect(end.replicas[0]).toMatchObject({ attempt: 1, exitCode: 42 });
      });

      test('a NotIn rule matches the other codes; the first matching rule decides', async () => {
        const end = await run(
          job('exit 9', {
            retries: 3,
            retryRules: [
              { action: 'Count', onExitCodes: { operator: 'In', values: [9] } },
              { action: 'FailJob', onExitCodes: { operator: 'NotIn', values: [1] } },
            ],
          }),
        );
        expect(end).toMatchObject({ phase: 'Failed', reason: 'BackoffLimitExceeded', retriesUsed: 4 });
        const failFast = await run(
          job('exit 9', {
            retries: 3,
            retryRules: [{ action: 'FailJob', onExitCodes: { operator: 'NotIn', values: [1] } }],
          }),
        );
        expect(failFast).toMatchObject({ reason: 'PodFailurePolicy', retriesUsed: 0 });
      });

      testRoles("a rule scoped to a role does not match another role's failure", async () => {
        const end = await run(
          job('exit 0', {
            retries: 1,
            replicaGroups: [main('exit 0'), { role: 'other', ...sh('exit 5') }],
            retryRules: [{ action: 'FailJob', onExitCodes: { role: 'main', operator: 'In', values: [5] } }],
          }),
        );
        expect(end).toMatchObject({ phase: 'Failed', reason: 'BackoffLimitExceeded', retriesUsed: 2 });
      });

      test('an Ignore rule restarts without counting; the deadline still ends the job', async () => {
        // Long enough for a second attempt where a backend waits before replacing a failed replica (Kubernetes'
        // Job controller: 10 s after the first failure); 3 s where short jobs end within the default 20 s.
        const timeoutSeconds = Math.max(3, Math.round(jobTimeoutMs / 3000));
        const end = await run(
          job('sleep 0.2; exit 7', {
            retries: 0,
            timeoutSeconds,
            retryRules: [{ action: 'Ignore', onExitCodes: { operator: 'In', values: [7] } }],
          }),
        );
        expect(end).toMatchObject({ phase: 'Failed', reason: 'DeadlineExceeded', retriesUsed: 0 });
        expect(end.replicas[0]!.attempt).toBeGreaterThanOrEqual(2);
      });
    });

    describe('timeouts and cancel', () => {
      test('timeoutSeconds ends a running job as Failed with DeadlineExceeded and stops its replicas', async () => {
        const submitted = await backend.submit(job('sleep 60', { timeoutSeconds: 1, retries: 3 }));
        const end = (await untilEnd(submitted.id)).at(-1)!;
        expect(end).toMatchObject({ phase: 'Failed', reason: 'DeadlineExceeded' });
        expect(end.finishedAt!.getTime() - submitted.submittedAt.getTime()).toBeLessThan(jobTimeoutMs);
        expect(end.replicas.every((r) => r.phase !== 'Running' && r.phase !== 'Pending')).toBe(true);
      });

      test('cancel stops every replica, ends the job Cancelled, and is idempotent', async () => {
        const tick = 'while true; do echo tick; sleep 0.1; done';
        const submitted = await backend.submit(job(tick, { replicaGroups: [main(tick, { replicas: 2 })] }));
        await running(submitted.id);
        await eventually(
          async () => expect((await lines(submitted.id, { index: 1 })).length).toBeGreaterThan(0),
          5_000,
          50,
        );
        const cancelled = await backend.cancel(submitted.id, { reason: 'no longer needed' });
        expect(cancelled.phase).toBe('Cancelled');
        expect(cancelled.reason).toBe('Cancelled');
        expect(cancelled.finishedAt).toBeInstanceOf(Date);
        expect(cancelled.replicas.every((r) => r.phase !== 'Running')).toBe(true);
        // Every replica stopped: their logs no longer grow.
        for (const index of [0, 1]) {
          const before = await lines(submitted.id, { index }).catch(() => undefined);
          await delay(400);
          const after = await lines(submitted.id, { index }).catch(() => undefined);
          expect(after?.length).toBe(before?.length);
        }
        const again = await backend.cancel(submitted.id);
        expect(again.phase).toBe('Cancelled');
        expect(again.finishedAt).toEqual(cancelled.finishedAt);
        expect((await backend.get(submitted.id)).phase).toBe('Cancelled');
      });

      test('cancel right after submit ends the job Cancelled; cancel of a finished job changes nothing', async () => {
        const submitted = await backend.submit(job('sleep 30'));
        expect((await backend.cancel(submitted.id)).phase).toBe('Cancelled');
        const done = await run(job('true'));
        const after = await backend.cancel(done.id);
        expect(after.phase).toBe('Succeeded');
        expect(after.finishedAt).toEqual(done.finishedAt);
      });

      test('get, cancel, logs and watch of an unknown id raise NotFoundError', async () => {
        const id = `missing-${uniqueTag()}`;
        await rejects(backend.get(id), NotFoundError, id);
        await rejects(backend.cancel(id), NotFoundError, id);
        await rejects(lines(id), NotFoundError, id);
        const watching = (async () => {
          for await (const _ of backend.watch({ id })) break;
        })();
        await rejects(watching, NotFoundError, id);
      });
    });

    describe('idempotency keys', () => {
      test('resubmitting with the same key returns the same job and creates nothing', async () => {
        const spec = job('sleep 1', { idempotencyKey: `key-${uniqueTag()}` });
        const first = await backend.submit(spec);
        const second = await backend.submit(spec);
        expect(second.id).toBe(first.id);
        expect((await all({ project })).map((j) => j.id)).toEqual([first.id]);
        await untilEnd(first.id);
        const after = await backend.submit(spec);
        expect(after).toMatchObject({ id: first.id, phase: 'Succeeded' });
      });

      test('the same key with a different spec is a ConflictError; another project is another job', async () => {
        const key = `key-${uniqueTag()}`;
        const first = await backend.submit(job('true', { idempotencyKey: key }));
        await rejects(backend.submit(job('exit 1', { idempotencyKey: key })), ConflictError, key);
        const other = await backend.submit({ ...job('true', { idempotencyKey: key }), project: `${project}-b` });
        expect(other.id).not.toBe(first.id);
        await Promise.all([untilEnd(first.id), untilEnd(other.id)]);
      });
    });

    describe('watch', () => {
      test('starts with the current status, then every change in order, and ends after the terminal one', async () => {
        const submitted = await backend.submit(job('sleep 0.5; exit 1', { retries: 1 }));
        const seen: JobStatus[] = [];
        for await (const s of backend.watch({ id: submitted.id }, { signal: AbortSignal.timeout(jobTimeoutMs) })) {
          seen.push(s);
          await delay(30); // a slow consumer misses nothing
        }
        expect(seen[0]!.id).toBe(submitted.id);
        expectForward(seen);
        const end = seen.at(-1)!;
        expect(end).toMatchObject({ phase: 'Failed', retriesUsed: 2 });
        // The retry shows: a status where the second attempt runs, between the first failure and the end.
        expect(seen.some((s) => s.replicas[0]!.attempt === 2 && s.phase === 'Running')).toBe(true);
        const attempts = seen.map((s) => s.replicas[0]!.attempt);
        expect([...attempts].sort((a, b) => a - b)).toEqual(attempts);
      });

      test('a watch opened again after its job changed starts with the latest status, skipping nothing silently', async () => {
        const submitted = await backend.submit(job('sleep 0.5'));
        const controller = new AbortController();
        const first: JobStatus[] = [];
        for await (const s of backend.watch({ id: submitted.id }, { signal: controller.signal })) {
          first.push(s);
          controller.abort(); // the consumer goes away; the iteration ends without error
        }
        expect(first).toHaveLength(1);
        await eventually(
          async () => expect(isTerminalJobPhase((await backend.get(submitted.id)).phase)).toBe(true),
          jobTimeoutMs,
          50,
        );
        const again: JobStatus[] = [];
        for await (const s of backend.watch({ id: submitted.id })) again.push(s);
        expect(again).toHaveLength(1);
        expect(again[0]!.phase).toBe('Succeeded');
      });

      test('a filtered watch delivers the current status of each matching job, then changes, until aborted', async () => {
        const done = await run(job('true', { labels: { kind: 'done' } }));
        const controller = new AbortController();
        const seen: JobStatus[] = [];
        const watching = (async () => {
          for await (const s of backend.watch({ project }, { signal: controller.signal })) seen.push(s);
        })();
        await eventually(() => expect(seen.map((s) => s.id)).toContain(done.id), 5_000, 20);
        const later = await backend.submit(job('true', { name: 'later' }));
        await eventually(
          () => expect(seen.some((s) => s.id === later.id && s.phase === 'Succeeded')).toBe(true),
          jobTimeoutMs,
          20,
        );
        controller.abort();
        await watching;
        expect(seen.filter((s) => s.id === done.id)).toHaveLength(1);
        expectForward(seen.filter((s) => s.id === later.id));
        expect(seen.every((s) => s.project === project)).toBe(true);
      });
    });

    describe('logs', () => {
      test('returns the lines of a finished replica in order; tailLines and timestamps', async () => {
        const end = await run(job('i=1; while [ $i -le 50 ]; do echo "line-$i"; i=$((i+1)); done'));
        const expected = Array.from({ length: 50 }, (_, i) => `line-${i + 1}`);
        expect(await lines(end.id)).toEqual(expected);
        expect(await lines(end.id, { tailLines: 5 })).toEqual(expected.slice(-5));
        const stamped = await lines(end.id, { timestamps: true, tailLines: 2 });
        expect(stamped).toHaveLength(2);
        for (const [i, line] of stamped.entries()) {
          expect(line).toMatch(ISO_LINE);
          expect(line.slice(line.indexOf(' ') + 1)).toBe(expected[48 + i]);
        }
      });

      test('stdout and stderr both land in the log; unknown roles and indexes are NotFoundError', async () => {
        const end = await run(job('echo out; echo err >&2'));
        expect((await lines(end.id)).sort()).toEqual(['err', 'out']);
        await rejects(lines(end.id, { role: 'nope' }), NotFoundError, 'nope');
        await rejects(lines(end.id, { index: 3 }), NotFoundError, '3');
      });

      testWhen(caps.logsFollow, 'logsFollow is false')(
        'follow streams lines while the replica runs and ends when it ends',
        async () => {
          const submitted = await backend.submit(job('echo first; sleep 1; echo second; sleep 0.5; echo third'));
          await running(submitted.id);
          const got: { line: string; at: number }[] = [];
          for await (const line of backend.logs(submitted.id, { follow: true })) got.push({ line, at: Date.now() });
          expect(got.map((g) => g.line)).toEqual(['first', 'second', 'third']);
          // Streamed while running: the first line came well before the last.
          expect(got[2]!.at - got[0]!.at).toBeGreaterThan(500);
        },
      );

      testWhen(!caps.logsFollow, 'the backend follows logs')('follow is refused with ValidationError', async () => {
        const end = await run(job('true'));
        const err = await rejects(lines(end.id, { follow: true }), ValidationError, 'follow');
        expect(err.field).toBe('follow');
      });
    });

    describe('list', () => {
      test('lists newest first with filters by project, phase, labels and run id, in pages', async () => {
        const runId = 'cd'.repeat(16);
        const a = await run(job('true', { labels: { team: 'a' } }));
        const b = await run(job('exit 1', { labels: { team: 'b' } }));
        const c = await run(job('true', { labels: { team: 'a', tier: 'gold' }, runId }));
        expect((await all({ project })).map((j) => j.id)).toEqual([c.id, b.id, a.id]);
        expect((await all({ project, phases: ['Failed'] })).map((j) => j.id)).toEqual([b.id]);
        expect((await all({ project, phases: ['Succeeded', 'Failed'] })).map((j) => j.id)).toEqual([c.id, b.id, a.id]);
        expect((await all({ project, labels: { team: 'a' } })).map((j) => j.id)).toEqual([c.id, a.id]);
        expect((await all({ project, labels: { team: 'a', tier: 'gold' } })).map((j) => j.id)).toEqual([c.id]);
        expect((await all({ project, runId })).map((j) => j.id)).toEqual([c.id]);
        expect(await all({ project: `${project}-none` })).toEqual([]);
        const first = await backend.list({ project, maxResults: 2 });
        expect(first.items.map((j) => j.id)).toEqual([c.id, b.id]);
        const second = await backend.list({ project, maxResults: 2, pageToken: first.nextPageToken! });
        expect(second.items.map((j) => j.id)).toEqual([a.id]);
        expect(second.nextPageToken).toBeUndefined();
      });

      test('a bad page size or token is a ValidationError', async () => {
        for (const maxResults of [0, 1001, 1.5]) {
          const err = await rejects(backend.list({ project, maxResults }), ValidationError, 'maxResults');
          expect(err.field).toBe('maxResults');
        }
        const err = await rejects(backend.list({ project, pageToken: 'not-a-token' }), ValidationError, 'pageToken');
        expect(err.field).toBe('pageToken');
      });
    });

    describe('validation', () => {
      async function refused(spec: JobSpec, field: string): Promise<void> {
        const err = await rejects(backend.submit(spec), ValidationError, '');
        expect(err.field).toBe(field);
        expect(await all({ project })).toEqual([]);
      }
      const base = () => job('true');

      test('malformed specs are refused with the field named and nothing created', async () => {
        await refused({ ...base(), name: 'Not_A_Name' }, 'name');
        await refused({ ...base(), replicaGroups: [] }, 'replicaGroups');
        await refused({ ...base(), replicaGroups: [main('true', { command: [] })] }, 'replicaGroups[0].command');
        await refused(
          { ...base(), replicaGroups: [main('true', { resources: { cpu: -1 } })] },
          'replicaGroups[0].resources.cpu',
        );
        await refused(
          { ...base(), replicaGroups: [main('true', { resources: { memory: '4 GB' } })] },
          'replicaGroups[0].resources.memory',
        );
        await refused(
          { ...base(), replicaGroups: [main('true', { env: { [JOB_ENV.jobId]: 'x' } })] },
          `replicaGroups[0].env.${JOB_ENV.jobId}`,
        );
        await refused({ ...base(), timeoutSeconds: 0 }, 'timeoutSeconds');
        await refused(
          { ...base(), retryRules: [{ action: 'Count', onExitCodes: { operator: 'In', values: [0] } }] },
          'retryRules[0].onExitCodes.values',
        );
      });

      test('a spec using a feature the backend lacks is refused with the field named', async () => {
        const cases: [boolean, JobSpec, string][] = [
          [
            !caps.containers,
            { ...base(), replicaGroups: [main('true', { image: 'busybox:1.36' })] },
            'replicaGroups[0].image',
          ],
          [!caps.queues, { ...base(), queue: 'research' }, 'queue'],
          [!caps.priorities, { ...base(), priority: 'high' }, 'priority'],
          [caps.gang === 'none', { ...base(), gang: true }, 'gang'],
          [
            !caps.gpu,
            { ...base(), replicaGroups: [main('true', { resources: { gpu: { count: 1 } } })] },
            'replicaGroups[0].resources.gpu',
          ],
          [!caps.serviceAccounts, { ...base(), serviceAccount: 'trainer' }, 'serviceAccount'],
          [!caps.imagePullSecrets, { ...base(), imagePullSecrets: ['regcred'] }, 'imagePullSecrets'],
          [!caps.orderedStartup, { ...base(), startupPolicy: 'InOrder' }, 'startupPolicy'],
          [
            !caps.multipleRoles,
            { ...base(), replicaGroups: [main('true'), { role: 'side', ...sh('true') }] },
            'replicaGroups',
          ],
          [
            !caps.volumeKinds.includes('persistentVolumeClaim'),
            { ...base(), volumes: [{ name: 'data', source: { kind: 'persistentVolumeClaim', claimName: 'data' } }] },
            'volumes[0].source.kind',
          ],
          [
            !caps.secretRefKinds.includes('kubernetesSecret'),
            {
              ...base(),
              replicaGroups: [main('true', { secretEnv: { T: { kind: 'kubernetesSecret', name: 's', key: 'k' } } })],
            },
            'replicaGroups[0].secretEnv.T.kind',
          ],
          [
            !caps.retryConditions.includes('DisruptionTarget'),
            { ...base(), retryRules: [{ action: 'Ignore', onConditions: [{ type: 'DisruptionTarget' }] }] },
            'retryRules[0].onConditions[0].type',
          ],
        ];
        for (const [lacks, spec, field] of cases) {
          if (lacks) await refused(spec, field);
        }
      });
    });

    describe('secrets', () => {
      testWhen(canPutSecrets, 'no secretStore refs or no putSecret in the fixture')(
        'secretEnv is resolved at launch and its value appears in no status',
        async () => {
          const name = `conformance/${uniqueTag()}`;
          const value = `s3cr3t-${uniqueTag()}`;
          await fixture.putSecret!(name, value);
          // The check proves the value arrived without the spec holding it: its length and prefix.
          const check = `[ "\${#TOKEN}" -eq ${value.length} ] && [ "\${TOKEN#s3cr3t-}" != "$TOKEN" ] && echo match`;
          const spec = job(check, {
            replicaGroups: [main(check, { secretEnv: { TOKEN: { kind: 'secretStore', name } } })],
          });
          const submitted = await backend.submit(spec);
          const seen = await untilEnd(submitted.id);
          expect(seen.at(-1)!.phase).toBe('Succeeded');
          expect(await lines(submitted.id)).toEqual(['match']);
          const everything = JSON.stringify([seen, await backend.get(submitted.id), await all({ project })]);
          expect(everything).not.toContain(value);
        },
      );

      testWhen(canPutSecrets, 'no secretStore refs or no putSecret in the fixture')(
        'a missing secret fails the job naming the secret (or refuses it at submit), without starting the program',
        async () => {
          const name = `conformance/missing-${uniqueTag()}`;
          const spec = job('echo started', {
            replicaGroups: [main('echo started', { secretEnv: { TOKEN: { kind: 'secretStore', name } } })],
          });
          const submitted = await backend.submit(spec).catch((error: unknown) => error);
          if (submitted instanceof ValidationError) {
            // A backend that reads secrets at submit refuses the spec there and creates nothing.
            expect(submitted.message).toContain(name);
            expect(await all({ project })).toEqual([]);
            return;
          }
          if (submitted instanceof Error) throw submitted;
          const end = (await untilEnd((submitted as JobStatus).id)).at(-1)!;
          expect(end.phase).toBe('Failed');
          expect(end.message).toContain(name);
        },
      );
    });

    describe('replica groups', () => {
      testRoles(
        'the job succeeds when the successPolicy roles succeed, and the other replicas are stopped',
        async () => {
          const end = await run(
            job('sleep 0.3', {
              replicaGroups: [
                { role: 'worker', replicas: 2, ...sh('sleep 60') },
                { role: 'launcher', ...sh('sleep 0.3') },
              ],
              successPolicy: { roles: ['launcher'] },
            }),
          );
          expect(end.phase).toBe('Succeeded');
          expect(end.replicas.find((r) => r.role === 'launcher')).toMatchObject({ phase: 'Succeeded', exitCode: 0 });
          expect(end.replicas.every((r) => r.phase !== 'Running' && r.finishedAt !== undefined)).toBe(true);
        },
      );

      testWhen(caps.orderedStartup && caps.multipleRoles, 'orderedStartup or multipleRoles is false')(
        "startupPolicy 'InOrder' starts a group only once the previous one's replicas run",
        async () => {
          const end = await run(
            job('true', {
              startupPolicy: 'InOrder',
              replicaGroups: [
                { role: 'first', replicas: 2, ...sh('sleep 0.5') },
                { role: 'second', ...sh('true') },
              ],
            }),
          );
          expect(end.phase).toBe('Succeeded');
          const second = end.replicas.find((r) => r.role === 'second')!;
          for (const r of end.replicas.filter((r) => r.role === 'first')) {
            expect(second.startedAt!.getTime()).toBeGreaterThanOrEqual(r.startedAt!.getTime());
          }
        },
      );

      test('ttlSecondsAfterFinished removes the logs; the status stays only with statusAfterTtl', async () => {
        const end = await run(job('echo bye', { ttlSecondsAfterFinished: 1 }));
        // The log and the status may go at different moments (Kubernetes deletes the pods, then the Job).
        await eventually(
          async () => {
            await rejects(lines(end.id), NotFoundError, end.id);
            if (!caps.statusAfterTtl) await rejects(backend.get(end.id), NotFoundError, end.id);
          },
          jobTimeoutMs,
          100,
        );
        if (caps.statusAfterTtl) expect((await backend.get(end.id)).phase).toBe('Succeeded');
      });
    });

    describe('job.* hooks through the kernel', () => {
      test('beforeSubmit rewrites the spec; started and finished fire once each with the job', async () => {
        hooks.job.beforeSubmit.tapPromise('label', async (spec) => ({
          ...spec,
          labels: { ...spec.labels, stamped: 'yes' },
        }));
        const started: JobEvent[] = [];
        const finished: JobEvent[] = [];
        hooks.job.started.tapPromise('seen', async (e) => {
          started.push(e);
        });
        hooks.job.finished.tapPromise('seen', async (e) => {
          finished.push(e);
        });
        const submitted = await backend.submit(job('sleep 0.3'));
        expect(submitted.labels).toMatchObject({ stamped: 'yes' });
        await eventually(() => expect(finished).toHaveLength(1), jobTimeoutMs, 20);
        await delay(200);
        expect(started).toHaveLength(1);
        expect(finished).toHaveLength(1);
        expect(started[0]!.status.phase).toBe('Running');
        expect(finished[0]!.status).toMatchObject({ id: submitted.id, phase: 'Succeeded' });
        expect(finished[0]!.spec.labels).toMatchObject({ stamped: 'yes' });
      });

      test('a veto in beforeSubmit creates nothing', async () => {
        hooks.job.beforeSubmit.tapPromise('refuse', async () => {
          throw new ValidationError('no jobs on Fridays', { field: 'spec' });
        });
        await rejects(backend.submit(job('true')), ValidationError, 'Fridays');
        expect(await all({ project })).toEqual([]);
      });
    });
  });
}
