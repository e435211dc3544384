import { createHash, createPrivateKey, createPublicKey } from "node:crypto";
import { beforeAll, describe, expect, test } from "vitest";
import { PQKeySetKind, ROTATE_ANNOTATION } from "../../src/crds/pqkeyset.ts";
import { ALGORITHMS } from "../../src/pq/algorithms.ts";
import { fromPem } from "../../src/pq/encoding.ts";
import { type SuccessionStatement, verifySuccession } from "../../src/pq/keys.ts";
import { ApiError } from "../../src/runtime/client.ts";
import { EventKind, SecretKind } from "../../src/runtime/kinds.ts";
import type { KubeObject } from "../../src/runtime/objects.ts";
import type { OperatorProcess } from "../../src/controlplane/operator-process.ts";
import { cluster, createNamespace, deleteAfterFile, startOperator, waitUntil } from "./harness.ts";
import { TEST_KEY_SET, decode, isReady, keySets, pqKeySet, readyCondition } from "./pqkeyset-helpers.ts";

const { admin, operatorKubeconfig } = cluster();
let ns: string;
let ks: ReturnType<typeof keySets>;
let operator: OperatorProcess;

beforeAll(async () => {
  ns = await createNamespace(admin, "pqk");
  ks = keySets(admin, ns);
  operator = await startOperator(operatorKubeconfig);
  // Key sets left behind would go on rotating (one every minute) under later files' operators.
  deleteAfterFile(admin, TEST_KEY_SET, [PQKeySetKind]);
});

const rotate = (name: string, value: string) =>
  admin.patch(PQKeySetKind, ns, name, "merge", { metadata: { annotations: { [ROTATE_ANNOTATION]: value } } });

describe("PQKeySet", () => {
  test("every algorithm: a self-consistent Secret, a published ConfigMap and a Ready status that agree", async () => {
    const names = ALGORITHMS.map((a) => a.toLowerCase().replace(/[^a-z0-9]+/g, "-"));
    await Promise.all(
      ALGORITHMS.map((algorithm, i) => admin.create(PQKeySetKind, pqKeySet(ns, names[i] as string, { algorithm }))),
    );
    for (const [i, algorithm] of ALGORITHMS.entries()) {
      const name = names[i] as string;
      const set = await ks.waitFor(name, "Ready", isReady, 120_000);
      expect(set.spec).toMatchObject({
        algorithm,
        rotationPeriod: "720h",
        retainPrevious: 1,
        deletionPolicy: "Delete",
      });
      const secret = await ks.secret(name);
      const cm = await ks.configMap(`${name}-public`);
      const kid = decode(secret?.data?.["current.kid"]);
      const pub = decode(secret?.data?.["current.pub"]) as string;
      // Anyone can recompute the key ID from the published key.
      expect(createHash("sha256").update(fromPem("PUBLIC KEY", pub)).digest("base64url")).toBe(kid);
      expect(set.status).toMatchObject({ currentKeyId: kid, revision: 1, failedAttempts: 0 });
      expect(set.status?.keys).toEqual([{ keyId: kid, state: "Active", createdAt: set.status?.lastRotationTime }]);
      expect(cm?.data?.["public.pem"]).toBe(pub);
      const jwks = JSON.parse(cm?.data?.["keys.json"] as string);
      expect(jwks.keys).toEqual([
        expect.objectContaining({
          kid,
          alg: algorithm,
          state: "Active",
          use: algorithm.startsWith("ML-KEM") || algorithm === "X-Wing" ? "enc" : "sig",
        }),
      ]);
      if (algorithm !== "X-Wing") {
        // OpenSSL 3.5 (in Node) loads the private key and derives the published public key from it.
        const priv = createPrivateKey(decode(secret?.data?.["current.key"]) as string);
        expect(createPublicKey(priv).export({ type: "spki", format: "pem" })).toBe(pub);
      }
      expect(secret?.metadata.ownerReferences?.[0]).toMatchObject({ kind: "PQKeySet", name, controller: true });
    }
  });

  test("a forced rotation keeps one previous key, in the Secret, the ConfigMap and the status alike", async () => {
    await admin.create(PQKeySetKind, pqKeySet(ns, "forced", { algorithm: "ML-KEM-768" }));
    const before = await ks.waitFor("forced", "Ready", isReady);
    await rotate("forced", "1");
    const after = await ks.waitFor("forced", "a new current key", (k) => k.status?.revision === 2);
    const old = before.status?.currentKeyId as string;
    expect(after.status?.currentKeyId).not.toBe(old);
    expect(after.status?.keys?.map((k) => [k.keyId, k.state])).toEqual([
      [after.status?.currentKeyId, "Active"],
      [old, "Retained"],
    ]);
    const secret = await ks.secret("forced");
    expect(Object.keys(secret?.data ?? {}).sort()).toEqual(
      ["current.key", "current.kid", "current.pub", "keys.json", `${old}.key`, `${old}.pub`].sort(),
    );
    const cm = await ks.configMap("forced-public");
    const pems =
      (cm?.data?.["public.pem"] ?? "").match(/-----BEGIN PUBLIC KEY-----[^-]+-----END PUBLIC KEY-----\n/g) ?? [];
    expect(pems).toEqual([decode(secret?.data?.["current.pub"]), decode(secret?.data?.[`${old}.pub`])]);
    // The same annotation value again is not a new request.
    await admin.patch(PQKeySetKind, ns, "forced", "merge", { metadata: { labels: { touched: "yes" } } });
    await rotate("forced", "1");
    await ks.waitFor("forced", "observed", isReady);
    expect((await ks.get("forced"))?.status?.revision).toBe(2);
  });

  test("a signature key set publishes the new key's succession statement signed by the previous key", async () => {
    await admin.create(PQKeySetKind, pqKeySet(ns, "signer", { algorithm: "ML-DSA-44" }));
    const before = await ks.waitFor("signer", "Ready", isReady);
    const previousPub = decode((await ks.secret("signer"))?.data?.["current.pub"]) as string;
    await rotate("signer", "go");
    const after = await ks.waitFor("signer", "rotated", (k) => k.status?.revision === 2 && isReady(k));
    const statements = JSON.parse(
      (await ks.configMap("signer-public"))?.data?.["succession.json"] as string,
    ) as SuccessionStatement[];
    expect(statements).toHaveLength(1);
    const s = statements[0] as SuccessionStatement;
    expect(JSON.parse(s.statement)).toMatchObject({
      keyId: after.status?.currentKeyId,
      previousKeyId: before.status?.currentKeyId,
    });
    expect(verifySuccession(s, previousPub)).toBe(true);
  });

  test("retainPrevious bounds the keys kept; lowering it prunes without rotating", async () => {
    await admin.create(PQKeySetKind, pqKeySet(ns, "pruned", { algorithm: "ML-KEM-512", retainPrevious: 2 }));
    await ks.waitFor("pruned", "Ready", isReady);
    for (const r of ["a", "b", "c"]) {
      const rev = (await ks.get("pruned"))?.status?.revision as number;
      await rotate("pruned", r);
      await ks.waitFor("pruned", `revision ${rev + 1}`, (k) => k.status?.revision === rev + 1);
    }
    expect((await ks.get("pruned"))?.status?.keys).toHaveLength(3);
    await admin.patch(PQKeySetKind, ns, "pruned", "merge", { spec: { retainPrevious: 0 } });
    const after = await ks.waitFor("pruned", "one key left", (k) => k.status?.keys?.length === 1 && isReady(k));
    expect(after.status?.revision).toBe(4);
    const secret = await ks.secret("pruned");
    expect(Object.keys(secret?.data ?? {}).sort()).toEqual(["current.key", "current.kid", "current.pub", "keys.json"]);
  });

  test("a 1m rotation period rotates on schedule", async () => {
    await admin.create(PQKeySetKind, pqKeySet(ns, "periodic", { algorithm: "ML-KEM-512", rotationPeriod: "1m" }));
    const first = await ks.waitFor("periodic", "Ready", isReady);
    const due = Date.parse(first.status?.nextRotationTime as string);
    expect(due - Date.parse(first.status?.lastRotationTime as string)).toBe(60_000);
    const second = await ks.waitFor("periodic", "the scheduled rotation", (k) => k.status?.revision === 2, 120_000);
    expect(Date.parse(second.status?.lastRotationTime as string)).toBeGreaterThanOrEqual(due - 1000);
    expect(second.status?.keys?.[1]?.keyId).toBe(first.status?.currentKeyId);
    await admin.delete(PQKeySetKind, ns, "periodic"); // it would go on rotating every minute
  }, 180_000);

  test("suspend holds rotations, forced ones included, until it is lifted", async () => {
    await admin.create(PQKeySetKind, pqKeySet(ns, "held", { algorithm: "ML-KEM-768" }));
    await ks.waitFor("held", "Ready", isReady);
    await admin.patch(PQKeySetKind, ns, "held", "merge", {
      metadata: { annotations: { [ROTATE_ANNOTATION]: "now" } },
      spec: { suspend: true },
    });
    const held = await ks.waitFor(
      "held",
      "suspended",
      (k) => readyCondition(k)?.reason === "Suspended" && k.status?.observedGeneration === k.metadata.generation,
    );
    expect(held.status?.revision).toBe(1);
    expect(held.status?.nextRotationTime).toBeUndefined();
    await admin.patch(PQKeySetKind, ns, "held", "merge", { spec: { suspend: false } });
    const resumed = await ks.waitFor("held", "the held rotation", (k) => k.status?.revision === 2 && isReady(k));
    expect(readyCondition(resumed)?.reason).toBe("KeysCurrent");
  });

  test("a Secret it does not own is never overwritten: SecretConflict until it goes", async () => {
    const foreign = {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "taken", namespace: ns },
      data: { mine: Buffer.from("do not touch").toString("base64") },
    };
    await admin.create(SecretKind, foreign);
    await admin.create(PQKeySetKind, pqKeySet(ns, "conflicted", { secretName: "taken" }));
    const set = await ks.waitFor("conflicted", "SecretConflict", (k) => readyCondition(k)?.reason === "SecretConflict");
    expect(readyCondition(set)).toMatchObject({
      status: "False",
      message: expect.stringContaining("Secret taken exists and is not owned"),
    });
    const secret = await ks.secret("taken");
    expect(secret?.data).toEqual(foreign.data);
    expect(secret?.metadata.ownerReferences).toBeUndefined();
    expect(await ks.configMap("conflicted-public")).toBeUndefined();
    const events = await admin.list<KubeObject & { reason: string; regarding: { uid: string } }>(EventKind, {
      namespace: ns,
    });
    expect(events.items.some((e) => e.reason === "SecretConflict" && e.regarding.uid === set.metadata.uid)).toBe(true);

    await admin.delete(SecretKind, ns, "taken");
    await ks.waitFor("conflicted", "Ready once the Secret is gone", isReady);
  });

  test("invalid specs are rejected by the API server with a clear message", async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ algorithm: "RSA-2048" }, /spec.algorithm: Unsupported value: "RSA-2048"/],
      [
        { retainPrevious: 11 },
        /spec.retainPrevious: Invalid value: 11: spec.retainPrevious in body should be less than or equal to 10/,
      ],
      [{ rotationPeriod: "forever" }, /spec.rotationPeriod in body should match/],
      [{ deletionPolicy: "Keep" }, /spec.deletionPolicy: Unsupported value: "Keep"/],
    ];
    for (const [spec, message] of cases) {
      const err = await admin.create(PQKeySetKind, pqKeySet(ns, "invalid", spec)).catch((e) => e);
      expect(err).toBeInstanceOf(ApiError);
      expect((err as ApiError).status).toBe(422);
      expect((err as ApiError).message).toMatch(message);
    }
  });

  test("a period under the minimum is reported as InvalidSpec, and nothing is generated", async () => {
    // The API server rejects most such periods (crd-validation.test.ts); a fraction is left to the controller.
    await admin.create(PQKeySetKind, pqKeySet(ns, "too-fast", { rotationPeriod: "0.5m" }));
    const set = await ks.waitFor("too-fast", "InvalidSpec", (k) => readyCondition(k)?.reason === "InvalidSpec");
    expect(readyCondition(set)?.message).toMatch(/shorter than the minimum of 1m/);
    expect(await ks.secret("too-fast")).toBeUndefined();
    await admin.patch(PQKeySetKind, ns, "too-fast", "merge", { spec: { rotationPeriod: "1h" } });
    await ks.waitFor("too-fast", "Ready once fixed", isReady);
  });

  test("deletionPolicy Delete garbage-collects the children; Retain releases them", async () => {
    await admin.create(PQKeySetKind, pqKeySet(ns, "doomed", { algorithm: "ML-KEM-512" }));
    await admin.create(PQKeySetKind, pqKeySet(ns, "kept", { algorithm: "ML-KEM-512", deletionPolicy: "Retain" }));
    await ks.waitFor("doomed", "Ready", isReady);
    const kept = await ks.waitFor("kept", "Ready", isReady);
    expect(kept.metadata.finalizers).toContain("nextgen.itechsmart.io/retain-children");
    const keptKid = decode((await ks.secret("kept"))?.data?.["current.kid"]);
    await admin.delete(PQKeySetKind, ns, "doomed");
    await admin.delete(PQKeySetKind, ns, "kept");
    await waitUntil("the kept key set to be gone", async () => (await ks.get("kept")) === undefined, {
      timeoutMs: 30_000,
    });
    await waitUntil(
      "the doomed key set's children to be garbage-collected",
      async () => (await ks.secret("doomed")) === undefined && (await ks.configMap("doomed-public")) === undefined,
      { timeoutMs: 90_000, intervalMs: 500 },
    );
    const secret = await ks.secret("kept");
    expect(decode(secret?.data?.["current.kid"])).toBe(keptKid);
    expect(secret?.metadata.ownerReferences).toBeUndefined();
    expect((await ks.configMap("kept-public"))?.metadata.ownerReferences).toBeUndefined();
  }, 150_000);

  test("no private key material in status, events or logs", async () => {
    const secrets = await admin.list<KubeObject & { data?: Record<string, string> }>(SecretKind, { namespace: ns });
    const privateBodies = secrets.items
      .flatMap((s) =>
        Object.entries(s.data ?? {})
          .filter(([k]) => k.endsWith(".key"))
          .map(([, v]) => decode(v) as string),
      )
      .map((pem) => pem.split("\n")[1] as string);
    expect(privateBodies.length).toBeGreaterThan(10);
    const statuses = JSON.stringify((await admin.list(PQKeySetKind, { namespace: ns })).items);
    const events = JSON.stringify((await admin.list(EventKind, { namespace: ns })).items);
    const metrics = await operator.metricsText();
    for (const body of privateBodies) {
      for (const text of [statuses, events, operator.logs, metrics]) expect(text.includes(body)).toBe(false);
    }
  });

  test("converged key sets cost no API writes", async () => {
    const reconciles = () => operator.metric("controller_runtime_reconcile_total", { controller: "pqkeyset" });
    const before = await operator.apiWrites();
    const logged = operator.writeLog.length;
    const r0 = await reconciles();
    // Touching a label reconciles every key set once more without changing anything they own.
    const all = (await admin.list(PQKeySetKind, { namespace: ns })).items;
    for (const k of all)
      await admin.patch(PQKeySetKind, ns, k.metadata.name, "merge", { metadata: { labels: { poked: "1" } } });
    await waitUntil("a reconcile per key set", async () => (await reconciles()) >= r0 + all.length, {
      timeoutMs: 30_000,
    });
    // On failure the message names what was written.
    expect(await operator.apiWrites(), operator.writeLog.slice(logged).join("\n")).toBe(before);
  });
});
