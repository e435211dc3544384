import { describe, expect, test } from "vitest";
import { CEL_EXACT_DURATION, DURATION_PATTERN, parseDuration } from "../../src/crds/duration.ts";
import { crds } from "../../src/crds/index.ts";
import type { CrdDefinition, Schema, ValidationRule } from "../../src/crds/types.ts";
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

/** The whole object's schema, as the manifest has it. */
const objectSchema = (crd: CrdDefinition): Schema =>
  (crdManifest(crd) as { spec: { versions: Array<{ schema: { openAPIV3Schema: Schema } }> } }).spec.versions[0]!.schema
    .openAPIV3Schema;

/** Every CEL rule in a schema, with the schema node it is on and that node's path. */
function rules(schema: Schema, path: string): Array<{ path: string; schema: Schema; rule: ValidationRule }> {
  const found = (schema["x-kubernetes-validations"] ?? []).map((rule) => ({ path, schema, rule }));
  for (const [k, v] of Object.entries(schema.properties ?? {})) found.push(...rules(v, `${path}.${k}`));
  if (schema.items) found.push(...rules(schema.items, `${path}[]`));
  if (typeof schema.additionalProperties === "object") found.push(...rules(schema.additionalProperties, `${path}{}`));
  return found;
}

/** The schema node a rule's fieldPath (".a.b") names, relative to the node the rule is on. */
const fieldAt = (schema: Schema, fieldPath: string): Schema | undefined =>
  fieldPath
    .split(".")
    .slice(1)
    .reduce<Schema | undefined>((node, name) => node?.properties?.[name], schema);

describe.each(crds.map((c) => [c.kind.kind, c] as const))("the %s CRD", (_kind, crd) => {
  test("describes every field of spec and status", () => {
    expect([...undescribed(crd.spec, "spec"), ...undescribed(crd.status, "status")]).toEqual([]);
  });

  test("gives every validation rule a message (a sentence), and a fieldPath naming a field of its schema", () => {
    for (const { path, schema, rule } of rules(objectSchema(crd), "")) {
      const where = `${path || "<root>"}: ${rule.rule}`;
      expect(rule.message, where).toMatch(/^\S.*[.]$/);
      if (rule.messageExpression) expect(rule.messageExpression, where).toMatch(/\.'$/);
      if (rule.fieldPath) expect(fieldAt(schema, rule.fieldPath), where).toBeDefined();
    }
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

describe("duration rules", () => {
  test("decide only durations Go's time.ParseDuration (CEL's duration()) reads as parseDuration does", () => {
    const { pattern, maxLength } = CEL_EXACT_DURATION;
    const decided = new RegExp(pattern);
    // Whole numbers only (no rounding), a subset of what the schema's pattern admits.
    expect(decided.test("1.5h")).toBe(false);
    for (const unit of ["ms", "s", "m", "h"]) {
      // The largest value of at most maxLength characters stays within Go's int64 nanoseconds.
      const largest = "9".repeat(maxLength - unit.length) + unit;
      expect(decided.test(largest) && new RegExp(DURATION_PATTERN).test(largest)).toBe(true);
      const ns = BigInt(parseDuration(largest)) * 1_000_000n;
      expect(ns < 2n ** 63n, largest).toBe(true);
      expect(Number.isSafeInteger(parseDuration(largest)), largest).toBe(true);
    }
  });
});
