import { ok } from '@mlplane/client';
import type { Command } from 'commander';
import { CliError, EXIT, record, show, table, when } from '../output.js';
import { type Action, positiveInt } from './shared.js';

const PHASES = ['Pending', 'Queued', 'Admitted', 'Running', 'Succeeded', 'Failed', 'Cancelled'] as const;
type Phase = (typeof PHASES)[number];

/** `mlplane jobs` and `mlplane pipelines`: the compute plane as the API shows it. */
export function computeCommands(program: Command, action: Action): void {
  const jobs = program.command('jobs').description("the project's jobs on the ComputeBackend");
  jobs
    .command('list', { isDefault: true })
    .description("list the project's jobs, newest first")
    .option('--phase <phase>', `only jobs in this phase (${PHASES.join(', ')})`)
    .option('--max <n>', 'at most this many', positiveInt, 100)
    .action(
      action(async ({ client, project }, out, opts: { phase?: string; max: number }) => {
        if (opts.phase !== undefined && !(PHASES as readonly string[]).includes(opts.phase)) {
          throw new CliError(`--phase must be one of ${PHASES.join(', ')}, got '${opts.phase}'`, EXIT.usage);
        }
        const page = await ok(
          client.GET('/api/v1/projects/{project}/jobs', {
            params: {
              path: { project },
              query: { maxResults: String(opts.max), ...(opts.phase ? { phase: opts.phase as Phase } : {}) },
            },
          }),
        );
        show(out, page, () =>
          table(
            ['ID', 'NAME', 'PHASE', 'REASON', 'SUBMITTED', 'FINISHED'],
            page.items.map((j) => [j.id, j.name, j.phase, j.reason ?? '', when(j.submittedAt), when(j.finishedAt)]),
          ),
        );
      }),
    );
  jobs
    .command('show')
    .description("a job's status and its replicas")
    .argument('<job-id>')
    .action(
      action(async ({ client, project }, out, jobId: string) => {
        const job = await ok(
          client.GET('/api/v1/projects/{project}/jobs/{jobId}', { params: { path: { project, jobId } } }),
        );
        show(out, job, () =>
          [
            record([
              ['id', job.id],
              ['name', job.name],
              ['phase', job.phase],
              ['reason', job.reason ?? ''],
              ['message', job.message ?? ''],
              ['run', job.runId ?? ''],
              ['retries used', job.retriesUsed],
              ['submitted', when(job.submittedAt)],
              ['started', when(job.startedAt)],
              ['finished', when(job.finishedAt)],
            ]),
            table(
              ['ROLE', 'INDEX', 'PHASE', 'ATTEMPT', 'EXIT', 'REASON'],
              job.replicas.map((r) => [r.role, r.index, r.phase, r.attempt, r.exitCode ?? '', r.reason ?? '']),
            ),
          ].join('\n'),
        );
      }),
    );
  jobs
    .command('logs')
    .description("a replica's log (the first role's replica 0 unless told)")
    .argument('<job-id>')
    .option('--role <role>', 'replica group')
    .option('--index <n>', 'replica index within the role')
    .option('--tail <n>', 'only the last N lines', positiveInt)
    .option('-f, --follow', 'keep streaming until the replica ends')
    .action(
      action(
        async (
          { client, project },
          out,
          jobId: string,
          opts: { role?: string; index?: string; tail?: number; follow?: boolean },
        ) => {
          const { data } = await client.GET('/api/v1/projects/{project}/jobs/{jobId}/logs', {
            params: {
              path: { project, jobId },
              query: {
                ...(opts.role ? { role: opts.role } : {}),
                ...(opts.index !== undefined ? { index: opts.index } : {}),
                ...(opts.tail !== undefined ? { tailLines: String(opts.tail) } : {}),
                ...(opts.follow ? { follow: 'true' as const } : {}),
              },
            },
            parseAs: 'stream',
          });
          if (!data) throw new CliError(`the server sent no log for job ${jobId}`, EXIT.failure);
          const decoder = new TextDecoder();
          for await (const chunk of data as unknown as AsyncIterable<Uint8Array>) {
            process.stdout.write(out.json ? '' : decoder.decode(chunk, { stream: true }));
          }
        },
      ),
    );
  jobs
    .command('cancel')
    .description('cancel a job, killing every replica (idempotent)')
    .argument('<job-id>')
    .option('--reason <text>', 'why, for the job status and the audit log')
    .action(
      action(async ({ client, project }, out, jobId: string, opts: { reason?: string }) => {
        const job = await ok(
          client.POST('/api/v1/projects/{project}/jobs/{jobId}/cancel', {
            params: { path: { project, jobId } },
            body: opts.reason ? { reason: opts.reason } : {},
          }),
        );
        show(out, job, () => `${job.id}: ${job.phase}${job.reason ? ` (${job.reason})` : ''}`);
      }),
    );

  const pipelines = program.command('pipelines').description('pipeline runs and their step cache');
  pipelines
    .command('show')
    .description('a pipeline run and the state of each step')
    .argument('<run-id>')
    .action(
      action(async ({ client, project }, out, runId: string) => {
        const run = await ok(
          client.GET('/api/v1/projects/{project}/pipeline-runs/{runId}', { params: { path: { project, runId } } }),
        );
        show(out, run, () =>
          [
            record([
              ['run', run.runId],
              ['pipeline', run.pipeline],
              ['status', run.status],
              ['error', run.error ?? ''],
              ['tracker run', run.trackerRunId ?? ''],
            ]),
            table(
              ['STEP', 'STATUS', 'ATTEMPT', 'JOB', 'FINISHED'],
              run.steps.map((s) => [s.stepId, s.status, s.attempt, s.jobId ?? '', when(s.finishedAt)]),
            ),
          ].join('\n'),
        );
      }),
    );
  pipelines
    .command('explain-cache')
    .description('why each step of a pipeline run was or was not reused from the cache')
    .argument('<run-id>')
    .action(
      action(async ({ client, project }, out, runId: string) => {
        const explained = await ok(
          client.GET('/api/v1/projects/{project}/pipeline-runs/{runId}/cache', {
            params: { path: { project, runId } },
          }),
        );
        show(out, explained, () =>
          table(
            ['STEP', 'DECISION', 'WHY'],
            explained.items.map((s) => [s.step, s.decision, s.reasons.join('; ')]),
          ),
        );
      }),
    );
}
