import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AttemptLog, liveLines, MAX_LOG_LINE_BYTES, stampedLines, unstamp } from '../src/compute/job-logs.js';

async function all(lines: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const l of lines) out.push(l);
  return out;
}

describe('attempt logs', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mlplane-logs-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('stamps each line, keeps UTF-8 split between writes whole, and tags the unfinished last line', async () => {
    const base = join(dir, 'a');
    const { log, outputFd } = await AttemptLog.create(base);
    await outputFd.close();
    const text = Buffer.from('héllo wörld ✓\nsecond\nno newline', 'utf8');
    // Written in two pieces that split the 'é' between them.
    await appendFile(`${base}.out`, text.subarray(0, 2));
    log.start(5);
    await log.changed(200);
    await appendFile(`${base}.out`, text.subarray(2));
    await log.finish();
    const lines = await all(liveLines(log, { follow: false }));
    expect(lines.map((l) => unstamp(l, false))).toEqual(['héllo wörld ✓', 'second', 'no newline']);
    expect(lines.map((l) => l.slice(25, 26))).toEqual(['F', 'F', 'P']);
    const stamped = unstamp(lines[0]!, true);
    expect(stamped).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z héllo wörld ✓$/);
    // The stored copy reads the same, whatever the chunks of the stream.
    const bytes = await readFile(log.stampedPath);
    const chunks = Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1));
    expect(await all(stampedLines(Readable.from(chunks)))).toEqual(lines);
  });

  it('cuts a line longer than MAX_LOG_LINE_BYTES into pieces, and resumes after a restart without loss or repeats', async () => {
    const base = join(dir, 'b');
    const { log, outputFd } = await AttemptLog.create(base);
    await outputFd.close();
    const long = 'x'.repeat(MAX_LOG_LINE_BYTES + 10);
    await appendFile(`${base}.out`, `first\n${long}\nhalf`);
    log.start(5);
    await log.changed(500);
    await new Promise((r) => setTimeout(r, 50));
    log.stop();
    // A new platform picks the attempt up and the program goes on writing.
    const resumed = await AttemptLog.resume(base);
    await appendFile(`${base}.out`, ' done\nlast\n');
    await resumed.finish();
    const lines = (await all(liveLines(resumed, { follow: false }))).map((l) => unstamp(l, false));
    // Long lines are summarised so that a failure prints something readable.
    const shown = lines.map((l) => (l.length > 100 ? `${l[0]} x ${l.length}` : l));
    expect(shown).toEqual(['first', `x x ${MAX_LOG_LINE_BYTES}`, 'xxxxxxxxxx', 'half done', 'last']);
  });

  it('serves the last lines and ends a follow when the platform stops reading', async () => {
    const base = join(dir, 'c');
    const { log, outputFd } = await AttemptLog.create(base);
    await outputFd.close();
    await appendFile(`${base}.out`, '1\n2\n3\n');
    log.start(5);
    await log.changed(500);
    await new Promise((r) => setTimeout(r, 30));
    expect((await all(liveLines(log, { follow: false, tail: 2 }))).map((l) => unstamp(l, false))).toEqual(['2', '3']);
    const following = all(liveLines(log, { follow: true }));
    setTimeout(() => log.stop(), 100);
    expect((await following).map((l) => unstamp(l, false))).toEqual(['1', '2', '3']);
  });
});
