/**
 * @mlplane/core/testing: the conformance suite of each port, to run against any implementation of it, and a
 * kernel-only test platform. `@mlplane/defaults/testing` boots one with the embedded defaults.
 */

export * from './conformance/index.js';
/** Small helpers the suites use, for adapters' own tests. */
export {
  delay,
  eventually,
  gate,
  hashStream,
  readAll,
  rejects,
  settlesWithin,
  sha256Hex,
  uniqueTag,
} from './conformance/support.js';
export { guarded } from './guarded.js';
