import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts"],
    // Model tests load GGUF files and decode on CPU; two cores cannot run many of them at once.
    maxWorkers: 2,
    // A temporary folder per run (as TMPDIR), removed at the end: no test leaves files behind.
    globalSetup: ["test/helpers/temp-root.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ["default", "json"],
    outputFile: { json: "test-results/vitest.json" },
  },
});
