// The README's five-minute tour, as a newcomer runs it: `mlplane up`, the README's train.py logged with the stock
// mlflow client (from the virtualenv scripts/peers installs for its MLflow peer), then the CLI's commands of the tour,
// which find the admin token in ./.mlplane as the README says. Only the port differs (a free one, not 8080).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanEnv, freePort, mlplane, startUp, type UpProcess } from './processes.js';

const python =
  process.env.MLPLANE_MLFLOW_PYTHON ??
  join(
    process.env.MLPLANE_PEERS_CACHE ?? join(homedir(), '.cache', 'mlplane-peers'),
    'mlflow',
    'venv',
    'bin',
    'python',
  );

/** The ```python block of the README's tour. */
async function tourScript(): Promise<string> {
  const readme = await readFile(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');
  const tour = readme.slice(readme.indexOf('### A five-minute tour'));
  const match = /```python\n([\s\S]*?)```/.exec(tour);
  if (!match) throw new Error('README.md has no ```python block in its tour');
  return match[1]!;
}

let dir: string | undefined;
let up: UpProcess | undefined;
afterAll(async () => {
  await up?.stop('SIGKILL');
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("the README's five-minute tour", () => {
  it('logs a run with the mlflow client and shows it with the CLI', async () => {
    if (!existsSync(python)) throw new Error(`no mlflow client at ${python}: run scripts/peers up mlflow`);
    dir = await mkdtemp(join(tmpdir(), 'mlplane-tour-'));
    up = await startUp([], { cwd: dir, port: await freePort() });
    await writeFile(join(dir, 'train.py'), await tourScript());
    const token = (await readFile(join(dir, '.mlplane', 'admin-token'), 'utf8')).trim();
    await promisify(execFile)(python, ['train.py'], {
      cwd: dir,
      env: cleanEnv({ MLFLOW_TRACKING_URI: up.url, MLFLOW_TRACKING_TOKEN: token }),
    });

    // No token given: the CLI reads ./.mlplane/admin-token, as the README says.
    const env = cleanEnv({ MLPLANE_URL: up.url });
    const experiments = await mlplane(['experiments'], { cwd: dir, env });
    expect(experiments.code, experiments.stderr).toBe(0);
    expect(experiments.stdout).toMatch(/│ quickstart\s+│ active/);
    const runs = await mlplane(['runs', 'list', '-e', 'quickstart'], { cwd: dir, env });
    expect(runs.stdout).toMatch(/│ first\s+│ FINISHED\s+│ .* │ loss=0\.3/);
    const runId = /│ ([0-9a-f]{32}) │ first/.exec(runs.stdout)?.[1];
    expect(runId).toBeDefined();
    const shown = await mlplane(['runs', 'show', runId!], { cwd: dir, env });
    expect(shown.stdout).toMatch(/│ epochs\s+│ 3/);
    expect(shown.stdout).toMatch(/│ lr\s+│ 0\.01/);
    expect(shown.stdout).toMatch(/│ loss\s+│ 0\.3\s+│ 2/);
    // The API docs the tour opens.
    expect((await fetch(`${up.url}/api/v1/docs`)).status).toBe(200);
  });
});
