// Figure 4: plugin-s3 against the raw AWS SDK on the same S3-compatible server, side by side in one run. Upload and
// download MiB/s of 8 MiB, 256 MiB and 1 GiB objects; the contenders alternate in rounds, so the shared machine's
// changing load hits them alike. The raw SDK is lib-storage's `Upload` with the same part size and concurrency and the
// SDK's defaults (a CRC32 per part); plugin-s3 hashes the whole body with SHA-256 and sends a SHA-256 per part, which
// the server verifies, and records the hash (see docs/plugins/s3.md). Downloads read the same object with both (the SDK
// validates its full-object checksum while streaming in both cases). Client RSS growth during a 1 GiB transfer is
// measured in a fresh child process per contender and direction (bench/s3-rss.ts), so one measurement's heap is not
// the next one's baseline.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { S3ConfigInput } from '../packages/plugin-s3/src/config.js';
import { S3ArtifactStore } from '../packages/plugin-s3/src/s3-artifact-store.js';
import { figure, type Measured } from './lib.js';

export interface S3Sizes {
  /** Object sizes in MiB, each with its number of rounds (every round: both contenders, both directions). */
  readonly objects: readonly { readonly mib: number; readonly rounds: number }[];
  /** The transfer whose client RSS growth is measured, in MiB. */
  readonly rssMiB: number;
}

export const S3_GOAL_RATIO = 0.8;
export const S3_GOAL_RSS_MIB = 128;
const MiB = 1024 * 1024;
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The bench's S3 config from MLPLANE_S3_* (scripts/peers env); undefined when they are not set. */
export function s3ConfigFromEnv(): S3ConfigInput | undefined {
  const e = process.env;
  if (!e.MLPLANE_S3_ENDPOINT || !e.MLPLANE_S3_BUCKET || !e.MLPLANE_S3_ACCESS_KEY || !e.MLPLANE_S3_SECRET_KEY) {
    return undefined;
  }
  return {
    bucket: e.MLPLANE_S3_BUCKET,
    endpoint: e.MLPLANE_S3_ENDPOINT,
    region: e.MLPLANE_S3_REGION || 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: e.MLPLANE_S3_ACCESS_KEY, secretAccessKey: e.MLPLANE_S3_SECRET_KEY },
    prefix: `mlplane-bench-${randomBytes(4).toString('hex')}/`,
  };
}

/** The raw SDK client for the same server, with the SDK's defaults otherwise. */
export function rawClient(config: S3ConfigInput): S3Client {
  return new S3Client({
    region: config.region ?? 'us-east-1',
    forcePathStyle: config.forcePathStyle ?? false,
    ...(config.endpoint ? { endpoint: config.endpoint } : {}),
    ...(config.credentials ? { credentials: config.credentials } : {}),
  });
}

const block = randomBytes(8 * MiB);

/** `mib` MiB in 1 MiB chunks cut from one random block: generating the body costs next to nothing. */
export async function* body(mib: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < mib; i++) yield block.subarray((i % 8) * MiB, ((i % 8) + 1) * MiB);
}

/** The two ways to move bytes that the figures compare. */
export interface Contenders {
  readonly store: S3ArtifactStore;
  readonly raw: S3Client;
  readonly bucket: string;
  readonly prefix: string;
}

export async function upload(c: Contenders, who: 'ours' | 'raw', key: string, mib: number): Promise<void> {
  if (who === 'ours') {
    await c.store.put(key, body(mib));
    return;
  }
  await new Upload({
    client: c.raw,
    params: { Bucket: c.bucket, Key: c.prefix + key, Body: Readable.from(body(mib)) },
    partSize: c.store.config.partSizeMiB * MiB,
    queueSize: c.store.config.concurrency,
  }).done();
}

/** Reads the whole object and drops the bytes; resolves to the bytes read. */
export async function download(c: Contenders, who: 'ours' | 'raw', key: string): Promise<number> {
  const stream =
    who === 'ours'
      ? (await c.store.get(key)).body
      : ((await c.raw.send(new GetObjectCommand({ Bucket: c.bucket, Key: c.prefix + key }))).Body as Readable);
  let bytes = 0;
  for await (const chunk of stream) bytes += (chunk as Buffer).length;
  return bytes;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function sizeLabel(mib: number): string {
  return mib >= 1024 ? `${mib / 1024} GiB` : `${mib} MiB`;
}

async function rssChild(
  config: S3ConfigInput,
  who: 'ours' | 'raw',
  direction: 'upload' | 'download',
  key: string,
  mib: number,
): Promise<{ growthMiB: number; mibPerS: number }> {
  const out = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      ['--conditions=@mlplane/source', '--import', 'tsx', join(ROOT, 'bench', 's3-rss.ts')],
      {
        cwd: ROOT,
        env: {
          ...process.env,
          BENCH_S3_CONFIG: JSON.stringify(config),
          BENCH_S3_RSS: JSON.stringify({ who, direction, key, mib }),
        },
        timeout: 600_000,
        maxBuffer: 1 << 20,
      },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)),
    );
  });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

/** The figures, and each size's per-round rates, for the docs: at this machine's load single rounds vary a lot. */
export interface S3Results {
  readonly figures: Measured[];
  readonly rounds: string[];
}

export async function s3Bench(sizes: S3Sizes, config: S3ConfigInput): Promise<S3Results> {
  const store = await S3ArtifactStore.connect(config);
  const raw = rawClient(config);
  const c: Contenders = { store, raw, bucket: config.bucket, prefix: store.config.prefix };
  const parts = `${store.config.partSizeMiB} MiB parts x ${store.config.concurrency}`;
  const out: Measured[] = [];
  const perRound: string[] = [];
  try {
    // Warm-up: sockets, module loading and the JIT, for both.
    for (const who of ['ours', 'raw'] as const) {
      await upload(c, who, `warm-${who}`, 8);
      await download(c, who, `warm-${who}`);
    }
    for (const { mib, rounds } of sizes.objects) {
      const rates = {
        up: { ours: [] as number[], raw: [] as number[] },
        down: { ours: [] as number[], raw: [] as number[] },
      };
      for (let r = 0; r < rounds; r++) {
        const order = r % 2 === 0 ? (['ours', 'raw'] as const) : (['raw', 'ours'] as const);
        for (const who of order) {
          const t = performance.now();
          await upload(c, who, `${who}-${mib}`, mib);
          rates.up[who].push(mib / ((performance.now() - t) / 1000));
        }
        // Both read the object plugin-s3 wrote: the same bytes and the same checksum to validate.
        for (const who of order) {
          const t = performance.now();
          const bytes = await download(c, who, `ours-${mib}`);
          if (bytes !== mib * MiB) throw new Error(`download of ${mib} MiB by ${who} read ${bytes} bytes`);
          rates.down[who].push(mib / ((performance.now() - t) / 1000));
        }
        console.log(
          `  s3 ${sizeLabel(mib)} round ${r + 1}/${rounds}: up ours ${rates.up.ours.at(-1)!.toFixed(0)} raw ${rates.up.raw.at(-1)!.toFixed(0)} MiB/s, down ours ${rates.down.ours.at(-1)!.toFixed(0)} raw ${rates.down.raw.at(-1)!.toFixed(0)} MiB/s`,
        );
      }
      const list = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ');
      perRound.push(
        `${sizeLabel(mib)} upload, ours: ${list(rates.up.ours)}; raw: ${list(rates.up.raw)}`,
        `${sizeLabel(mib)} download, ours: ${list(rates.down.ours)}; raw: ${list(rates.down.raw)}`,
      );
      for (const [direction, label] of [
        ['up', 'upload'],
        ['down', 'download'],
      ] as const) {
        const ours = median(rates[direction].ours);
        const peer = median(rates[direction].raw);
        out.push(
          figure(
            `s3 ${label} ${sizeLabel(mib)}, plugin-s3 (sha256) vs raw SDK, ${parts}`,
            'MiB/s',
            ours,
            peer,
            'higher-is-better',
            {
              peerIs: direction === 'up' ? 'raw SDK Upload, same parts and concurrency' : 'raw SDK GetObject',
              goal: { text: `≥ ${S3_GOAL_RATIO} of the raw SDK`, met: ours / peer >= S3_GOAL_RATIO },
            },
          ),
        );
      }
      await store.deleteMany([`ours-${mib}`, `raw-${mib}`]);
    }

    // RSS: the download reads an object plugin-s3 wrote, put there first.
    await upload(c, 'ours', `rss-${sizes.rssMiB}`, sizes.rssMiB);
    for (const direction of ['upload', 'download'] as const) {
      const measured = { ours: 0, raw: 0 };
      for (const who of ['raw', 'ours'] as const) {
        const key = direction === 'upload' ? `rss-up-${who}` : `rss-${sizes.rssMiB}`;
        const result = await rssChild(config, who, direction, key, sizes.rssMiB);
        measured[who] = result.growthMiB;
        console.log(
          `  s3 RSS growth, ${direction} of ${sizeLabel(sizes.rssMiB)} by ${who}: ${result.growthMiB.toFixed(1)} MiB`,
        );
      }
      out.push(
        figure(
          `s3 client RSS growth during a ${sizeLabel(sizes.rssMiB)} ${direction}, plugin-s3 vs raw SDK, ${parts}`,
          'MiB',
          measured.ours,
          measured.raw,
          'lower-is-better',
          {
            peerIs: direction === 'upload' ? 'raw SDK Upload' : 'raw SDK GetObject',
            goal: { text: `< ${S3_GOAL_RSS_MIB} MiB`, met: measured.ours < S3_GOAL_RSS_MIB },
          },
        ),
      );
    }
  } finally {
    // Both contenders wrote under the bench's own prefix, so one listing finds everything to remove.
    const left = await store.list({});
    if (left.items.length) await store.deleteMany(left.items.map((i) => i.key));
    raw.destroy();
    store.close();
  }
  return { figures: out, rounds: perRound };
}
