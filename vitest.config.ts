import { defineConfig } from 'vitest/config';

/**
 * Test tiers (architecture.md): each is a vitest project selected by folder.
 * `npm test` runs typecheck, lint, build and every tier here, and prints one summary line.
 */
export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 20_000 } },
      {
        test: { name: 'simulator', include: ['test/simulator/**/*.test.ts'], testTimeout: 60_000, hookTimeout: 60_000 },
      },
      {
        test: {
          name: 'conformance',
          include: ['test/conformance/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 60_000,
        },
      },
      {
        // Chaos (issue #9): the combined end-to-end invariants under unplugs, kills and MDM faults,
        // fuzzing of every parser, secrets. Runs in CI within 5 minutes on a 2-core machine.
        test: {
          name: 'chaos',
          include: ['test/chaos/**/*.test.ts'],
          testTimeout: 240_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
