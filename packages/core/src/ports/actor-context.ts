import { AsyncLocalStorage } from 'node:async_hooks';
import { ValidationError } from './errors.js';

/**
 * Who the work in progress is done for, and in which project. Whatever authenticates a request (an HTTP handler,
 * a CLI, a job runner) runs the work inside `actingAs`; every domain event recorded inside then names that actor
 * (and project), and so does every audit entry made from those events, without each port operation taking an
 * actor argument. An actor passed explicitly (e.g. `TransitionStageInput.actor`) still wins.
 */
export interface ActorContext {
  /** Principal id, as the Authorizer knows it. */
  readonly actor: string;
  /** Project (tenant) the work belongs to, when the request names one. */
  readonly project?: string;
}

const current = new AsyncLocalStorage<ActorContext>();

/** Runs `fn` acting as `context` (nested calls replace it for their own extent); returns what `fn` returns. */
export function actingAs<T>(context: ActorContext, fn: () => T): T {
  if (typeof context?.actor !== 'string' || context.actor.trim() === '') {
    throw new ValidationError('actingAs needs a non-empty actor (a principal id)', { field: 'actor' });
  }
  if (context.project !== undefined && (typeof context.project !== 'string' || context.project.trim() === '')) {
    throw new ValidationError('actingAs: project must be a non-empty string when given', { field: 'project' });
  }
  return current.run(Object.freeze({ ...context }), fn);
}

/** The context of the work in progress; undefined outside `actingAs` (system work). */
export function currentActor(): ActorContext | undefined {
  return current.getStore();
}
