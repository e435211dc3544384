import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { load } from "js-yaml";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ensureTool } from "../../src/controlplane/assets.ts";
import { crds } from "../../src/crds/index.ts";
import { healthCheckKey, healthCheckLua } from "../../src/manifests/argocd.ts";
import { generateManifests } from "../../src/manifests/generate.ts";

// The health cases run through Argo CD's own code (hack/argocd/health-check links Argo CD's util/lua and
// gitops-engine's pkg/health, as its application-controller does) with the argocd-cm we ship, in the
// health_test.yaml form of Argo CD's resource_customizations.
const CASES = resolve(import.meta.dirname, "argocd-health/health_test.yaml");
type HealthStatus = { status: string; message?: string };
type Outcome = { inputPath: string; healthStatus: HealthStatus | null; error?: string };

const argocdCm = () => generateManifests().get("config/argocd/argocd-cm-health.yaml") as string;
const scratch = mkdtempSync(join(tmpdir(), "argocd-health-"));
let outcomes: Outcome[];
beforeAll(async () => {
  const runner = await ensureTool("argocd-health-check", (line) => process.stderr.write(`[tools] ${line}\n`));
  const cm = join(scratch, "argocd-cm.yaml");
  writeFileSync(cm, argocdCm());
  const r = spawnSync(runner, [cm, CASES], { encoding: "utf8" });
  // Standard error carries Argo CD's settings manager's log lines.
  expect(r.status, r.stderr).toBe(0);
  outcomes = r.stdout
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as Outcome);
}, 60 * 60_000); // a fresh machine builds hack/argocd first: minutes
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const cases = (load(readFileSync(CASES, "utf8")) as { tests: { inputPath: string; healthStatus: HealthStatus }[] })
  .tests;

describe("Argo CD health check, in Argo CD's own code", () => {
  test("every case was assessed, in order", () => {
    expect(outcomes.map((o) => o.inputPath)).toEqual(cases.map((c) => c.inputPath));
  });

  test.each(cases)("$inputPath → $healthStatus.status", ({ inputPath, healthStatus }) => {
    const outcome = outcomes.find((o) => o.inputPath === inputPath);
    expect(outcome?.error).toBeUndefined();
    // Argo CD's HealthStatus omits an empty message in JSON, as health_test.yaml may.
    expect({ message: "", ...outcome?.healthStatus }).toEqual({ message: "", ...healthStatus });
  });
});

describe("config/argocd/argocd-cm-health.yaml", () => {
  test("has exactly one health check per kind, each the Lua script", () => {
    const cm = load(argocdCm()) as { kind: string; metadata: { name: string }; data?: Record<string, string> };
    expect(cm.kind).toBe("ConfigMap");
    expect(cm.metadata.name).toBe("argocd-cm");
    const data = cm.data ?? {};
    expect(Object.keys(data).sort()).toEqual(crds.map((d) => healthCheckKey(d.kind.kind)).sort());
    for (const [key, script] of Object.entries(data)) expect(script, key).toBe(healthCheckLua());
  });
});
