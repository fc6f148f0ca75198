import type { ArtifactStore, ExperimentTracker, ModelVersion, RunInfo } from '@mlplane/core';
import { ValidationError } from '@mlplane/core';
import { LRUCache } from 'lru-cache';
import type { ProjectScope } from '../http/projects.js';

/** The scheme the stock client proxies through this server's /api/2.0/mlflow-artifacts routes. */
export const MLFLOW_ARTIFACTS_SCHEME = 'mlflow-artifacts:';

const CACHE_SIZE = 100_000;
const PROBE_KEY = 'mlplane-uri-probe';

/**
 * Translates between the platform's artifact URIs (the ArtifactStore's: `file:///…/experiments/7`, `s3://…`) and
 * the `mlflow-artifacts:/` URIs the stock client understands, the way an MLflow server with proxied artifacts
 * presents them: experiment 7's location is `mlflow-artifacts:/7`, its runs' `mlflow-artifacts:/7/<run>/artifacts`,
 * and a path `7/<rest>` below /api/2.0/mlflow-artifacts/artifacts is `<experiment 7's location key>/<rest>` in the
 * store. Putting the experiment id first lets every proxied request be checked against the experiment's project.
 * Locations outside the store (a tracker on another backend) are shown unchanged: the client then reads them itself.
 */
export class ArtifactUris {
  /** Experiment id -> its artifact location (fixed at creation). */
  readonly #locations = new LRUCache<string, string>({ max: CACHE_SIZE });
  /** Run id -> experiment id (fixed at creation). */
  readonly #runs = new LRUCache<string, string>({ max: CACHE_SIZE });
  readonly #base: string;

  constructor(
    private readonly tracker: ExperimentTracker,
    private readonly artifacts: ArtifactStore,
  ) {
    const probe = artifacts.uri(PROBE_KEY);
    this.#base = probe.slice(0, probe.length - PROBE_KEY.length);
  }

  /** The store key a URI of the store names, or undefined for a URI elsewhere. */
  keyOf(uri: string): string | undefined {
    if (!uri.startsWith(this.#base)) return undefined;
    const rest = uri.slice(this.#base.length);
    let decoded: string | undefined;
    try {
      decoded = decodeURIComponent(rest);
    } catch {}
    for (const candidate of new Set([rest, decoded])) {
      if (candidate === undefined || candidate === '') continue;
      try {
        if (this.artifacts.uri(candidate) === uri) return candidate;
      } catch {}
    }
    return undefined;
  }

  remember(experimentId: string, location: string): void {
    this.#locations.set(experimentId, location);
  }

  async #location(experimentId: string): Promise<string> {
    let location = this.#locations.get(experimentId);
    if (location === undefined) {
      location = (await this.tracker.getExperiment(experimentId)).artifactLocation.replace(/\/+$/, '');
      this.#locations.set(experimentId, location);
    }
    return location;
  }

  /** The location as the client sees it. */
  experimentLocation(experimentId: string, location: string): string {
    this.#locations.set(experimentId, location.replace(/\/+$/, ''));
    return this.keyOf(location.replace(/\/+$/, '')) === undefined
      ? location
      : `${MLFLOW_ARTIFACTS_SCHEME}/${experimentId}`;
  }

  /** A run's artifact URI as the client sees it. */
  async runArtifactUri(info: RunInfo): Promise<string> {
    this.#runs.set(info.id, info.experimentId);
    return this.#present(info.experimentId, info.artifactUri);
  }

  /** A version's source as the client sees it: below its run's experiment when it lies there. */
  async versionSource(version: ModelVersion): Promise<string> {
    if (!version.runId || version.source.startsWith(MLFLOW_ARTIFACTS_SCHEME)) return version.source;
    let experimentId = this.#runs.get(version.runId);
    if (experimentId === undefined) {
      try {
        experimentId = (await this.tracker.getRun(version.runId)).info.experimentId;
      } catch {
        // The run is gone (or elsewhere): the source is shown as stored.
        return version.source;
      }
      this.#runs.set(version.runId, experimentId);
    }
    return this.#present(experimentId, version.source);
  }

  async #present(experimentId: string, uri: string): Promise<string> {
    const location = await this.#location(experimentId);
    if (this.keyOf(location) === undefined) return uri;
    if (uri === location) return `${MLFLOW_ARTIFACTS_SCHEME}/${experimentId}`;
    if (!uri.startsWith(`${location}/`)) return uri;
    return `${MLFLOW_ARTIFACTS_SCHEME}/${experimentId}/${uri.slice(location.length + 1)}`;
  }

  /**
   * The store key below an experiment that a proxied path `<experimentId>[/<rest>]` names, after checking the
   * experiment is in `project` (NotFoundError otherwise). ValidationError for a path without an experiment id or
   * with empty, `.` or `..` segments.
   */
  async keyForPath(projects: ProjectScope, project: string, path: string): Promise<string> {
    const segments = path.split('/').filter((s, i, all) => s !== '' || i !== all.length - 1);
    const [experimentId, ...rest] = segments;
    if (experimentId === undefined || !/^\d{1,16}$/.test(experimentId)) {
      throw new ValidationError(
        `artifact path '${path.slice(0, 200)}' must start with an experiment id, as in mlflow-artifacts:/<experiment id>/<run id>/artifacts/...`,
        { field: 'path' },
      );
    }
    if (rest.some((s) => s === '' || s === '.' || s === '..')) {
      throw new ValidationError(`artifact path '${path.slice(0, 200)}' must not have empty, '.' or '..' segments`, {
        field: 'path',
      });
    }
    await projects.experiment(project, experimentId);
    const location = await this.#location(experimentId);
    const root = this.keyOf(location);
    if (root === undefined) {
      throw new ValidationError(
        `experiment '${experimentId}' keeps its artifacts at '${location}', outside this server's artifact store: read them from there`,
        { field: 'path' },
      );
    }
    return rest.length > 0 ? `${root}/${rest.join('/')}` : root;
  }

  /**
   * A URI the client sent (an experiment's artifact location, a version's source) as the platform stores it:
   * `mlflow-artifacts:/<experiment id>/<rest>` becomes the store URI below that experiment (which must be in
   * `project`); any other URI is kept as sent.
   */
  async toStoreUri(projects: ProjectScope, project: string, uri: string, field: string): Promise<string> {
    if (!uri.startsWith(MLFLOW_ARTIFACTS_SCHEME)) return uri;
    // mlflow-artifacts:/7/x and mlflow-artifacts://host:port/7/x name the same path.
    const path = uri.slice(MLFLOW_ARTIFACTS_SCHEME.length).replace(/^\/\/[^/]*/, '');
    try {
      return this.artifacts.uri(await this.keyForPath(projects, project, path.replace(/^\/+/, '')));
    } catch (err) {
      if (err instanceof ValidationError) throw new ValidationError(err.message, { field });
      throw err;
    }
  }

  /** The store URI of a key; for an experiment created with an `mlflow-artifacts:/<key>` location. */
  storeUri(key: string): string {
    return this.artifacts.uri(key);
  }
}
