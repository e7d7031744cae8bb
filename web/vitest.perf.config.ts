import { defineConfig } from 'vitest/config'

// The browser benchmark (make bench-browser): 10,000 agents on the real
// server, the Agents page timed in Chromium. See e2e/agents-10k.perf.ts.
export default defineConfig({
  test: {
    environment: 'node',
    include: ['e2e/**/*.perf.ts'],
    testTimeout: 600_000,
    hookTimeout: 900_000,
    fileParallelism: false,
  },
})
