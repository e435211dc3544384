import { afterEach, describe, expect, test } from "vitest";
import {
  IBM_API_VERSION,
  calibrationFromProperties,
  countsFromSamples,
  ibmQuantum,
  jobState,
  retryAfterMs,
} from "../../src/quantum/providers/ibm-quantum.ts";
import { type ProviderConfig, ProviderError, providerNames, providers } from "../../src/quantum/providers/index.ts";
import { type FakeIbmQuantum, type FakeIbmQuantumOptions, startFakeIbmQuantum } from "../fakes/ibm-quantum-server.ts";
import { BELL } from "../fixtures/circuits.ts";

const running: FakeIbmQuantum[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((f) => f.close()));
});

async function startFake(opts?: FakeIbmQuantumOptions): Promise<FakeIbmQuantum> {
  const fake = await startFakeIbmQuantum(opts);
  running.push(fake);
  return fake;
}

function connect(fake: FakeIbmQuantum, cfg: Partial<ProviderConfig> = {}) {
  return ibmQuantum.create({
    endpoint: fake.url,
    authEndpoint: fake.authUrl,
    backend: fake.backend,
    credentials: { apiKey: fake.apiKey, serviceCRN: fake.serviceCRN },
    ...cfg,
  });
}

async function rejection(call: Promise<unknown>): Promise<ProviderError> {
  const error = await call.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ProviderError);
  return error as ProviderError;
}

const requestsTo = (fake: FakeIbmQuantum, path: RegExp) => fake.requests.filter((r) => path.test(r.path));
const TOKEN = /^\/identity\/token$/;
const STATUS = /\/backends\/[^/]+\/status$/;
const SUBMIT = /^\/api\/v1\/jobs$/;

describe("provider registry", () => {
  test("IBMQuantum is registered and needs apiKey and serviceCRN", () => {
    expect(providers.IBMQuantum).toBe(ibmQuantum);
    expect(providerNames).toContain("IBMQuantum");
    expect(ibmQuantum.requiredCredentials).toEqual(["apiKey", "serviceCRN"]);
    expect(() => ibmQuantum.create({ backend: "ibm_kingston", credentials: { apiKey: "k" } })).toThrow(/serviceCRN/);
  });
});

describe("IBM Quantum adapter against the fake platform", () => {
  test("exchanges the API key once and sends the documented headers on every call", async () => {
    const fake = await startFake();
    const qpu = connect(fake);
    await qpu.backendStatus();
    await qpu.backendStatus();
    const iam = requestsTo(fake, TOKEN);
    expect(iam).toHaveLength(1);
    expect(iam[0]?.method).toBe("POST");
    expect(iam[0]?.headers["content-type"]).toBe("application/x-www-form-urlencoded");
    const api = requestsTo(fake, STATUS);
    expect(api).toHaveLength(2);
    for (const r of api) {
      expect(r.headers.authorization).toMatch(/^Bearer fake-token-/);
      expect(r.headers["service-crn"]).toBe(fake.serviceCRN);
      expect(r.headers["ibm-api-version"]).toBe(IBM_API_VERSION);
      expect(r.headers.accept).toBe("application/json");
    }
  });

  test("submit, then Queued → Running → Completed, then Bell counts", async () => {
    const fake = await startFake();
    const qpu = connect(fake);
    const id = await qpu.submit({ qasm: BELL, shots: 100, tag: "uid-1" });
    expect(fake.jobs.get(id)).toMatchObject({ qasm: BELL, shots: 100, tags: ["uid-1"], backend: "ibm_kingston" });
    expect(await qpu.findByTag("uid-1")).toBe(id);
    expect(await qpu.findByTag("uid-other")).toBeUndefined();
    expect(await qpu.status(id)).toEqual({ state: "Queued" });
    expect(await qpu.status(id)).toEqual({ state: "Running" });
    expect(await qpu.status(id)).toEqual({ state: "Completed" });
    expect(await qpu.results(id)).toEqual({ shots: 100, counts: { "00": 50, "11": 50 } });
  });

  test("bit order: a 3-bit register reading 0x1 is 001; registers are joined last-declared first", async () => {
    const fake = await startFake({
      autoAdvance: false,
      sample: () => ({ a: ["0x1", "0x1", "0x4"], b: ["0x1", "0x0", "0x1"] }),
    });
    const qpu = connect(fake);
    const qasm = "OPENQASM 3.0;\nqubit[4] q;\nbit[3] a;\nbit b;\na = measure q[0:2];\nb = measure q[3];";
    const id = await qpu.submit({ qasm, shots: 3, tag: "uid-2" });
    fake.advance(id);
    expect(await qpu.status(id)).toEqual({ state: "Running" });
    fake.advance(id);
    expect(await qpu.results(id)).toEqual({ shots: 3, counts: { "1 001": 1, "0 001": 1, "1 100": 1 } });
  });

  test("a failed job reports its reason; an unknown job is NotFound", async () => {
    const fake = await startFake();
    const qpu = connect(fake);
    const id = await qpu.submit({ qasm: BELL, shots: 10, tag: "uid-3" });
    Object.assign(fake.jobs.get(id) ?? {}, { status: "Failed", reason: "The circuit is not ISA" });
    expect(await qpu.status(id)).toEqual({ state: "Failed", message: "The circuit is not ISA" });
    expect((await rejection(qpu.status("d0000000000000000000"))).kind).toBe("NotFound");
  });

  test("a request refused with 4xx is Rejected with the API's message", async () => {
    const fake = await startFake();
    const error = await rejection(connect(fake, { backend: "ibm_nowhere" }).submit({ qasm: BELL, shots: 1, tag: "t" }));
    expect(error).toMatchObject({ kind: "Rejected", status: 400 });
    expect(error.message).toContain("Backend ibm_nowhere is not available");
  });

  test("an expired token is exchanged again once and the call succeeds", async () => {
    const fake = await startFake();
    const qpu = connect(fake);
    await qpu.backendStatus();
    fake.expireTokens();
    expect(await qpu.backendStatus()).toMatchObject({ operational: true });
    expect(requestsTo(fake, TOKEN)).toHaveLength(2);
    expect(requestsTo(fake, STATUS)).toHaveLength(3);
  });

  test("a fresh token refused again is Unauthorized, naming the Secret but neither the key nor a token", async () => {
    const fake = await startFake();
    const qpu = connect(fake);
    await qpu.backendStatus();
    fake.failNext(STATUS, 401, 2);
    const error = await rejection(qpu.backendStatus());
    expect(error).toMatchObject({ kind: "Unauthorized", status: 401 });
    expect(error.message).toContain("Secret");
    expect(error.message).not.toContain(fake.apiKey);
    const tokens = fake.requests.map((r) => r.headers.authorization?.replace("Bearer ", "")).filter((t) => t);
    expect(new Set(tokens).size).toBe(2);
    for (const token of tokens) expect(error.message).not.toContain(token);
    expect(requestsTo(fake, TOKEN)).toHaveLength(2);
  });

  test("a wrong API key is Unauthorized without the key in the message, and no API call is made", async () => {
    const fake = await startFake();
    const wrongKey = "wrong-api-key-0123456789";
    const qpu = connect(fake, { credentials: { apiKey: wrongKey, serviceCRN: fake.serviceCRN } });
    const error = await rejection(qpu.submit({ qasm: BELL, shots: 1, tag: "t" }));
    expect(error).toMatchObject({ kind: "Unauthorized", status: 400 });
    expect(error.message).toContain("Secret");
    expect(error.message).not.toContain(wrongKey);
    expect(fake.requests.map((r) => r.path)).toEqual(["/identity/token"]);
  });

  test("429 with a short Retry-After is waited out; a long one is RateLimited with retryAfterMs", async () => {
    const fake = await startFake();
    const qpu = connect(fake);
    fake.failNext(STATUS, 429, 1, { "Retry-After": "1" });
    expect(await qpu.backendStatus()).toMatchObject({ operational: true });
    expect(requestsTo(fake, STATUS)).toHaveLength(2);

    fake.failNext(STATUS, 429, 1, { "Retry-After": "120" });
    const error = await rejection(qpu.backendStatus());
    expect(error).toMatchObject({ kind: "RateLimited", status: 429, retryAfterMs: 120_000 });
    expect(requestsTo(fake, STATUS)).toHaveLength(3);
  });

  test("429 past maxRetries is RateLimited", async () => {
    const fake = await startFake();
    const qpu = connect(fake, { maxRetries: 2 });
    fake.failNext(STATUS, 429, 10, { "Retry-After": "0" });
    expect(await rejection(qpu.backendStatus())).toMatchObject({ kind: "RateLimited", retryAfterMs: 0 });
    expect(requestsTo(fake, STATUS)).toHaveLength(3);
  });

  test("5xx and dropped connections are retried; persistent 5xx is Unavailable after maxRetries", async () => {
    const fake = await startFake();
    const qpu = connect(fake, { maxRetries: 2, maxInlineWaitMs: 20 });
    fake.failNext(STATUS, 503, 1);
    fake.failNext(STATUS, 0, 1);
    expect(await qpu.backendStatus()).toMatchObject({ operational: true });
    expect(requestsTo(fake, STATUS)).toHaveLength(3);

    fake.failNext(STATUS, 500, 10);
    const error = await rejection(qpu.backendStatus());
    expect(error).toMatchObject({ kind: "Unavailable", status: 500 });
    expect(requestsTo(fake, STATUS)).toHaveLength(6);
  });

  test.each([
    ["5xx", 502],
    ["a dropped connection", 0],
  ])("a submission answered with %s after the job was created is not submitted twice", async (_, status) => {
    const fake = await startFake();
    const qpu = connect(fake, { maxInlineWaitMs: 20 });
    fake.failAfterHandlingNext(SUBMIT, status, 1);
    const id = await qpu.submit({ qasm: BELL, shots: 10, tag: "uid-4" });
    expect(fake.submitted()).toBe(1);
    expect([...fake.jobs.keys()]).toEqual([id]);
    expect(requestsTo(fake, /^\/api\/v1\/jobs\?.*tags=uid-4/)).toHaveLength(1);
  });

  test("a submission refused with 5xx before the job was created is sent again after looking for it", async () => {
    const fake = await startFake();
    const qpu = connect(fake, { maxInlineWaitMs: 20 });
    fake.failNext(SUBMIT, 503, 1);
    const id = await qpu.submit({ qasm: BELL, shots: 10, tag: "uid-5" });
    expect(fake.submitted()).toBe(2);
    expect([...fake.jobs.keys()]).toEqual([id]);
    const paths = fake.requests.filter((r) => r.path.startsWith("/api/v1/jobs")).map((r) => r.path.split("?")[0]);
    expect(paths).toEqual(["/api/v1/jobs", "/api/v1/jobs", "/api/v1/jobs"]);
    expect(fake.requests.filter((r) => r.path.startsWith("/api/v1/jobs")).map((r) => r.method)).toEqual([
      "POST",
      "GET",
      "POST",
    ]);
  });

  test("cancel moves a job to Cancelled; cancelling a finished job is not an error", async () => {
    const fake = await startFake({ autoAdvance: false });
    const qpu = connect(fake);
    const queued = await qpu.submit({ qasm: BELL, shots: 10, tag: "uid-6" });
    await qpu.cancel(queued);
    expect(fake.jobs.get(queued)?.status).toBe("Cancelled");
    expect(await qpu.status(queued)).toEqual({ state: "Cancelled" });
    await qpu.cancel(queued);

    const done = await qpu.submit({ qasm: BELL, shots: 10, tag: "uid-7" });
    fake.advance(done);
    fake.advance(done);
    await qpu.cancel(done);
    expect(fake.jobs.get(done)?.status).toBe("Completed");
    expect((await rejection(qpu.cancel("d0000000000000000000"))).kind).toBe("NotFound");
  });

  test("calibration: medians from the device's properties and its quantum volume", async () => {
    const fake = await startFake();
    expect(await connect(fake).calibration()).toEqual({
      singleQubitError: expect.closeTo(3.0e-4, 10),
      twoQubitError: expect.closeTo(3.8e-3, 10),
      readoutError: expect.closeTo(1.2e-2, 10),
      quantumVolume: 32,
      updated: "2026-03-20T06:12:41Z",
    });
  });

  test("a device without properties has no calibration and no status", async () => {
    const fake = await startFake();
    const simulator = connect(fake, { backend: "simulator_somewhere" });
    expect(await simulator.calibration()).toBeUndefined();
    expect((await rejection(simulator.backendStatus())).kind).toBe("NotFound");
  });

  test("backend status: operational flag, queue length and status text", async () => {
    const fake = await startFake();
    const qpu = connect(fake);
    expect(await qpu.backendStatus()).toEqual({ operational: true, queueLength: 0, message: "active" });
    fake.setBackend({ operational: false, queueLength: 17, status: "maintenance" });
    expect(await qpu.backendStatus()).toEqual({ operational: false, queueLength: 17, message: "maintenance" });
  });
});

describe("IBM Quantum pure conversions", () => {
  test("samples without num_bits take the widest sample's width; num_bits pads", () => {
    expect(countsFromSamples({ meas: { samples: ["0x5", "0x1", "0x1"] } })).toEqual({
      shots: 3,
      counts: { "101": 1, "001": 2 },
    });
    expect(countsFromSamples({ c: { samples: ["0x1"], num_bits: 4 } })).toEqual({ shots: 1, counts: { "0001": 1 } });
    expect(countsFromSamples({})).toEqual({ shots: 0, counts: {} });
  });

  test("malformed samples are Unavailable", () => {
    expect(() => countsFromSamples({ c: { samples: ["7"] } })).toThrow(ProviderError);
    expect(() => countsFromSamples({ a: { samples: ["0x1"] }, b: { samples: [] } })).toThrow(/different numbers/);
  });

  test("job states, including the historic 'Cancelled - Ran too long'", () => {
    expect(jobState("Queued")).toBe("Queued");
    expect(jobState("RUNNING")).toBe("Running");
    expect(jobState("Cancelled - Ran too long")).toBe("Cancelled");
    expect(jobState("Sleeping")).toBeUndefined();
  });

  test("Retry-After in seconds or as an HTTP date", () => {
    const now = Date.parse("2026-03-20T06:00:00Z");
    expect(retryAfterMs("3", now)).toBe(3000);
    expect(retryAfterMs(new Date(now + 30_000).toUTCString(), now)).toBe(30_000);
    expect(retryAfterMs(new Date(now - 30_000).toUTCString(), now)).toBe(0);
    expect(retryAfterMs("soon", now)).toBeUndefined();
    expect(retryAfterMs(null, now)).toBeUndefined();
  });

  test("no calibration data at all is undefined; rz is left out of the 1-qubit median", () => {
    expect(calibrationFromProperties({})).toBeUndefined();
    const gates = [
      { gate: "sx", qubits: [0], parameters: [{ name: "gate_error", value: 3e-4 }] },
      { gate: "rz", qubits: [0], parameters: [{ name: "gate_error", value: 0 }] },
      { gate: "measure", qubits: [0], parameters: [{ name: "gate_error", value: 0.5 }] },
    ];
    expect(calibrationFromProperties({ gates })).toEqual({ singleQubitError: 3e-4 });
  });
});
