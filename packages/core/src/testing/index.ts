/**
 * @mlplane/core/testing: boot a real platform in a test, and run the conformance suite of a port
 * against any implementation of it.
 */

export * from './conformance/index.js';
export type { StartTestPlatformOptions, TestPlatform } from './test-platform.js';
export { startTestPlatform } from './test-platform.js';
