import { ok, type ResultOf } from '@mlplane/client';
import type { Command } from 'commander';
import { CliError, EXIT, record, show, table, when } from '../output.js';
import { type Action, positiveInt } from './shared.js';

type Version = ResultOf<'getModelVersion'>;

export function modelCommands(program: Command, action: Action): void {
  const models = program.command('models').description('the model registry: models, versions, stages, aliases');
  models
    .command('list', { isDefault: true })
    .description("list the project's registered models")
    .option('--filter <expr>', "MLflow filter language: name LIKE 'fraud%'")
    .option('--max <n>', 'at most this many', positiveInt, 100)
    .option('--page-token <token>', 'continue a listing')
    .action(
      action(async ({ client, project }, out, opts: { filter?: string; max: number; pageToken?: string }) => {
        const page = await ok(
          client.GET('/api/v1/projects/{project}/models', {
            params: {
              path: { project },
              query: {
                maxResults: opts.max,
                ...(opts.filter ? { filter: opts.filter } : {}),
                ...(opts.pageToken ? { pageToken: opts.pageToken } : {}),
              },
            },
          }),
        );
        show(out, page, () =>
          table(
            ['NAME', 'LATEST', 'ALIASES', 'UPDATED'],
            page.items.map((m) => [
              m.name,
              m.latestVersions.map((v) => `v${v.version} ${v.stage}`).join(', '),
              Object.entries(m.aliases)
                .map(([alias, version]) => `${alias}=v${version}`)
                .join(' '),
              when(m.updatedAt),
            ]),
          ),
        );
        if (page.nextPageToken && !out.json) out.err(`more: --page-token ${page.nextPageToken}`);
      }),
    );
  models
    .command('versions')
    .description("a model's versions, newest first")
    .argument('<model>')
    .option('--filter <expr>', "MLflow filter language: run_id = '...'")
    .option('--max <n>', 'at most this many', positiveInt, 100)
    .action(
      action(async ({ client, project }, out, name: string, opts: { filter?: string; max: number }) => {
        const page = await ok(
          client.GET('/api/v1/projects/{project}/models/{name}/versions', {
            params: {
              path: { project, name },
              query: {
                maxResults: opts.max,
                orderBy: 'version_number DESC',
                ...(opts.filter ? { filter: opts.filter } : {}),
              },
            },
          }),
        );
        show(out, page, () =>
          table(
            ['VERSION', 'STAGE', 'STATUS', 'ALIASES', 'RUN', 'CREATED'],
            page.items.map((v) => [
              v.version,
              v.stage,
              v.status,
              v.aliases.join(' '),
              v.runId ?? '',
              when(v.createdAt),
            ]),
          ),
        );
      }),
    );
  models
    .command('promote')
    .description('move a version to a stage (None, Staging, Production, Archived), if the promotion policies agree')
    .argument('<model>')
    .argument('<version>', 'the version number', positiveInt)
    .argument('<stage>')
    .option('--archive-existing', 'move the versions now in that stage to Archived')
    .option('--comment <text>', 'why, for the transition history')
    .action(
      action(
        async (
          { client, project },
          out,
          name: string,
          version: number,
          stage: string,
          opts: { archiveExisting?: boolean; comment?: string },
        ) => {
          const moved = await ok(
            client.POST('/api/v1/projects/{project}/models/{name}/versions/{version}/stage', {
              params: { path: { project, name, version: String(version) } },
              body: {
                stage,
                ...(opts.archiveExisting ? { archiveExistingVersions: true } : {}),
                ...(opts.comment ? { comment: opts.comment } : {}),
              },
            }),
          );
          show(out, moved, () => versionRecord(moved));
        },
      ),
    );
  models
    .command('alias')
    .description('point an alias at a version, show the version it points at, or delete it')
    .argument('<model>')
    .argument('<alias>')
    .argument('[version]', 'the version to point it at; without one, show where it points', positiveInt)
    .option('--delete', 'remove the alias')
    .option('--comment <text>', 'why, for the audit log')
    .action(
      action(
        async (
          { client, project },
          out,
          name: string,
          alias: string,
          version: number | undefined,
          opts: { delete?: boolean; comment?: string },
        ) => {
          const path = { project, name, alias };
          if (opts.delete) {
            if (version !== undefined) throw new CliError('models alias --delete takes no version', EXIT.usage);
            await ok(client.DELETE('/api/v1/projects/{project}/models/{name}/aliases/{alias}', { params: { path } }));
            show(out, { deleted: alias }, () => `deleted alias ${alias} of ${name}`);
            return;
          }
          if (version !== undefined) {
            await ok(
              client.PUT('/api/v1/projects/{project}/models/{name}/aliases/{alias}', {
                params: { path },
                body: { version, ...(opts.comment ? { comment: opts.comment } : {}) },
              }),
            );
          }
          const target = await ok(
            client.GET('/api/v1/projects/{project}/models/{name}/aliases/{alias}', { params: { path } }),
          );
          show(out, target, () =>
            version !== undefined ? `${name}@${alias} -> v${target.version}` : versionRecord(target),
          );
        },
      ),
    );
}

function versionRecord(v: Version): string {
  return record([
    ['model', v.name],
    ['version', v.version],
    ['stage', v.stage],
    ['status', v.status],
    ['aliases', v.aliases.join(' ')],
    ['source', v.source],
    ['run', v.runId],
    ['updated', when(v.updatedAt)],
  ]);
}
