import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ModelVersion } from '@mlplane/core';
import {
  ConflictError,
  type Deployment,
  type DeploymentSpec,
  type ModelPackager,
  ModelPackagerSet,
  type ModelServerCapabilities,
  modelPackagersExtensionPoint,
  NotFoundError,
  parseModelReference,
  planRollout,
  resolveModelReference,
  trafficOf,
  ValidationError,
  validateDeploymentSpec,
} from '@mlplane/core';
import { SqliteMetadataStore } from '@mlplane/defaults';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqlModelRegistry } from '../src/registry/sql-model-registry.js';

const spec: DeploymentSpec = {
  name: 'fraud',
  project: 'risk',
  model: 'models:/fraud@champion',
  runtime: 'torchserve',
  protocol: 'torchserve',
  handler: 'handler.py',
  replicas: { min: 1, max: 4 },
};

const torchserve: ModelServerCapabilities = {
  protocols: ['torchserve', 'oip-v2'],
  runtimes: ['torchserve'],
  binaryTensors: true,
  canary: true,
  shadow: false,
  autoscaling: false,
  gpu: true,
  grpc: true,
  batching: true,
};

/** The state a server would hold after applying `plan`, as each server keeps it. */
function applied(
  plan: ReturnType<typeof planRollout>,
): Pick<Deployment, 'name' | 'spec' | 'previousSpec' | 'generation'> {
  return {
    name: plan.name,
    spec: plan.spec,
    ...(plan.rollbackSpec ? { previousSpec: plan.rollbackSpec } : {}),
    generation: plan.noop ? plan.fromGeneration : plan.fromGeneration + 1,
  };
}

function throwsTyped(fn: () => unknown, type: new (...a: any[]) => Error, message: string): Error {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(type);
  expect((err as Error).message).toContain(message);
  return err as Error;
}

describe('model references', () => {
  it('accepts an alias or a version and refuses stages, latest and other URIs', () => {
    expect(parseModelReference('models:/fraud@champion')).toEqual({ name: 'fraud', kind: 'alias', alias: 'champion' });
    expect(parseModelReference('models:/fraud/3')).toEqual({ name: 'fraud', kind: 'version', version: 3 });
    const stage = throwsTyped(() => parseModelReference('models:/fraud/Production'), ValidationError, 'names a stage');
    expect(stage.message).toContain('models:/fraud@champion');
    throwsTyped(() => parseModelReference('models:/fraud/latest'), ValidationError, 'latest version');
    throwsTyped(() => parseModelReference('models:/fraud/0', 'canary.model'), ValidationError, 'versions start at 1');
    const bad = throwsTyped(
      () => parseModelReference('s3://bucket/model', 'canary.model'),
      ValidationError,
      'not a model reference',
    );
    expect((bad as ValidationError).field).toBe('canary.model');
  });

  describe('resolved through the SQL registry', () => {
    let dir: string;
    let store: SqliteMetadataStore;
    let registry: SqlModelRegistry;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'mlplane-model-ref-'));
      store = await SqliteMetadataStore.open({ path: join(dir, 'metadata.sqlite') });
      registry = await SqlModelRegistry.open({ store });
      await registry.createModel({ name: 'fraud' });
      await registry.createVersion({ name: 'fraud', source: 's3://models/fraud/1' });
      await registry.createVersion({ name: 'fraud', source: 's3://models/fraud/2' });
      await registry.setAlias({ name: 'fraud', alias: 'champion', version: 1 });
    });
    afterAll(async () => {
      await store.close();
      await rm(dir, { recursive: true, force: true });
    });

    it('names the version, its files and the alias it followed', async () => {
      expect(await resolveModelReference(registry, 'models:/fraud@champion')).toEqual({
        reference: 'models:/fraud@champion',
        name: 'fraud',
        version: 1,
        alias: 'champion',
        source: 's3://models/fraud/1',
      });
      expect(await resolveModelReference(registry, 'models:/fraud/2')).toEqual({
        reference: 'models:/fraud/2',
        name: 'fraud',
        version: 2,
        source: 's3://models/fraud/2',
      });
      await expect(resolveModelReference(registry, 'models:/fraud@missing')).rejects.toBeInstanceOf(NotFoundError);
      await expect(resolveModelReference(registry, 'models:/fraud/Staging')).rejects.toBeInstanceOf(ValidationError);
    });
  });

  it('refuses to serve a version that is not READY', async () => {
    const pending = { name: 'fraud', version: 4, status: 'PENDING_REGISTRATION', source: 's3://x' } as ModelVersion;
    await expect(resolveModelReference({ resolve: async () => pending }, 'models:/fraud/4')).rejects.toThrow(
      new ConflictError(
        "models:/fraud/4 names version 4 of 'fraud', which is PENDING_REGISTRATION: only READY versions can be served",
      ),
    );
  });
});

describe('planRollout', () => {
  it('walks a deployment through deploy, canary, shift, promote and rollbacks', () => {
    const created = planRollout(undefined, { kind: 'deploy', spec, actor: 'ana' }, torchserve);
    expect(created).toMatchObject({
      kind: 'deploy',
      name: 'fraud',
      spec,
      previous: undefined,
      traffic: { primary: 100, canary: 0, shadow: 0 },
      previousTraffic: undefined,
      fromGeneration: 0,
      noop: false,
      actor: 'ana',
    });
    let state = applied(created);

    const again = planRollout(state, { kind: 'deploy', spec: { ...spec } });
    expect(again.noop).toBe(true);
    expect(again.previous).toEqual(spec);

    const canary = planRollout(state, {
      kind: 'startCanary',
      name: 'fraud',
      canary: { model: 'models:/fraud/2', percent: 10, handler: 'handler_v2.py' },
      reason: 'AUC +2%',
    });
    expect(canary.traffic).toEqual({ primary: 90, canary: 10, shadow: 0 });
    expect(canary.previousTraffic).toEqual({ primary: 100, canary: 0, shadow: 0 });
    expect(canary.previous).toEqual(spec);
    expect(canary.fromGeneration).toBe(1);
    state = applied(canary);
    throwsTyped(
      () =>
        planRollout(state, { kind: 'startCanary', name: 'fraud', canary: { model: 'models:/fraud/3', percent: 5 } }),
      ConflictError,
      'already runs a canary (models:/fraud/2 at 10%)',
    );

    const shifted = planRollout(state, { kind: 'shiftTraffic', name: 'fraud', percent: 50 });
    expect(shifted.traffic).toEqual({ primary: 50, canary: 50, shadow: 0 });
    state = applied(shifted);

    const promoted = planRollout(state, { kind: 'promote', name: 'fraud' });
    expect(promoted.spec).toEqual({ ...spec, model: 'models:/fraud/2', handler: 'handler_v2.py' });
    expect(promoted.traffic).toEqual({ primary: 100, canary: 0, shadow: 0 });
    expect(promoted.rollbackSpec).toEqual(spec);
    state = applied(promoted);

    const back = planRollout(state, { kind: 'rollback', name: 'fraud' });
    expect(back.spec).toEqual(spec);
    expect(back.previous).toEqual(promoted.spec);
    expect(back.rollbackSpec).toBeUndefined();
    state = applied(back);
    throwsTyped(
      () => planRollout(state, { kind: 'rollback', name: 'fraud' }),
      ConflictError,
      'no canary and no previous spec',
    );
  });

  it('rolls back a canary without touching the primary or what rollback would restore later', () => {
    const v2 = { ...spec, model: 'models:/fraud/2' };
    let state = applied(
      planRollout(applied(planRollout(undefined, { kind: 'deploy', spec })), { kind: 'deploy', spec: v2 }),
    );
    expect(state.previousSpec).toEqual(spec);
    state = applied(
      planRollout(state, { kind: 'startCanary', name: 'fraud', canary: { model: 'models:/fraud/3', percent: 20 } }),
    );
    const dropped = planRollout(state, { kind: 'rollback', name: 'fraud' });
    expect(dropped.spec).toEqual(v2);
    expect(dropped.traffic).toEqual({ primary: 100, canary: 0, shadow: 0 });
    expect(dropped.rollbackSpec).toEqual(spec);
  });

  it('refuses what does not fit the state or the server', () => {
    throwsTyped(
      () => planRollout(undefined, { kind: 'promote', name: 'fraud' }),
      NotFoundError,
      "deployment 'fraud' does not exist",
    );
    const state = applied(planRollout(undefined, { kind: 'deploy', spec }));
    throwsTyped(
      () => planRollout(state, { kind: 'shiftTraffic', name: 'fraud', percent: 5 }),
      ConflictError,
      'runs no canary',
    );
    throwsTyped(
      () => planRollout(state, { kind: 'promote', name: 'fraud' }),
      ConflictError,
      'runs no canary to promote',
    );
    const withCanary = applied(
      planRollout(state, { kind: 'startCanary', name: 'fraud', canary: { model: 'models:/fraud/2', percent: 10 } }),
    );
    const over = throwsTyped(
      () => planRollout(withCanary, { kind: 'shiftTraffic', name: 'fraud', percent: 101 }),
      ValidationError,
      'from 0 to 100',
    );
    expect((over as ValidationError).field).toBe('canary.percent');
    throwsTyped(
      () =>
        planRollout(
          state,
          { kind: 'startCanary', name: 'fraud', canary: { model: 'models:/fraud/2', percent: 10 } },
          { ...torchserve, canary: false },
        ),
      ValidationError,
      'cannot run canaries',
    );
    throwsTyped(
      () => planRollout(state, { kind: 'deploy', spec: { ...spec, name: 'other' } }),
      ValidationError,
      "the plan is for 'other'",
    );
  });
});

describe('validateDeploymentSpec', () => {
  it('names the field of each problem', () => {
    const cases: [Partial<DeploymentSpec> & Record<string, unknown>, string, string][] = [
      [{ name: 'Fraud' }, 'name', 'lowercase'],
      [{ model: 'models:/fraud/Production' }, 'model', 'names a stage'],
      [{ runtime: 'triton' }, 'runtime', 'it runs: torchserve'],
      [{ protocol: 'custom' }, 'protocol', 'it speaks: torchserve, oip-v2'],
      [{ predictPath: '/run' }, 'predictPath', 'for custom protocols'],
      [{ replicas: { min: 3, max: 2 } }, 'replicas', 'min <= max'],
      [{ replicas: { min: 0, max: 2 } }, 'replicas.min', 'scales to zero'],
      [{ shadow: { model: 'models:/fraud/2', percent: 10 } }, 'shadow', 'cannot mirror traffic'],
      [{ batching: { maxBatchSize: 0, maxDelayMs: 5 } }, 'batching.maxBatchSize', 'positive integer'],
      [{ env: { 'BAD NAME': 'x' } }, 'env.BAD NAME', 'not an environment variable name'],
      [{ secretEnv: { TOKEN: 'plain-value' as never } }, 'secretEnv.TOKEN', 'never a value'],
      [
        { env: { TOKEN: 'x' }, secretEnv: { TOKEN: { kind: 'secretStore', name: 'tok' } } },
        'secretEnv.TOKEN',
        'both env and secretEnv',
      ],
    ];
    for (const [change, field, message] of cases) {
      const err = throwsTyped(
        () => validateDeploymentSpec({ ...spec, ...change } as DeploymentSpec, torchserve),
        ValidationError,
        message,
      );
      expect((err as ValidationError).field, message).toBe(field);
    }
    expect(() => validateDeploymentSpec({ ...spec, protocol: 'oip-v2' }, torchserve)).not.toThrow();
    expect(trafficOf({ shadow: { model: 'models:/fraud/2', percent: 5 } })).toEqual({
      primary: 100,
      canary: 0,
      shadow: 5,
    });
  });
});

describe('ModelPackagerSet', () => {
  const mar: ModelPackager = {
    runtime: 'torchserve',
    format: 'mar',
    package: async ({ version }) => ({
      runtime: 'torchserve',
      format: 'mar',
      key: `packages/${version.name}/${version.version}.mar`,
      uri: `file:///data/packages/${version.name}/${version.version}.mar`,
      sha256: '0'.repeat(64),
      size: 1,
    }),
  };

  it('collects one packager per runtime, as the extension point contributes them', () => {
    expect(modelPackagersExtensionPoint.id).toBe('modelServer.packagers');
    const set = new ModelPackagerSet();
    set.addPackager(mar);
    expect(set.get('torchserve')).toBe(mar);
    expect(set.find('onnxruntime')).toBeUndefined();
    expect(set.runtimes()).toEqual(['torchserve']);
    throwsTyped(() => set.addPackager({ ...mar }), ConflictError, "runtime 'torchserve' was already added");
    throwsTyped(() => set.addPackager({ ...mar, runtime: 'Torch Serve' }), ValidationError, 'lowercase');
    throwsTyped(
      () => set.get('triton'),
      NotFoundError,
      "no packager for runtime 'triton' (packagers exist for: torchserve)",
    );
  });
});
