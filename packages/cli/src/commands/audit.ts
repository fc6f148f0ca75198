import { ok } from '@mlplane/client';
import type { Command } from 'commander';
import { CliError, EXIT, show } from '../output.js';
import type { Action } from './shared.js';

const seqNumber = (value: string): number => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new CliError(`a sequence number must be a positive integer, got '${value}'`, EXIT.usage);
  return n;
};

export function auditCommands(program: Command, action: Action): void {
  const audit = program.command('audit').description('the audit log');
  audit
    .command('verify')
    .description('recompute the audit chain (the whole log by default); exits 1 naming the first broken entry')
    .option('--from <seq>', 'first entry', seqNumber)
    .option('--to <seq>', 'last entry', seqNumber)
    .action(
      action(async ({ client }, out, opts: { from?: number; to?: number }) => {
        const result = await ok(
          client.POST('/api/v1/audit/verify', {
            body: {
              ...(opts.from !== undefined ? { fromSeq: opts.from } : {}),
              ...(opts.to !== undefined ? { toSeq: opts.to } : {}),
            },
          }),
        );
        if (out.json) show(out, result, () => '');
        if (!result.ok) {
          throw new CliError(
            `audit chain broken at entry ${result.firstBrokenSeq ?? '?'}: ${result.reason ?? 'no reason given'} (${result.checkedEntries} entries checked)`,
            EXIT.failure,
          );
        }
        if (!out.json) out.out(`audit chain intact: ${result.checkedEntries} entries checked`);
      }),
    );
}
