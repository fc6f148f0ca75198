// k8sPlugin on a real platform: it replaces the local compute backend, reads SecretStore references through the
// platform's SecretStore, and the kernel fires job.beforeSubmit before the Job is created. An unknown config key
// fails the start with a message naming it.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { computeBackendRef, isTerminalJobPhase, type Platform } from '@mlplane/core';
import { createPlatform } from '@mlplane/defaults';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { k8sPlugin, LABELS } from '../src/index.js';
import { type PeerNamespace, peerNamespace } from './peer.js';

let peer: PeerNamespace;
let dir: string;

beforeAll(async () => {
  peer = await peerNamespace('mlplane-plugin');
  dir = await mkdtemp(join(tmpdir(), 'mlplane-k8s-plugin-'));
});
afterAll(async () => {
  await peer?.remove();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function platform(k8s: Record<string, unknown>): Platform {
  return createPlatform({
    plugins: [k8sPlugin()],
    config: {
      platform: { signals: [] },
      embedded: { dataDir: dir, secrets: { masterKey: randomBytes(32).toString('base64') } },
      k8s,
    },
    log: { level: 'silent' },
  });
}

describe('k8sPlugin', () => {
  it('provides the ComputeBackend; job.beforeSubmit taps rewrite what is created', async () => {
    const p = platform({ kubeconfig: process.env.MLPLANE_KUBECONFIG, namespace: peer.namespace });
    p.hooks.job.beforeSubmit.tapPromise('team-label', async (spec) => ({
      ...spec,
      labels: { ...spec.labels, team: 'platform' },
    }));
    await p.start();
    try {
      const compute = await p.get(computeBackendRef);
      expect(compute.capabilities.scheduler).toBe('kube-scheduler');
      const submitted = await compute.submit({
        name: 'wired',
        project: 'plugin-it',
        replicaGroups: [{ role: 'main', command: ['true'] }],
      });
      const job = await peer.batch.readNamespacedJob({ name: submitted.id, namespace: peer.namespace });
      expect(job.metadata!.labels).toMatchObject({ team: 'platform', [LABELS.jobId]: submitted.id });
      let last = submitted;
      for await (const s of compute.watch({ id: submitted.id }, { signal: AbortSignal.timeout(60_000) })) last = s;
      expect(isTerminalJobPhase(last.phase)).toBe(true);
      expect(last.phase).toBe('Succeeded');
    } finally {
      await p.stop();
    }
  });

  it('refuses an unknown config key at start, naming it', async () => {
    const p = platform({ kubeconfig: process.env.MLPLANE_KUBECONFIG, namespaces: ['x'] });
    await expect(p.start()).rejects.toThrow(/namespaces/);
  });
});
