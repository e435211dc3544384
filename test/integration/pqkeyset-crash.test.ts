import { expect, test } from "vitest";
import { PQKeySetKind, ROTATE_ANNOTATION } from "../../src/crds/pqkeyset.ts";
import { cluster, createNamespace, deleteAfterFile, startOperator, waitUntil } from "./harness.ts";
import { TEST_KEY_SET, decode, isReady, keySets, pqKeySet } from "./pqkeyset-helpers.ts";

const { admin, operatorKubeconfig } = cluster();

test("an operator killed mid-rotation across many key sets loses no key and rotates each exactly once", async () => {
  const ns = await createNamespace(admin, "pqk-crash");
  const sets = keySets(admin, ns);
  // SLH-DSA keys take about a second each to generate and sign with: rotations are still queued when the kill lands.
  const names = Array.from({ length: 16 }, (_, i) => `ks-${i}`);
  const algorithmOf = (i: number) => (i % 4 === 0 ? "SLH-DSA-SHA2-128f" : "ML-KEM-768");
  const first = await startOperator(operatorKubeconfig);
  await Promise.all(names.map((n, i) => admin.create(PQKeySetKind, pqKeySet(ns, n, { algorithm: algorithmOf(i) }))));
  const original = new Map<string, string>();
  for (const n of names)
    original.set(n, (await sets.waitFor(n, "Ready", isReady, 120_000)).status?.currentKeyId as string);

  await Promise.all(
    names.map((n) =>
      admin.patch(PQKeySetKind, ns, n, "merge", { metadata: { annotations: { [ROTATE_ANNOTATION]: "crash" } } }),
    ),
  );
  await waitUntil(
    "the first rotation to land",
    async () => {
      for (const n of names)
        if ((await sets.secret(n))?.metadata.annotations?.["nextgen.itechsmart.io/revision"] === "2") return true;
      return false;
    },
    { timeoutMs: 60_000, intervalMs: 20 },
  );
  await first.stop("SIGKILL");
  const rotatedBeforeKill = (
    await Promise.all(
      names.map(async (n) => (await sets.secret(n))?.metadata.annotations?.["nextgen.itechsmart.io/revision"]),
    )
  ).filter((r) => r === "2").length;
  console.error(`${rotatedBeforeKill} of ${names.length} key sets had rotated when the operator was killed`);

  await startOperator(operatorKubeconfig);
  deleteAfterFile(admin, TEST_KEY_SET, [PQKeySetKind]);
  for (const n of names) {
    const set = await sets.waitFor(n, "rotated and Ready", (k) => k.status?.revision === 2 && isReady(k), 120_000);
    const secret = await sets.secret(n);
    const published = JSON.parse((await sets.configMap(`${n}-public`))?.data?.["keys.json"] as string).keys;
    const kid = decode(secret?.data?.["current.kid"]);
    // One Active key, the same everywhere; the key it replaced retained, not lost; one rotation, one new key.
    expect(set.status?.currentKeyId).toBe(kid);
    expect(published.map((k: { kid: string; state: string }) => [k.kid, k.state])).toEqual([
      [kid, "Active"],
      [original.get(n), "Retained"],
    ]);
    expect(set.status?.keys?.map((k) => k.state)).toEqual(["Active", "Retained"]);
    expect(secret?.metadata.annotations?.["nextgen.itechsmart.io/revision"]).toBe("2");
    expect(decode(secret?.data?.[`${original.get(n)}.key`])).toMatch(/BEGIN PRIVATE KEY/);
  }
}, 300_000);
