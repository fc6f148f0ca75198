import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/** docs/deployment.md, whose production config the tests run. */
export const DEPLOYMENT_DOC = fileURLToPath(new URL('../../../docs/deployment.md', import.meta.url));

/** The ```yaml block of the section "A production config" in docs/deployment.md, as the reader copies it. */
export async function productionConfigOfDocs(): Promise<string> {
  const text = await readFile(DEPLOYMENT_DOC, 'utf8');
  const section = text.slice(text.indexOf('## A production config'));
  const match = /```yaml\n([\s\S]*?)```/.exec(section);
  if (!match) throw new Error('docs/deployment.md has no ```yaml block under "A production config"');
  return match[1]!;
}

/** The environment the production config references, with values of the right shape. */
export const PRODUCTION_ENV = {
  MLPLANE_MASTER_KEY: Buffer.alloc(32, 7).toString('base64'),
  MLPLANE_PG_HOST: 'db.internal',
  MLPLANE_KAFKA_BROKER: 'kafka.internal:9092',
  MLPLANE_REDIS_HOST: 'redis.internal',
};
