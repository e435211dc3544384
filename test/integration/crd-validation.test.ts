import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type EdgeNode, EdgeNodeKind, type EdgeNodeSpec } from "../../src/crds/edgenode.ts";
import { PQKeySetKind } from "../../src/crds/pqkeyset.ts";
import { type QuantumBackend, QuantumBackendKind, type QuantumBackendSpec } from "../../src/crds/quantumbackend.ts";
import { type QuantumJob, QuantumJobKind, type QuantumJobSpec } from "../../src/crds/quantumjob.ts";
import { ApiError } from "../../src/runtime/client.ts";
import type { KindRef } from "../../src/runtime/kinds.ts";
import { metaTime } from "../../src/runtime/time.ts";
import { BELL } from "../fixtures/circuits.ts";
import { cluster, createNamespace } from "./harness.ts";
import { pqKeySet } from "./pqkeyset-helpers.ts";

// The CRDs' CEL rules (x-kubernetes-validations), checked by the API server alone: no operator runs here, and what
// a test stores it deletes, so that later files' operators never meet it.

const { admin } = cluster();
let ns: string;
/** Cluster-scoped names get this suffix, so that reruns against one control plane do not collide. */
const suffix = Math.random().toString(36).slice(2, 7);
const stored: Array<[KindRef, string | undefined, string]> = [];

beforeAll(async () => {
  ns = await createNamespace(admin, "crd-validation");
});
afterAll(async () => {
  for (const [kind, namespace, name] of stored) await admin.delete(kind, namespace, name);
});

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * The write is refused (422) with the field's path and the rule's message word for word, whichever way the API
 * server words the error type ("Invalid value", "Forbidden", "Required value", with or without the value).
 */
async function rejected(write: Promise<unknown>, field: string, message: string): Promise<void> {
  const err = await write.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `${field}: ${message}`).toBeInstanceOf(ApiError);
  expect((err as ApiError).status).toBe(422);
  expect((err as ApiError).message).toMatch(
    new RegExp(`${escape(field)}: (Invalid value|Forbidden|Required value)(: "[^"]*")?: ${escape(message)}`),
  );
}

/** Creates obj for real, to be deleted after the file's tests. */
async function store<T extends EdgeNode | QuantumJob>(kind: KindRef, obj: T): Promise<T> {
  const created = await admin.create(kind, obj);
  stored.push([kind, obj.metadata.namespace, obj.metadata.name]);
  return created;
}

describe("PQKeySet", () => {
  test("spec.rotationPeriod under 1m is rejected; 1m and longer, and fractions (left to the controller), are not", async () => {
    for (const period of ["30s", "59999ms", "0h0m59s", "0s"])
      await rejected(
        admin.create(PQKeySetKind, pqKeySet(ns, "too-fast", { rotationPeriod: period })),
        "spec.rotationPeriod",
        `${period} is shorter than the minimum of 1m: set 1m or longer.`,
      );
    for (const period of ["1m", "60s", "60000ms", "1h30m", "720h", "0.5m"])
      await admin.create(PQKeySetKind, pqKeySet(ns, "fine", { rotationPeriod: period }), { dryRun: true });
  });
});

describe("EdgeNode", () => {
  const site = (name: string, spec: Partial<EdgeNodeSpec>): EdgeNode => ({
    apiVersion: "nextgen.itechsmart.io/v1alpha1",
    kind: "EdgeNode",
    metadata: { name: `${name}-${suffix}` },
    spec: spec as EdgeNodeSpec,
  });

  test("a ContinentalHub has no parentRef; a RegionalCluster and a LocalEdge need one", async () => {
    await rejected(
      admin.create(EdgeNodeKind, site("hub", { tier: "ContinentalHub", parentRef: { name: "above" } })),
      "spec.parentRef",
      "a ContinentalHub has no parent: remove spec.parentRef.",
    );
    await rejected(
      admin.create(EdgeNodeKind, site("region", { tier: "RegionalCluster" })),
      "spec.parentRef",
      "a RegionalCluster needs spec.parentRef: the name of its ContinentalHub.",
    );
    await rejected(
      admin.create(EdgeNodeKind, site("edge", { tier: "LocalEdge", parentRef: { name: "" } })),
      "spec.parentRef",
      "a LocalEdge needs spec.parentRef: the name of its RegionalCluster.",
    );
    for (const valid of [
      site("hub", { tier: "ContinentalHub" }),
      site("region", { tier: "RegionalCluster", parentRef: { name: `hub-${suffix}` } }),
      site("edge", { tier: "LocalEdge", parentRef: { name: `region-${suffix}` } }),
    ])
      await admin.create(EdgeNodeKind, valid, { dryRun: true });
  });

  test("the rules hold on updates too: a tier may change, with the parentRef the new tier needs", async () => {
    const name = `moving-${suffix}`;
    await store(EdgeNodeKind, site("moving", { tier: "ContinentalHub" }));
    await rejected(
      admin.patch(EdgeNodeKind, undefined, name, "merge", { spec: { tier: "LocalEdge" } }),
      "spec.parentRef",
      "a LocalEdge needs spec.parentRef: the name of its RegionalCluster.",
    );
    const moved = await admin.patch<EdgeNode>(EdgeNodeKind, undefined, name, "merge", {
      spec: { tier: "RegionalCluster", parentRef: { name: `hub-${suffix}` } },
    });
    expect(moved.spec).toMatchObject({ tier: "RegionalCluster", parentRef: { name: `hub-${suffix}` } });
  });
});

describe("QuantumBackend", () => {
  const backend = (name: string, spec: Record<string, unknown>): QuantumBackend => ({
    apiVersion: "nextgen.itechsmart.io/v1alpha1",
    kind: "QuantumBackend",
    metadata: { name: `${name}-${suffix}` },
    spec: spec as unknown as QuantumBackendSpec,
  });
  const remote = { mode: "Remote", provider: "IBMQuantum", credentialsSecretRef: { name: "ibm-credentials" } };

  test("execution modes that cannot work are rejected, with what to set", async () => {
    const cases: Array<[Record<string, unknown>, string, string]> = [
      [{ type: "QPU" }, "spec.type", "An Embedded backend runs the operator's simulator: set type Simulator."],
      [
        { type: "QPU", execution: { mode: "Job" }, siteRef: { name: "eu-west" } },
        "spec.type",
        "A Job backend runs a simulator image on the site's nodes: set type Simulator.",
      ],
      [
        { type: "Simulator", execution: { mode: "Job" } },
        "spec.siteRef",
        "A Job backend runs on a site's nodes: set spec.siteRef.",
      ],
      [
        { type: "QPU", execution: { ...remote, provider: undefined } },
        "spec.execution",
        "A Remote backend needs spec.execution.provider and spec.execution.credentialsSecretRef.",
      ],
      [
        { type: "QPU", execution: { ...remote, credentialsSecretRef: undefined } },
        "spec.execution",
        "A Remote backend needs spec.execution.provider and spec.execution.credentialsSecretRef.",
      ],
    ];
    for (const [spec, field, message] of cases)
      await rejected(admin.create(QuantumBackendKind, backend("invalid", spec)), field, message);
    for (const spec of [
      { type: "Simulator" },
      { type: "Simulator", execution: { mode: "Job" }, siteRef: { name: "eu-west" } },
      { type: "QPU", execution: remote },
      { type: "Simulator", execution: remote },
    ])
      await admin.create(QuantumBackendKind, backend("valid", spec), { dryRun: true });
  });
});

describe("QuantumJob", () => {
  const job = (name: string, spec: Partial<QuantumJobSpec>): QuantumJob => ({
    apiVersion: "nextgen.itechsmart.io/v1alpha1",
    kind: "QuantumJob",
    metadata: { name, namespace: ns },
    spec: spec as QuantumJobSpec,
  });
  const setStatus = (name: string, status: QuantumJob["status"]) =>
    admin.patch(QuantumJobKind, ns, name, "merge", { status }, { subresource: "status" });
  const edit = (name: string, spec: Partial<QuantumJobSpec>) =>
    admin.patch<QuantumJob>(QuantumJobKind, ns, name, "merge", { spec });
  const circuitFixed =
    "cannot change once the job has started or finished: create a new QuantumJob to run another circuit.";
  const shotsFixed =
    "cannot change once the job has started or finished: create a new QuantumJob for another number of shots.";
  const programs =
    "Give the program in exactly one of spec.circuit.openqasm (inline) or spec.circuit.configMapRef (a ConfigMap " +
    "holding it).";

  test("spec.circuit takes exactly one of openqasm and configMapRef", async () => {
    await rejected(admin.create(QuantumJobKind, job("no-program", { circuit: {} })), "spec.circuit", programs);
    const configMapRef = { name: "circuits", key: "bell.qasm" };
    await rejected(
      admin.create(QuantumJobKind, job("two-programs", { circuit: { openqasm: BELL, configMapRef } })),
      "spec.circuit",
      programs,
    );
    await admin.create(QuantumJobKind, job("inline", { circuit: { openqasm: BELL } }), { dryRun: true });
    await admin.create(QuantumJobKind, job("referenced", { circuit: { configMapRef } }), { dryRun: true });
  });

  test("circuit and shots may change until the first run starts, and not after", async () => {
    await store(QuantumJobKind, job("edited", { circuit: { openqasm: BELL }, shots: 100 }));
    // Not started (Pending, then Queued): placement weighs the change.
    expect((await edit("edited", { shots: 200 })).spec.shots).toBe(200);
    await setStatus("edited", { phase: "Queued" });
    expect((await edit("edited", { circuit: { openqasm: `${BELL}\n` } })).spec.circuit.openqasm).toBe(`${BELL}\n`);

    await setStatus("edited", { phase: "Running", startTime: metaTime(new Date()) });
    await rejected(edit("edited", { shots: 300 }), "spec.shots", shotsFixed);
    await rejected(edit("edited", { circuit: { openqasm: BELL } }), "spec.circuit", circuitFixed);
    // Between attempts (Pending again, with a startTime) the run has started all the same.
    await setStatus("edited", { phase: "Pending" });
    await rejected(edit("edited", { shots: 300 }), "spec.shots", shotsFixed);
    // The rest of the spec, and metadata, still change.
    expect((await edit("edited", { ttlSecondsAfterFinished: 60, maxRetries: 1 })).spec.maxRetries).toBe(1);
    await admin.patch(QuantumJobKind, ns, "edited", "merge", { metadata: { labels: { touched: "yes" } } });
  });

  test("a job that finished without starting (an invalid circuit) keeps its circuit and shots too", async () => {
    await store(QuantumJobKind, job("finished", { circuit: { openqasm: "not a circuit" } }));
    await setStatus("finished", { phase: "Failed" });
    await rejected(edit("finished", { circuit: { openqasm: BELL } }), "spec.circuit", circuitFixed);
    await rejected(edit("finished", { shots: 10 }), "spec.shots", shotsFixed);
  });
});
