import { z } from 'zod';
import { definePort } from '../kernel/port.js';
import { createServiceRef } from '../kernel/service-ref.js';
import { describeValue, quoteValue, ValidationError } from './errors.js';
import { RUN_ID_PATTERN, type Run, type RunArtifact, trackingKey } from './experiment-tracker.js';
import { createModelRegistryHooks, guardModelRegistry } from './guards/model-registry.js';
import { limitedRecord, limitedString, positiveInteger, textCheck } from './input-schemas.js';
import { type Page, type PageLimits, type PageOptions, pageOptions } from './paging.js';
import { type PortInputs, portArg, portInput } from './port-inputs.js';
import { searchFilter, searchOrderBy } from './search-filter.js';

export {
  ConflictError,
  NotFoundError,
  UnavailableError,
  ValidationError,
  VetoedError,
} from './errors.js';
export type { Page, PageOptions } from './paging.js';

/**
 * Limits equal to MLflow's (its column sizes), so models move between the SQL default and an MLflow registry
 * unchanged; search inputs (filters, orderBy) have the SEARCH_FILTER_LIMITS shared with the tracker. A breach raises
 * ValidationError naming the limit.
 */
export const REGISTRY_LIMITS = Object.freeze({
  tagKeyLength: 250,
  tagValueLength: 5000,
  aliasLength: 255,
  /** Registered model names (MLflow's registered_models.name is VARCHAR(256)). */
  modelNameLength: 256,
  /** Model and version descriptions (VARCHAR(5000)). */
  descriptionLength: 5000,
  /** A version's source URI (VARCHAR(500)). */
  sourceLength: 500,
  /** A version's run link (VARCHAR(500)). */
  runLinkLength: 500,
  /** `userId` and `actor` (VARCHAR(256)). */
  userIdLength: 256,
  // The limits below are mlplane's own.
  /** Tags given to createModel or createVersion. */
  tagsPerCreate: 100,
  /** The reason given for a stage transition or alias move. */
  reasonLength: 1000,
  /** A version's signature, as JSON characters (the tracker's datasetSchemaLength). */
  signatureLength: 1_048_575,
  /** A `models:/` URI given to `resolve`. */
  modelUriLength: 1024,
});

/** searchModels page sizes (MLflow's SEARCH_REGISTERED_MODEL_MAX_RESULTS_*). */
export const SEARCH_MODELS_PAGE: PageLimits = Object.freeze({ default: 100, max: 1000 });
/** searchVersions page sizes (MLflow's SEARCH_MODEL_VERSION_MAX_RESULTS_*). */
export const SEARCH_VERSIONS_PAGE: PageLimits = Object.freeze({ default: 1000, max: 200_000 });
export const TRANSITION_HISTORY_PAGE: PageLimits = Object.freeze({ default: 100, max: 1000 });

/** Alias names: letters, digits, `_`, `-`; `latest` (any case) and `v<digits>` are reserved for URIs. */
export const ALIAS_PATTERN = /^[\p{L}\p{N}_-]+$/u;
export const RESERVED_ALIAS_PATTERN = /^(latest|v\d+)$/i;

/**
 * Stages as MLflow spells them. MLflow deprecated stages in favour of aliases but still serves them;
 * both are first-class here. Inputs are matched case-insensitively (`normalizeStage`).
 */
export const MODEL_STAGES = Object.freeze(['None', 'Staging', 'Production', 'Archived'] as const);
export type ModelStage = (typeof MODEL_STAGES)[number];

export type ModelVersionStatus = 'PENDING_REGISTRATION' | 'FAILED_REGISTRATION' | 'READY';

/** A named column of tabular input or output; `type` is MLflow's (`double`, `long`, `string`, `boolean`, `datetime`, `binary`...). */
export interface ColumnSpec {
  readonly kind: 'column';
  readonly name?: string;
  readonly type: string;
  /** Default true. */
  readonly required?: boolean;
}

/** A tensor input or output: numpy dtype name (`float32`, `int64`...) and shape, -1 for a variable dimension. */
export interface TensorSpec {
  readonly kind: 'tensor';
  readonly name?: string;
  readonly dtype: string;
  readonly shape: readonly number[];
}

/** An inference-time parameter with its default (MLflow's ParamSpec). */
export interface ParamSpec {
  readonly name: string;
  readonly type: string;
  readonly default: unknown;
  readonly shape?: readonly number[];
}

/** What a model accepts and returns; all columns or all tensors on each side, as MLflow requires. */
export interface ModelSignature {
  readonly inputs: readonly (ColumnSpec | TensorSpec)[];
  readonly outputs: readonly (ColumnSpec | TensorSpec)[];
  readonly params?: readonly ParamSpec[];
}

export interface ModelVersion {
  readonly name: string;
  /** 1, 2, 3... per model, assigned at creation; never reused, even after deletion. */
  readonly version: number;
  /** Artifact URI of the model files (`s3://...`, `runs:/<id>/model`, `mlflow-artifacts:/...`). */
  readonly source: string;
  /** The run that produced it (lineage); absent for models registered from outside the tracker. */
  readonly runId?: string;
  /** Link to the run in another tracking server. */
  readonly runLink?: string;
  /** Read from the model's files where the backend does not store it (see `capabilities.signatures`). */
  readonly signature?: ModelSignature;
  readonly status: ModelVersionStatus;
  readonly statusMessage?: string;
  readonly stage: ModelStage;
  readonly tags: Readonly<Record<string, string>>;
  readonly description: string;
  /** Aliases pointing at this version, sorted. */
  readonly aliases: readonly string[];
  /** Principal that registered it. */
  readonly userId?: string;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

export interface RegisteredModel {
  /** Unique; case-sensitive. */
  readonly name: string;
  readonly description: string;
  readonly tags: Readonly<Record<string, string>>;
  /** Alias -> version. */
  readonly aliases: Readonly<Record<string, number>>;
  /** The highest version in each stage that has one, ordered by MODEL_STAGES. */
  readonly latestVersions: readonly ModelVersion[];
  readonly userId?: string;
  readonly createdAt: Date;
  readonly updatedAt: Date;
}

/**
 * One recorded stage change; the registry keeps every one (MLflow does not, so its plugin records them
 * itself where `capabilities.transitionHistory`).
 */
export interface StageTransition {
  readonly name: string;
  readonly version: number;
  readonly from: ModelStage;
  readonly to: ModelStage;
  /** Principal id; absent for system actions. */
  readonly actor?: string;
  readonly at: Date;
  readonly reason?: string;
  /** Set on transitions to Archived caused by `archiveExisting` on another version's promotion. */
  readonly causedBy?: { readonly version: number };
}

/** Where a version came from: its files and the run (and experiment) that produced them. */
export interface ModelLineage {
  readonly name: string;
  readonly version: number;
  readonly source: string;
  readonly runId?: string;
  readonly runLink?: string;
  /** Known when the registry shares a tracker with the run. */
  readonly experimentId?: string;
  /**
   * The producing run as its tracker holds it (params, latest metrics, tags, dataset inputs); present when the
   * registry shares a tracker with the run and the run still exists.
   */
  readonly run?: Run;
  /** Files below the run's artifact root (a bounded listing), present with `run`. */
  readonly artifacts?: readonly RunArtifact[];
}

/** A parsed `models:/` URI; see `parseModelUri`. */
export type ModelUri =
  | { readonly name: string; readonly kind: 'version'; readonly version: number }
  | { readonly name: string; readonly kind: 'stage'; readonly stage: ModelStage }
  | { readonly name: string; readonly kind: 'alias'; readonly alias: string }
  | { readonly name: string; readonly kind: 'latest' };

export interface CreateModelInput {
  readonly name: string;
  readonly description?: string;
  readonly tags?: Readonly<Record<string, string>>;
}

export interface CreateVersionInput {
  /** The model must exist (NotFoundError). */
  readonly name: string;
  readonly source: string;
  readonly runId?: string;
  readonly runLink?: string;
  readonly signature?: ModelSignature;
  readonly description?: string;
  readonly tags?: Readonly<Record<string, string>>;
  readonly userId?: string;
}

export interface TransitionStageInput {
  readonly name: string;
  readonly version: number;
  readonly to: ModelStage;
  /** Move other versions in `to` (Staging or Production only) to Archived; default false. */
  readonly archiveExisting?: boolean;
  readonly reason?: string;
  readonly actor?: string;
  /**
   * The version as the `model.beforePromote` policies judged it (the kernel's guard sets it). A provider with
   * `capabilities.atomicPromotionCheck` applies the move only if the version still equals it (stage, tags, aliases,
   * description, status...), inside the write's transaction, and raises ConflictError otherwise.
   */
  readonly expected?: ModelVersion;
}

export interface SetAliasInput {
  readonly name: string;
  readonly alias: string;
  readonly version: number;
  readonly actor?: string;
  readonly reason?: string;
  /** The target version as the policies judged it; see TransitionStageInput.expected. */
  readonly expected?: ModelVersion;
  /** The version the alias pointed at when the policies judged the move (null: none); checked like `expected`. */
  readonly expectedPrevious?: number | null;
}

export interface SearchModelsOptions extends PageOptions {
  /** `name = 'x'`, `name LIKE 'fraud%'`, `name ILIKE ...`, `tags.<key> = 'v'`, joined with `and`. */
  readonly filter?: string;
  /** `name`, `creation_timestamp`, `last_updated_timestamp`, each optionally `ASC`/`DESC`; default `name ASC`. */
  readonly orderBy?: readonly string[];
}

export interface SearchVersionsOptions extends PageOptions {
  /** `name`, `version_number`, `run_id` (also `IN (...)`), `source_path`, `tags.<key>`, joined with `and`. */
  readonly filter?: string;
  /** `name`, `version_number`, `creation_timestamp`, `last_updated_timestamp`; default `name ASC, version_number DESC`. */
  readonly orderBy?: readonly string[];
}

/** Which features differ between backends; the rest of the contract holds everywhere. */
export interface ModelRegistryCapabilities {
  /** `getTransitionHistory` returns every transition (the MLflow plugin keeps it in its own table). */
  readonly transitionHistory: boolean;
  /** Signatures are stored with the version rather than read back from the model files. */
  readonly signatures: boolean;
  /** Versions may sit in PENDING_REGISTRATION while files are copied asynchronously. */
  readonly asyncRegistration: boolean;
  /**
   * A promotion's `expected` state is compared with the stored one inside the write's transaction, so a change made
   * while the `model.beforePromote` policies ran (a tag deleted, a stage moved) makes the promotion fail with
   * ConflictError instead of being applied on a state no policy saw. Without it the check is a read before the
   * write, and a concurrent change can slip between them.
   */
  readonly atomicPromotionCheck: boolean;
  /** The `searchModels` order keys the backend understands (MLflow cannot order models by creation_timestamp). */
  readonly modelOrderBy: readonly string[];
  /**
   * Every change records its domain event in the same transaction (the outbox), which feeds the audit log and
   * webhooks. False (MLflow): the server keeps no outbox, and clients writing to it directly bypass mlplane,
   * so changes are not audited.
   */
  readonly changeEvents: boolean;
}

/**
 * Registered models, their numbered versions, stages, aliases, tags and lineage.
 * Unknown models or versions raise NotFoundError; bad names, stages, aliases and over-long tags raise ValidationError.
 * Every promotion (stage transition or alias move) first runs the `model.beforePromote` veto hook and raises
 * VetoedError, changing nothing, when a policy refuses.
 */
export interface ModelRegistry {
  readonly capabilities: ModelRegistryCapabilities;

  /** ConflictError when the name is taken. */
  createModel(input: CreateModelInput): Promise<RegisteredModel>;
  getModel(name: string): Promise<RegisteredModel>;
  updateModel(name: string, changes: { readonly description: string }): Promise<RegisteredModel>;
  /** Versions, aliases and history move with it; ConflictError when `newName` is taken. */
  renameModel(name: string, newName: string): Promise<RegisteredModel>;
  /** Deletes every version, alias and tag of the model. */
  deleteModel(name: string): Promise<void>;
  /** Page limits SEARCH_MODELS_PAGE. */
  searchModels(options?: SearchModelsOptions): Promise<Page<RegisteredModel>>;

  /** Assigns the next version number; stage None; may return PENDING_REGISTRATION where `capabilities.asyncRegistration`. */
  createVersion(input: CreateVersionInput): Promise<ModelVersion>;
  getVersion(name: string, version: number): Promise<ModelVersion>;
  updateVersion(name: string, version: number, changes: { readonly description: string }): Promise<ModelVersion>;
  /** Also deletes the aliases pointing at it. */
  deleteVersion(name: string, version: number): Promise<void>;
  /** Page limits SEARCH_VERSIONS_PAGE; reverse lineage with `run_id = '<id>'`. */
  searchVersions(options?: SearchVersionsOptions): Promise<Page<ModelVersion>>;
  /** The highest version in each of `stages` (all stages when absent) that has one, ordered by MODEL_STAGES. */
  getLatestVersions(name: string, stages?: readonly ModelStage[]): Promise<readonly ModelVersion[]>;

  /**
   * Moves a version to `to` after the `model.beforePromote` hook agrees (VetoedError otherwise) and records
   * a StageTransition, plus one per version archived by `archiveExisting`, all in one step.
   * A transition to the version's current stage changes nothing, runs no hook and records nothing.
   */
  transitionStage(input: TransitionStageInput): Promise<ModelVersion>;
  /** Transitions of one version (or of every version when `version` is absent), oldest first; page limits TRANSITION_HISTORY_PAGE. */
  getTransitionHistory(name: string, version?: number, options?: PageOptions): Promise<Page<StageTransition>>;

  /**
   * Points `alias` at `version`, moving it from another version if needed, after the `model.beforePromote`
   * hook agrees (VetoedError otherwise); ValidationError for a name failing `validateAlias`.
   */
  setAlias(input: SetAliasInput): Promise<void>;
  /** Idempotent. */
  deleteAlias(name: string, alias: string): Promise<void>;
  getVersionByAlias(name: string, alias: string): Promise<ModelVersion>;

  /** Last write wins; limits REGISTRY_LIMITS.tagKeyLength / tagValueLength. */
  setModelTag(name: string, key: string, value: string): Promise<void>;
  /** Idempotent. */
  deleteModelTag(name: string, key: string): Promise<void>;
  setVersionTag(name: string, version: number, key: string, value: string): Promise<void>;
  /** Idempotent. */
  deleteVersionTag(name: string, version: number, key: string): Promise<void>;

  getLineage(name: string, version: number): Promise<ModelLineage>;
  /**
   * The version a `models:/` URI names: `models:/fraud/3`, `models:/fraud@champion`,
   * `models:/fraud/Production` (latest in that stage), `models:/fraud/latest`.
   * ValidationError for a malformed URI; NotFoundError when nothing matches.
   */
  resolve(modelUri: string): Promise<ModelVersion>;
}

export const modelRegistryRef = createServiceRef<ModelRegistry>({ id: 'core.modelRegistry' });

/**
 * The port as the kernel knows it: its hooks (`model.registered`, `model.beforePromote`, `model.promoted`, under `platform.hooks.model`) and the guard that makes
 * them fire for whichever provider is chosen. Providers never fire these hooks themselves.
 */
export const modelRegistryPort = definePort({
  ref: modelRegistryRef,
  hooksKey: 'model',
  createHooks: createModelRegistryHooks,
  guard: guardModelRegistry,
});

/** ValidationError (field `alias`) unless `alias` is a usable alias name, in Unicode NFC. */
export function validateAlias(alias: string): void {
  if (alias.length > REGISTRY_LIMITS.aliasLength) {
    throw new ValidationError(`alias exceeds the aliasLength limit of ${REGISTRY_LIMITS.aliasLength}`, {
      field: 'alias',
    });
  }
  if (!ALIAS_PATTERN.test(alias)) {
    throw new ValidationError(`alias '${alias}' may only contain letters, digits, '_' and '-'`, { field: 'alias' });
  }
  if (RESERVED_ALIAS_PATTERN.test(alias)) {
    throw new ValidationError(`alias '${alias}' is reserved ('latest' and 'v<number>' name versions in URIs)`, {
      field: 'alias',
    });
  } // Refused rather than normalised, as tracking keys: 'Å' (U+212B) beside 'Å' (U+00C5) would be two aliases.
  if (alias.normalize('NFC') !== alias) {
    throw new ValidationError(`alias '${alias}' must be written in Unicode NFC form (alias.normalize('NFC'))`, {
      field: 'alias',
    });
  }
}

/** The canonical spelling of a stage given in any case; ValidationError for an unknown stage. */
export function normalizeStage(stage: string): ModelStage {
  const found = MODEL_STAGES.find((s) => s.toLowerCase() === stage.toLowerCase());
  if (!found) {
    throw new ValidationError(`unknown stage ${quoteValue(stage)}; use one of ${MODEL_STAGES.join(', ')}`, {
      field: 'stage',
    });
  }
  return found;
}

function notAModelUri(uri: string): ValidationError {
  return new ValidationError(
    `${quoteValue(uri, 300)} is not a models:/ URI; use models:/<name>/<version>, models:/<name>/<stage>, models:/<name>/latest or models:/<name>@<alias>`,
    { field: 'modelUri' },
  );
}

/** Parses `models:/<name>/<version|stage|latest>` or `models:/<name>@<alias>`; ValidationError otherwise. */
export function parseModelUri(uri: string): ModelUri {
  // A module-level error factory rather than a closure: resolve parses a URI on every call of the hot path.
  if (!uri.startsWith('models:/')) throw notAModelUri(uri);
  const path = uri.slice('models:/'.length);
  const slash = path.split('/');
  if (slash.length === 2) {
    const [name, suffix] = slash as [string, string];
    if (!name.trim() || !suffix) throw notAModelUri(uri);
    if (/^\d+$/.test(suffix)) return { name, kind: 'version', version: Number(suffix) };
    if (suffix.toLowerCase() === 'latest') return { name, kind: 'latest' };
    const stage = MODEL_STAGES.find((s) => s.toLowerCase() === suffix.toLowerCase());
    if (stage) return { name, kind: 'stage', stage };
    throw notAModelUri(uri);
  }
  const at = path.lastIndexOf('@');
  if (slash.length === 1 && at > 0 && at < path.length - 1) {
    const name = path.slice(0, at);
    if (!name.trim()) throw notAModelUri(uri);
    return { name, kind: 'alias', alias: path.slice(at + 1) };
  }
  throw notAModelUri(uri);
}

/** The `models:/` URI of a version, e.g. `models:/fraud/3`. */
export function formatModelUri(name: string, version: number): string {
  return `models:/${name}/${version}`;
}

// ---------------------------------------------------------------- argument schemas

/** A registered model name: non-empty, within `modelNameLength`, without `/` (models:/ URIs could not name it). */
export const modelName = limitedString('modelNameLength', REGISTRY_LIMITS.modelNameLength, {
  nonEmpty: true,
  blankIsEmpty: true,
})
  .check(textCheck('name'))
  .refine((name) => !name.includes('/'), {
    error: (issue) => `${quoteValue(issue.input)} may not contain '/': models:/ URIs could not name it`,
  });

const stageName = z
  .string({ error: (issue) => `must be a stage name, got ${describeValue(issue.input)}` })
  .refine((stage) => MODEL_STAGES.some((s) => s.toLowerCase() === stage.toLowerCase()), {
    error: (issue) => `names an unknown stage ${quoteValue(issue.input)}; use one of ${MODEL_STAGES.join(', ')}`,
  }) as unknown as z.ZodType<ModelStage>;
const tagKey = trackingKey('tagKeyLength', REGISTRY_LIMITS.tagKeyLength);
const tagValue = limitedString('tagValueLength', REGISTRY_LIMITS.tagValueLength).check(textCheck('text'));
const tags = limitedRecord(tagKey, tagValue, 'tagsPerCreate', REGISTRY_LIMITS.tagsPerCreate);
const description = limitedString('descriptionLength', REGISTRY_LIMITS.descriptionLength).check(textCheck('text'));
const userId = limitedString('userIdLength', REGISTRY_LIMITS.userIdLength).check(textCheck('line'));
const reason = limitedString('reasonLength', REGISTRY_LIMITS.reasonLength).check(textCheck('text'));
const runId = z
  .string({ error: (issue) => `must be a run id, got ${describeValue(issue.input)}` })
  .regex(RUN_ID_PATTERN, { error: (issue) => `${quoteValue(issue.input)} is not a run id` });

const columnSpec = z.object({
  kind: z.literal('column'),
  name: z.string().optional(),
  type: z.string().min(1, { error: 'must be a non-empty string' }),
  required: z.boolean().optional(),
});
const tensorSpec = z.object({
  kind: z.literal('tensor'),
  name: z.string().optional(),
  dtype: z.string().min(1, { error: 'must be a non-empty string' }),
  shape: z.array(
    z.number().refine((d) => Number.isInteger(d) && d >= -1, {
      error: 'must be an integer (-1 for a variable dimension)',
    }),
  ),
});
const specs = z
  .array(
    z.discriminatedUnion('kind', [columnSpec, tensorSpec], {
      error: (issue) =>
        issue.code === 'invalid_union'
          ? "must be a column or tensor spec: kind must be 'column' or 'tensor'"
          : `must be a column or tensor spec, got ${describeValue(issue.input)}`,
    }),
  )
  .check((ctx) => {
    if (new Set(ctx.value.map((spec) => spec.kind)).size > 1) {
      ctx.issues.push({
        code: 'custom',
        input: undefined,
        message: 'mixes columns and tensors; use one kind per side',
      });
    }
  });

/** A ModelSignature: arrays of column or tensor specs, one kind per side, within `signatureLength` as JSON. */
export const modelSignature = z
  .object(
    {
      inputs: specs,
      outputs: specs,
      params: z
        .array(
          z.object({ name: z.string(), type: z.string(), default: z.unknown(), shape: z.array(z.number()).optional() }),
        )
        .optional(),
    },
    { error: (issue) => `must be an object with inputs and outputs, got ${describeValue(issue.input)}` },
  )
  .check((ctx) => {
    const length = JSON.stringify(ctx.value).length;
    if (length > REGISTRY_LIMITS.signatureLength) {
      ctx.issues.push({
        code: 'custom',
        input: undefined,
        message: `takes ${length} chars as JSON; the signatureLength limit is ${REGISTRY_LIMITS.signatureLength}`,
      });
    }
  });

const name = portArg('name', modelName);
const version = portArg('version', positiveInteger);
const descriptionChange = portInput('changes', z.object({ description }));
const aliasName = portArg('alias', limitedString('aliasLength', REGISTRY_LIMITS.aliasLength));

/**
 * The arguments of every ModelRegistry operation, with REGISTRY_LIMITS, SEARCH_FILTER_LIMITS and the page limits;
 * `validatePortInputs(registry, modelRegistryInputs)` applies them at the port's boundary. What needs the
 * registry's state (existing names, versions, aliases) or relates fields (a `runs:/` source against `runId`,
 * `archiveExisting` against the target stage) is left to the implementation.
 */
export const modelRegistryInputs = {
  createModel: z.tuple([
    portInput('input', z.object({ name: modelName, description: description.optional(), tags: tags.optional() })),
  ]),
  getModel: z.tuple([name]),
  updateModel: z.tuple([name, descriptionChange]),
  renameModel: z.tuple([name, portArg('newName', modelName)]),
  deleteModel: z.tuple([name]),
  searchModels: z.tuple([
    portInput(
      'options',
      pageOptions(SEARCH_MODELS_PAGE).extend({ filter: searchFilter.optional(), orderBy: searchOrderBy.optional() }),
    ).optional(),
  ]),

  createVersion: z.tuple([
    portInput(
      'input',
      z.object({
        name: modelName,
        source: limitedString('sourceLength', REGISTRY_LIMITS.sourceLength, {
          nonEmpty: true,
          blankIsEmpty: true,
        }).check(textCheck('line')),
        runId: runId.optional(),
        runLink: limitedString('runLinkLength', REGISTRY_LIMITS.runLinkLength).check(textCheck('line')).optional(),
        signature: modelSignature.optional(),
        description: description.optional(),
        tags: tags.optional(),
        userId: userId.optional(),
      }),
    ),
  ]),
  getVersion: z.tuple([name, version]),
  updateVersion: z.tuple([name, version, descriptionChange]),
  deleteVersion: z.tuple([name, version]),
  searchVersions: z.tuple([
    portInput(
      'options',
      pageOptions(SEARCH_VERSIONS_PAGE).extend({ filter: searchFilter.optional(), orderBy: searchOrderBy.optional() }),
    ).optional(),
  ]),
  getLatestVersions: z.tuple([
    name,
    portArg(
      'stages',
      z.array(stageName).max(MODEL_STAGES.length, {
        error: `names more stages than there are (${MODEL_STAGES.length})`,
      }),
    ).optional(),
  ]),

  transitionStage: z.tuple([
    portInput(
      'input',
      z.object({
        name: modelName,
        version: positiveInteger,
        to: stageName,
        archiveExisting: z.boolean().optional(),
        reason: reason.optional(),
        actor: userId.optional(),
      }),
    ),
  ]),
  getTransitionHistory: z.tuple([
    name,
    version.optional(),
    portInput('options', pageOptions(TRANSITION_HISTORY_PAGE)).optional(),
  ]),

  setAlias: z.tuple([
    portInput(
      'input',
      z.object({
        name: modelName,
        alias: z
          .string()
          .max(REGISTRY_LIMITS.aliasLength, {
            error: `exceeds the aliasLength limit of ${REGISTRY_LIMITS.aliasLength}`,
            abort: true,
          })
          .regex(ALIAS_PATTERN, { error: "may only contain letters, digits, '_' and '-'", abort: true })
          .refine((alias) => !RESERVED_ALIAS_PATTERN.test(alias), {
            error: (issue) => `${quoteValue(issue.input)} is reserved ('latest' and 'v<number>' name versions in URIs)`,
            abort: true,
          })
          .refine((alias) => alias.normalize('NFC') === alias, {
            error: "must be written in Unicode NFC form (alias.normalize('NFC'))",
          }),
        version: positiveInteger,
        actor: userId.optional(),
        reason: reason.optional(),
      }),
    ),
  ]),
  deleteAlias: z.tuple([name, aliasName]),
  getVersionByAlias: z.tuple([name, aliasName]),

  setModelTag: z.tuple([name, portArg('key', tagKey), portArg('value', tagValue)]),
  deleteModelTag: z.tuple([name, portArg('key', limitedString('tagKeyLength', REGISTRY_LIMITS.tagKeyLength))]),
  setVersionTag: z.tuple([name, version, portArg('key', tagKey), portArg('value', tagValue)]),
  deleteVersionTag: z.tuple([
    name,
    version,
    portArg('key', limitedString('tagKeyLength', REGISTRY_LIMITS.tagKeyLength)),
  ]),

  getLineage: z.tuple([name, version]),
  resolve: z.tuple([portArg('modelUri', limitedString('modelUriLength', REGISTRY_LIMITS.modelUriLength))]),
} satisfies PortInputs<ModelRegistry>;
