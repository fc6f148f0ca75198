import { type Experiment, ok, type Run } from '@mlplane/client';
import type { Command } from 'commander';
import type { Connection } from '../connection.js';
import { CliError, EXIT, type Output, record, show, table, when } from '../output.js';
import { type Action, collect, keyValues, positiveInt } from './shared.js';

export function trackingCommands(program: Command, action: Action): void {
  const experiments = program.command('experiments').description("list and create the project's experiments");
  experiments
    .command('list', { isDefault: true })
    .description('list experiments (newest first)')
    .option('--filter <expr>', "MLflow filter language: name LIKE 'fraud%'")
    .option('--all', 'include deleted experiments')
    .option('--max <n>', 'at most this many', positiveInt, 100)
    .option('--page-token <token>', 'continue a listing')
    .action(
      action(
        async ({ client, project }, out, opts: { filter?: string; all?: boolean; max: number; pageToken?: string }) => {
          const page = await ok(
            client.GET('/api/v1/projects/{project}/experiments', {
              params: {
                path: { project },
                query: {
                  maxResults: opts.max,
                  ...(opts.filter ? { filter: opts.filter } : {}),
                  ...(opts.all ? { viewType: 'ALL' as const } : {}),
                  ...(opts.pageToken ? { pageToken: opts.pageToken } : {}),
                },
              },
            }),
          );
          show(out, page, () =>
            table(
              ['ID', 'NAME', 'STAGE', 'CREATED'],
              page.items.map((e) => [e.id, e.name, e.lifecycleStage, when(e.createdAt)]),
            ),
          );
          morePages(out, page.nextPageToken);
        },
      ),
    );
  experiments
    .command('create')
    .description('create an experiment')
    .argument('<name>')
    .option('--tag <key=value>', 'a tag (repeatable)', collect, [])
    .option('--artifact-location <uri>', 'where its runs keep artifacts (default: the platform decides)')
    .action(
      action(async ({ client, project }, out, name: string, opts: { tag: string[]; artifactLocation?: string }) => {
        const experiment = await ok(
          client.POST('/api/v1/projects/{project}/experiments', {
            params: { path: { project } },
            body: {
              name,
              ...(opts.tag.length ? { tags: keyValues(opts.tag, '--tag') } : {}),
              ...(opts.artifactLocation ? { artifactLocation: opts.artifactLocation } : {}),
            },
          }),
        );
        show(out, experiment, () => experimentRecord(experiment));
      }),
    );

  const runs = program.command('runs').description('list, show and compare runs');
  runs
    .command('list')
    .description("list an experiment's runs (newest first)")
    .requiredOption('-e, --experiment <id-or-name>', 'the experiment (repeatable)', collect, [])
    .option('--filter <expr>', "MLflow filter language: metrics.auc > 0.9 and params.lr = '0.01'")
    .option('--order-by <expr>', 'metrics.auc DESC (repeatable)', collect, [])
    .option('--all', 'include deleted runs')
    .option('--max <n>', 'at most this many', positiveInt, 100)
    .option('--page-token <token>', 'continue a listing')
    .action(
      action(
        async (
          connection,
          out,
          opts: {
            experiment: string[];
            filter?: string;
            orderBy: string[];
            all?: boolean;
            max: number;
            pageToken?: string;
          },
        ) => {
          const experimentIds = await Promise.all(opts.experiment.map((e) => experimentId(connection, e)));
          const page = await ok(
            connection.client.POST('/api/v1/projects/{project}/runs/search', {
              params: { path: { project: connection.project } },
              body: {
                experimentIds,
                maxResults: opts.max,
                ...(opts.filter ? { filter: opts.filter } : {}),
                ...(opts.orderBy.length ? { orderBy: opts.orderBy } : {}),
                ...(opts.all ? { runViewType: 'ALL' as const } : {}),
                ...(opts.pageToken ? { pageToken: opts.pageToken } : {}),
              },
            }),
          );
          show(out, page, () =>
            table(
              ['ID', 'NAME', 'STATUS', 'STARTED', 'METRICS'],
              page.items.map((r) => [
                r.info.id,
                r.info.name,
                r.info.status,
                when(r.info.startTime),
                Object.values(r.data.metrics)
                  .slice(0, 4)
                  .map((m) => `${m.key}=${formatValue(m.value)}`)
                  .join(' '),
              ]),
            ),
          );
          morePages(out, page.nextPageToken);
        },
      ),
    );
  runs
    .command('show')
    .description('a run: its info, params, latest metrics and tags')
    .argument('<run-id>')
    .action(
      action(async (connection, out, runId: string) => {
        const run = await getRun(connection, runId);
        show(out, run, () => {
          const parts = [
            record([
              ['id', run.info.id],
              ['name', run.info.name],
              ['experiment', run.info.experimentId],
              ['status', run.info.status],
              ['started', when(run.info.startTime)],
              ['ended', when(run.info.endTime)],
              ['user', run.info.userId],
              ['artifacts', run.info.artifactUri],
            ]),
          ];
          const params = Object.entries(run.data.params);
          if (params.length) parts.push(table(['PARAM', 'VALUE'], params.sort(byKey)));
          const metrics = Object.values(run.data.metrics);
          if (metrics.length) {
            parts.push(
              table(
                ['METRIC', 'VALUE', 'STEP'],
                metrics.sort((a, b) => a.key.localeCompare(b.key)).map((m) => [m.key, formatValue(m.value), m.step]),
              ),
            );
          }
          const tags = Object.entries(run.data.tags);
          if (tags.length) parts.push(table(['TAG', 'VALUE'], tags.sort(byKey)));
          return parts.join('\n');
        });
      }),
    );
  runs
    .command('compare')
    .description('runs side by side: params and latest metrics, one column per run')
    .argument('<run-ids...>', 'two or more runs')
    .action(
      action(async (connection, out, runIds: string[]) => {
        if (runIds.length < 2) throw new CliError('runs compare needs at least two run ids', EXIT.usage);
        const compared = await Promise.all(runIds.map((id) => getRun(connection, id)));
        const params = [...new Set(compared.flatMap((r) => Object.keys(r.data.params)))].sort();
        const metrics = [...new Set(compared.flatMap((r) => Object.keys(r.data.metrics)))].sort();
        const value = {
          runs: compared.map((r) => ({ id: r.info.id, name: r.info.name, status: r.info.status })),
          params: Object.fromEntries(params.map((k) => [k, compared.map((r) => r.data.params[k] ?? null)])),
          metrics: Object.fromEntries(metrics.map((k) => [k, compared.map((r) => r.data.metrics[k]?.value ?? null)])),
        };
        show(out, value, () =>
          table(
            ['', ...compared.map((r) => `${r.info.name}\n${r.info.id}`)],
            [
              ['status', ...compared.map((r) => r.info.status)],
              ...params.map((k) => [`params.${k}`, ...compared.map((r) => r.data.params[k] ?? '')]),
              ...metrics.map((k) => [
                `metrics.${k}`,
                ...compared.map((r) => {
                  const m = r.data.metrics[k];
                  return m ? formatValue(m.value) : '';
                }),
              ]),
            ],
          ),
        );
      }),
    );
}

function experimentRecord(e: Experiment): string {
  return record([
    ['id', e.id],
    ['name', e.name],
    ['stage', e.lifecycleStage],
    ['artifacts', e.artifactLocation],
    ['created', when(e.createdAt)],
    ...Object.entries(e.tags).map(([k, v]) => [`tag ${k}`, v] as const),
  ]);
}

const byKey = (a: readonly [string, unknown], b: readonly [string, unknown]) => a[0].localeCompare(b[0]);

function formatValue(value: number | string): string {
  return typeof value === 'number' && !Number.isInteger(value) ? String(Number(value.toPrecision(6))) : String(value);
}

async function getRun({ client, project }: Connection, runId: string): Promise<Run> {
  return ok(client.GET('/api/v1/projects/{project}/runs/{runId}', { params: { path: { project, runId } } }));
}

/** An experiment named `idOrName` in the project, else `idOrName` taken as an id. */
async function experimentId({ client, project }: Connection, idOrName: string): Promise<string> {
  if (!idOrName.includes("'")) {
    const page = await ok(
      client.GET('/api/v1/projects/{project}/experiments', {
        params: { path: { project }, query: { filter: `name = '${idOrName}'`, maxResults: 1 } },
      }),
    );
    if (page.items[0]) return page.items[0].id;
  }
  return idOrName;
}

function morePages(out: Output, nextPageToken: string | undefined): void {
  if (nextPageToken && !out.json) out.err(`more: --page-token ${nextPageToken}`);
}
