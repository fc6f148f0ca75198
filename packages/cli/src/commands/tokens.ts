import { ok, type TokenInfo } from '@mlplane/client';
import type { Command } from 'commander';
import { record, show, table, when } from '../output.js';
import { type Action, collect, positiveInt } from './shared.js';

const DAY_MS = 86_400_000;

export function tokenCommands(program: Command, action: Action): void {
  const tokens = program.command('tokens').description('API tokens: create, list, revoke');
  tokens
    .command('create')
    .description("issue a token acting for the caller, with at most the caller's roles; its secret is shown once")
    .requiredOption('--name <name>', 'what the token is for')
    .option('--role <role>', 'a role it holds: viewer, editor, admin or a custom one (repeatable)', collect, [])
    .option('--projects <project...>', 'projects it may act in (default: --project)')
    .option('--days <n>', 'lifetime in days', positiveInt, 90)
    .action(
      action(
        async ({ client, project }, out, opts: { name: string; role: string[]; projects?: string[]; days: number }) => {
          const created = await ok(
            client.POST('/api/v1/tokens', {
              body: {
                name: opts.name,
                projects: opts.projects ?? [project],
                roles: opts.role.length ? opts.role : ['viewer'],
                expiresAt: new Date(Date.now() + opts.days * DAY_MS).toISOString(),
              },
            }),
          );
          show(out, created, () =>
            [tokenRecord(created.token), 'secret (shown once; keep it in a secret store):', created.secret].join('\n'),
          );
        },
      ),
    );
  tokens
    .command('list', { isDefault: true })
    .description('list tokens, newest first (never their secrets)')
    .option('--owner <principal>', "only this principal's tokens")
    .option('--revoked', 'include revoked tokens')
    .action(
      action(async ({ client }, out, opts: { owner?: string; revoked?: boolean }) => {
        const page = await ok(
          client.GET('/api/v1/tokens', {
            params: {
              query: {
                ...(opts.owner ? { ownerId: opts.owner } : {}),
                ...(opts.revoked ? { includeRevoked: 'true' as const } : {}),
              },
            },
          }),
        );
        show(out, page, () =>
          table(
            ['ID', 'NAME', 'OWNER', 'PROJECTS', 'ROLES', 'EXPIRES', 'REVOKED'],
            page.items.map((t) => [
              t.id,
              t.name,
              t.ownerId,
              t.projects.join(' '),
              t.roles.join(' '),
              when(t.expiresAt),
              when(t.revokedAt),
            ]),
          ),
        );
      }),
    );
  tokens
    .command('revoke')
    .description('revoke a token and every token created through it')
    .argument('<token-id>')
    .action(
      action(async ({ client }, out, tokenId: string) => {
        await ok(client.DELETE('/api/v1/tokens/{tokenId}', { params: { path: { tokenId } } }));
        show(out, { revoked: tokenId }, () => `revoked ${tokenId}`);
      }),
    );
}

function tokenRecord(t: TokenInfo): string {
  return record([
    ['id', t.id],
    ['name', t.name],
    ['owner', t.ownerId],
    ['projects', t.projects.join(' ')],
    ['roles', t.roles.join(' ')],
    ['expires', when(t.expiresAt)],
  ]);
}
