// docs/deployment.md's production config, run by `mlplane up --config` on the real servers of scripts/peers:
// PostgreSQL, the Redis cache and S3 as the docs have them (their addresses and credentials from the peers), with
// Redis Streams in place of Kafka as the EventBus. platform.strict is on: every port but the secret store, which the
// config names, runs on a server.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deepMerge } from '@mlplane/core';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { redisUrl, uniqueName } from '../../../test-support/peers-env.js';
import { dropSchema, freshSchema, pgUrl } from '../../../test-support/pg-env.js';
import { PRODUCTION_ENV, productionConfigOfDocs } from './deployment-doc.js';
import { cleanEnv, freePort, mlplane, startUp, type UpProcess } from './processes.js';

function s3Env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run scripts/peers up s3, then eval "$(scripts/peers env)"`);
  return value;
}

const schema = freshSchema('cli_deploy');
let dir: string | undefined;
let up: UpProcess | undefined;
afterAll(async () => {
  await up?.stop('SIGKILL');
  await dropSchema(schema);
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('mlplane up --config with the production config of docs/deployment.md', () => {
  it('starts strict on PostgreSQL, Redis and S3, serves the CLI, and stops with exit code 0', async () => {
    dir = await mkdtemp(join(tmpdir(), 'mlplane-deploy-'));
    const { kafka: _, ...documented } = parse(await productionConfigOfDocs()) as Record<string, unknown>;
    const config = deepMerge(documented, {
      embedded: { dataDir: join(dir, 'data') },
      postgres: { connectionString: pgUrl(), schema },
      'redis-streams': { url: redisUrl(), stream: uniqueName('mlplane-cli') },
      'redis-cache': { url: redisUrl(), keyPrefix: `${uniqueName('mlplane-cli')}:` },
      s3: {
        bucket: s3Env('MLPLANE_S3_BUCKET'),
        prefix: `${uniqueName('cli-deploy')}/`,
        region: s3Env('MLPLANE_S3_REGION'),
        endpoint: s3Env('MLPLANE_S3_ENDPOINT'),
        forcePathStyle: true,
        credentials: { accessKeyId: s3Env('MLPLANE_S3_ACCESS_KEY'), secretAccessKey: s3Env('MLPLANE_S3_SECRET_KEY') },
      },
    });
    const file = join(dir, 'mlplane.yaml');
    await writeFile(file, stringify(config));
    const checked = await mlplane(['config', 'check', file], { cwd: dir, env: cleanEnv(PRODUCTION_ENV) });
    expect(checked.code, checked.stderr).toBe(0);

    up = await startUp(['--config', file], { cwd: dir, port: await freePort(), env: PRODUCTION_ENV });
    expect(up.stdout()).toContain(`config ${file}`);
    const token = (await readFile(join(dir, 'data', 'admin-token'), 'utf8')).trim();
    const cli = (args: readonly string[]) =>
      mlplane(args, { cwd: dir!, env: cleanEnv({ MLPLANE_URL: up!.url, MLPLANE_TOKEN: token }) });

    const experiment = JSON.parse((await cli(['experiments', 'create', 'prod', '--json'])).stdout);
    const runs = await fetch(`${up.url}/api/v1/projects/default/runs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ experimentId: experiment.id }),
    });
    expect(runs.status).toBe(201);
    const runId = ((await runs.json()) as { info: { id: string } }).info.id;
    const blob = randomBytes(3 * 1024 * 1024);
    await writeFile(join(dir, 'model.bin'), blob);
    const uploaded = await cli(['artifacts', 'upload', runId, 'model.bin', '--json']);
    expect(uploaded.code, uploaded.stderr).toBe(0);
    expect(JSON.parse(uploaded.stdout).sha256).toBe(createHash('sha256').update(blob).digest('hex'));
    const downloaded = await cli(['artifacts', 'download', runId, 'model.bin', '-o', 'back.bin']);
    expect(downloaded.code, downloaded.stderr).toBe(0);
    expect((await readFile(join(dir, 'back.bin'))).equals(blob)).toBe(true);
    const listed = await cli(['experiments', 'list', '--json']);
    expect(JSON.parse(listed.stdout).items.map((e: { name: string }) => e.name)).toEqual(['prod']);

    expect(await up.stop('SIGTERM')).toBe(0);
    up = undefined;
  });
});
