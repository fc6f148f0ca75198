import { readFile } from 'node:fs/promises';
import { extname, resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { SECRET_VALUE_MIN_LENGTH } from '../ports/secret-store.js';
import { ConfigError } from './errors.js';
import type { Redactor } from './redactor.js';

/** The whole platform's raw config: one section per plugin id, plus `platform` for the kernel itself. */
export type RawConfig = Record<string, unknown>;

/** The kernel's own section, `platform:` in the config file. */
export const platformConfigSchema = z.object({
  /** Chooses the provider of a port when several plugins provide it: `{ 'core.artifactStore': 's3' }`. */
  providers: z.record(z.string(), z.string()).default({}),
  /** Time `stop()` may take before remaining shutdown work is abandoned. */
  shutdownDeadlineMs: z.number().int().positive().default(10_000),
  /** Signals that stop the platform gracefully once it is running; `[]` leaves signals to the host. */
  signals: z.array(z.enum(['SIGTERM', 'SIGINT', 'SIGHUP'])).default(['SIGTERM', 'SIGINT']),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  /**
   * Production guard: refuse to start when a port would fall back to a provider that keeps its data on this machine
   * (artifacts on local disk, secrets in a per-machine file, an in-process event bus) without config choosing it.
   */
  strict: z.boolean().default(false),
});
export type PlatformConfig = z.output<typeof platformConfigSchema>;

export interface LoadConfigOptions {
  /** Config files merged in order (YAML, JSON, or a TS/JS module whose default export is the object). */
  readonly files?: readonly string[];
  /** Environment for `${env:NAME}` and overrides; defaults to process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** Variables `<prefix>S3__BUCKET=x` override `s3.bucket`; default `MLPLANE__`. */
  readonly envPrefix?: string;
}

/**
 * How many alias nodes (`*name`) one YAML file may resolve, counting repeats inside expanded aliases. A config file
 * needs a handful; nested aliases that expand exponentially (the "billion laughs" document) hit this cap at once
 * instead of exhausting memory.
 */
export const YAML_MAX_ALIAS_COUNT = 100;

const ENV_REF = /\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;
const SECRET_REF = /\$\{secret:([A-Za-z0-9][A-Za-z0-9._\-/]*)\}/g;

/**
 * Loads config files, applies environment overrides and resolves `${env:NAME}` (with `${env:NAME:-default}`).
 * `${secret:name}` references are left for the platform, which resolves them through the SecretStore at start.
 */
export async function loadConfig(source?: string | readonly string[] | LoadConfigOptions): Promise<RawConfig> {
  const options: LoadConfigOptions =
    typeof source === 'string'
      ? { files: [source] }
      : Array.isArray(source)
        ? { files: source as readonly string[] }
        : ((source as LoadConfigOptions | undefined) ?? {});
  const env = options.env ?? process.env;
  let config: RawConfig = {};
  for (const file of options.files ?? []) config = deepMerge(config, await readConfigFile(file));
  config = applyEnvOverrides(config, env, options.envPrefix ?? 'MLPLANE__');
  return resolveEnvRefs(config, env) as RawConfig;
}

async function readConfigFile(file: string): Promise<RawConfig> {
  const path = resolvePath(file);
  const ext = extname(path);
  let value: unknown;
  try {
    if (['.ts', '.mts', '.js', '.mjs'].includes(ext)) {
      const mod = (await import(pathToFileURL(path).href)) as { default?: unknown };
      value = typeof mod.default === 'function' ? await (mod.default as () => unknown)() : mod.default;
    } else {
      const text = await readFile(path, 'utf8');
      value = ext === '.json' ? JSON.parse(text) : parseYaml(text, { maxAliasCount: YAML_MAX_ALIAS_COUNT });
    }
  } catch (cause) {
    // The yaml library reports the alias cap as a ReferenceError about an "attack"; say what to change instead.
    const detail = /alias count/i.test((cause as Error).message)
      ? `its YAML aliases expand to more than ${YAML_MAX_ALIAS_COUNT} nodes; write the repeated parts out or use fewer nested aliases`
      : (cause as Error).message;
    throw new ConfigError(`cannot read config file ${file}: ${detail}`, [], { cause });
  }
  if (value === null || value === undefined) return {};
  if (!isPlainObject(value)) throw new ConfigError(`config file ${file} must hold an object at its top level`);
  assertConfigTree(value, `config file ${file}`);
  return value;
}

/**
 * ConfigError when the config contains itself: a YAML alias inside its own anchor (`a: &a [*a]`) or a cyclic object
 * from a TS module or the host. Every later step walks the config recursively and would overflow the stack.
 */
export function assertConfigTree(value: unknown, where = 'config'): void {
  const ancestors = new Map<object, string>();
  const visit = (node: unknown, path: string) => {
    // Only what the config steps walk: class instances a host passes (clients, agents) are taken as they are.
    if (!Array.isArray(node) && !isPlainObject(node)) return;
    const earlier = ancestors.get(node);
    if (earlier !== undefined) {
      throw new ConfigError(
        `${where}: ${path || '(root)'} contains itself (it is the same value as ${earlier || 'the root'}, as with a ` +
          'YAML alias inside its own anchor); config must be a tree',
      );
    }
    ancestors.set(node, path);
    if (Array.isArray(node)) for (const [i, v] of node.entries()) visit(v, `${path}[${i}]`);
    else for (const [k, v] of Object.entries(node)) visit(v, path ? `${path}.${k}` : k);
    ancestors.delete(node);
  };
  visit(value, '');
}

function applyEnvOverrides(config: RawConfig, env: NodeJS.ProcessEnv, prefix: string): RawConfig {
  const out = structuredClone(config);
  for (const [name, raw] of Object.entries(env).sort(([a], [b]) => a.localeCompare(b))) {
    if (!name.startsWith(prefix) || raw === undefined) continue;
    const segments = name.slice(prefix.length).split('__').filter(Boolean);
    if (segments.length === 0) continue;
    let node: Record<string, unknown> = out;
    for (const [i, segment] of segments.entries()) {
      const key = matchKey(node, segment);
      if (i === segments.length - 1) {
        node[key] = parseEnvValue(raw);
      } else {
        if (!isPlainObject(node[key])) node[key] = {};
        node = node[key] as Record<string, unknown>;
      }
    }
  }
  return out;
}

/** `PART_SIZE_MIB` matches an existing `partSizeMiB`; otherwise it becomes `partSizeMib`. */
function matchKey(node: Record<string, unknown>, segment: string): string {
  const norm = (s: string) => s.replace(/[_-]/g, '').toLowerCase();
  const existing = Object.keys(node).find((k) => norm(k) === norm(segment));
  if (existing) return existing;
  return segment.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function parseEnvValue(raw: string): unknown {
  if (/^(true|false|null|-?\d+(\.\d+)?|\[.*\]|\{.*\})$/s.test(raw.trim())) {
    try {
      return JSON.parse(raw);
    } catch {
      return raw;
    }
  }
  return raw;
}

function resolveEnvRefs(value: unknown, env: NodeJS.ProcessEnv, path = ''): unknown {
  return mapStrings(value, path, (s, at) =>
    s.replace(ENV_REF, (_, name: string, fallback: string | undefined) => {
      const v = env[name];
      if (v !== undefined) return v;
      if (fallback !== undefined) return fallback;
      throw new ConfigError(`config ${at || '(root)'} references environment variable ${name}, which is not set`);
    }),
  );
}

/** Every `${secret:name}` reference with the config path where it appears. */
export function findSecretRefs(value: unknown, path = ''): { path: string; name: string }[] {
  const refs: { path: string; name: string }[] = [];
  mapStrings(value, path, (s, at) => {
    for (const m of s.matchAll(SECRET_REF)) refs.push({ path: at, name: m[1]! });
    return s;
  });
  return refs;
}

/**
 * Replaces `${secret:name}` references with values; each resolved value is handed to the redactor. A value shorter
 * than SECRET_VALUE_MIN_LENGTH (from a store that does not check, or an environment variable) is a ConfigError:
 * the redactor could not keep it out of logs.
 */
export function resolveSecretRefs(
  value: unknown,
  secrets: ReadonlyMap<string, string>,
  redactor: Redactor,
  path = '',
): unknown {
  return mapStrings(value, path, (s, at) =>
    s.replace(SECRET_REF, (_, name: string) => {
      const v = secrets.get(name)!;
      if (v.length < SECRET_VALUE_MIN_LENGTH) {
        throw new ConfigError(
          `config ${at} references secret '${name}', whose value is ${v.length} characters long; secrets need at ` +
            `least ${SECRET_VALUE_MIN_LENGTH} so that they can be scrubbed from logs and errors`,
        );
      }
      redactor.add(v);
      return v;
    }),
  );
}

function mapStrings(value: unknown, path: string, fn: (s: string, path: string) => string): unknown {
  if (typeof value === 'string') return fn(value, path);
  if (Array.isArray(value)) return value.map((v, i) => mapStrings(v, `${path}[${i}]`, fn));
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = mapStrings(v, path ? `${path}.${k}` : k, fn);
    return out;
  }
  return value;
}

/**
 * Validates one plugin's section. Problems name the plugin and the zod path; keys the schema does not
 * know are reported too (zod strips them silently, which would hide typos).
 */
export function validateSection<S extends z.ZodType>(
  owner: string,
  schema: S,
  raw: unknown,
  redactor: Redactor,
): { ok: true; value: z.output<S> } | { ok: false; problems: string[] } {
  const result = schema.safeParse(raw ?? {});
  if (!result.success) {
    return {
      ok: false,
      problems: result.error.issues.map(
        (i) => `${owner}${i.path.length ? `.${i.path.map(String).join('.')}` : ''}: ${redactor.text(i.message)}`,
      ),
    };
  }
  const unknown = unknownKeys(raw ?? {}, result.data, owner);
  if (unknown.length) return { ok: false, problems: unknown.map((p) => `${p}: unknown config key`) };
  return { ok: true, value: result.data };
}

function unknownKeys(input: unknown, output: unknown, path: string): string[] {
  if (!isPlainObject(input) || !isPlainObject(output)) return [];
  const problems: string[] = [];
  for (const [k, v] of Object.entries(input)) {
    if (!(k in output)) problems.push(`${path}.${k}`);
    else problems.push(...unknownKeys(v, output[k], `${path}.${k}`));
  }
  return problems;
}

export function deepMerge(a: RawConfig, b: RawConfig): RawConfig {
  const out: RawConfig = { ...a };
  for (const [k, v] of Object.entries(b)) {
    out[k] = isPlainObject(v) && isPlainObject(out[k]) ? deepMerge(out[k] as RawConfig, v) : v;
  }
  return out;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}
