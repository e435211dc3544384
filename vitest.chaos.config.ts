import { defineConfig } from "vitest/config";

// `npm run chaos`, apart from `npm test`: each scenario starts a control plane of its own and holds a fault for up
// to a minute, too long for CI. Files run one after another: two control planes at once would slow each other's
// recovery on a small machine and blur the figures.
export default defineConfig({
  test: {
    name: "chaos",
    include: ["test/chaos/**/*.test.ts"],
    fileParallelism: false,
    testTimeout: 1_800_000,
    hookTimeout: 600_000,
  },
});
