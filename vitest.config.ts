import { defineConfig } from 'vitest/config';

// One root config, one project per package. Integration tests (`*.integration.test.ts`)
// need the real peers from `scripts/peers` and only run when MLPLANE_INTEGRATION=1 (`pnpm test:all`).
const integration = process.env.MLPLANE_INTEGRATION === '1';
const packages = [
  'core',
  'sql',
  'defaults',
  'plugin-postgres',
  'plugin-redis',
  'plugin-kafka',
  'plugin-s3',
  'plugin-mlflow',
  'plugin-feast',
  'plugin-torchserve',
  'plugin-k8s',
  'server',
  'client',
  'cli',
  'pipelines',
];

const project = (name: string, root: string) => ({
  resolve: { conditions: ['@mlplane/source'] },
  ssr: { resolve: { conditions: ['@mlplane/source'] } },
  test: {
    name,
    root,
    include: ['test/**/*.test.ts'],
    exclude: integration ? ['**/node_modules/**'] : ['**/node_modules/**', '**/*.integration.test.ts'],
    testTimeout: integration ? 120_000 : 20_000,
    hookTimeout: integration ? 180_000 : 20_000,
  },
});

export default defineConfig({
  test: {
    projects: [
      ...packages.map((p) => project(p, `packages/${p}`)),
      project('examples', 'examples'),
      {
        resolve: { conditions: ['@mlplane/source'] },
        test: {
          name: 'types',
          root: 'packages/core',
          include: [],
          typecheck: {
            enabled: true,
            only: true,
            include: ['test/**/*.test-d.ts'],
            tsconfig: '../../tsconfig.tests.json',
          },
        },
      },
    ],
  },
});
