import { createHash } from 'node:crypto';
import { isArtifactRef } from '../define/artifact.js';
import { canonicalJson } from './canonical.js';

/**
 * Everything a step's result depends on, as far as the orchestrator can see: the step's definition and code
 * version, what it runs (image, command, arguments, environment, working directory) and its inputs, artifacts by
 * content hash. Equal cache inputs give the same key; the key decides reuse, these parts explain it.
 */
export interface CacheInputs {
  readonly step: string;
  readonly kind: 'job' | 'action';
  readonly version: string;
  readonly job?: {
    readonly image?: string;
    readonly command: readonly string[];
    readonly args: readonly string[];
    readonly env: Readonly<Record<string, string>>;
    readonly workingDir?: string;
  };
  /** Inputs that hold no artifact, by value. */
  readonly params: Readonly<Record<string, unknown>>;
  /** Inputs that hold artifacts: their sha256 (a list for a fan-in). */
  readonly artifacts: Readonly<Record<string, string | readonly string[]>>;
}

/** Why a step was or was not reused, as `explainCache` reports it. */
export interface StepExplanation {
  readonly step: string;
  /**
   * reused: its outputs came from an earlier execution with the same cache key. ran: it executed (see the reasons
   * for why nothing was reused). skipped: a condition was false or a step it needs was skipped. failed: it ran and
   * failed. pending: it has not finished (the run is in progress, or stopped before reaching it).
   */
  readonly decision: 'reused' | 'ran' | 'skipped' | 'failed' | 'pending';
  readonly reasons: readonly string[];
  readonly cacheKey?: string;
  readonly reusedFrom?: { readonly runId: string; readonly stepId: string; readonly finishedAt: string };
  /** Set when the orchestrator restarted after this step finished and kept its result instead of running it again. */
  readonly resumed?: boolean;
}

export function splitInputs(inputs: Readonly<Record<string, unknown>>): Pick<CacheInputs, 'params' | 'artifacts'> {
  const params: Record<string, unknown> = {};
  const artifacts: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(inputs)) {
    if (isArtifactRef(value)) artifacts[name] = value.sha256;
    else if (Array.isArray(value) && value.length > 0 && value.every(isArtifactRef)) {
      artifacts[name] = value.map((a) => a.sha256);
    } else params[name] = value;
  }
  return { params, artifacts };
}

export function cacheKeyOf(inputs: CacheInputs): string {
  return createHash('sha256').update(canonicalJson(inputs)).digest('hex');
}

const show = (value: unknown): string => {
  const text = value === undefined ? 'absent' : canonicalJson(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
};
const shortHash = (h: string | readonly string[] | undefined): string =>
  h === undefined
    ? 'absent'
    : Array.isArray(h)
      ? `[${h.map((x) => x.slice(0, 12)).join(', ')}]`
      : `sha256 ${(h as string).slice(0, 12)}`;

/** What differs between two executions' cache inputs, one sentence per difference. */
export function differences(now: CacheInputs, before: CacheInputs): string[] {
  const out: string[] = [];
  if (now.step !== before.step || now.kind !== before.kind) {
    out.push(`the step definition changed: '${before.step}' (${before.kind}) -> '${now.step}' (${now.kind})`);
  }
  if (now.version !== before.version) out.push(`code version changed: '${before.version}' -> '${now.version}'`);
  const jobFields = ['image', 'command', 'args', 'env', 'workingDir'] as const;
  for (const field of jobFields) {
    const a = before.job?.[field];
    const b = now.job?.[field];
    if (canonicalJson(a ?? null) !== canonicalJson(b ?? null)) out.push(`${field} changed: ${show(a)} -> ${show(b)}`);
  }
  for (const name of union(now.params, before.params)) {
    const a = before.params[name];
    const b = now.params[name];
    if (!(name in before.params)) out.push(`input '${name}' is new: ${show(b)}`);
    else if (!(name in now.params)) out.push(`input '${name}' was removed (was ${show(a)})`);
    else if (canonicalJson(a) !== canonicalJson(b)) out.push(`input '${name}' changed: ${show(a)} -> ${show(b)}`);
  }
  for (const name of union(now.artifacts, before.artifacts)) {
    const a = before.artifacts[name];
    const b = now.artifacts[name];
    if (canonicalJson(a ?? null) !== canonicalJson(b ?? null)) {
      out.push(`input artifact '${name}' changed: ${shortHash(a)} -> ${shortHash(b)}`);
    }
  }
  return out;
}

/** The sentence for a reuse: what was compared and found equal. */
export function sameAs(
  inputs: CacheInputs,
  from: { runId: string; stepId: string; finishedAt: Date | undefined },
): string {
  const parts = [`code version '${inputs.version}'`];
  if (inputs.job) parts.push(`${inputs.job.image ? 'image, ' : ''}command and arguments`);
  const params = Object.keys(inputs.params).length;
  const artifacts = Object.keys(inputs.artifacts).length;
  parts.push(`${params} input value${params === 1 ? '' : 's'}`);
  parts.push(`${artifacts} input artifact${artifacts === 1 ? '' : 's'} (by sha256)`);
  return (
    `same cache key as step '${from.stepId}' of run ${from.runId}` +
    `${from.finishedAt ? ` (finished ${from.finishedAt.toISOString()})` : ''}: ${parts.join(', ')} unchanged`
  );
}

function union(a: object, b: object): string[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
}
