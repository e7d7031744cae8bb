import { defineConfig } from 'vitest/config'

// The browser tests: playwright-core driving Debian's Chromium against the
// real redflag-server binary (see e2e/README.md). One file, run in order.
export default defineConfig({
  test: {
    environment: 'node',
    include: ['e2e/**/*.e2e.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    fileParallelism: false,
    sequence: { concurrent: false },
  },
})
