import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, open, rm, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AuditIntegrityError, auditLogRef, type Platform, PluginFailedError, type RawConfig } from '@mlplane/core';
import { readAll } from '@mlplane/core/testing';
import { AUDIT_LOSS_ACCEPTED } from '@mlplane/sql';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalArtifactStore } from '../src/artifact-store/local-artifact-store.js';
import { createPlatform } from '../src/create-platform.js';
import { SqliteMetadataStore } from '../src/metadata-store/sqlite-metadata-store.js';

const run = promisify(execFile);
const child = join(import.meta.dirname, 'fixtures', 'audit-crash-child.ts');
// Run the child from source, so it tests this checkout and not a stale build.
const nodeArgs = ['--conditions=@mlplane/source', '--import', 'tsx', child];
const cwd = join(import.meta.dirname, '..');

interface Written {
  readonly headSeq: number;
  readonly checkpointSeq: number;
}

/** Starts the `write` phase and resolves with what it printed once its batches are audited and checkpointed. */
async function writeUntilCheckpointed(dataDir: string, masterKey: string, runId: string) {
  const proc = spawn(process.execPath, [...nodeArgs, dataDir, masterKey, 'write', runId], { cwd });
  let out = '';
  let err = '';
  proc.stderr.on('data', (d) => {
    err += d;
  });
  const written = await new Promise<Written>((resolve, reject) => {
    proc.stdout.on('data', (d) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line && out.includes('\n')) resolve(JSON.parse(line) as Written);
    });
    proc.once('exit', (code) => reject(new Error(`the writer exited (${code}) before reporting: ${err}`)));
  });
  return { proc, written };
}

async function kill9(proc: ChildProcess): Promise<void> {
  const exited = once(proc, 'exit');
  proc.kill('SIGKILL');
  const [code, signal] = await exited;
  expect({ code, signal }).toEqual({ code: null, signal: 'SIGKILL' });
}

function platformOn(dataDir: string, masterKey: string, config: RawConfig = {}): Platform {
  return createPlatform({
    plugins: [],
    config: {
      platform: { signals: [], shutdownDeadlineMs: 5_000 },
      embedded: { dataDir, secrets: { masterKey } },
      ...config,
    },
    log: { level: 'silent' },
  });
}

/**
 * The newest audit checkpoint in the data dir, read after the writer died: the writer keeps checkpointing (every
 * 50 ms) between reporting and its kill, so the checkpoint it printed may not be the last one.
 */
async function latestCheckpointSeq(dataDir: string): Promise<number> {
  const artifacts = await LocalArtifactStore.open({ root: join(dataDir, 'artifacts') });
  try {
    const { items } = await artifacts.list({ prefix: 'audit/checkpoints/' });
    const latest = items.find((i) => i.key.endsWith('/latest.json'));
    if (!latest) return 0;
    const { body } = await artifacts.get(latest.key);
    return (JSON.parse((await readAll(body)).toString('utf8')) as { seq: number }).seq;
  } finally {
    await artifacts.close();
  }
}

/** What the database holds now: the audit head and the run's params. */
async function databaseState(dataDir: string, runId: string): Promise<{ headSeq: number; params: string[] }> {
  const store = await SqliteMetadataStore.open({ path: join(dataDir, 'metadata.db') });
  try {
    const head = await store.db().selectFrom('audit_head').select('seq').executeTakeFirstOrThrow();
    const params = await store.db().selectFrom('params').select('key').where('run_id', '=', runId).execute();
    return { headSeq: Number(head.seq), params: params.map((p) => p.key as string).sort() };
  } finally {
    await store.close();
  }
}

describe('a platform whose SQLite store lost acknowledged writes in a crash (kill -9, then the WAL)', () => {
  let dataDir: string | undefined;
  afterEach(async () => {
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  async function crashAfterWrites(): Promise<
    { dataDir: string; masterKey: string; runId: string; seedHead: number } & Written
  > {
    dataDir = await mkdtemp(join(tmpdir(), 'mlplane-crash-'));
    const masterKey = randomBytes(32).toString('base64');
    const seeded = await run(process.execPath, [...nodeArgs, dataDir, masterKey, 'seed'], { cwd });
    const { runId, headSeq: seedHead } = JSON.parse(seeded.stdout) as { runId: string; headSeq: number };
    const { proc, written } = await writeUntilCheckpointed(dataDir, masterKey, runId);
    await kill9(proc);
    expect(written.checkpointSeq).toBeGreaterThan(seedHead);
    const checkpointSeq = await latestCheckpointSeq(dataDir);
    expect(checkpointSeq).toBeGreaterThanOrEqual(written.checkpointSeq);
    // The writes since the clean stop live in the WAL only: that is what the crash damage takes.
    expect((await stat(join(dataDir, 'metadata.db-wal'))).size).toBeGreaterThan(0);
    return { dataDir, masterKey, runId, seedHead, ...written, checkpointSeq };
  }

  async function refusal(dir: string, masterKey: string): Promise<AuditIntegrityError> {
    const platform = platformOn(dir, masterKey);
    const err = await platform.start().then(
      () => platform.stop().then(() => undefined),
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PluginFailedError);
    expect((err as Error).message).toContain("plugin 'management' failed to create 'core.auditLog'");
    const cause = (err as Error).cause;
    expect(cause).toBeInstanceOf(AuditIntegrityError);
    return cause as AuditIntegrityError;
  }

  it('refuses to start when the WAL was deleted, naming the lost entries; acceptLoss then starts it', async () => {
    const crashed = await crashAfterWrites();
    await unlink(join(crashed.dataDir, 'metadata.db-wal'));
    await unlink(join(crashed.dataDir, 'metadata.db-shm')).catch(() => undefined);
    // The fault hit: the database is back at the clean stop, the acknowledged batches are gone.
    const state = await databaseState(crashed.dataDir, crashed.runId);
    expect(state).toEqual({ headSeq: crashed.seedHead, params: ['p0'] });

    const err = await refusal(crashed.dataDir, crashed.masterKey);
    const lost = { fromSeq: crashed.seedHead + 1, toSeq: crashed.checkpointSeq };
    expect(err).toMatchObject({ problem: 'lost-entries', lost });
    expect(err.message).toContain(`entries ${lost.fromSeq} to ${lost.toSeq}`);
    expect(err.message).toContain('management.audit.acceptLoss');

    // Accepting exactly that loss starts the platform and records it.
    const accepted = platformOn(crashed.dataDir, crashed.masterKey, { management: { audit: { acceptLoss: lost } } });
    await accepted.start();
    try {
      const audit = await accepted.get(auditLogRef);
      const marks = (await audit.list({ action: AUDIT_LOSS_ACCEPTED })).items;
      expect(marks.map((m) => m.details)).toEqual([
        expect.objectContaining({ fromSeq: lost.fromSeq, toSeq: lost.toSeq }),
      ]);
      expect(await audit.verify()).toMatchObject({ ok: true });
    } finally {
      await accepted.stop();
    }
    // And later starts need no option.
    const later = platformOn(crashed.dataDir, crashed.masterKey);
    await later.start();
    await later.stop();
  }, 90_000);

  it('refuses to start when the WAL was corrupted (SQLite drops the frames from the damage on)', async () => {
    const crashed = await crashAfterWrites();
    const walPath = join(crashed.dataDir, 'metadata.db-wal');
    const wal = await open(walPath, 'r+');
    try {
      const header = Buffer.alloc(32);
      await wal.read(header, 0, 32, 0);
      const pageSize = header.readUInt32BE(8);
      const frames = Math.floor(((await wal.stat()).size - 32) / (24 + pageSize));
      expect(frames).toBeGreaterThan(2);
      // Garbage in the page of the middle frame: its checksum fails, so recovery ignores it and every later frame.
      const middle = 32 + Math.floor(frames / 2) * (24 + pageSize);
      await wal.write(randomBytes(64), 0, 64, middle + 24 + 100);
    } finally {
      await wal.close();
    }
    const state = await databaseState(crashed.dataDir, crashed.runId);
    // The fault hit: entries the checkpoint holds are gone (how many depends on where the middle frame fell).
    expect(state.headSeq).toBeLessThan(crashed.checkpointSeq);
    expect(state.headSeq).toBeGreaterThanOrEqual(crashed.seedHead);

    const err = await refusal(crashed.dataDir, crashed.masterKey);
    expect(err).toMatchObject({
      problem: 'lost-entries',
      lost: { fromSeq: state.headSeq + 1, toSeq: crashed.checkpointSeq },
    });
  }, 90_000);
});
