import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { ok, type ResultOf } from '@mlplane/client';
import { SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import type { Connection } from '../connection.js';
import { CliError, EXIT, type Output, show, table } from '../output.js';
import { type Action, positiveInt } from './shared.js';

const UPLOAD = '/api/v1/projects/{project}/runs/{runId}/artifacts/{path}' as const;

export function artifactCommands(program: Command, action: Action): void {
  const artifacts = program.command('artifacts').description("a run's artifacts: upload, download, list");
  artifacts
    .command('upload')
    .description("upload a file, or a directory's files, below the run's artifact root, with a progress bar")
    .argument('<run-id>')
    .argument('<local-path>', 'a file or a directory')
    .option('--path <dest>', 'where under the artifact root (default: the file or directory name)')
    .action(
      action(async (connection, out, runId: string, local: string, opts: { path?: string }) => {
        const info = await stat(local).catch(() => {
          throw new CliError(`no such file or directory: ${local}`, EXIT.usage);
        });
        const dest = (opts.path ?? basename(local)).replace(/^\/+|\/+$/g, '');
        const files = info.isDirectory()
          ? (await walk(local)).map((file) => ({
              file,
              path: [dest, ...relative(local, file).split(sep)].filter(Boolean).join('/'),
            }))
          : [{ file: local, path: dest }];
        const stored: ResultOf<'uploadRunArtifact'>[] = [];
        for (const { file, path } of files) stored.push(await upload(connection, out, runId, file, path));
        show(out, files.length === 1 && !info.isDirectory() ? stored[0] : { items: stored }, () =>
          table(
            ['PATH', 'SIZE', 'SHA256'],
            stored.map((s) => [s.path, s.size, s.sha256 ?? '']),
          ),
        );
      }),
    );
  artifacts
    .command('download')
    .description('download a file of the run, with a progress bar')
    .argument('<run-id>')
    .argument('<path>', "the file's path under the artifact root")
    .option('-o, --output <file>', 'where to write it (default: its name, in the current directory)')
    .action(
      action(async (connection, out, runId: string, path: string, opts: { output?: string }) => {
        const target = opts.output ?? basename(path);
        const written = await download(connection, out, runId, path, target);
        show(out, { path, file: target, size: written }, () => `${path} -> ${target} (${written} bytes)`);
      }),
    );
  artifacts
    .command('list')
    .description('one directory level of the run’s artifacts')
    .argument('<run-id>')
    .option('--path <dir>', 'the directory (default: the root)')
    .option('--max <n>', 'at most this many', positiveInt, 1000)
    .action(
      action(async ({ client, project }, out, runId: string, opts: { path?: string; max: number }) => {
        const page = await ok(
          client.GET('/api/v1/projects/{project}/runs/{runId}/artifacts', {
            params: {
              path: { project, runId },
              query: { maxResults: opts.max, ...(opts.path ? { path: opts.path } : {}) },
            },
          }),
        );
        show(out, page, () =>
          table(
            ['PATH', 'SIZE'],
            page.items.map((a) => [a.isDir ? `${a.path}/` : a.path, a.size]),
          ),
        );
      }),
    );
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await walk(path)));
    else if (entry.isFile()) out.push(path);
  }
  return out.sort();
}

/** A progress bar on stderr for `total` bytes; silent with --json or when stderr is not a terminal. */
function progress(out: Output, label: string, total: number | undefined) {
  if (out.json || !process.stderr.isTTY) return { tick: (_n: number) => undefined, stop: () => undefined };
  const bar = new SingleBar({
    format: `${label} [{bar}] {percentage}% {value}/{total} bytes`,
    stream: process.stderr,
    hideCursor: true,
  });
  bar.start(total ?? 0, 0);
  let done = 0;
  return {
    tick: (n: number) => {
      done += n;
      if (total === undefined) bar.setTotal(done);
      bar.update(done);
    },
    stop: () => bar.stop(),
  };
}

/** A pass-through stream that reports each chunk's size. */
const counting = (tick: (n: number) => void) =>
  new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      tick(chunk.length);
      callback(null, chunk);
    },
  });

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

/**
 * Streams one file to the server. Its sha256 goes first in `x-content-sha256`, so the store refuses a body that
 * arrived otherwise than it left.
 */
async function upload({ client, project }: Connection, out: Output, runId: string, file: string, path: string) {
  const { size } = await stat(file);
  const sha256 = await sha256Of(file);
  const bar = progress(out, path, size);
  try {
    const body = Readable.toWeb(createReadStream(file).pipe(counting(bar.tick)));
    return await ok(
      client.PUT(UPLOAD, {
        params: { path: { project, runId, path } },
        body,
        // The stream is the body as it is: no JSON.
        bodySerializer: (stream) => stream,
        headers: { 'content-type': 'application/octet-stream', 'x-content-sha256': sha256 },
        // A streamed request body needs half-duplex fetch.
        duplex: 'half',
      }),
    );
  } finally {
    bar.stop();
  }
}

/** Streams one file from the server into `target` (written beside it first, renamed when complete). */
async function download(
  { client, project }: Connection,
  out: Output,
  runId: string,
  path: string,
  target: string,
): Promise<number> {
  const { data, response } = await client.GET(UPLOAD, {
    params: { path: { project, runId, path } },
    parseAs: 'stream',
  });
  if (!data) throw new CliError(`the server sent no content for ${path}`, EXIT.failure);
  const length = response.headers.get('content-length');
  const total = length === null ? undefined : Number(length);
  await mkdir(dirname(target) || '.', { recursive: true });
  const partial = `${target}.partial`;
  const bar = progress(out, path, total);
  let written = 0;
  try {
    await pipeline(
      Readable.fromWeb(data as unknown as WebReadableStream<Uint8Array>),
      counting((n) => {
        written += n;
        bar.tick(n);
      }),
      createWriteStream(partial),
    );
    if (total !== undefined && written !== total) {
      throw new CliError(`${path}: received ${written} of ${total} bytes; nothing written`, EXIT.failure);
    }
    await rename(partial, target);
    return written;
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  } finally {
    bar.stop();
  }
}
