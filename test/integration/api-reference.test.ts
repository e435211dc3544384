import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { beforeAll, expect, test } from "vitest";
import { ensureNodeAssets, selectVersion } from "../../src/controlplane/assets.ts";
import { crds } from "../../src/crds/index.ts";
import type { Schema } from "../../src/crds/types.ts";
import { kubectl } from "../e2e/harness.ts";
import { cluster } from "./harness.ts";

/*
 * The API reference and `kubectl explain` tell users the same: the descriptions in src/crds, served by the real API
 * server from the installed CRDs, and written into docs/api.md by `npm run manifests`.
 */

const { adminKubeconfig } = cluster();
const apiReference = readFileSync(resolve(import.meta.dirname, "../../docs/api.md"), "utf8");
let kubectlBin: string;

beforeAll(async () => {
  const log = (line: string) => process.stderr.write(`[api-reference] ${line}\n`);
  kubectlBin = (await ensureNodeAssets(log, selectVersion())).kubectl;
}, 900_000);

/** kubectl explain wraps its text: compare with whitespace collapsed. */
const words = (text: string) => text.replace(/\s+/g, " ").trim();

/** A field two levels down each kind's spec where there is one (an object's field), else a top-level field. */
function deepField(spec: Schema): [string, Schema] {
  const entries = Object.entries(spec.properties ?? {});
  for (const [name, field] of entries) {
    const [child] = Object.entries(field.properties ?? {});
    if (child) return [`${name}.${child[0]}`, child[1]];
  }
  return entries[0]!;
}

test.each(crds.map((d) => [d.kind.kind, d] as const))(
  "kubectl explain shows %s's descriptions from src/crds, as docs/api.md does",
  (_kind, def) => {
    const resource = `${def.kind.plural}.${def.kind.group}`;
    const explainKind = kubectl(kubectlBin, adminKubeconfig, "explain", resource);
    expect(words(explainKind)).toContain(words(def.description));
    expect(apiReference).toContain(`## ${def.kind.kind}\n\n${def.description}\n`);

    const [path, field] = deepField(def.spec);
    const explainField = kubectl(kubectlBin, adminKubeconfig, "explain", `${resource}.spec.${path}`);
    expect(words(explainField)).toContain(words(field.description!));
    const row = apiReference.split("\n").find((l) => l.startsWith(`| \`spec.${path}\` |`));
    expect(row, `docs/api.md's row of spec.${path}`).toContain(field.description!.replaceAll("|", "\\|"));
  },
);
