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
        test: {
          // The real thing: a real node (containerd, kubelet, kube-proxy) beside the control plane, images built by
          // buildah from the Dockerfiles. Root only, one per machine; only `npm run test:e2e` runs it.
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          globalSetup: ["test/e2e/global-setup.ts"],
          fileParallelism: false,
          testTimeout: 600_000,
          hookTimeout: 3_600_000,
        },
      },
    ],
  },
});
