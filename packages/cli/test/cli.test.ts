// `mlplane up` in a child process on a temp data dir and a free port, and the CLI's commands against it, each a
// process of its own, over real HTTP.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient, ok } from '@mlplane/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, freePort, mlplane, mlplaneInTerminal, startUp, type UpProcess } from './processes.js';

let dir: string;
let dataDir: string;
let up: UpProcess;
let adminToken: string;

/** Runs the CLI against the server with the admin token (or `token`), in the temp dir. */
const cli = (args: readonly string[], env: Record<string, string> = {}) =>
  mlplane(args, { cwd: dir, env: cleanEnv({ MLPLANE_URL: up.url, MLPLANE_TOKEN: adminToken, ...env }) });

/** A failure is one line on stderr, no stack trace, nothing on stdout. */
function expectOneLineFailure(result: { code: number; stdout: string; stderr: string }, code: number, text: RegExp) {
  expect(result.code, result.stderr).toBe(code);
  expect(result.stdout).toBe('');
  const lines = result.stderr.trimEnd().split('\n');
  expect(lines, result.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(/^mlplane: /);
  expect(lines[0]).toMatch(text);
  expect(result.stderr).not.toMatch(/\n\s+at /);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mlplane-cli-'));
  dataDir = join(dir, 'data');
  up = await startUp(['--data-dir', dataDir], { cwd: dir, port: await freePort() });
  adminToken = (await readFile(join(dataDir, 'admin-token'), 'utf8')).trim();
}, 90_000);

afterAll(async () => {
  await up?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('mlplane up', { timeout: 60_000 }, () => {
  it('creates the admin token on the first start: in DATA_DIR/admin-token, mode 600, printed once with the URLs', async () => {
    expect(adminToken).toMatch(/^mlp_/);
    expect((await stat(join(dataDir, 'admin-token'))).mode & 0o777).toBe(0o600);
    const printed = up.stdout();
    expect(printed.split(adminToken).length - 1).toBe(1);
    expect(printed).toContain(`API:       ${up.url}/api/v1`);
    expect(printed).toContain(`API docs:  ${up.url}/api/v1/docs`);
    const me = await ok(createClient({ url: up.url, token: adminToken }).GET('/api/v1/me'));
    expect(me).toMatchObject({ kind: 'token', ownerId: 'admin', roles: { '*': ['admin'] } });
    const docs = await fetch(`${up.url}/api/v1/docs`);
    expect(docs.status).toBe(200);
    expect(await docs.text()).toContain('swagger-ui');
  });

  it('serves Prometheus metrics at /metrics to a token holding telemetry.read, counting the requests', async () => {
    expect(up.stdout()).toContain(`metrics:   ${up.url}/metrics`);
    expect((await fetch(`${up.url}/metrics`)).status).toBe(401);
    const scrape = await fetch(`${up.url}/metrics`, { headers: { authorization: `Bearer ${adminToken}` } });
    expect(scrape.status).toBe(200);
    expect(scrape.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    // The /api/v1/me call of the test above, by route template.
    expect(await scrape.text()).toMatch(/mlplane_http_requests_total\{[^}]*route="\/api\/v1\/me"[^}]*\} [1-9]/);
  });
});

describe('mlplane up refusing to start', { timeout: 60_000 }, () => {
  it('says in one line why: a data dir in use, a port in use, strict mode with local defaults', async () => {
    const port = Number(new URL(up.url).port);
    // The platform's own log lines (it starts before the port is taken) stay off stdout.
    const quiet = { cwd: dir, env: cleanEnv({ MLPLANE__PLATFORM__LOG_LEVEL: 'warn' }) };
    expectOneLineFailure(
      await mlplane(['up', '--data-dir', dataDir, '--port', String(await freePort())], quiet),
      6,
      /data dir .* is in use by/,
    );
    expectOneLineFailure(
      await mlplane(['up', '--data-dir', join(dir, 'other'), '--port', String(port)], quiet),
      1,
      /the port is in use/,
    );
    // No admin token was issued by the start that failed: the next one that succeeds shows it.
    await expect(stat(join(dir, 'other', 'admin-token'))).rejects.toMatchObject({ code: 'ENOENT' });
    // --config means production: platform.strict is on, and every port here would fall back to a local default.
    const local = join(dir, 'local.yaml');
    await writeFile(local, 'platform:\n  logLevel: warn\n');
    expectOneLineFailure(
      await mlplane(['up', '--data-dir', join(dir, 'strict'), '--port', String(await freePort()), '--config', local], {
        ...quiet,
      }),
      2,
      /platform\.strict refuses to start: core\.artifactStore would fall back to 'embedded'.*; core\.eventBus/,
    );
    expectOneLineFailure(await mlplane(['up', '--port', 'eighty'], quiet), 2, /--port.*port number/);
  });
});

describe('mlplane client commands', { timeout: 60_000 }, () => {
  it('creates and lists experiments, as tables and as JSON', async () => {
    const created = await cli(['experiments', 'create', 'fraud', '--tag', 'team=risk', '--json']);
    expect(created.code, created.stderr).toBe(0);
    const experiment = JSON.parse(created.stdout);
    expect(experiment).toMatchObject({ name: 'fraud', tags: { team: 'risk', 'mlplane.project': 'default' } });

    const listed = await cli(['experiments', 'list', '--json']);
    expect(JSON.parse(listed.stdout).items.map((e: { name: string }) => e.name)).toContain('fraud');
    const table = await cli(['experiments']);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/│ ID\s+│ NAME\s+│ STAGE\s+│ CREATED/);
    expect(table.stdout).toMatch(new RegExp(`│ ${experiment.id}\\s+│ fraud\\s+│ active`));
    // Another project sees none of it.
    const other = await cli(['experiments', 'list', '--json', '--project', 'vision']);
    expect(JSON.parse(other.stdout).items).toEqual([]);
  });

  it('lists, shows and compares runs logged through the API', async () => {
    const client = createClient({ url: up.url, token: adminToken });
    const project = { project: 'default' };
    const experiment = await ok(
      client.POST('/api/v1/projects/{project}/experiments', { params: { path: project }, body: { name: 'churn' } }),
    );
    const runIds: string[] = [];
    for (const [name, lr, auc] of [
      ['baseline', '0.1', 0.81],
      ['tuned', '0.01', 0.93],
    ] as const) {
      const run = await ok(
        client.POST('/api/v1/projects/{project}/runs', {
          params: { path: project },
          body: { experimentId: experiment.id, name },
        }),
      );
      await ok(
        client.POST('/api/v1/projects/{project}/runs/{runId}/log-batch', {
          params: { path: { ...project, runId: run.info.id } },
          body: { params: [{ key: 'lr', value: lr }], metrics: [{ key: 'auc', value: auc, step: 1 }] },
        }),
      );
      runIds.push(run.info.id);
    }

    const listed = await cli(['runs', 'list', '-e', 'churn', '--order-by', 'metrics.auc DESC', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout).items.map((r: { info: { name: string } }) => r.info.name)).toEqual([
      'tuned',
      'baseline',
    ]);
    const filtered = await cli(['runs', 'list', '-e', experiment.id, '--filter', 'metrics.auc > 0.9']);
    expect(filtered.stdout).toContain('tuned');
    expect(filtered.stdout).not.toContain('baseline');

    const shown = await cli(['runs', 'show', runIds[1]!]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/│ name\s+│ tuned/);
    expect(shown.stdout).toMatch(/│ lr\s+│ 0\.01/);
    expect(shown.stdout).toMatch(/│ auc\s+│ 0\.93\s+│ 1/);

    const compared = await cli(['runs', 'compare', ...runIds, '--json']);
    expect(JSON.parse(compared.stdout)).toMatchObject({
      params: { lr: ['0.1', '0.01'] },
      metrics: { auc: [0.81, 0.93] },
    });
    const table = await cli(['runs', 'compare', ...runIds]);
    expect(table.stdout).toMatch(/│ params\.lr\s+│ 0\.1\s+│ 0\.01\s+│/);
    expect(table.stdout).toMatch(/│ metrics\.auc\s+│ 0\.81\s+│ 0\.93\s+│/);
  });

  it('uploads and downloads artifacts of a few MiB, byte for byte, files and directories', async () => {
    const client = createClient({ url: up.url, token: adminToken });
    const experiment = await ok(
      client.POST('/api/v1/projects/{project}/experiments', {
        params: { path: { project: 'default' } },
        body: { name: 'artifacts' },
      }),
    );
    const run = await ok(
      client.POST('/api/v1/projects/{project}/runs', {
        params: { path: { project: 'default' } },
        body: { experimentId: experiment.id },
      }),
    );
    const runId = run.info.id;
    const weights = randomBytes(5 * 1024 * 1024 + 123);
    await writeFile(join(dir, 'weights.bin'), weights);
    const uploaded = await cli(['artifacts', 'upload', runId, 'weights.bin', '--path', 'model/weights.bin', '--json']);
    expect(uploaded.code, uploaded.stderr).toBe(0);
    expect(JSON.parse(uploaded.stdout)).toMatchObject({
      path: 'model/weights.bin',
      size: weights.length,
      sha256: createHash('sha256').update(weights).digest('hex'),
    });

    await mkdir(join(dir, 'eval', 'plots'), { recursive: true });
    await writeFile(join(dir, 'eval', 'report.txt'), 'auc 0.93\n');
    await writeFile(join(dir, 'eval', 'plots', 'roc.svg'), '<svg/>');
    const tree = await cli(['artifacts', 'upload', runId, 'eval']);
    expect(tree.code, tree.stderr).toBe(0);
    expect(tree.stdout).toMatch(/│ eval\/plots\/roc\.svg\s+│ 6\s+│/);
    expect(tree.stdout).toMatch(/│ eval\/report\.txt\s+│ 9\s+│/);

    const listed = await cli(['artifacts', 'list', runId, '--json']);
    expect(JSON.parse(listed.stdout).items.map((a: { path: string }) => a.path)).toEqual(['eval', 'model']);

    const downloaded = await cli(['artifacts', 'download', runId, 'model/weights.bin', '-o', 'back/weights.bin']);
    expect(downloaded.code, downloaded.stderr).toBe(0);
    expect(downloaded.stdout.trim()).toBe(`model/weights.bin -> back/weights.bin (${weights.length} bytes)`);
    expect((await readFile(join(dir, 'back', 'weights.bin'))).equals(weights)).toBe(true);
    const nested = await cli(['artifacts', 'download', runId, 'eval/plots/roc.svg']);
    expect(nested.code, nested.stderr).toBe(0);
    expect(await readFile(join(dir, 'roc.svg'), 'utf8')).toBe('<svg/>');

    // In a terminal, both directions draw a progress bar (on stderr) up to 100%.
    const terminalEnv = cleanEnv({ MLPLANE_URL: up.url, MLPLANE_TOKEN: adminToken });
    const shownUp = await mlplaneInTerminal(['artifacts', 'upload', runId, 'weights.bin', '--path', 'tty/w.bin'], {
      cwd: dir,
      env: terminalEnv,
    });
    expect(shownUp.code, shownUp.stdout).toBe(0);
    expect(shownUp.stdout).toMatch(
      new RegExp(`tty/w\\.bin \\[[=-]+\\] 100% ${weights.length}/${weights.length} bytes`),
    );
    const shownDown = await mlplaneInTerminal(['artifacts', 'download', runId, 'tty/w.bin', '-o', 'tty.bin'], {
      cwd: dir,
      env: terminalEnv,
    });
    expect(shownDown.code, shownDown.stdout).toBe(0);
    expect(shownDown.stdout).toMatch(/tty\/w\.bin \[[=-]+\] 100%/);
    expect((await readFile(join(dir, 'tty.bin'))).equals(weights)).toBe(true);
    // Piped, as above, no bar is drawn.
    expect(uploaded.stderr).toBe('');

    expectOneLineFailure(
      await cli(['artifacts', 'download', runId, 'model/missing.bin']),
      5,
      /404 NOT_FOUND: .*missing\.bin/,
    );
    expectOneLineFailure(await cli(['artifacts', 'upload', runId, 'no-such-file']), 2, /no such file or directory/);
  });

  it('lists models and versions, promotes a version and points an alias at it', async () => {
    const client = createClient({ url: up.url, token: adminToken });
    const project = { project: 'default' };
    await ok(client.POST('/api/v1/projects/{project}/models', { params: { path: project }, body: { name: 'fraud' } }));
    for (const source of ['s3://models/fraud/1', 's3://models/fraud/2']) {
      await ok(
        client.POST('/api/v1/projects/{project}/models/{name}/versions', {
          params: { path: { ...project, name: 'fraud' } },
          body: { source },
        }),
      );
    }
    const promoted = await cli(['models', 'promote', 'fraud', '2', 'staging', '--comment', 'passed eval', '--json']);
    expect(promoted.code, promoted.stderr).toBe(0);
    expect(JSON.parse(promoted.stdout)).toMatchObject({ name: 'fraud', version: 2, stage: 'Staging' });
    const aliased = await cli(['models', 'alias', 'fraud', 'champion', '2']);
    expect(aliased.code, aliased.stderr).toBe(0);
    expect(aliased.stdout.trim()).toBe('fraud@champion -> v2');

    const models = await cli(['models', 'list']);
    expect(models.stdout).toMatch(/│ fraud\s+│ .*v2 Staging.*│ champion=v2\s+│/);
    const versions = await cli(['models', 'versions', 'fraud', '--json']);
    expect(
      JSON.parse(versions.stdout).items.map((v: { version: number; stage: string; aliases: string[] }) => [
        v.version,
        v.stage,
        v.aliases,
      ]),
    ).toEqual([
      [2, 'Staging', ['champion']],
      [1, 'None', []],
    ]);
    const shown = await cli(['models', 'alias', 'fraud', 'champion', '--json']);
    expect(JSON.parse(shown.stdout)).toMatchObject({ version: 2, source: 's3://models/fraud/2' });
    const deleted = await cli(['models', 'alias', 'fraud', 'champion', '--delete']);
    expect(deleted.stdout.trim()).toBe('deleted alias champion of fraud');

    expectOneLineFailure(
      await cli(['models', 'promote', 'fraud', '1', 'nowhere']),
      2,
      /400 VALIDATION: unknown stage 'nowhere'.*\(field: stage\)/,
    );
    expectOneLineFailure(await cli(['models', 'versions', 'no-such-model']), 5, /404 NOT_FOUND/);
    expectOneLineFailure(await cli(['models', 'promote', 'fraud', 'two', 'Staging']), 2, /positive integer/);
  });

  it('verifies the audit chain the requests above wrote', async () => {
    const verified = await cli(['audit', 'verify']);
    expect(verified.code, verified.stderr).toBe(0);
    const checked = Number(/audit chain intact: (\d+) entries checked/.exec(verified.stdout)?.[1]);
    expect(checked).toBeGreaterThan(5);
    const json = await cli(['audit', 'verify', '--from', '1', '--to', '3', '--json']);
    expect(JSON.parse(json.stdout)).toEqual({ ok: true, checkedEntries: 3 });
    expectOneLineFailure(await cli(['audit', 'verify', '--from', '0']), 2, /positive integer, got '0'/);
  });

  it('creates a token that works, and revokes it', async () => {
    const created = await cli(['tokens', 'create', '--name', 'ci', '--role', 'viewer', '--days', '7', '--json']);
    expect(created.code, created.stderr).toBe(0);
    const { secret, token } = JSON.parse(created.stdout);
    expect(token).toMatchObject({ name: 'ci', projects: ['default'], roles: ['viewer'], ownerId: 'admin' });

    const asViewer = await cli(['experiments', 'list', '--json'], { MLPLANE_TOKEN: secret });
    expect(asViewer.code, asViewer.stderr).toBe(0);
    // A viewer may not create.
    expectOneLineFailure(
      await cli(['experiments', 'create', 'nope'], { MLPLANE_TOKEN: secret }),
      4,
      /403 PERMISSION_DENIED/,
    );

    const listed = await cli(['tokens', 'list']);
    expect(listed.stdout).toContain(token.id);
    const revoked = await cli(['tokens', 'revoke', token.id]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout.trim()).toBe(`revoked ${token.id}`);
    expectOneLineFailure(
      await cli(['experiments', 'list'], { MLPLANE_TOKEN: secret }),
      4,
      /401 UNAUTHENTICATED: the API token is unknown, expired or revoked/,
    );
  });

  it('answers bad input, unknown things and an unreachable server with one line and an exit code', async () => {
    expectOneLineFailure(await cli(['runs', 'show', 'no-such-run']), 5, /404 NOT_FOUND: run 'no-such-run'/);
    expectOneLineFailure(await cli(['experiments', 'create']), 2, /missing required argument 'name'/);
    expectOneLineFailure(await cli(['frobnicate']), 2, /unknown command 'frobnicate'/);
    expectOneLineFailure(await cli(['runs', 'list', '-e', '1', '--max', 'many']), 2, /--max.*positive integer/);
    expectOneLineFailure(await cli(['runs', 'compare', 'one']), 2, /at least two run ids/);
    expectOneLineFailure(await cli(['experiments', 'create', 'x', '--tag', 'novalue']), 2, /--tag takes key=value/);
    expectOneLineFailure(await cli(['experiments', 'list', '--project', 'no spaces']), 2, /--project must be/);
    expectOneLineFailure(await cli(['experiments', 'list', '--url', 'ftp://x']), 2, /--url must be an http/);
    // The server's own refusal of a value, with the field it names.
    expectOneLineFailure(
      await cli(['experiments', 'create', 'x'.repeat(2000)]),
      2,
      /400 VALIDATION: .*\(field: name\)/,
    );
    expectOneLineFailure(await cli(['experiments', 'list'], { MLPLANE_TOKEN: '' }), 4, /401 UNAUTHENTICATED/);
    const nowhere = `http://127.0.0.1:${await freePort()}`;
    expectOneLineFailure(
      await cli(['experiments', 'list'], { MLPLANE_URL: nowhere }),
      3,
      /cannot reach the mlplane server at .*ECONNREFUSED/,
    );
  });

  it('checks a config file offline', async () => {
    const good = join(dir, 'good.yaml');
    await writeFile(good, 'platform:\n  strict: true\npostgres:\n  connectionString: postgres://u@db:5432/mlplane\n');
    const checked = await mlplane(['config', 'check', good], { cwd: dir });
    expect(checked.code, checked.stderr).toBe(0);
    expect(checked.stdout).toContain('is valid (sections: platform, postgres)');

    const typo = join(dir, 'typo.yaml');
    await writeFile(
      typo,
      'postgres:\n  connectionString: postgres://u@db/m\n  maxConections: 5\nkafak:\n  brokers: []\n',
    );
    expectOneLineFailure(
      await mlplane(['config', 'check', typo], { cwd: dir }),
      2,
      /typo\.yaml is not valid: postgres\.maxConections: unknown config key; kafak: no plugin of the reference distribution reads this section/,
    );
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'kafka:\n  brokers: [no-port]\n');
    expectOneLineFailure(
      await mlplane(['config', 'check', bad], { cwd: dir }),
      2,
      /kafka\.brokers\.0: must be host:port/,
    );
    expectOneLineFailure(
      await mlplane(['config', 'check', join(dir, 'missing.yaml')], { cwd: dir }),
      2,
      /cannot read config file .*missing\.yaml/,
    );
  });
});

describe('restarting on the same data dir', { timeout: 60_000 }, () => {
  it('stops with exit code 0 on SIGTERM, and the next start does not print the admin token again', async () => {
    expect(await up.stop('SIGTERM')).toBe(0);
    expect(up.stderr()).toContain('SIGTERM, stopping');
    up = await startUp(['--data-dir', dataDir], { cwd: dir, port: await freePort() });
    expect(up.stdout()).not.toContain(adminToken);
    expect(up.stdout()).toContain(`Admin token: in ${join(dataDir, 'admin-token')}`);
    expect((await readFile(join(dataDir, 'admin-token'), 'utf8')).trim()).toBe(adminToken);
    // What the first process stored is there, and the token still works.
    const listed = await cli(['experiments', 'list', '--json']);
    expect(
      JSON.parse(listed.stdout)
        .items.map((e: { name: string }) => e.name)
        .sort(),
    ).toEqual(['artifacts', 'churn', 'fraud']);
    expect(await up.stop('SIGINT')).toBe(0);
  });
});
