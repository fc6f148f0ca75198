// docs/deployment.md's production config must be one `mlplane config check` accepts and `mlplane up --config` reads
// as strict; deployment.integration.test.ts starts it on the real servers.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '@mlplane/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkConfig } from '../src/index.js';
import { PRODUCTION_ENV, productionConfigOfDocs } from './deployment-doc.js';

let dir: string;
let file: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mlplane-deployment-'));
  file = join(dir, 'mlplane.yaml');
  await writeFile(file, await productionConfigOfDocs());
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('docs/deployment.md', () => {
  it('shows a production config that validates, on PostgreSQL, Kafka, the Redis cache and S3, strict', async () => {
    const checked = await checkConfig(file, PRODUCTION_ENV);
    expect(checked.problems).toEqual([]);
    expect(checked.sections).toEqual(['platform', 'embedded', 'postgres', 'kafka', 'redis-cache', 's3']);
    const config = await loadConfig({ files: [file], env: PRODUCTION_ENV });
    expect(config.platform).toMatchObject({ strict: true, providers: { 'core.secretStore': 'embedded' } });
    expect(config.kafka).toMatchObject({ brokers: ['kafka.internal:9092'] });
  });

  it('is refused with the reason when an environment variable it names is missing', async () => {
    const { MLPLANE_KAFKA_BROKER: _, ...partial } = PRODUCTION_ENV;
    await expect(checkConfig(file, partial)).rejects.toThrow(/references environment variable MLPLANE_KAFKA_BROKER/);
  });
});
