import { Buffer } from "node:buffer";
import { spawnSync } from "node:child_process";
import { load } from "js-yaml";
import { describe, expect, test } from "vitest";
import { crds } from "../../src/crds/index.ts";
import { healthCheckKey, healthCheckLua } from "../../src/manifests/argocd.ts";
import { generateManifests } from "../../src/manifests/generate.ts";

// Argo CD runs the health check in gopher-lua, a Lua 5.1 implementation; a real Lua 5.1 interpreter catches syntax
// and semantic slips (nil comparisons, 1-based ipairs, `..` on nil) that reading the script would not.

/**
 * A JSON value as a Lua table constructor. Strings escape every byte outside printable ASCII as \ddd (UTF-8 bytes),
 * always 3 digits: Lua reads up to three, so "\10" before a digit would swallow it.
 */
function toLua(value: unknown): string {
  if (value === null || value === undefined) return "nil";
  if (typeof value === "boolean") return String(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error(`toLua: ${value} has no Lua literal`);
    return String(value);
  }
  if (typeof value === "string") {
    let out = '"';
    for (const byte of Buffer.from(value, "utf8")) {
      const c = String.fromCharCode(byte);
      out +=
        byte === 0x22 || byte === 0x5c
          ? `\\${c}`
          : byte >= 0x20 && byte < 0x7f
            ? c
            : `\\${String(byte).padStart(3, "0")}`;
    }
    return out + '"';
  }
  if (Array.isArray(value)) return `{${value.map(toLua).join(", ")}}`;
  if (typeof value === "object") {
    const fields = Object.entries(value).filter(([, v]) => v !== null && v !== undefined);
    return `{${fields.map(([k, v]) => `[${toLua(k)}] = ${toLua(v)}`).join(", ")}}`;
  }
  throw new Error(`toLua: unsupported ${typeof value}`);
}

function runHealthCheck(obj: unknown): { status: string; message: string } {
  const program = `obj = ${toLua(obj)}
local function check()
${healthCheckLua()}
end
local hs = check()
print(hs.status)
print(hs.message or "")
`;
  const r = spawnSync("lua5.1", ["-"], { input: program, encoding: "utf8" });
  if (r.error) {
    throw new Error(`cannot run lua5.1 (${r.error.message}): install it with \`apt-get install -y lua5.1\``);
  }
  expect(r.stderr, program).toBe("");
  expect(r.status, program).toBe(0);
  const [status = "", ...message] = r.stdout.replace(/\n$/, "").split("\n");
  return { status, message: message.join("\n") };
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

describe("Argo CD health check (Lua 5.1)", () => {
  test("the Lua literal round-trips awkward strings", () => {
    // Quotes, a backslash, a long-bracket close, a newline before a digit and non-ASCII must all survive.
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
