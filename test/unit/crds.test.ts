import { describe, expect, test } from "vitest";
import { crds } from "../../src/crds/index.ts";
import type { Schema } from "../../src/crds/types.ts";
import { crdManifest } from "../../src/manifests/generate.ts";

/** Paths of schema nodes without a description, so `kubectl explain` has something to say about every field. */
function undescribed(schema: Schema, path: string): string[] {
  const missing = schema.description ? [] : [path];
  for (const [k, v] of Object.entries(schema.properties ?? {})) missing.push(...undescribed(v, `${path}.${k}`));
  if (schema.items) missing.push(...undescribed(schema.items, `${path}[]`));
  if (typeof schema.additionalProperties === "object")
    missing.push(...undescribed(schema.additionalProperties, `${path}{}`));
  return missing;
}

describe.each(crds.map((c) => [c.kind.kind, c] as const))("the %s CRD", (_kind, crd) => {
  test("describes every field of spec and status", () => {
    expect([...undescribed(crd.spec, "spec"), ...undescribed(crd.status, "status")]).toEqual([]);
  });

  test("has the status subresource, the nextgen category, a short name and Age last among printer columns", () => {
    const m = crdManifest(crd) as {
      spec: {
        names: { categories: string[]; shortNames: string[] };
        versions: Array<{ subresources: unknown; additionalPrinterColumns: Array<{ name: string }> }>;
      };
    };
    expect(m.spec.names.categories).toEqual(["nextgen"]);
    expect(m.spec.names.shortNames.length).toBeGreaterThan(0);
    expect(m.spec.versions[0]?.subresources).toEqual({ status: {} });
    expect(m.spec.versions[0]?.additionalPrinterColumns.at(-1)?.name).toBe("Age");
  });
});
