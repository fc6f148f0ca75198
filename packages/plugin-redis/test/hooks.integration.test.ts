// The hooks suite on the embedded defaults with the registry behind the Redis cache (Redis peer): the cache decorates
// the chosen registry and the kernel guards the decorated one, so every model hook still fires once per call.
import { platformHooksConformance } from '@mlplane/core/testing';
import { startTestPlatform } from '@mlplane/defaults/testing';
import { redisUrl, uniqueName } from '../../../test-support/peers-env.js';
import { redisCachePlugin } from '../src/plugin.js';

platformHooksConformance('embedded defaults, ModelRegistry behind the Redis cache (peer)', async () => ({
  platform: await startTestPlatform({
    plugins: [redisCachePlugin({ url: redisUrl(), keyPrefix: `${uniqueName('mlplane.it.hooks')}:` })],
  }),
}));
