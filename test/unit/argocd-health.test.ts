import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { load } from "js-yaml";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ensureTool } from "../../src/controlplane/assets.ts";
import { crds } from "../../src/crds/index.ts";
import { healthCheckKey, healthCheckLua } from "../../src/manifests/argocd.ts";
import { generateManifests } from "../../src/manifests/generate.ts";

// Argo CD runs health checks in gopher-lua with the resource decoded into the global `obj`; so do these tests
// (hack/tools/argocd-health), which catches slips reading the script would not (nil comparisons, 1-based ipairs,
// `..` on nil, numbers that arrive as floats).
let runner: string;
const scratch = mkdtempSync(join(tmpdir(), "argocd-health-"));
const script = join(scratch, "health.lua");
beforeAll(async () => {
  runner = await ensureTool("argocd-health", (line) => process.stderr.write(`[tools] ${line}\n`));
  writeFileSync(script, healthCheckLua());
}, 30 * 60_000); // a fresh machine builds the tools first (hack/tools), minutes
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function runHealthCheck(obj: unknown): { status: string; message: string } {
  const r = spawnSync(runner, [script], { input: JSON.stringify(obj), encoding: "utf8" });
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  return JSON.parse(r.stdout) as { status: string; message: string };
}

const resource = (extra: Record<string, unknown>) => ({
  apiVersion: "nextgen.itechsmart.io/v1alpha1",
  kind: "Example",
  metadata: { name: "sample", namespace: "default", generation: 3 },
  ...extra,
});
const condition = (type: string, status: string, message: string) => ({
  type,
  status,
  reason: "Test",
  message,
  lastTransitionTime: "2025-01-01T00:00:00Z",
  observedGeneration: 3,
});

describe("Argo CD health check (gopher-lua)", () => {
  test("the runner offers a script what Argo CD does, no more: the string library is not there", () => {
    const file = join(scratch, "uses-string.lua");
    writeFileSync(file, 'return { status = string.upper("healthy") }');
    const r = spawnSync(runner, [file], { input: "{}", encoding: "utf8" });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/string/);
  });

  test("awkward strings reach the message unchanged", () => {
    // Quotes, a backslash, newlines and non-ASCII survive the resource's decoding into Lua and back.
    const message = 'key "k1" \\ rotated ]] at\n1 node ü-1 ✓';
    const hs = runHealthCheck(
      resource({ status: { observedGeneration: 3, conditions: [condition("Ready", "True", message)] } }),
    );
    expect(hs).toEqual({ status: "Healthy", message });
  });

  test("no status yet → Progressing", () => {
    expect(runHealthCheck(resource({}))).toEqual({
      status: "Progressing",
      message: "Waiting for the operator to report status",
    });
  });

  test("observedGeneration behind metadata.generation → Progressing, even if Ready=True", () => {
    const hs = runHealthCheck(
      resource({ status: { observedGeneration: 2, conditions: [condition("Ready", "True", "stale")] } }),
    );
    expect(hs).toEqual({ status: "Progressing", message: "Waiting for the operator to observe generation 3" });
  });

  test("observedGeneration missing while metadata.generation is set → Progressing", () => {
    const hs = runHealthCheck(resource({ status: { conditions: [condition("Ready", "True", "ok")] } }));
    expect(hs.status).toBe("Progressing");
  });

  test("Ready=True → Healthy with the condition's message, found among other conditions", () => {
    const status = {
      observedGeneration: 3,
      conditions: [condition("Reconciling", "False", "idle"), condition("Ready", "True", "3 of 3 sites healthy")],
    };
    expect(runHealthCheck(resource({ status }))).toEqual({ status: "Healthy", message: "3 of 3 sites healthy" });
  });

  test("Ready=False → Degraded with the condition's message", () => {
    const status = { observedGeneration: 3, conditions: [condition("Ready", "False", "secret pq-keys not found")] };
    expect(runHealthCheck(resource({ status }))).toEqual({ status: "Degraded", message: "secret pq-keys not found" });
  });

  test("Ready=Unknown → Progressing with the condition's message", () => {
    const status = { observedGeneration: 3, conditions: [condition("Ready", "Unknown", "first reconcile running")] };
    expect(runHealthCheck(resource({ status }))).toEqual({ status: "Progressing", message: "first reconcile running" });
  });

  test("no Ready condition → Progressing", () => {
    const waiting = { status: "Progressing", message: "Waiting for the Ready condition" };
    const other = { observedGeneration: 3, conditions: [condition("Degraded", "True", "not Ready")] };
    expect(runHealthCheck(resource({ status: other }))).toEqual(waiting);
    expect(runHealthCheck(resource({ status: { observedGeneration: 3 } }))).toEqual(waiting);
  });

  test("Ready=True with no message → Healthy with an empty message, no error", () => {
    const { message: _, ...ready } = condition("Ready", "True", "");
    const hs = runHealthCheck(resource({ status: { observedGeneration: 3, conditions: [ready] } }));
    expect(hs).toEqual({ status: "Healthy", message: "" });
  });
});

describe("config/argocd/argocd-cm-health.yaml", () => {
  test("has exactly one health check per kind, each the Lua script", () => {
    const text = generateManifests().get("config/argocd/argocd-cm-health.yaml");
    expect(text).toBeDefined();
    const cm = load(text as string) as { kind: string; metadata: { name: string }; data?: Record<string, string> };
    expect(cm.kind).toBe("ConfigMap");
    expect(cm.metadata.name).toBe("argocd-cm");
    const data = cm.data ?? {};
    expect(Object.keys(data).sort()).toEqual(crds.map((d) => healthCheckKey(d.kind.kind)).sort());
    for (const [key, script] of Object.entries(data)) expect(script, key).toBe(healthCheckLua());
  });
});
