import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration and end-to-end tests start real servers; keep one fork per file.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 180_000,
    globalSetup: ['test/global-setup.ts'],
  },
})
