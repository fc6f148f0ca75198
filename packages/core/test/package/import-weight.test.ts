// @mlplane/core is what a plugin author or a host app installs: importing it must load no database driver, broker
// client or native module. A child process records every module resolved while importing an entry point.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../..', import.meta.url));

const PROBE = `
import { registerHooks } from 'node:module';
const seen = new Set();
registerHooks({ resolve(spec, ctx, next) { const r = next(spec, ctx); seen.add(r.url); return r; } });
const natives = [];
const dlopen = process.dlopen;
process.dlopen = (module, file, ...rest) => { natives.push(String(file)); return dlopen.call(process, module, file, ...rest); };
await import(process.argv[2]);
const packages = new Set();
for (const url of seen) {
  const m = url.match(/node_modules\\/((?:@[^/]+\\/)?[^/]+)\\/(?!.*node_modules\\/)/);
  if (m) packages.add(m[1]);
}
console.log(JSON.stringify({ packages: [...packages].sort(), natives }));
`;

/** Packages (and native files) loaded by importing `entry` in a fresh process, the TypeScript loader aside. */
async function loadedBy(entry: string): Promise<{ packages: string[]; natives: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'mlplane-weight-'));
  const probe = join(dir, 'probe.mjs');
  await writeFile(probe, PROBE);
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--conditions=@mlplane/source', '--import', 'tsx', probe, join(root, entry)],
    { cwd: root },
  );
  const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as { packages: string[]; natives: string[] };
  return { packages: result.packages.filter((p) => p !== 'tsx' && p !== 'esbuild'), natives: result.natives };
}

const HEAVY =
  /^(pg|pg-.*|kafkajs|ioredis|better-sqlite3|@electric-sql\/.*|kysely|prom-client|lru-cache|@aws-sdk\/.*|@kubernetes\/.*|@grpc\/.*|undici)$/;

describe('import weight of @mlplane/core', () => {
  it('loads no database driver, broker client, query builder or native module', async () => {
    const { packages, natives } = await loadedBy('packages/core/src/index.ts');
    expect(packages.filter((p) => HEAVY.test(p))).toEqual([]);
    expect(natives).toEqual([]);
    expect(packages).toContain('zod');
  });

  it('keeps @mlplane/core/testing as light (vitest aside)', async () => {
    const { packages, natives } = await loadedBy('packages/core/src/testing/index.ts');
    expect(packages.filter((p) => HEAVY.test(p))).toEqual([]);
    expect(natives).toEqual([]);
  });

  it('sees a driver where one is loaded (the probe can fail): @mlplane/defaults loads better-sqlite3', async () => {
    const { packages } = await loadedBy('packages/defaults/src/index.ts');
    expect(packages).toContain('better-sqlite3');
    expect(packages).toContain('kysely');
  });

  it('declares only the kernel libraries as runtime dependencies', async () => {
    const pkg = JSON.parse(await readFile(join(root, 'packages/core/package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    expect(Object.keys(pkg.dependencies).sort()).toEqual([
      'pino',
      'reflect-metadata',
      'tapable',
      'tsyringe',
      'yaml',
      'zod',
    ]);
  });
});
