import { createHash } from 'node:crypto';
import { ValidationError } from '@mlplane/core';
import type { z } from 'zod';
import { canonicalJson } from '../runtime/canonical.js';
import { isArtifactSchema } from './artifact.js';
import { type RetryPolicy, type Schemas, STEP_NAME_PATTERN, type StepDefinition } from './step.js';

/**
 * A typed reference to a value that exists only at run time: a step's output, a pipeline parameter, or the item of
 * a fan-out. `T` is phantom: it lets the compiler refuse wiring an output to an input of another type.
 */
export class Ref<T> {
  declare readonly __type: T;
  constructor(
    /** The producing step's id, `$params` for a parameter, `$item` for the item of a fan-out. */
    readonly node: string,
    readonly output: string,
  ) {
    Object.freeze(this);
  }
  toString(): string {
    return this.node === '$item' ? 'the fan-out item' : `${this.node}.${this.output}`;
  }
}

/** What an input may be wired to: a constant or a reference to a value of the same type. */
export type Wire<T> = T | Ref<T>;
export type Wires<I extends Schemas> = { readonly [K in keyof I]: Wire<z.output<I[K]>> };

/** A step in a pipeline: its outputs as references, and `$step`, its id (for `after`). */
export type StepOutputs<O extends Schemas> = { readonly [K in keyof O]: Ref<z.output<O[K]>> } & {
  readonly $step: string;
};
/** A fan-out's outputs: each is the list of the items' values, in item order (the fan-in). */
export type MappedOutputs<O extends Schemas> = { readonly [K in keyof O]: Ref<z.output<O[K]>[]> } & {
  readonly $step: string;
};

export type Binding =
  | { readonly kind: 'ref'; readonly node: string; readonly output: string }
  | { readonly kind: 'item' }
  | { readonly kind: 'value'; readonly value: unknown };

/** A run-time decision whether a step runs, on values of earlier steps or parameters (see `when`). */
export interface Condition {
  readonly refs: Readonly<Record<string, Ref<unknown>>>;
  readonly test: (values: Record<string, unknown>) => boolean;
  /** Shown in the step's explanation when it is skipped. */
  readonly description: string;
}

type RefValues<R> = { [K in keyof R]: R[K] extends Ref<infer T> ? T : never };

/**
 * A branch: the step runs only when `test` returns true on the named values; otherwise it is skipped, and so is
 * every step that needs one of its outputs.
 */
export function when<R extends Record<string, Ref<any>>>(
  refs: R,
  test: (values: RefValues<R>) => boolean,
  description?: string,
): Condition {
  return Object.freeze({
    refs,
    test: test as (values: Record<string, unknown>) => boolean,
    description:
      description ??
      `${test.toString().replace(/\s+/g, ' ').slice(0, 200)} on ${Object.values(refs)
        .map((r) => r.toString())
        .join(', ')}`,
  });
}

export interface StepOptions {
  /** The step's id in this pipeline; default the definition's name. Unique per pipeline; STEP_NAME_PATTERN. */
  readonly name?: string;
  readonly when?: Condition;
  /** Steps (ids or handles) that must finish first although no input comes from them. */
  readonly after?: readonly (string | { readonly $step: string })[];
  /** Overrides the definition's. */
  readonly retry?: RetryPolicy;
  readonly timeoutSeconds?: number;
  readonly cache?: boolean;
}

export interface PipelineNode {
  readonly id: string;
  readonly definition: StepDefinition;
  readonly inputs: Readonly<Record<string, Binding>>;
  /** For a fan-out: the list whose items each run the step once. */
  readonly over?: Binding;
  readonly when?: Condition;
  readonly after: readonly string[];
  readonly retry: RetryPolicy;
  readonly timeoutSeconds: number | undefined;
  readonly cache: boolean;
}

export interface Pipeline<P extends Schemas = Schemas> {
  readonly name: string;
  readonly description: string | undefined;
  readonly params: P;
  /** In a topological order (each after the steps it depends on). */
  readonly nodes: readonly PipelineNode[];
  /**
   * Hash of the graph's shape (steps, versions, wiring, constants): a run resumes only with the pipeline whose
   * hash it was started with.
   */
  readonly definitionHash: string;
}

export interface PipelineBuilder<P extends Schemas> {
  readonly params: { readonly [K in keyof P]: Ref<z.output<P[K]>> };
  /** Adds a step wired to constants, parameters and outputs of earlier steps. */
  step<I extends Schemas, O extends Schemas>(
    definition: StepDefinition<I, O>,
    inputs: Wires<I>,
    options?: StepOptions,
  ): StepOutputs<O>;
  /**
   * Fan-out: runs the step once per item of `over` (a constant list or a list-valued output or parameter), each item
   * reaching its inputs through the reference `inputs` receives. Each output becomes the list of the items' values.
   */
  map<I extends Schemas, O extends Schemas, T>(
    definition: StepDefinition<I, O>,
    over: Wire<readonly T[]> | Wire<T[]>,
    inputs: (item: Ref<T>) => Wires<I>,
    options?: StepOptions,
  ): MappedOutputs<O>;
  /** An output of a step by name, untyped: for wiring the compiler cannot check (prefer the step's handle). */
  ref<T = unknown>(step: string, output: string): Ref<T>;
}

export interface PipelineInit<P extends Schemas> {
  /** STEP_NAME_PATTERN; names the experiment of its tracker runs and scopes the cache explanations. */
  readonly name: string;
  readonly description?: string;
  readonly params?: P;
}

interface DraftNode extends Omit<PipelineNode, 'after'> {
  readonly after: readonly string[];
  readonly mapped: boolean;
}

/**
 * Defines a pipeline: `build` wires steps together through the builder. The result is checked at once (unknown
 * steps, cycles, outputs of the wrong type, constants that fail their input's schema): ValidationError naming the
 * field, `steps.<id>.inputs.<name>` and the like.
 */
export function pipeline<P extends Schemas = {}>(
  init: PipelineInit<P>,
  build: (p: PipelineBuilder<P>) => void,
): Pipeline<P> {
  if (typeof init.name !== 'string' || !STEP_NAME_PATTERN.test(init.name)) {
    throw new ValidationError(`pipeline name '${String(init.name)}' must match ${STEP_NAME_PATTERN}`, {
      field: 'name',
    });
  }
  const params = (init.params ?? {}) as P;
  const drafts: DraftNode[] = [];
  const ids = new Set<string>();

  const add = (
    definition: StepDefinition,
    inputs: Record<string, unknown>,
    options: StepOptions,
    over: unknown,
    mapped: boolean,
  ) => {
    const id = options.name ?? definition.name;
    if (typeof id !== 'string' || !STEP_NAME_PATTERN.test(id)) {
      throw new ValidationError(`step id '${String(id)}' must match ${STEP_NAME_PATTERN}`, { field: `steps.${id}` });
    }
    if (ids.has(id)) {
      throw new ValidationError(`pipeline '${init.name}' has two steps named '${id}': give one a \`name\``, {
        field: `steps.${id}`,
      });
    }
    ids.add(id);
    const node: DraftNode = {
      id,
      definition,
      inputs: Object.fromEntries(Object.entries(inputs ?? {}).map(([k, v]) => [k, bind(v)])),
      ...(mapped ? { over: bind(over) } : {}),
      ...(options.when ? { when: options.when } : {}),
      after: (options.after ?? []).map((a) => (typeof a === 'string' ? a : a.$step)),
      retry: options.retry ?? definition.retry ?? { retries: 0 },
      timeoutSeconds: options.timeoutSeconds ?? (definition.kind === 'job' ? definition.timeoutSeconds : undefined),
      cache: options.cache ?? definition.cache ?? true,
      mapped,
    };
    drafts.push(node);
    const handle: Record<string, unknown> = { $step: id };
    for (const output of Object.keys(definition.outputs ?? {})) handle[output] = new Ref(id, output);
    return Object.freeze(handle);
  };

  const builder: PipelineBuilder<P> = {
    params: Object.freeze(Object.fromEntries(Object.keys(params).map((k) => [k, new Ref('$params', k)]))) as never,
    step: (definition, inputs, options = {}) =>
      add(definition as StepDefinition, inputs as Record<string, unknown>, options, undefined, false) as never,
    map: (definition, over, inputs, options = {}) =>
      add(
        definition as StepDefinition,
        inputs(new Ref('$item', '')) as Record<string, unknown>,
        options,
        over,
        true,
      ) as never,
    ref: (step, output) => new Ref(step, output),
  };
  build(builder);
  const nodes = checkGraph(init.name, params, drafts);
  const definitionHash = createHash('sha256')
    .update(
      canonicalJson({
        name: init.name,
        params: Object.keys(params).sort(),
        nodes: nodes.map((n) => ({
          id: n.id,
          kind: n.definition.kind,
          step: n.definition.name,
          version: n.definition.version,
          inputs: n.inputs,
          over: n.over ?? null,
          when: n.when ? Object.fromEntries(Object.entries(n.when.refs).map(([k, r]) => [k, r.toString()])) : null,
          after: n.after,
        })),
      }),
    )
    .digest('hex');
  return Object.freeze({ name: init.name, description: init.description, params, nodes, definitionHash });
}

function bind(value: unknown): Binding {
  if (value instanceof Ref) {
    return value.node === '$item' ? { kind: 'item' } : { kind: 'ref', node: value.node, output: value.output };
  }
  return { kind: 'value', value };
}

/** What kind of value a schema holds, coarsely: enough to catch a number wired to a string or an artifact. */
type Shape = string | { readonly array: Shape };

function shapeOf(schema: z.ZodType | undefined): Shape {
  if (!schema) return 'any';
  if (isArtifactSchema(schema)) return 'artifact';
  const def = (schema as any)._zod?.def;
  switch (def?.type) {
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'readonly':
    case 'catch':
    case 'nonoptional':
      return shapeOf(def.innerType);
    case 'pipe':
      return shapeOf(def.out);
    case 'string':
    case 'enum':
    case 'template_literal':
      return 'string';
    case 'number':
    case 'int':
      return 'number';
    case 'boolean':
      return 'boolean';
    case 'array':
      return { array: shapeOf(def.element) };
    case 'object':
    case 'record':
      return 'object';
    case 'literal': {
      const values: unknown[] = def.values ?? [];
      const kinds = new Set(values.map((v) => typeof v));
      return kinds.size === 1 ? ([...kinds][0] as string) : 'any';
    }
    default:
      return 'any';
  }
}

function shapeName(shape: Shape): string {
  return typeof shape === 'string' ? shape : `${shapeName(shape.array)}[]`;
}

function compatible(from: Shape, to: Shape): boolean {
  if (from === 'any' || to === 'any') return true;
  if (typeof from === 'string' || typeof to === 'string') return from === to;
  return compatible(from.array, to.array);
}

function checkGraph(pipelineName: string, params: Schemas, drafts: readonly DraftNode[]): PipelineNode[] {
  const byId = new Map(drafts.map((d) => [d.id, d]));
  const fail = (field: string, message: string): never => {
    throw new ValidationError(`pipeline '${pipelineName}': ${message}`, { field });
  };
  /** The shape a binding yields, after checking that what it names exists. */
  const source = (binding: Binding, field: string, node: DraftNode): Shape | undefined => {
    if (binding.kind === 'value') return undefined;
    if (binding.kind === 'item') {
      if (!node.over) fail(field, `step '${node.id}' uses a fan-out item but is not a fan-out (use map)`);
      const over = node.over!;
      if (over.kind === 'value') return 'any';
      const list = source(over, `steps.${node.id}.over`, node);
      return list && typeof list !== 'string' ? list.array : 'any';
    }
    if (binding.node === '$params') {
      if (!(binding.output in params)) fail(field, `unknown parameter '${binding.output}'`);
      return shapeOf(params[binding.output]);
    }
    const producer = byId.get(binding.node);
    if (!producer) return fail(field, `unknown step '${binding.node}'`);
    const outputs = producer.definition.outputs ?? {};
    if (!(binding.output in outputs)) {
      fail(
        field,
        `step '${binding.node}' has no output '${binding.output}' (it has ${Object.keys(outputs).join(', ') || 'none'})`,
      );
    }
    const shape = shapeOf(outputs[binding.output]);
    return producer.mapped ? { array: shape } : shape;
  };

  for (const node of drafts) {
    const declared = node.definition.inputs ?? {};
    if (node.over) {
      const field = `steps.${node.id}.over`;
      if (node.over.kind === 'value') {
        if (!Array.isArray(node.over.value)) fail(field, `step '${node.id}' fans out over a value that is not a list`);
      } else if (node.over.kind === 'item') {
        fail(field, `step '${node.id}' cannot fan out over a fan-out item`);
      } else {
        const shape = source(node.over, field, node);
        if (shape !== undefined && shape !== 'any' && typeof shape === 'string') {
          fail(field, `step '${node.id}' fans out over ${node.over.node}.${node.over.output}, a ${shape}, not a list`);
        }
      }
    }
    for (const name of Object.keys(declared)) {
      if (!(name in node.inputs))
        fail(`steps.${node.id}.inputs.${name}`, `step '${node.id}' has no value for input '${name}'`);
    }
    for (const [name, binding] of Object.entries(node.inputs)) {
      const field = `steps.${node.id}.inputs.${name}`;
      const schema = declared[name];
      if (!schema) fail(field, `step '${node.id}' has no input '${name}'`);
      if (binding.kind === 'value') {
        const parsed = schema!.safeParse(binding.value);
        if (!parsed.success) {
          fail(
            field,
            `the constant for input '${name}' of step '${node.id}' fails its schema: ${parsed.error.issues[0]?.message}`,
          );
        }
        continue;
      }
      const from = source(binding, field, node)!;
      const to = shapeOf(schema);
      if (!compatible(from, to)) {
        const what = binding.kind === 'item' ? 'the fan-out item' : `${binding.node}.${binding.output}`;
        fail(field, `${what} is ${shapeName(from)} but input '${name}' of step '${node.id}' takes ${shapeName(to)}`);
      }
    }
    for (const [name, ref] of Object.entries(node.when?.refs ?? {})) {
      const binding = bind(ref);
      if (binding.kind !== 'ref')
        fail(`steps.${node.id}.when.${name}`, 'a condition can only read parameters and step outputs');
      source(binding, `steps.${node.id}.when.${name}`, node);
    }
    for (const dep of node.after) {
      if (!byId.has(dep)) fail(`steps.${node.id}.after`, `step '${node.id}' runs after unknown step '${dep}'`);
    }
  }

  // Kahn's order; what remains holds a cycle, shown as a path.
  const deps = new Map(drafts.map((d) => [d.id, dependenciesOf(d)]));
  const order: PipelineNode[] = [];
  const done = new Set<string>();
  while (order.length < drafts.length) {
    const ready = drafts.find((d) => !done.has(d.id) && [...deps.get(d.id)!].every((x) => done.has(x)));
    if (!ready) {
      const path = findCycle(
        drafts.filter((d) => !done.has(d.id)).map((d) => d.id),
        deps,
      );
      fail(`steps.${path[0]}.after`, `the steps form a cycle: ${path.join(' -> ')}`);
    }
    done.add(ready!.id);
    const { mapped: _mapped, ...node } = ready!;
    order.push(Object.freeze(node));
  }
  return order;
}

/** Steps a node waits for: the producers of its inputs, list, condition values, and `after`. */
export function dependenciesOf(node: Pick<PipelineNode, 'inputs' | 'over' | 'when' | 'after'>): Set<string> {
  const out = new Set<string>(node.after);
  const add = (b: Binding | undefined) => {
    if (b?.kind === 'ref' && b.node !== '$params') out.add(b.node);
  };
  for (const b of Object.values(node.inputs)) add(b);
  add(node.over);
  for (const r of Object.values(node.when?.refs ?? {})) add(bind(r));
  return out;
}

function findCycle(remaining: readonly string[], deps: ReadonlyMap<string, Set<string>>): string[] {
  const left = new Set(remaining);
  const start = remaining[0]!;
  const path = [start];
  const seen = new Map([[start, 0]]);
  let at = start;
  for (;;) {
    const next = [...deps.get(at)!].find((d) => left.has(d))!;
    const i = seen.get(next);
    if (i !== undefined) return [...path.slice(i), next];
    seen.set(next, path.length);
    path.push(next);
    at = next;
  }
}
