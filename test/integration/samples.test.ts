import { join } from "node:path";
import { expect, test } from "vitest";
import { readManifests } from "../../src/runtime/install.ts";
import { Discovery } from "../../src/runtime/discovery.ts";
import { cluster } from "./harness.ts";

const { admin } = cluster();

test("every sample passes the API server's validation, and the samples cover every kind", async () => {
  const samples = await readManifests(join(import.meta.dirname, "../../config/samples"));
  const discovery = new Discovery(admin);
  for (const obj of samples) {
    const kind = await discovery.kindRef(obj.apiVersion, obj.kind);
    const namespace = kind.namespaced ? "default" : undefined;
    // A dry run stores nothing, so the samples do not meet the other tests' objects.
    const created = await admin.create(kind, { ...obj, metadata: { ...obj.metadata, namespace } }, { dryRun: true });
    expect(created.metadata.name).toBe(obj.metadata.name);
  }
  expect(new Set(samples.map((o) => o.kind))).toEqual(
    new Set(["PQKeySet", "EdgeNode", "QuantumBackend", "QuantumJob", "RemediationPolicy", "CarbonBudget"]),
  );
});
