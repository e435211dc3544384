import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        // SLH-DSA-SHAKE-128s signs in about 9 s in pure JavaScript: unit tests get time for it.
        test: { name: "unit", include: ["test/unit/**/*.test.ts"], testTimeout: 120_000 },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          globalSetup: ["test/integration/global-setup.ts"],
          // One control plane serves every file; files run one after another so that a test restarting the API
          // server or counting API writes sees only its own traffic.
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 900_000,
        },
      },
      {
        // Builds on the real thing (buildah, containerd, the registries): only `npm run test:e2e` runs it.
        test: { name: "e2e", include: ["test/e2e/**/*.test.ts"], testTimeout: 600_000, hookTimeout: 3_600_000 },
      },
    ],
  },
});
