/**
 * A typed token for a service. The phantom `T` carries the service's type so that
 * `deps: { store: artifactStoreRef }` hands `init` an `ArtifactStore`, checked at compile time.
 */
export interface ServiceRef<T> {
  readonly $$type: 'mlplane.service-ref';
  readonly id: string;
  /** Where an instance lives: one per platform (`root`) or one per consuming plugin (`plugin`). */
  readonly scope: 'root' | 'plugin';
  /** Compile-time only: always undefined at run time. */
  readonly T: T;
  /** The token registered in tsyringe containers; unique per ref. */
  readonly token: symbol;
}

const ID_PATTERN = /^[a-z][a-zA-Z0-9]*(\.[a-z][a-zA-Z0-9-]*)*$/;

export function createServiceRef<T>(options: { id: string; scope?: 'root' | 'plugin' }): ServiceRef<T> {
  if (!ID_PATTERN.test(options.id)) {
    throw new TypeError(`service ref id '${options.id}' must be dotted camelCase, e.g. 'core.artifactStore'`);
  }
  return Object.freeze({
    $$type: 'mlplane.service-ref',
    id: options.id,
    scope: options.scope ?? 'root',
    token: Symbol(options.id),
    T: undefined as T,
  });
}

/** An extension point: something a plugin exposes so other plugins can add to it (never remove). */
export interface ExtensionPoint<T> {
  readonly $$type: 'mlplane.extension-point';
  readonly id: string;
  readonly T: T;
}

export function createExtensionPoint<T>(options: { id: string }): ExtensionPoint<T> {
  if (!ID_PATTERN.test(options.id)) {
    throw new TypeError(`extension point id '${options.id}' must be dotted camelCase, e.g. 'catalog.processors'`);
  }
  return Object.freeze({
    $$type: 'mlplane.extension-point',
    id: options.id,
    T: undefined as T,
  });
}

export type AnyRef = ServiceRef<unknown> | ExtensionPoint<unknown>;
export type DepsOf<D extends Record<string, AnyRef>> = {
  [K in keyof D]: D[K] extends ServiceRef<infer T> ? T : D[K] extends ExtensionPoint<infer E> ? E : never;
};
