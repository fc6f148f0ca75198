import { DEFAULT_PROJECT, type ExperimentTracker, type ModelRegistry, NotFoundError, PROJECT_TAG } from '@mlplane/core';
import { LRUCache } from 'lru-cache';

// Which project an experiment or registered model belongs to: core's PROJECT_TAG, set when the API creates it and
// never changed through the API afterwards (routes refuse to set or delete `mlplane.*` tags). Runs belong to their
// experiment's project, model versions to their model's; untagged ones to DEFAULT_PROJECT.
export { DEFAULT_PROJECT, PROJECT_TAG } from '@mlplane/core';
/** Tags with this prefix are the platform's own; clients may read but not write them. */
export const RESERVED_TAG_PREFIX = 'mlplane.';

const CACHE_SIZE = 100_000;
/** A model can be renamed or deleted by another replica; its owner is re-read at least this often. */
const MODEL_TTL_MS = 30_000;

/**
 * Checks that what a request names belongs to the project in its path, answering NotFoundError otherwise (so a
 * caller of another project learns nothing about it). The hot paths (log-batch, get-by-alias) check on every
 * request, so owners are cached: an experiment's project and a run's experiment never change, a model's name can,
 * so its entry expires and is dropped when the API renames or deletes it.
 */
export class ProjectScope {
  readonly #experiments = new LRUCache<string, string>({ max: CACHE_SIZE });
  readonly #runs = new LRUCache<string, string>({ max: CACHE_SIZE });
  readonly #models = new LRUCache<string, string>({ max: CACHE_SIZE, ttl: MODEL_TTL_MS });

  constructor(
    private readonly tracker: ExperimentTracker,
    private readonly registry: ModelRegistry,
  ) {}

  /** The experiment's project; NotFoundError when it is in another one. */
  async experiment(project: string, experimentId: string): Promise<void> {
    let owner = this.#experiments.get(experimentId);
    if (owner === undefined) {
      const experiment = await this.tracker.getExperiment(experimentId);
      owner = experiment.tags[PROJECT_TAG] ?? DEFAULT_PROJECT;
      this.#experiments.set(experimentId, owner);
    }
    if (owner !== project)
      throw new NotFoundError(`experiment '${experimentId}' does not exist in project '${project}'`);
  }

  /** The run's experiment when the run is in `project`; NotFoundError otherwise. */
  async run(project: string, runId: string): Promise<string> {
    let experimentId = this.#runs.get(runId);
    if (experimentId === undefined) {
      experimentId = (await this.tracker.getRun(runId)).info.experimentId;
      this.#runs.set(runId, experimentId);
    }
    try {
      await this.experiment(project, experimentId);
    } catch (err) {
      if (err instanceof NotFoundError)
        throw new NotFoundError(`run '${runId}' does not exist in project '${project}'`);
      throw err;
    }
    return experimentId;
  }

  /** NotFoundError when the model is in another project. */
  async model(project: string, name: string): Promise<void> {
    let owner = this.#models.get(name);
    if (owner === undefined) {
      const model = await this.registry.getModel(name);
      owner = model.tags[PROJECT_TAG] ?? DEFAULT_PROJECT;
      this.#models.set(name, owner);
    }
    if (owner !== project) throw new NotFoundError(`registered model '${name}' does not exist in project '${project}'`);
  }

  /** Records what the API just created, sparing the first check a read. */
  remember(kind: 'experiment' | 'model', key: string, project: string): void {
    (kind === 'experiment' ? this.#experiments : this.#models).set(key, project);
  }

  rememberRun(runId: string, experimentId: string): void {
    this.#runs.set(runId, experimentId);
  }

  /** Drops a model's entry when it is renamed or deleted. */
  forgetModel(name: string): void {
    this.#models.delete(name);
  }
}
