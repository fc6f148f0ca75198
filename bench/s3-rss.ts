// Child process of bench/s3.ts: one 1 GiB transfer by one contender, with the process's RSS sampled every 10 ms.
// Prints one JSON line: the growth over the RSS measured after a warm-up transfer, and the rate.
import { S3ArtifactStore } from '../packages/plugin-s3/src/s3-artifact-store.js';
import { download, rawClient, upload } from './s3.js';

const config = JSON.parse(process.env.BENCH_S3_CONFIG!);
const { who, direction, key, mib } = JSON.parse(process.env.BENCH_S3_RSS!) as {
  who: 'ours' | 'raw';
  direction: 'upload' | 'download';
  key: string;
  mib: number;
};
const store = await S3ArtifactStore.connect(config);
const raw = rawClient(config);
const c = { store, raw, bucket: config.bucket as string, prefix: store.config.prefix };
try {
  // A warm-up of the same kind loads the modules and fills the socket pool, which a baseline should include.
  await upload(c, who, `rss-warm-${who}`, 32);
  if (direction === 'download') await download(c, who, `rss-warm-${who}`);
  const baseline = process.memoryUsage.rss();
  let peak = baseline;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 10);
  const t = performance.now();
  if (direction === 'upload') await upload(c, who, key, mib);
  else await download(c, who, key);
  const seconds = (performance.now() - t) / 1000;
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage.rss());
  console.log(JSON.stringify({ growthMiB: (peak - baseline) / 2 ** 20, mibPerS: mib / seconds }));
} finally {
  await store.deleteMany([`rss-warm-${who}`]).catch(() => undefined);
  raw.destroy();
  store.close();
}
