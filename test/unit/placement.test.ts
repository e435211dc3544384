import { describe, expect, test } from "vitest";
import { LANGUAGE_FEATURES, QISKIT_FEATURES } from "../../src/quantum/circuit.ts";
import {
  type BackendCandidate,
  type PlacementRequest,
  STRATEGY_WEIGHTS,
  type Strategy,
  place,
  qubitsThatFit,
  statevectorBytes,
  successProbability,
} from "../../src/quantum/placement.ts";

const GiB = 1024 ** 3;

/**
 * A realistic fleet: a good but busy and expensive QPU, a noisier cheap QPU with a short queue, a free CPU
 * simulator at a nearby edge site, a fast GPU simulator on hydro power, a QPU without credentials and a simulator
 * whose site is down. The remote QPUs' carbon intensity is not published.
 */
function fleet(): BackendCandidate[] {
  return [
    {
      name: "qpu-alpha",
      type: "QPU",
      ready: true,
      selected: true,
      capabilities: { maxQubits: 27, maxShots: 100_000 },
      languageFeatures: QISKIT_FEATURES,
      calibration: { singleQubitError: 2e-4, twoQubitError: 5e-3, readoutError: 1e-2, quantumVolume: 128 },
      secondsPerShot: 0.002,
      capacity: { maxConcurrentJobs: 1, running: 0, queued: 0, remoteQueue: 5 },
      cost: { perShot: 0.01 },
    },
    {
      name: "qpu-beta",
      type: "QPU",
      ready: true,
      selected: true,
      capabilities: { maxQubits: 20, maxShots: 20_000 },
      languageFeatures: QISKIT_FEATURES,
      calibration: { singleQubitError: 1e-3, twoQubitError: 2e-2, readoutError: 3e-2, quantumVolume: 32 },
      secondsPerShot: 0.001,
      capacity: { maxConcurrentJobs: 1, running: 0, queued: 0, remoteQueue: 2 },
      cost: { perShot: 0.002 },
    },
    {
      name: "sim-cpu",
      type: "Simulator",
      ready: true,
      selected: true,
      site: { name: "edge-a", online: true, latencyMs: 2 },
      carbonIntensity: 450,
      powerWatts: 300,
      capabilities: { maxQubits: 24, maxShots: 1_000_000 },
      languageFeatures: LANGUAGE_FEATURES,
      memory: { bytes: 64 * GiB, precision: "Double", holder: "the runner's memory limit" },
      secondsPerShot: 0.002,
      capacity: { maxConcurrentJobs: 4, running: 1, queued: 0 },
    },
    {
      name: "sim-gpu",
      type: "Simulator",
      ready: true,
      selected: true,
      site: { name: "hub", online: true, latencyMs: 12 },
      carbonIntensity: 30,
      powerWatts: 700,
      capabilities: { maxQubits: 32, maxShots: 1_000_000 },
      languageFeatures: QISKIT_FEATURES,
      memory: { bytes: 80 * GiB, precision: "Single", holder: "GPU memory (spec.execution.gpuMemory)" },
      secondsPerShot: 0.0002,
      capacity: { maxConcurrentJobs: 2, running: 0, queued: 0 },
      cost: { perSecond: 0.05 },
    },
    {
      name: "qpu-down",
      type: "QPU",
      ready: false,
      notReadyReason: "MissingCredentials: Secret ibm-credentials not found",
      selected: true,
      capabilities: { maxQubits: 127, maxShots: 100_000 },
      languageFeatures: LANGUAGE_FEATURES,
      capacity: { maxConcurrentJobs: 1, running: 0, queued: 0 },
    },
    {
      name: "sim-offline",
      type: "Simulator",
      ready: true,
      selected: true,
      site: { name: "edge-b", online: false, latencyMs: 1 },
      capabilities: { maxQubits: 30, maxShots: 1_000_000 },
      languageFeatures: LANGUAGE_FEATURES,
      capacity: { maxConcurrentJobs: 1, running: 0, queued: 0 },
    },
  ];
}

const request = (overrides: Partial<PlacementRequest> = {}): PlacementRequest => ({
  qubits: 5,
  shots: 1000,
  gates: { singleQubit: 10, twoQubit: 8, measurements: 5 },
  strategy: "Balanced",
  fallbackToSimulator: false,
  ...overrides,
});

const alphaSuccess = 0.9998 ** 10 * 0.995 ** 8 * 0.99 ** 5;
const betaSuccess = 0.999 ** 10 * 0.98 ** 8 * 0.97 ** 5;

function reasonFor(reasons: string[], name: string): string {
  const line = reasons.find((r) => r.startsWith(`${name}: `));
  if (!line) throw new Error(`no reason for ${name} in ${JSON.stringify(reasons)}`);
  return line;
}

function withBackend(name: string, change: Partial<BackendCandidate>): BackendCandidate[] {
  return fleet().map((b) => (b.name === name ? { ...b, ...change } : b));
}

describe("success probability and memory", () => {
  test("the product of per-operation success rates, against hand-computed values", () => {
    const gates = { singleQubit: 2, twoQubit: 1, measurements: 2 };
    const cal = { singleQubitError: 0.01, twoQubitError: 0.1, readoutError: 0.05 };
    // 0.99² · 0.9 · 0.95² = 0.9801 · 0.9 · 0.9025
    expect(successProbability(cal, gates)).toBeCloseTo(0.796086225, 12);
    expect(successProbability({ twoQubitError: 0.5 }, { singleQubit: 100, twoQubit: 3, measurements: 9 })).toBe(0.125);
    expect(successProbability(undefined, gates)).toBe(1);
    expect(successProbability(cal, { singleQubit: 0, twoQubit: 0, measurements: 0 })).toBe(1);
  });

  test("a state vector is 16 bytes per amplitude in double precision, 8 in single", () => {
    expect(statevectorBytes(1)).toBe(32);
    expect(statevectorBytes(30)).toBe(16 * GiB);
    expect(statevectorBytes(30, "Single")).toBe(8 * GiB);
    expect(Number.isFinite(statevectorBytes(1019))).toBe(true);
  });

  test("the qubits that fit: 90% of the memory, whole powers of two", () => {
    const gpu = (gib: number, precision: "Single" | "Double") => ({ bytes: gib * GiB, precision, holder: "GPU" });
    // An 80 GiB A100: 2^33 single amplitudes are 64 GiB (fits in 72), 2^34 are 128 GiB.
    expect(qubitsThatFit(gpu(80, "Single"))).toBe(33);
    expect(qubitsThatFit(gpu(80, "Double"))).toBe(32);
    // Exactly 16 GiB of state in 16 GiB of memory leaves no room for the CUDA context: one qubit fewer.
    expect(qubitsThatFit(gpu(16, "Single"))).toBe(30);
    expect(qubitsThatFit({ bytes: 8, precision: "Double", holder: "nothing" })).toBe(0);
  });

  test("each strategy's weights sum to 1, its own metric weighing 0.7", () => {
    for (const [strategy, weights] of Object.entries(STRATEGY_WEIGHTS)) {
      expect(
        Object.values(weights).reduce((a, b) => a + b, 0),
        strategy,
      ).toBeCloseTo(1, 12);
    }
    expect(STRATEGY_WEIGHTS.Fidelity).toEqual({
      fidelity: 0.7,
      wait: 0.075,
      cost: 0.075,
      latency: 0.075,
      carbon: 0.075,
    });
    expect(STRATEGY_WEIGHTS.Carbon.carbon).toBe(0.7);
    expect(STRATEGY_WEIGHTS.Balanced).toEqual({ fidelity: 0.3, wait: 0.25, cost: 0.2, latency: 0.1, carbon: 0.15 });
  });
});

describe("placement", () => {
  test.each<[Strategy, Partial<PlacementRequest>, string]>([
    ["Fidelity", { types: ["QPU"] }, "qpu-alpha"], // the lower-error QPU, despite its queue and price
    ["Latency", {}, "sim-cpu"], // 2 ms away
    ["Cost", {}, "sim-cpu"], // free
    ["Carbon", {}, "sim-gpu"], // hydro power and ten times faster
    ["Balanced", {}, "sim-gpu"], // exact, idle, nearly free and a fraction of the carbon
  ])("%s %j picks %s", (strategy, overrides, expected) => {
    const decision = place(request({ strategy, ...overrides }), fleet());
    expect(decision.chosen?.name).toBe(expected);
    expect(decision.chosen?.fallbackUsed).toBe(false);
    expect(decision.reasons[0]).toMatch(new RegExp(`^${expected}: won: score [0-9.]+ — success `));
  });

  test("Fidelity over every type prefers an exact simulator to any QPU", () => {
    const decision = place(request({ strategy: "Fidelity" }), fleet());
    expect(decision.chosen).toMatchObject({ successProbability: 1 });
    expect(["sim-cpu", "sim-gpu"]).toContain(decision.chosen?.name);
  });

  test("every backend is explained, chosen first, then by score, then the rejected by name", () => {
    const decision = place(request(), fleet());
    expect(decision.reasons).toHaveLength(6);
    expect(decision.reasons.map((r) => r.split(":")[0])).toEqual([
      "sim-gpu",
      "sim-cpu",
      "qpu-beta",
      "qpu-alpha",
      "qpu-down",
      "sim-offline",
    ]);
    // sim-gpu: fidelity 1 × 0.3 + wait 1 × 0.25 + cost 0.999 × 0.2 + latency 0 × 0.1 + carbon 1 × 0.15
    expect(decision.reasons[0]).toBe(
      "sim-gpu: won: score 0.9 — success 1, wait 0 s, cost 0.01, latency 12 ms, carbon 0.00117 g",
    );
    // sim-cpu: the best on everything but carbon, where it is the worst known
    expect(decision.reasons[1]).toBe(
      "sim-cpu: scored 0.85: success 1, wait 0 s, cost 0.00, latency 2 ms, carbon 0.075 g",
    );
    const scores = decision.reasons.slice(1, 4).map((r) => Number(/scored ([0-9.]+):/.exec(r)?.[1]));
    expect(scores.every((s, k) => k === 0 || s <= (scores[k - 1] as number))).toBe(true);
    expect(decision.chosen?.score).toBeGreaterThanOrEqual(scores[0] as number);
    expect(reasonFor(decision.reasons, "qpu-alpha")).toMatch(/wait 10 s, cost 10\.00, latency unknown$/);
    expect(reasonFor(decision.reasons, "qpu-down")).toBe(
      "qpu-down: rejected: not Ready (MissingCredentials: Secret ibm-credentials not found)",
    );
    expect(reasonFor(decision.reasons, "sim-offline")).toBe("sim-offline: rejected: site edge-b is not Online");
  });

  test("the estimates behind the scores", () => {
    const decision = place(request({ strategy: "Fidelity", types: ["QPU"] }), fleet());
    expect(decision.chosen).toMatchObject({ name: "qpu-alpha", expectedWaitSeconds: 10, estimatedCost: 10 });
    expect(decision.chosen?.successProbability).toBeCloseTo(alphaSuccess, 12);
    expect(reasonFor(decision.reasons, "qpu-beta")).toMatch(/^qpu-beta: scored [0-9.]+: success 0\.723, wait 2 s/);
    expect(reasonFor(decision.reasons, "sim-gpu")).toBe(
      "sim-gpu: rejected: type Simulator is not in spec.backend.types (QPU)",
    );
  });

  test("qubits, shots and state-vector memory limits", () => {
    const tooWide = place(request({ qubits: 25 }), fleet());
    expect(reasonFor(tooWide.reasons, "sim-cpu")).toBe("sim-cpu: rejected: needs 25 qubits, has 24");
    expect(reasonFor(tooWide.reasons, "qpu-beta")).toBe("qpu-beta: rejected: needs 25 qubits, has 20");
    expect(tooWide.chosen?.name).toBe("sim-gpu");

    const manyShots = place(request({ shots: 50_000 }), fleet());
    expect(reasonFor(manyShots.reasons, "qpu-beta")).toBe("qpu-beta: rejected: needs 50000 shots, allows 20000");

    // 16 GiB of GPU memory: 90% holds 2^30 single-precision amplitudes (8 GiB), not 2^31 (16 GiB).
    const small = withBackend("sim-gpu", {
      memory: { bytes: 16 * GiB, precision: "Single", holder: "GPU memory (spec.execution.gpuMemory)" },
    });
    expect(place(request({ qubits: 30, strategy: "Latency" }), small).chosen?.name).toBe("sim-gpu");
    const decision = place(request({ qubits: 31 }), small);
    expect(reasonFor(decision.reasons, "sim-gpu")).toBe(
      "sim-gpu: rejected: its state vector needs 2^31 × 8 B (single precision) = 16 GiB, more than 90% of 16 GiB " +
        "of GPU memory (spec.execution.gpuMemory)",
    );
    // The same memory in double precision holds one qubit fewer.
    const double = withBackend("sim-gpu", {
      memory: { bytes: 16 * GiB, precision: "Double", holder: "the runner's memory limit" },
    });
    expect(place(request({ qubits: 29, strategy: "Latency" }), double).chosen?.name).toBe("sim-gpu");
    expect(place(request({ qubits: 30 }), double).chosen?.name).not.toBe("sim-gpu");
  });

  test("a pinned backend is the only candidate", () => {
    const decision = place(request({ strategy: "Latency", pinned: "qpu-beta" }), fleet());
    expect(decision.chosen?.name).toBe("qpu-beta");
    expect(reasonFor(decision.reasons, "sim-cpu")).toBe("sim-cpu: rejected: not the pinned backend");
    expect(reasonFor(decision.reasons, "qpu-down")).toBe(
      "qpu-down: rejected: not the pinned backend; not Ready (MissingCredentials: Secret ibm-credentials not found)",
    );

    const unready = place(request({ pinned: "qpu-down" }), fleet());
    expect(unready.chosen).toBeUndefined();
    expect(unready.reasons.every((r) => r.includes(": rejected: "))).toBe(true);
  });

  test("backends outside spec.backend.selector are rejected", () => {
    const decision = place(request({ strategy: "Latency" }), withBackend("sim-cpu", { selected: false }));
    expect(decision.chosen?.name).toBe("sim-gpu");
    expect(reasonFor(decision.reasons, "sim-cpu")).toBe("sim-cpu: rejected: does not match spec.backend.selector");
  });

  test("maxErrorRate keeps QPUs whose estimated error is within it; noiseless simulators always pass", () => {
    const decision = place(request({ strategy: "Cost", types: ["QPU"], maxErrorRate: 0.1 }), fleet());
    expect(1 - alphaSuccess).toBeLessThan(0.1);
    expect(decision.chosen?.name).toBe("qpu-alpha");
    expect(reasonFor(decision.reasons, "qpu-beta")).toBe(
      `qpu-beta: rejected: estimated error ${Math.round((1 - betaSuccess) * 1000) / 1000} exceeds maxErrorRate 0.1`,
    );
    // A limit exactly at a backend's estimated error admits it.
    const exact = place(request({ types: ["QPU"], maxErrorRate: 1 - betaSuccess, pinned: "qpu-beta" }), fleet());
    expect(exact.chosen?.name).toBe("qpu-beta");

    const strict = place(request({ strategy: "Fidelity", maxErrorRate: 0 }), fleet());
    expect(strict.chosen?.name).toMatch(/^sim-/);
    const noisy = withBackend("sim-cpu", { calibration: { twoQubitError: 0.05 } });
    expect(reasonFor(place(request({ maxErrorRate: 0.1 }), noisy).reasons, "sim-cpu")).toMatch(
      /^sim-cpu: rejected: estimated error 0\.337 exceeds/,
    );
  });

  test("minQuantumVolume applies to QPUs only", () => {
    const decision = place(request({ strategy: "Cost", minQuantumVolume: 64 }), fleet());
    expect(reasonFor(decision.reasons, "qpu-beta")).toBe("qpu-beta: rejected: quantum volume 32 is below 64");
    expect(reasonFor(decision.reasons, "qpu-alpha")).toMatch(/^qpu-alpha: scored /);
    expect(decision.chosen?.name).toBe("sim-cpu");
    const unknown = withBackend("qpu-alpha", { calibration: { twoQubitError: 5e-3 } });
    expect(reasonFor(place(request({ minQuantumVolume: 64 }), unknown).reasons, "qpu-alpha")).toBe(
      "qpu-alpha: rejected: quantum volume unknown, needs 64",
    );
  });

  test("with nothing feasible, the fallback takes a simulator and says so", () => {
    const req = request({ strategy: "Latency", types: ["QPU"], maxErrorRate: 0.01, pinned: "qpu-alpha" });
    expect(place(req, fleet()).chosen).toBeUndefined();

    const decision = place({ ...req, fallbackToSimulator: true }, fleet());
    expect(decision.chosen).toMatchObject({ name: "sim-cpu", fallbackUsed: true, successProbability: 1 });
    expect(decision.reasons[0]).toMatch(
      /^sim-cpu: won \(fallback to a simulator: no QPU was feasible\): score [0-9.]+ — success 1, /,
    );
    expect(reasonFor(decision.reasons, "sim-gpu")).toMatch(/^sim-gpu: scored /);
    expect(reasonFor(decision.reasons, "qpu-alpha")).toMatch(/^qpu-alpha: rejected: estimated error 0\.088 exceeds/);
    // The fallback still needs a simulator that can run the circuit.
    expect(reasonFor(decision.reasons, "sim-offline")).toBe("sim-offline: rejected: site edge-b is not Online");
  });

  test("the fallback does not override the selector or a simulator's limits", () => {
    const fleetWithoutCpu = withBackend("sim-cpu", { selected: false });
    const decision = place(
      request({ qubits: 26, types: ["QPU"], maxErrorRate: 0.01, fallbackToSimulator: true }),
      fleetWithoutCpu,
    );
    expect(decision.chosen).toMatchObject({ name: "sim-gpu", fallbackUsed: true });
    expect(reasonFor(decision.reasons, "sim-cpu")).toBe(
      "sim-cpu: rejected: does not match spec.backend.selector; needs 26 qubits, has 24",
    );
  });

  test("a circuit goes only where its runner takes every language feature it uses, a fallback included", () => {
    const decision = place(request({ strategy: "Fidelity", features: ["Conditionals", "ForLoops"] }), fleet());
    expect(decision.chosen?.name).toBe("sim-cpu");
    for (const name of ["qpu-alpha", "qpu-beta", "sim-gpu"])
      expect(reasonFor(decision.reasons, name)).toBe(
        `${name}: rejected: its runner does not take ForLoops (spec.capabilities.languageFeatures)`,
      );
    // Features Qiskit runs keep the whole fleet open.
    const convertible = place(request({ strategy: "Fidelity", features: ["GateModifiers", "WhileLoops"] }), fleet());
    expect(reasonFor(convertible.reasons, "qpu-alpha")).toMatch(/^qpu-alpha: (won|scored)/);

    const onlyGpu = withBackend("sim-cpu", { selected: false });
    const fallback = place(
      request({ types: ["QPU"], maxErrorRate: 0.01, fallbackToSimulator: true, features: ["Subroutines"] }),
      onlyGpu,
    );
    expect(fallback.chosen).toBeUndefined();
    expect(reasonFor(fallback.reasons, "sim-gpu")).toBe(
      "sim-gpu: rejected: its runner does not take Subroutines (spec.capabilities.languageFeatures)",
    );
  });

  test("no feasible backend: nothing chosen and every backend explained", () => {
    const decision = place(request({ qubits: 40, fallbackToSimulator: true }), fleet());
    expect(decision.chosen).toBeUndefined();
    expect(decision.reasons).toEqual([
      "qpu-alpha: rejected: needs 40 qubits, has 27",
      "qpu-beta: rejected: needs 40 qubits, has 20",
      "qpu-down: rejected: not Ready (MissingCredentials: Secret ibm-credentials not found)",
      "sim-cpu: rejected: needs 40 qubits, has 24; its state vector needs 2^40 × 16 B (double precision) = 16 TiB, " +
        "more than 90% of 64 GiB of the runner's memory limit",
      "sim-gpu: rejected: needs 40 qubits, has 32; its state vector needs 2^40 × 8 B (single precision) = 8 TiB, " +
        "more than 90% of 80 GiB of GPU memory (spec.execution.gpuMemory)",
      "sim-offline: rejected: site edge-b is not Online; needs 40 qubits, has 30",
    ]);
    expect(place(request(), []).reasons).toEqual([]);
  });

  test("a full backend's queue adds waiting time and can change the winner", () => {
    expect(place(request(), fleet()).chosen?.name).toBe("sim-gpu");
    // Both slots busy and 30 queued: ceil((30 + 2 + 1 - 2) / 2) = 16 rounds of 0.2 s.
    const busy = withBackend("sim-gpu", { capacity: { maxConcurrentJobs: 2, running: 2, queued: 30 } });
    const decision = place(request(), busy);
    expect(decision.chosen?.name).toBe("sim-cpu");
    expect(reasonFor(decision.reasons, "sim-gpu")).toMatch(/^sim-gpu: scored [0-9.]+: success 1, wait 3\.2 s,/);
    // A free slot means no wait.
    const free = withBackend("sim-gpu", { capacity: { maxConcurrentJobs: 2, running: 1, queued: 10 } });
    expect(place(request(), free).chosen).toMatchObject({ name: "sim-gpu", expectedWaitSeconds: 0 });
    // A remote provider's queue counts too: 5 jobs ahead of a 2 s run.
    expect(place(request({ pinned: "qpu-alpha" }), fleet()).chosen?.expectedWaitSeconds).toBe(10);
  });

  test("carbon: intensity × power × run time, an unknown value taking the median of the known ones", () => {
    const decision = place(request({ strategy: "Carbon" }), fleet());
    // 30 g/kWh × 700 W × 0.2 s
    expect(decision.chosen?.carbonGrams).toBeCloseTo((30 * 700 * 0.2) / 3.6e6, 12);
    expect(reasonFor(decision.reasons, "sim-cpu")).toMatch(/carbon 0\.075 g$/);

    const twin = (name: string, carbonIntensity?: number): BackendCandidate => ({
      name,
      type: "Simulator",
      ready: true,
      selected: true,
      carbonIntensity,
      capabilities: { maxQubits: 30, maxShots: 1_000_000 },
      languageFeatures: LANGUAGE_FEATURES,
      capacity: { maxConcurrentJobs: 1, running: 0, queued: 0 },
    });
    const scores = (backends: BackendCandidate[]) =>
      Object.fromEntries(
        place(request({ strategy: "Carbon" }), backends).reasons.map((r) => [
          r.split(":")[0],
          Number(/score[d]? ([0-9.]+)/.exec(r)?.[1]),
        ]),
      );
    // Known: 100 and 300 g/kWh; the unknown one is scored as the median, 200: halfway.
    expect(scores([twin("a", 100), twin("b", 300), twin("c")])).toEqual({ a: 1, b: 0.3, c: 0.65 });
    // Nothing known: carbon is neutral and the name breaks the tie.
    expect(scores([twin("b"), twin("a")])).toEqual({ a: 1, b: 1 });
    expect(place(request({ strategy: "Carbon" }), [twin("b"), twin("a")]).chosen?.name).toBe("a");
  });

  test("deterministic whatever the order of the candidates", () => {
    const backends = fleet();
    const expected = place(request(), backends);
    for (const order of [[...backends].reverse(), [3, 0, 5, 1, 4, 2].map((k) => backends[k] as BackendCandidate)]) {
      expect(place(request(), order)).toEqual(expected);
    }
    expect(place(request(), backends)).toEqual(expected);
  });
});
