/** @mlplane/defaults/testing: boot a real platform on the embedded defaults in a temp dir for a test. */

export type { StartTestPlatformOptions, TestPlatform } from './test-platform.js';
export { startTestPlatform } from './test-platform.js';
