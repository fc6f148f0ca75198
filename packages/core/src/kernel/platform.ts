import 'reflect-metadata';
import { type DestinationStream, type Logger as PinoLogger, pino } from 'pino';
import { type DependencyContainer, container as globalContainer } from 'tsyringe';
import { currentActor } from '../ports/actor-context.js';
import { currentLogContext } from '../ports/log-context.js';
import { validatePortInputs } from '../ports/port-inputs.js';
import { type SecretStore, secretStoreRef } from '../ports/secret-store.js';
import type { Logger } from '../ports/telemetry.js';
import { currentTraceContext } from '../ports/trace-context.js';
import type { PlatformConfig, RawConfig } from './config.js';
import {
  assertConfigTree,
  deepMerge,
  findSecretRefs,
  isPlainObject,
  platformConfigSchema,
  resolveSecretRefs,
  validateSection,
} from './config.js';
import { coreServices, type PluginLifecycle } from './core-services.js';
import { ConfigError, PluginFailedError, WiringError } from './errors.js';
import {
  CORE_PORT_INPUTS,
  CORE_PORTS,
  createPlatformHooks,
  hooksForPlugin,
  type PlatformHooks,
} from './platform-hooks.js';
import type { DecorateOptions, Deps, Plugin, PluginEnv, ProvideOptions } from './plugin.js';
import { intercept, type PortDefinition } from './port.js';
import { Redactor } from './redactor.js';
import type { ExtensionPoint, ServiceRef } from './service-ref.js';

export type PlatformState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped' | 'failed';

export interface CreatePlatformOptions {
  readonly plugins: readonly Plugin<any>[];
  /** The whole config: one section per plugin id, `platform` for the kernel. See `loadConfig`. */
  readonly config?: RawConfig;
  /** Log level and destination (default: stdout at `platform.logLevel`). Secrets are scrubbed either way. */
  readonly log?: { readonly level?: string; readonly destination?: DestinationStream };
  /** Called after a signal-initiated stop instead of `process.exit` (tests use it). */
  readonly onSignalStop?: (code: number) => void;
}

export interface Platform {
  readonly hooks: PlatformHooks;
  readonly state: PlatformState;
  readonly logger: Logger;
  readonly pluginIds: readonly string[];
  /** The kernel's own config section, validated. Available after start. */
  readonly platformConfig: PlatformConfig | undefined;
  /** Validates config, registers plugins, wires ports, runs init in dependency order and start hooks. */
  start(): Promise<void>;
  /** Runs shutdown hooks then disposes services, in reverse order, within the shutdown deadline. */
  stop(reason?: { signal?: string }): Promise<void>;
  /** A service for the host application; only after start. */
  get<T>(ref: ServiceRef<T>): Promise<T>;
}

interface Provision {
  readonly pluginId: string;
  readonly ref: ServiceRef<unknown>;
  readonly options: ProvideOptions<unknown, unknown, Deps>;
}

interface Decorator {
  readonly pluginId: string;
  readonly options: DecorateOptions<unknown, unknown, Deps>;
}

interface PluginRecord {
  readonly plugin: Plugin<any>;
  readonly provisions: Provision[];
  readonly inits: { deps: Deps; init: (ctx: any) => void | Promise<void> }[];
  readonly extensionPoints: Map<string, unknown>;
  readonly container: DependencyContainer;
  readonly startHooks: { fn: () => void | Promise<void>; label: string }[];
  readonly shutdownHooks: { fn: () => void | Promise<void>; label: string }[];
  config: unknown;
}

const HOST = 'host';

/**
 * What every line logged during a piece of work says about it: the log context's fields (the HTTP API's request id),
 * the actor of `actingAs` and the trace of `withTraceContext` (as `trace_id` and `span_id`, the names log pipelines
 * correlate with traces by). A fresh object each time: pino merges the line's own fields into it.
 */
function workContextFields(): Record<string, unknown> {
  const fields: Record<string, unknown> = { ...currentLogContext() };
  const actor = currentActor();
  if (actor) {
    fields.actor = actor.actor;
    if (actor.project !== undefined) fields.project = actor.project;
  }
  const trace = currentTraceContext();
  if (trace) {
    fields.trace_id = trace.traceId;
    fields.span_id = trace.spanId;
  }
  return fields;
}

export function createKernelPlatform(options: CreatePlatformOptions): Platform {
  return new KernelPlatform(options);
}

class KernelPlatform implements Platform {
  readonly hooks = createPlatformHooks();
  readonly #redactor = new Redactor();
  readonly #rootLogger: PinoLogger;
  readonly #root: DependencyContainer;
  readonly #records = new Map<string, PluginRecord>();
  readonly #chosen = new Map<string, Provision>();
  readonly #decorators = new Map<string, Decorator[]>();
  readonly #explicit = new Set<string>();
  /** Ports whose providers are guarded so that their hooks fire: the core ports and those plugins register. */
  readonly #ports = new Map<string, PortDefinition<any, any>>(CORE_PORTS.map((p) => [p.ref.id, p]));
  /** Aborted at stop: ends background work of the guards (following jobs for their hooks). */
  readonly #stopSignal = new AbortController();
  readonly #extensionOwners = new Map<string, string>();
  readonly #pending = new Map<string, Promise<unknown>>();
  readonly #created: { label: string; dispose: () => void | Promise<void> }[] = [];
  readonly #inited: string[] = [];
  readonly #options: CreatePlatformOptions;
  #state: PlatformState = 'created';
  #platformConfig: PlatformConfig | undefined;
  #signalHandlers: [NodeJS.Signals, () => void][] = [];
  #stopping: Promise<void> | undefined;

  constructor(options: CreatePlatformOptions) {
    this.#options = options;
    const redactor = this.#redactor;
    this.#rootLogger = pino(
      {
        name: 'mlplane',
        level: options.log?.level ?? readLogLevel(options.config),
        formatters: { log: (obj) => redactor.value(obj) },
        mixin: workContextFields,
        hooks: {
          logMethod(args, method) {
            method.apply(this, args.map((a) => redactor.value(a)) as Parameters<typeof method>);
          },
          // The last net: whatever a serializer produced (error stacks, causes, aggregate members) is scrubbed from
          // the finished line, where a secret appears JSON-escaped.
          streamWrite: (line) => redactor.text(line),
        },
      },
      options.log?.destination ?? pino.destination({ dest: 1, sync: true }),
    );
    // One root container per platform, never the global one, so two platforms in a process stay apart.
    this.#root = globalContainer.createChildContainer();
  }

  get state() {
    return this.#state;
  }
  get logger(): Logger {
    return this.#rootLogger as unknown as Logger;
  }
  get pluginIds() {
    return [...this.#records.keys()].filter((id) => id !== HOST);
  }
  get platformConfig() {
    return this.#platformConfig;
  }

  async start(): Promise<void> {
    if (this.#state !== 'created') throw new WiringError(`platform cannot start from state '${this.#state}'`);
    this.#state = 'starting';
    try {
      this.#registerAll();
      this.#wire();
      await this.#configure();
      this.#announceProviders();
      await this.#initAll();
      const info = { pluginIds: this.pluginIds, startedAt: new Date() };
      await this.hooks.platform.init.promise(info);
      for (const id of this.#inited) {
        const record = this.#records.get(id)!;
        for (const hook of record.startHooks) {
          await run(id, `start (${hook.label})`, hook.fn);
        }
      }
      await this.hooks.platform.ready.promise(info);
      this.#state = 'running';
      this.#installSignalHandlers();
      this.#rootLogger.info({ plugins: this.pluginIds }, 'platform started');
    } catch (err) {
      this.#state = 'failed';
      this.#redactor.error(err);
      // Release whatever was created before the failure; the original error is what the caller needs.
      await this.#teardown({}).catch(() => undefined);
      throw err;
    }
  }

  async stop(reason: { signal?: string } = {}): Promise<void> {
    if (this.#stopping) return this.#stopping;
    if (this.#state === 'created' || this.#state === 'stopped') {
      this.#state = 'stopped';
      return;
    }
    this.#state = 'stopping';
    this.#stopping = this.#teardown(reason).finally(() => {
      this.#state = 'stopped';
      this.#removeSignalHandlers();
    });
    return this.#stopping;
  }

  async get<T>(ref: ServiceRef<T>): Promise<T> {
    if (this.#state !== 'running' && this.#state !== 'starting') {
      throw new WiringError(`platform.get('${ref.id}') needs a started platform (state is '${this.#state}')`);
    }
    return (await this.#resolve(ref, this.#host())) as T;
  }

  // --- phases ---------------------------------------------------------------------------------

  #registerAll() {
    const seen = new Set<string>();
    for (const plugin of this.#options.plugins) {
      if (plugin?.$$type !== 'mlplane.plugin') {
        throw new WiringError('createPlatform({ plugins }) takes plugin values: call the factory, e.g. s3Plugin()');
      }
      if (seen.has(plugin.id)) throw new WiringError(`plugin '${plugin.id}' is installed twice`);
      seen.add(plugin.id);
      const record = this.#newRecord(plugin);
      this.#records.set(plugin.id, record);
      let registering = true;
      const env: PluginEnv<unknown> = {
        pluginId: plugin.id,
        provide: (ref, options) => {
          if (!registering) throw new WiringError(`plugin '${plugin.id}' called provide() after register returned`);
          if (ref.id.startsWith('core.') && Object.values(coreServices).some((c) => c.id === ref.id)) {
            throw new WiringError(`plugin '${plugin.id}' cannot provide '${ref.id}': the kernel provides it`);
          }
          if (record.provisions.some((p) => p.ref.id === ref.id)) {
            throw new WiringError(`plugin '${plugin.id}' provides '${ref.id}' twice`);
          }
          if (options.deps && 'config' in options.deps) {
            throw new WiringError(`plugin '${plugin.id}' names a dependency 'config', which is reserved`);
          }
          record.provisions.push({ pluginId: plugin.id, ref, options: options as Provision['options'] });
        },
        decorate: (ref, options) => {
          if (!registering) throw new WiringError(`plugin '${plugin.id}' called decorate() after register returned`);
          if (options.deps && 'config' in options.deps) {
            throw new WiringError(`plugin '${plugin.id}' names a dependency 'config', which is reserved`);
          }
          const list = this.#decorators.get(ref.id) ?? [];
          if (list.some((d) => d.pluginId === plugin.id)) {
            throw new WiringError(`plugin '${plugin.id}' decorates '${ref.id}' twice`);
          }
          list.push({ pluginId: plugin.id, options: options as unknown as Decorator['options'] });
          this.#decorators.set(ref.id, list);
        },
        registerPort: (port) => {
          if (!registering)
            throw new WiringError(`plugin '${plugin.id}' called registerPort() after register returned`);
          const known = this.#ports.get(port.ref.id);
          if (known && known !== port) {
            throw new WiringError(
              `plugin '${plugin.id}' registers port '${port.ref.id}', which another definition already declares`,
            );
          }
          this.#ports.set(port.ref.id, port);
        },
        registerExtensionPoint: (point, implementation) => {
          if (!registering) throw new WiringError(`plugin '${plugin.id}' registered an extension point after register`);
          const owner = this.#extensionOwners.get(point.id);
          if (owner) {
            throw new WiringError(`extension point '${point.id}' is registered by both '${owner}' and '${plugin.id}'`);
          }
          this.#extensionOwners.set(point.id, plugin.id);
          record.extensionPoints.set(point.id, implementation);
        },
        registerInit: (options) => {
          if (!registering)
            throw new WiringError(`plugin '${plugin.id}' called registerInit() after register returned`);
          if (record.inits.length > 0) throw new WiringError(`plugin '${plugin.id}' registered init twice`);
          if ('config' in options.deps) {
            throw new WiringError(`plugin '${plugin.id}' names a dependency 'config', which is reserved`);
          }
          record.inits.push(options as PluginRecord['inits'][number]);
        },
      };
      try {
        plugin.register(env as PluginEnv<any>);
      } catch (err) {
        if (err instanceof WiringError) throw err;
        throw new PluginFailedError(plugin.id, 'register', err);
      } finally {
        registering = false;
      }
    }
  }

  /** Chooses a provider per port and checks that every dependency can be met, without cycles. */
  #wire() {
    const config = this.#options.config ?? {};
    const explicit = (
      isPlainObject(config.platform) && isPlainObject(config.platform.providers) ? config.platform.providers : {}
    ) as Record<string, string>;
    const byRef = new Map<string, Provision[]>();
    for (const record of this.#records.values()) {
      for (const p of record.provisions) byRef.set(p.ref.id, [...(byRef.get(p.ref.id) ?? []), p]);
    }
    for (const [refId, pluginId] of Object.entries(explicit)) {
      const candidates = byRef.get(refId) ?? [];
      const pick = candidates.find((p) => p.pluginId === pluginId);
      if (!pick) {
        const offered = candidates.map((p) => `'${p.pluginId}'`).join(', ') || 'no plugin';
        throw new WiringError(
          `config platform.providers chooses plugin '${pluginId}' for '${refId}', but it does not provide it (provided by ${offered})`,
        );
      }
      this.#chosen.set(refId, pick);
      this.#explicit.add(refId);
    }
    for (const [refId, candidates] of byRef) {
      if (this.#chosen.has(refId)) continue;
      const real = candidates.filter((p) => !p.options.asDefault);
      const pool = real.length > 0 ? real : candidates;
      if (pool.length > 1) {
        const names = pool.map((p) => `'${p.pluginId}'`).join(' and ');
        throw new WiringError(
          `port '${refId}' is provided by plugins ${names}; choose one with config platform.providers['${refId}']`,
        );
      }
      this.#chosen.set(refId, pool[0]!);
    }

    const kernelRefs = new Set(Object.values(coreServices).map((r) => r.id));
    const check = (owner: string, where: string, deps: Deps | undefined) => {
      for (const [key, dep] of Object.entries(deps ?? {})) {
        if (dep.$$type === 'mlplane.extension-point') {
          if (!this.#extensionOwners.has(dep.id)) {
            throw new WiringError(
              `plugin '${owner}' ${where} uses extension point '${dep.id}' (as '${key}'), but no installed plugin registers it`,
            );
          }
        } else if (!kernelRefs.has(dep.id) && !this.#chosen.has(dep.id)) {
          throw new WiringError(
            `plugin '${owner}' ${where} requires port '${dep.id}' (as '${key}'), but no installed plugin provides it`,
          );
        }
      }
    };
    for (const record of this.#records.values()) {
      for (const p of record.provisions) check(record.plugin.id, `(factory of '${p.ref.id}')`, p.options.deps);
      for (const i of record.inits) check(record.plugin.id, 'init', i.deps);
    }
    for (const [refId, decorators] of this.#decorators) {
      for (const d of decorators) {
        if (!this.#chosen.has(refId)) {
          throw new WiringError(`plugin '${d.pluginId}' decorates '${refId}', but no installed plugin provides it`);
        }
        check(d.pluginId, `(decorator of '${refId}')`, d.options.deps);
      }
    }
    this.#checkServiceCycles();
  }

  #checkServiceCycles() {
    const state = new Map<string, 'visiting' | 'done'>();
    const visit = (refId: string, path: string[]) => {
      const p = this.#chosen.get(refId);
      if (!p) return;
      if (state.get(refId) === 'done') return;
      if (state.get(refId) === 'visiting') {
        const cycle = [...path.slice(path.indexOf(refId)), refId];
        throw new WiringError(
          `dependency cycle between services: ${cycle.map((id) => `${id} (plugin '${this.#chosen.get(id)?.pluginId}')`).join(' -> ')}`,
        );
      }
      state.set(refId, 'visiting');
      for (const dep of Object.values(p.options.deps ?? {})) {
        if (dep.$$type === 'mlplane.service-ref') visit(dep.id, [...path, refId]);
      }
      state.set(refId, 'done');
    };
    for (const refId of this.#chosen.keys()) visit(refId, []);
  }

  /** Resolves `${secret:...}` references through the SecretStore, then validates every section. */
  async #configure() {
    const raw = { ...(this.#options.config ?? {}) };
    assertConfigTree(raw);
    const known = new Set([...this.#records.keys(), 'platform']);
    const problems: string[] = [];
    for (const key of Object.keys(raw)) {
      if (!known.has(key)) {
        problems.push(`${key}: config section for no installed plugin (installed: ${[...known].sort().join(', ')})`);
      }
    }
    const platformSection = validateSection('platform', platformConfigSchema, raw.platform, this.#redactor);
    if (platformSection.ok) {
      this.#platformConfig = platformSection.value;
      if (!this.#options.log?.level) this.#rootLogger.level = platformSection.value.logLevel;
    } else problems.push(...platformSection.problems);

    const sections = new Map<string, unknown>();
    for (const [id, record] of this.#records) {
      if (id === HOST) continue;
      const fromFile = raw[id];
      const inline = record.plugin.inlineConfig as Record<string, unknown>;
      sections.set(id, isPlainObject(fromFile) ? deepMerge(inline, fromFile) : (fromFile ?? inline));
    }

    const refs = [...sections].flatMap(([id, section]) => findSecretRefs(section, id));
    if (refs.length > 0) {
      const secretsRef = [...this.#chosen.keys()].find((id) => id === 'core.secretStore');
      if (!secretsRef) {
        throw new ConfigError(
          `config ${refs[0]!.path} references secret '${refs[0]!.name}', but no installed plugin provides core.secretStore`,
        );
      }
      const provider = this.#chosen.get(secretsRef)!.pluginId;
      // The SecretStore and every plugin whose service it needs are created before secrets can be read, so their
      // configs are validated first and may not reference secrets themselves.
      const needed = this.#providersNeededBy(secretsRef);
      const own = refs.find((r) => needed.has(r.path.split('.')[0]!));
      if (own) {
        const owner = own.path.split('.')[0]!;
        throw new ConfigError(
          owner === provider
            ? `config ${own.path} references a secret, but '${provider}' provides the SecretStore and cannot read secrets to configure itself`
            : `config ${own.path} references a secret, but '${owner}' provides a service the SecretStore (plugin '${provider}') needs, so it is configured before secrets can be read`,
        );
      }
      for (const id of needed) this.#validateInto(id, sections.get(id), problems);
      if (problems.length) throw configError(problems);
      const store = (await this.#resolve({ id: secretsRef } as ServiceRef<unknown>, this.#host())) as {
        get(name: string): Promise<string>;
      };
      const values = new Map<string, string>();
      for (const ref of refs) {
        if (values.has(ref.name)) continue;
        try {
          values.set(ref.name, await store.get(ref.name));
        } catch (cause) {
          problems.push(
            `${ref.path}: references secret '${ref.name}', which cannot be read (${(cause as Error).message})`,
          );
        }
      }
      if (problems.length) throw configError(problems);
      for (const [id, section] of sections) sections.set(id, resolveSecretRefs(section, values, this.#redactor, id));
    }
    for (const [id, section] of sections) {
      if (this.#records.get(id)!.config === undefined) this.#validateInto(id, section, problems);
    }
    if (problems.length) throw configError(problems);
  }

  /**
   * One log line per port naming its provider, and whether it is a default that gave way to nothing. With
   * `platform.strict`, a local default that config did not choose explicitly stops the start: in production a port
   * silently kept on this machine's disk (artifacts, webhook signing secrets) loses data when the machine goes.
   */
  #announceProviders() {
    const strict = this.#platformConfig?.strict ?? false;
    const refused: string[] = [];
    for (const [refId, p] of [...this.#chosen].sort(([a], [b]) => a.localeCompare(b))) {
      const local = p.options.local === true;
      const kind = this.#explicit.has(refId)
        ? 'chosen in config platform.providers'
        : p.options.asDefault
          ? local
            ? 'embedded default, keeps its data on this machine'
            : 'default'
          : 'installed plugin';
      const decorators = (this.#decorators.get(refId) ?? []).map((d) => d.pluginId);
      this.#rootLogger.info(
        { port: refId, provider: p.pluginId, default: p.options.asDefault === true, local, decorators },
        `port ${refId}: plugin '${p.pluginId}' (${kind})${decorators.length ? `, decorated by ${decorators.map((d) => `'${d}'`).join(', ')}` : ''}`,
      );
      if (strict && local && !this.#explicit.has(refId)) {
        refused.push(`${refId} would fall back to '${p.pluginId}', which keeps its data on this machine`);
      }
    }
    if (refused.length) {
      throw new ConfigError(
        `platform.strict refuses to start:\n  - ${refused.join('\n  - ')}\n` +
          'install a plugin that provides each port, or choose the local provider in config platform.providers',
        refused,
      );
    }
  }

  /** The plugins whose services must exist before `refId` can be created: its provider and, recursively, theirs. */
  #providersNeededBy(refId: string, out = new Set<string>()): Set<string> {
    const provision = this.#chosen.get(refId);
    if (!provision || out.has(provision.pluginId)) return out;
    out.add(provision.pluginId);
    for (const dep of Object.values(provision.options.deps ?? {})) {
      if (dep.$$type === 'mlplane.service-ref') this.#providersNeededBy(dep.id, out);
    }
    for (const decorator of this.#decorators.get(refId) ?? []) {
      out.add(decorator.pluginId);
      for (const dep of Object.values(decorator.options.deps ?? {})) {
        if (dep.$$type === 'mlplane.service-ref') this.#providersNeededBy(dep.id, out);
      }
    }
    return out;
  }

  #validateInto(id: string, section: unknown, problems: string[]) {
    const record = this.#records.get(id)!;
    const result = validateSection(id, record.plugin.configSchema, section, this.#redactor);
    if (result.ok) record.config = result.value;
    else problems.push(...result.problems);
  }

  /** Runs each plugin's init after the plugins it depends on; extension-point users before owners. */
  async #initAll() {
    const order = this.#initOrder();
    for (const id of order) {
      const record = this.#records.get(id)!;
      for (const reg of record.inits) {
        const deps = await this.#resolveDeps(reg.deps, record);
        await run(id, 'init', () => reg.init({ ...deps, config: record.config }));
      }
      this.#inited.push(id);
    }
  }

  #initOrder(): string[] {
    const edges = new Map<string, Set<string>>(); // plugin -> plugins whose init must run first
    const add = (from: string, to: string) => {
      if (from !== to) edges.set(from, (edges.get(from) ?? new Set()).add(to));
    };
    const providersOf = (deps: Deps | undefined, seen = new Set<string>()): string[] => {
      const out: string[] = [];
      for (const dep of Object.values(deps ?? {})) {
        if (dep.$$type !== 'mlplane.service-ref' || seen.has(dep.id)) continue;
        seen.add(dep.id);
        const p = this.#chosen.get(dep.id);
        if (!p) continue;
        out.push(p.pluginId, ...providersOf(p.options.deps, seen));
      }
      return out;
    };
    for (const [id, record] of this.#records) {
      for (const reg of record.inits) {
        for (const provider of providersOf(reg.deps)) add(id, provider);
        for (const dep of Object.values(reg.deps)) {
          if (dep.$$type === 'mlplane.extension-point') add(this.#extensionOwners.get(dep.id)!, id);
        }
      }
    }
    const order: string[] = [];
    const state = new Map<string, 'visiting' | 'done'>();
    const visit = (id: string, path: string[]) => {
      if (state.get(id) === 'done') return;
      if (state.get(id) === 'visiting') {
        const cycle = [...path.slice(path.indexOf(id)), id].map((p) => `'${p}'`).join(' -> ');
        throw new WiringError(`dependency cycle between plugins: ${cycle}`);
      }
      state.set(id, 'visiting');
      for (const dep of edges.get(id) ?? []) visit(dep, [...path, id]);
      state.set(id, 'done');
      order.push(id);
    };
    for (const id of this.#records.keys()) if (id !== HOST) visit(id, []);
    return order;
  }

  async #teardown(reason: { signal?: string }) {
    const deadlineMs = this.#platformConfig?.shutdownDeadlineMs ?? 10_000;
    const deadline = Date.now() + deadlineMs;
    const failures: string[] = [];
    const step = async (label: string, fn: () => void | Promise<void>) => {
      const left = deadline - Date.now();
      if (left <= 0) {
        failures.push(`${label}: skipped, shutdown deadline of ${deadlineMs} ms passed`);
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          Promise.resolve().then(fn),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`did not finish within the shutdown deadline`)), left);
          }),
        ]);
      } catch (err) {
        failures.push(`${label}: ${this.#redactor.text((err as Error)?.message ?? String(err))}`);
      } finally {
        clearTimeout(timer);
      }
    };
    this.#stopSignal.abort();
    if (this.#inited.length > 0 || this.#state === 'stopping') {
      await step('platform.shutdown hook', () =>
        this.hooks.platform.shutdown.promise({ signal: reason.signal, deadline: new Date(deadline) }),
      );
    }
    for (const id of [...this.#inited].reverse()) {
      for (const hook of [...this.#records.get(id)!.shutdownHooks].reverse()) {
        await step(`plugin '${id}' shutdown (${hook.label})`, hook.fn);
      }
    }
    for (const created of [...this.#created].reverse()) await step(`dispose ${created.label}`, created.dispose);
    this.#created.length = 0;
    this.#inited.length = 0;
    if (failures.length) this.#rootLogger.error({ failures }, 'platform stopped with errors');
    else this.#rootLogger.info('platform stopped');
    if (failures.length && this.#state === 'stopping') {
      throw new PluginFailedError('platform', 'stop cleanly', new Error(failures.join('; ')));
    }
  }

  #installSignalHandlers() {
    for (const signal of this.#platformConfig?.signals ?? []) {
      const handler = () => {
        this.#rootLogger.info({ signal }, 'signal received, stopping');
        const exit = this.#options.onSignalStop ?? ((code: number) => process.exit(code));
        this.stop({ signal }).then(
          () => exit(0),
          () => exit(1),
        );
      };
      process.once(signal, handler);
      this.#signalHandlers.push([signal, handler]);
    }
  }

  #removeSignalHandlers() {
    for (const [signal, handler] of this.#signalHandlers) process.removeListener(signal, handler);
    this.#signalHandlers = [];
  }

  // --- resolution -----------------------------------------------------------------------------

  #newRecord(plugin: Plugin<any>): PluginRecord {
    return {
      plugin,
      provisions: [],
      inits: [],
      extensionPoints: new Map(),
      // Each plugin resolves through its own child container: plugin-scoped services live there.
      container: this.#root.createChildContainer(),
      startHooks: [],
      shutdownHooks: [],
      config: undefined,
    };
  }

  #host(): PluginRecord {
    let record = this.#records.get(HOST);
    if (!record) {
      record = this.#newRecord({ id: HOST, inlineConfig: {} } as Plugin<any>);
      record.config = {};
      this.#records.set(HOST, record);
    }
    return record;
  }

  async #resolveDeps(deps: Deps, consumer: PluginRecord): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = {};
    for (const [key, dep] of Object.entries(deps)) {
      out[key] =
        dep.$$type === 'mlplane.extension-point'
          ? this.#records.get(this.#extensionOwners.get(dep.id)!)!.extensionPoints.get(dep.id)
          : await this.#resolve(dep, consumer);
    }
    return out;
  }

  async #resolve(ref: ServiceRef<unknown> | ExtensionPoint<unknown>, consumer: PluginRecord): Promise<unknown> {
    if (ref.id === coreServices.logger.id)
      return this.#pluginService(consumer, coreServices.logger, () => this.#loggerFor(consumer));
    if (ref.id === coreServices.lifecycle.id) {
      return this.#pluginService(consumer, coreServices.lifecycle, () => this.#lifecycleFor(consumer));
    }
    if (ref.id === coreServices.hooks.id) {
      return this.#pluginService(consumer, coreServices.hooks, () =>
        consumer.plugin.id === HOST ? this.hooks : hooksForPlugin(this.hooks, consumer.plugin.id),
      );
    }
    if (ref.id === coreServices.pluginMetadata.id) {
      return this.#pluginService(consumer, coreServices.pluginMetadata, () =>
        Object.freeze({ id: consumer.plugin.id, description: consumer.plugin.description }),
      );
    }
    const provision = this.#chosen.get(ref.id);
    if (!provision) throw new WiringError(`no installed plugin provides '${ref.id}'`);
    const token = provision.ref.token;
    const scoped = provision.ref.scope === 'plugin';
    const container = scoped ? consumer.container : this.#root;
    if (container.isRegistered(token, false)) return container.resolve(token);
    const key = scoped ? `${consumer.plugin.id}:${ref.id}` : ref.id;
    let pending = this.#pending.get(key);
    if (!pending) {
      pending = this.#instantiate(provision, container);
      this.#pending.set(key, pending);
    }
    return pending;
  }

  async #instantiate(provision: Provision, container: DependencyContainer): Promise<unknown> {
    const provider = this.#records.get(provision.pluginId)!;
    const deps = await this.#resolveDeps(provision.options.deps ?? {}, provider);
    const instance = await run(provision.pluginId, `create '${provision.ref.id}'`, () =>
      provision.options.factory({ ...deps, config: provider.config } as never),
    );
    const dispose = provision.options.dispose;
    if (dispose)
      this.#created.push({
        label: `'${provision.ref.id}' (plugin '${provision.pluginId}')`,
        dispose: () => dispose(instance),
      });
    let service: unknown = instance;
    for (const decorator of this.#decorators.get(provision.ref.id) ?? []) {
      const owner = this.#records.get(decorator.pluginId)!;
      const decoratorDeps = await this.#resolveDeps(decorator.options.deps ?? {}, owner);
      service = await run(decorator.pluginId, `decorate '${provision.ref.id}'`, () =>
        decorator.options.decorate({ ...decoratorDeps, config: owner.config, service } as never),
      );
    }
    if (provision.ref.id === secretStoreRef.id) service = this.#redacting(service as SecretStore);
    const port = this.#ports.get(provision.ref.id);
    if (port) {
      service = port.guard(service, {
        hooks: this.hooks.of(port),
        hooksOf: (other) => this.hooks.of(other),
        providerId: provision.pluginId,
        logger: this.#rootLogger.child({ port: provision.ref.id, provider: provision.pluginId }) as unknown as Logger,
        signal: this.#stopSignal.signal,
      });
    }
    // Outermost, so that hooks and policies only ever see input the port accepts.
    const inputs = CORE_PORT_INPUTS[provision.ref.id];
    if (inputs) service = validatePortInputs(service as object, inputs);
    container.registerInstance(provision.ref.token, service);
    return service;
  }

  /**
   * The SecretStore as every consumer sees it: each value it hands out at run time joins the values scrubbed from
   * logs and startup errors, as the values of `${secret:...}` config references do.
   */
  #redacting(store: SecretStore): SecretStore {
    const redactor = this.#redactor;
    return intercept(store, {
      async get(name) {
        const value = await store.get(name);
        redactor.add(value);
        return value;
      },
    });
  }

  #pluginService<T>(consumer: PluginRecord, ref: ServiceRef<T>, make: () => T): T {
    if (!consumer.container.isRegistered(ref.token, false)) consumer.container.registerInstance(ref.token, make());
    return consumer.container.resolve<T>(ref.token);
  }

  #loggerFor(consumer: PluginRecord): Logger {
    return this.#rootLogger.child({ plugin: consumer.plugin.id }) as unknown as Logger;
  }

  #lifecycleFor(consumer: PluginRecord): PluginLifecycle {
    return {
      addStartHook: (fn, label = 'start hook') => {
        if (this.#state === 'running')
          throw new WiringError(`plugin '${consumer.plugin.id}' added a start hook after start`);
        consumer.startHooks.push({ fn, label });
      },
      addShutdownHook: (fn, label = 'shutdown hook') => {
        consumer.shutdownHooks.push({ fn, label });
      },
    };
  }
}

async function run<T>(pluginId: string, step: string, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof PluginFailedError || err instanceof WiringError || err instanceof ConfigError) throw err;
    throw new PluginFailedError(pluginId, step, err);
  }
}

function configError(problems: string[]) {
  return new ConfigError(`invalid config:\n  - ${problems.join('\n  - ')}`, problems);
}

function readLogLevel(config: RawConfig | undefined): string {
  const section = config?.platform;
  const level = isPlainObject(section) ? section.logLevel : undefined;
  return typeof level === 'string' ? level : (process.env.MLPLANE_LOG_LEVEL ?? 'info');
}
