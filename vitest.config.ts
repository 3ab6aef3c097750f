import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Integration tests spawn real processes; two cores, so keep files from starving each other.
    fileParallelism: false
  }
})
