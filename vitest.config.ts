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
          // A real node (containerd, kubelet, kube-proxy) beside the control plane: root only, one per machine.
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          globalSetup: ["test/e2e/global-setup.ts"],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 1_800_000,
        },
      },
    ],
  },
});
