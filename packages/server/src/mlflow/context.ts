import {
  ALL_PROJECTS,
  ConflictError,
  NotFoundError,
  PROJECT_PATTERN,
  type Principal,
  ValidationError,
} from '@mlplane/core';
import type { PortOperation } from '@mlplane/sql';
import type { z } from 'zod';
import { DEFAULT_PROJECT, PROJECT_TAG } from '../http/projects.js';
import type { ApiServices } from '../http/services.js';
import type { ArtifactUris } from './artifact-uris.js';
import type { MlflowErrorCode } from './errors.js';

/** The header naming the project a request works in, for tokens valid in several projects. */
export const PROJECT_HEADER = 'x-mlplane-project';
/** The id MLflow clients use for the experiment they log to when none is set. */
export const DEFAULT_EXPERIMENT_ID = '0';

/**
 * The project a request works in: the `X-Mlplane-Project` header when sent, else the token's only project, else
 * `default`. The stock client sends no header, so a token made for one project needs no configuration; the
 * Authorizer still checks the permission in whichever project this picks.
 */
export function projectOf(request: Request, principal: Principal): string {
  const header = request.headers.get(PROJECT_HEADER);
  if (header !== null) {
    if (!PROJECT_PATTERN.test(header)) {
      throw new ValidationError(
        `the ${PROJECT_HEADER} header must name a project: letters, digits, '.', '_', '-' (up to 128), got '${header.slice(0, 64)}'`,
        { field: PROJECT_HEADER },
      );
    }
    return header;
  }
  const projects = Object.keys(principal.roles).filter((p) => p !== ALL_PROJECTS);
  if (projects.length === 1 && principal.roles[ALL_PROJECTS] === undefined) return projects[0]!;
  return DEFAULT_PROJECT;
}

/** The name of a project's default experiment: MLflow's `Default` in the default project. */
export function defaultExperimentName(project: string): string {
  return project === DEFAULT_PROJECT ? 'Default' : `Default (${project})`;
}

/**
 * Experiment `0`, which the client logs to when no experiment is set, as one experiment per project created on
 * first use (the SQL tracker numbers experiments from 1 and has no built-in one). Experiment names are unique
 * platform-wide, hence the project in the name outside the default project.
 */
export class DefaultExperiments {
  readonly #ids = new Map<string, string>();

  constructor(private readonly services: ApiServices) {}

  /** The real id for `experimentId`: the project's default experiment for `0`, else the id itself. */
  async resolve(project: string, experimentId: string): Promise<string> {
    return experimentId === DEFAULT_EXPERIMENT_ID ? this.idOf(project) : experimentId;
  }

  /** The project's default experiment, created (with the project tag) the first time it is asked for. */
  async idOf(project: string): Promise<string> {
    const known = this.#ids.get(project);
    if (known !== undefined) return known;
    const name = defaultExperimentName(project);
    const { tracker } = this.services;
    let experiment = await tracker.getExperimentByName(name).catch((err) => {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    });
    if (!experiment) {
      try {
        experiment = await tracker.createExperiment({ name, tags: { [PROJECT_TAG]: project } });
      } catch (err) {
        // Another request created it first.
        if (!(err instanceof ConflictError)) throw err;
        experiment = await tracker.getExperimentByName(name);
      }
    }
    const owner = experiment.tags[PROJECT_TAG] ?? DEFAULT_PROJECT;
    if (owner !== project) {
      throw new ConflictError(
        `the default experiment name '${name}' is taken by an experiment of another project; rename that one or set an experiment`,
      );
    }
    this.services.projects.remember('experiment', experiment.id, project);
    this.#ids.set(project, experiment.id);
    return experiment.id;
  }

  /** Forgets a project's default experiment (when it is renamed away). */
  forget(experimentId: string): void {
    for (const [project, id] of this.#ids) if (id === experimentId) this.#ids.delete(project);
  }
}

/** What an MLflow handler sees. */
export interface MlflowContext {
  readonly project: string;
  readonly principal: Principal;
  /** Who acts, as audit entries name it. */
  readonly actor: string;
  readonly services: ApiServices;
  readonly uris: ArtifactUris;
  readonly defaults: DefaultExperiments;
  readonly request: Request;
}

/** One endpoint of MLflow's REST API below /api/2.0/mlflow. */
export interface MlflowRoute<Input = any> {
  readonly method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** Below /api/2.0/mlflow: `/runs/log-batch`. */
  readonly path: string;
  /** The port operation it performs: its permission (PORT_PERMISSIONS) is checked in the request's project. */
  readonly operation: PortOperation;
  /** The request message: query parameters for GET, the JSON body otherwise. */
  readonly input: z.ZodType<Input>;
  /** What a ConflictError means here (default INVALID_PARAMETER_VALUE). */
  readonly conflict?: MlflowErrorCode;
  readonly handle: (ctx: MlflowContext, input: Input) => Promise<object>;
}

export function mlflowRoute<Input>(route: MlflowRoute<Input>): MlflowRoute<Input> {
  return route;
}
