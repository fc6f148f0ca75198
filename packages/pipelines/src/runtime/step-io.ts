import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline as pump } from 'node:stream/promises';
import type { ArtifactStore } from '@mlplane/core';
import { ValidationError } from '@mlplane/core';
import type { z } from 'zod';
import { type ArtifactRef, isArtifactRef, isArtifactSchema } from '../define/artifact.js';

/** Environment a job step receives from the orchestrator. */
export const STEP_ENV = Object.freeze({
  /** A JSON file: input name -> value; artifacts as `{ key, uri, sha256, size, path }`. */
  inputs: 'MLPLANE_INPUTS',
  /** A directory: the step writes output `<name>` as the file `<name>` (an artifact's bytes, or a value's JSON). */
  outputs: 'MLPLANE_OUTPUTS',
  /** The pipeline run and the step's id in it. */
  pipelineRunId: 'MLPLANE_PIPELINE_RUN_ID',
  stepId: 'MLPLANE_STEP_ID',
});

/** Where pipeline outputs live in the ArtifactStore: by content, so equal bytes are one object whatever made them. */
export const ARTIFACT_PREFIX = 'pipelines/sha256';

/** Local copy of an artifact in the workspace, fetched once per workspace and shared by every step reading it. */
export async function localCopy(artifacts: ArtifactStore, workspace: string, ref: ArtifactRef): Promise<string> {
  const dir = join(workspace, 'blobs');
  const path = join(dir, ref.sha256);
  const known = await stat(path).catch(() => undefined);
  if (known?.size === ref.size) return path;
  await mkdir(dir, { recursive: true });
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const { body } = await artifacts.get(ref.key);
    const hash = createHash('sha256');
    body.on('data', (chunk: Buffer) => hash.update(chunk));
    await pump(body, createWriteStream(tmp, { mode: 0o444 }));
    const sha256 = hash.digest('hex');
    if (sha256 !== ref.sha256) {
      throw new ValidationError(`artifact ${ref.key} reads back with sha256 ${sha256}, not ${ref.sha256}`, {
        field: 'sha256',
      });
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return path;
}

/** Input values with a local path added to every artifact (also inside lists). */
export async function withLocalPaths(
  artifacts: ArtifactStore,
  workspace: string,
  inputs: Readonly<Record<string, unknown>>,
): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  const local = async (v: unknown): Promise<unknown> =>
    isArtifactRef(v) ? { ...v, path: await localCopy(artifacts, workspace, v) } : v;
  for (const [name, value] of Object.entries(inputs)) {
    out[name] =
      Array.isArray(value) && value.some(isArtifactRef) ? await Promise.all(value.map(local)) : await local(value);
  }
  return out;
}

/** Stores a file under its content hash; an object with the same hash already there is reused. */
export async function storeFile(artifacts: ArtifactStore, path: string): Promise<ArtifactRef> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  const sha256 = hash.digest('hex');
  const key = `${ARTIFACT_PREFIX}/${sha256}`;
  if (!(await artifacts.exists(key))) {
    await artifacts.put(key, createReadStream(path), { expectedSha256: sha256 });
  }
  return { key, uri: artifacts.uri(key), sha256, size } as ArtifactRef;
}

/**
 * Reads what a job step wrote to its outputs directory, stores its artifacts and checks every value against its
 * schema. ValidationError naming `steps.<id>.outputs.<name>` for a missing or malformed output.
 */
export async function collectOutputs(
  artifacts: ArtifactStore,
  dir: string,
  schemas: Readonly<Record<string, z.ZodType>>,
  stepId: string,
): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(schemas)) {
    const field = `steps.${stepId}.outputs.${name}`;
    const path = join(dir, name);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) {
      throw new ValidationError(
        `step '${stepId}' wrote no output '${name}' (expected the file $${STEP_ENV.outputs}/${name})`,
        {
          field,
        },
      );
    }
    if (isArtifactSchema(schema)) {
      out[name] = await storeFile(artifacts, path);
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(await readFile(path, 'utf8'));
    } catch (err) {
      throw new ValidationError(`output '${name}' of step '${stepId}' is not JSON: ${(err as Error).message}`, {
        field,
        cause: err,
      });
    }
    out[name] = checkOutput(schema, value, stepId, name);
  }
  return out;
}

/** The value parsed by its output schema; ValidationError naming the field when it does not fit. */
export function checkOutput(schema: z.ZodType, value: unknown, stepId: string, name: string): unknown {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
    throw new ValidationError(
      `output '${name}' of step '${stepId}' fails its schema${where}: ${issue?.message ?? 'invalid'} (got ${JSON.stringify(value)?.slice(0, 100)})`,
      { field: `steps.${stepId}.outputs.${name}` },
    );
  }
  return parsed.data;
}

/** Whether every artifact among `outputs` is still in the store (a reuse needs them). */
export async function artifactsPresent(
  artifacts: ArtifactStore,
  outputs: Readonly<Record<string, unknown>>,
): Promise<string | undefined> {
  for (const value of Object.values(outputs)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (isArtifactRef(v) && !(await artifacts.exists(v.key))) return v.key;
    }
  }
  return undefined;
}

/** Written whole or not at all (a job of the same attempt may already be reading it after a resume). */
export async function writeInputsFile(path: string, inputs: Readonly<Record<string, unknown>>): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, JSON.stringify(inputs, null, 2));
  await rename(tmp, path);
}
