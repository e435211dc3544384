import { writeFileSync } from "node:fs";
import { installPrerequisites } from "../src/runtime/install.ts";
import type { ControlPlane } from "../src/controlplane/control-plane.ts";
import { type QuantumBackend, QuantumBackendKind, type QuantumBackendSpec } from "../src/crds/quantumbackend.ts";
import { type QuantumJob, QuantumJobKind, type QuantumJobSpec } from "../src/crds/quantumjob.ts";
import { EMBEDDED_RUN_THREADS } from "../src/controllers/quantumjob/embedded.ts";
import { LANGUAGE_FEATURES, QISKIT_FEATURES, languageFeatures } from "../src/quantum/circuit.ts";
import { type BackendCandidate, type PlacementRequest, place } from "../src/quantum/placement.ts";
import { Simulator } from "../src/quantum/simulator.ts";
import { KubeClient } from "../src/runtime/client.ts";
import { Informer } from "../src/runtime/informer.ts";
import { NamespaceKind } from "../src/runtime/kinds.ts";
import { Logger } from "../src/runtime/log.ts";
import { waitUntil } from "../src/runtime/wait.ts";
import { BELL, ghz } from "../test/fixtures/circuits.ts";
import { inParallel, startImageOperator } from "./util.ts";

const NAMESPACE = "bench-quantum";
const BACKEND = "bench-sim";
const SLOTS = 4;
const LATENCY_JOBS = Number(process.env.BENCH_QUANTUM_LATENCY_JOBS ?? 200);
const LATENCY_SHOTS = 1000;
const BURST_JOBS = Number(process.env.BENCH_QUANTUM_BURST_JOBS ?? 1000);
const BURST_SHOTS = 100;
/** The bench client's connection pool (KubeClient keeps 64): the burst is created as fast as it can send. */
const CREATE_CONCURRENCY = 64;
const PLACEMENT_BACKENDS = 100;
const PLACEMENT_DECISIONS = 10_000;
const GHZ_SHOTS = 1000;
const GHZ_LIMIT_MS = 10_000;
const GHZ_MAX_QUBITS = 2048;

const quantumJob = (name: string, shots: number): QuantumJob => ({
  apiVersion: "nextgen.itechsmart.io/v1alpha1",
  kind: "QuantumJob",
  metadata: { name, namespace: NAMESPACE },
  spec: {
    circuit: { openqasm: BELL },
    shots,
    backend: { name: BACKEND, fallbackToSimulator: false },
  } as QuantumJobSpec,
});

/** Nearest-rank percentile of ascending values. */
function percentile(sorted: number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

/**
 * The QuantumJob controller against the operator as shipped: apply-to-Succeeded latency of Bell jobs one after
 * another, then a burst of small jobs on one backend of 4 slots (time, API writes, peak RSS), each beside its floor
 * measured in the same run just before. Then what needs no cluster: placement across 100 backends, the compiler's counts of a circuit and the feature scan, and the largest
 * GHZ circuit the embedded simulator completes within 10 s.
 */
export async function benchQuantum(cp: ControlPlane): Promise<Record<string, string | number>> {
  const floor = await simulationFloor();
  const cluster = await benchControllers(cp, floor);
  const placement = await benchPlacement();
  const largest = await largestGhz();
  const ghzRow = `largest GHZ (${GHZ_SHOTS} shots, 1 thread) the simulator completes within ${GHZ_LIMIT_MS / 1000} s`;
  return {
    ...cluster,
    ...placement,
    [`${ghzRow}: qubits`]: largest.capped ? `${largest.qubits} (the search's cap)` : largest.qubits,
    [`${ghzRow}: its wall time s`]: (largest.ms / 1000).toFixed(2),
    [`${ghzRow}: smallest that did not, qubits`]: largest.failure ?? "none up to the cap",
  };
}

interface SimulationFloor {
  /** Bell, LATENCY_SHOTS shots, LATENCY_JOBS runs one after another: each run's ms, ascending. */
  latencies: number[];
  /** Bell, BURST_SHOTS shots, BURST_JOBS runs with SLOTS in flight: s from the first to the last. */
  burstSeconds: number;
}

/**
 * The floor of the jobs below: the same simulations run directly in the Simulator the embedded backend runs (the
 * same worker, as many threads as the operator gives it), with the same parallelism (one run at a time for the
 * latency, the backend's SLOTS in flight for the burst), and nothing else: no API server, no controller, no queue.
 */
async function simulationFloor(): Promise<SimulationFloor> {
  const simulator = new Simulator({ threads: EMBEDDED_RUN_THREADS });
  try {
    // One run per thread first, so the measured ones find the worker threads started, as the operator's warm-up job does.
    await inParallel(EMBEDDED_RUN_THREADS, EMBEDDED_RUN_THREADS, () =>
      simulator.run({ source: BELL, shots: LATENCY_SHOTS }),
    );
    const latencies: number[] = [];
    for (let i = 0; i < LATENCY_JOBS; i++) {
      const start = performance.now();
      await simulator.run({ source: BELL, shots: LATENCY_SHOTS });
      latencies.push(performance.now() - start);
    }
    latencies.sort((a, b) => a - b);
    const burstStart = performance.now();
    await inParallel(BURST_JOBS, SLOTS, () => simulator.run({ source: BELL, shots: BURST_SHOTS }));
    return { latencies, burstSeconds: (performance.now() - burstStart) / 1000 };
  } finally {
    await simulator.close();
  }
}

async function benchControllers(cp: ControlPlane, floor: SimulationFloor): Promise<Record<string, string | number>> {
  const admin = KubeClient.load(cp.adminKubeconfig, "bench-client");
  await installPrerequisites(admin, process.cwd());
  await admin.create(NamespaceKind, { apiVersion: "v1", kind: "Namespace", metadata: { name: NAMESPACE } });
  await admin.create<QuantumBackend>(QuantumBackendKind, {
    apiVersion: "nextgen.itechsmart.io/v1alpha1",
    kind: "QuantumBackend",
    metadata: { name: BACKEND },
    spec: {
      type: "Simulator",
      execution: { mode: "Embedded" },
      capacity: { maxConcurrentJobs: SLOTS },
    } as unknown as QuantumBackendSpec,
  });

  const operator = await startImageOperator(cp, { args: ["--namespace", NAMESPACE] });
  await waitUntil(
    `QuantumBackend ${BACKEND} to be Ready`,
    async () => (await admin.get<QuantumBackend>(QuantumBackendKind, undefined, BACKEND))?.status?.phase === "Ready",
    { timeoutMs: 60_000 },
  );

  // Each job's end is timed where a watcher learns of it, so how often the bench looks does not count.
  const succeededAt = new Map<string, number>();
  const failed = new Map<string, string>();
  const jobs = new Informer<QuantumJob>(admin, QuantumJobKind, {
    namespaces: [NAMESPACE],
    resyncMs: 0,
    log: new Logger("error"),
  });
  jobs.onEvent((_, j) => {
    const name = j.metadata.name;
    const phase = j.status?.phase;
    if (phase === "Succeeded" && !succeededAt.has(name)) succeededAt.set(name, performance.now());
    if (phase === "Failed" || phase === "Cancelled") failed.set(name, `${phase}: ${j.status?.lastError ?? ""}`);
  });
  jobs.start();
  await jobs.waitForSync();
  // Every change of the backend is the operator's (its status: counts and queue head), counted apart from the jobs'.
  let backendWrites = 0;
  const backends = new Informer<QuantumBackend>(admin, QuantumBackendKind, { resyncMs: 0, log: new Logger("error") });
  backends.onEvent((event, b) => void (event === "update" && b.metadata.name === BACKEND && backendWrites++));
  backends.start();
  await backends.waitForSync();
  const waitSucceeded = async (what: string, names: string[], timeoutMs: number) => {
    await waitUntil(what, () => failed.size > 0 || names.every((n) => succeededAt.has(n)), {
      timeoutMs,
      intervalMs: 5,
    });
    for (const [name, why] of failed) throw new Error(`QuantumJob ${name} did not succeed: ${why}`);
  };

  // One job first, so the measured ones find the simulator's threads started.
  await admin.create(QuantumJobKind, quantumJob("warm-up", LATENCY_SHOTS));
  await waitSucceeded("the warm-up job to succeed", ["warm-up"], 60_000);
  const latencies: number[] = [];
  for (let i = 0; i < LATENCY_JOBS; i++) {
    const name = `bell-${i}`;
    const start = performance.now();
    await admin.create(QuantumJobKind, quantumJob(name, LATENCY_SHOTS));
    await waitSucceeded(`QuantumJob ${name} to succeed`, [name], 60_000);
    latencies.push((succeededAt.get(name) as number) - start);
  }
  latencies.sort((a, b) => a - b);

  await waitUntil("the work queue to drain", async () => (await operator.metric("workqueue_depth")) === 0, {
    timeoutMs: 60_000,
  });
  // Resets VmHWM to the current RSS (proc(5), clear_refs "5"), so the peak reported is the burst's.
  writeFileSync(`/proc/${operator.pid}/clear_refs`, "5");
  const rssBefore = operator.rssMb("VmRSS");
  const burst = Array.from({ length: BURST_JOBS }, (_, i) => `burst-${i}`);
  const writesBefore = await operator.apiWrites();
  const backendWritesBefore = backendWrites;
  const burstStart = performance.now();
  await inParallel(BURST_JOBS, CREATE_CONCURRENCY, (i) =>
    admin.create(QuantumJobKind, quantumJob(burst[i] as string, BURST_SHOTS)),
  );
  await waitSucceeded(`${BURST_JOBS} QuantumJobs to succeed`, burst, 30 * 60_000);
  const burstSeconds = (Math.max(...burst.map((n) => succeededAt.get(n) as number)) - burstStart) / 1000;
  const burstWrites = (await operator.apiWrites()) - writesBefore;
  const burstBackendWrites = backendWrites - backendWritesBefore;
  const burstPeak = operator.rssMb("VmHWM");

  await operator.stop();
  await jobs.stop();
  await backends.stop();
  await admin.close();
  const bell = `Bell (${LATENCY_SHOTS} shots) apply-to-Succeeded over ${LATENCY_JOBS} jobs one after another`;
  const many = `${BURST_JOBS} Bell jobs (${BURST_SHOTS} shots) created at once, 1 backend of ${SLOTS} slots`;
  const direct = `the same runs directly in the Simulator (${EMBEDDED_RUN_THREADS} threads)`;
  return {
    [`${bell}: ratio = operator / floor, p50`]: (percentile(latencies, 50) / percentile(floor.latencies, 50)).toFixed(
      2,
    ),
    [`${bell}: p50 ms`]: percentile(latencies, 50).toFixed(0),
    [`${bell}: p99 ms`]: percentile(latencies, 99).toFixed(0),
    [`${bell}: max ms`]: (latencies.at(-1) as number).toFixed(0),
    [`${bell}: floor (${direct}, one at a time): p50 ms`]: percentile(floor.latencies, 50).toFixed(0),
    [`${bell}: floor: p99 ms`]: percentile(floor.latencies, 99).toFixed(0),
    [`${many}: ratio = operator / floor (target <= 1.5)`]: (burstSeconds / floor.burstSeconds).toFixed(2),
    [`${many}: first create to all Succeeded s`]: burstSeconds.toFixed(1),
    [`${many}: floor (${direct}, ${SLOTS} in flight) s`]: floor.burstSeconds.toFixed(1),
    [`${many}: jobs/s`]: (BURST_JOBS / burstSeconds).toFixed(1),
    [`${many}: operator API writes`]: burstWrites,
    [`${many}: operator API writes per job`]: (burstWrites / BURST_JOBS).toFixed(2),
    [`${many}: of which on the jobs (status, events), per job`]: (
      (burstWrites - burstBackendWrites) /
      BURST_JOBS
    ).toFixed(2),
    [`${many}: of which the backend's status (counts, queue head)`]: burstBackendWrites,
    [`${many}: operator RSS before MB`]: rssBefore.toFixed(0),
    [`${many}: operator peak RSS MB`]: burstPeak.toFixed(0),
  };
}

/**
 * 100 backends as varied as a real fleet: simulators of several sizes and QPUs with their own calibrations,
 * queues, prices, sites and carbon intensities, and a few that cannot take the job (not Ready, not selected,
 * offline, too small), so placement both scores and rejects.
 */
function fleet(): BackendCandidate[] {
  return Array.from({ length: PLACEMENT_BACKENDS }, (_, i): BackendCandidate => {
    const qpu = i % 5 < 2;
    const ready = i % 23 !== 0;
    return {
      name: `${qpu ? "qpu" : "sim"}-${String(i).padStart(3, "0")}`,
      type: qpu ? "QPU" : "Simulator",
      ready,
      notReadyReason: ready ? undefined : "MissingCredentials: Secret ibm-credentials not found",
      selected: i % 31 !== 0,
      site: i % 4 === 0 ? undefined : { name: `site-${i % 7}`, online: i % 19 !== 0, latencyMs: 2 + ((i * 37) % 180) },
      carbonIntensity: i % 3 === 0 ? undefined : 50 + ((i * 53) % 600),
      powerWatts: qpu ? 15_000 + (i % 4) * 5_000 : undefined,
      capabilities: qpu
        ? { maxQubits: [27, 127, 156, 16][i % 4] as number, maxShots: 100_000 }
        : { maxQubits: [20, 24, 30, 34][i % 4] as number, maxShots: 1_000_000 },
      // QPUs and every third simulator (a GPU runner) take what Qiskit's importer converts; the rest are the QDK.
      languageFeatures: qpu || i % 3 === 0 ? QISKIT_FEATURES : LANGUAGE_FEATURES,
      calibration: qpu
        ? {
            singleQubitError: 2e-4 + (i % 9) * 1e-4,
            twoQubitError: 3e-3 + (i % 11) * 1e-3,
            readoutError: 1e-2 + (i % 5) * 5e-3,
            quantumVolume: [32, 64, 128, 512][i % 4] as number,
          }
        : undefined,
      memory: qpu
        ? undefined
        : { bytes: 2 ** (28 + (i % 8)), precision: "Double", holder: "the runner's memory limit" },
      secondsPerShot: i % 2 ? undefined : (qpu ? 0.002 : 0.0002) * (1 + (i % 5)),
      capacity: {
        maxConcurrentJobs: qpu ? 1 : 1 + (i % 8),
        running: i % 3,
        queued: (i * 7) % 20,
        remoteQueue: qpu ? (i * 13) % 50 : undefined,
      },
      cost: qpu ? { perShot: 3e-4 + (i % 6) * 1e-4, perSecond: 1.6 } : i % 2 ? { perSecond: 1e-3 } : undefined,
    };
  });
}

/**
 * place() for one 20-qubit GHZ job with a defined gate across 100 backends, in µs; and what admission pays once per
 * new circuit: the compiler's counts of a 100-qubit GHZ (in the worker: compile, circuit, count), and the language
 * feature scan, on the caller's thread.
 */
async function benchPlacement(): Promise<Record<string, string | number>> {
  const simulator = new Simulator({ threads: 1 });
  const counting: number[] = [];
  let counts;
  try {
    const source = ghz(100);
    await simulator.count(source); // warm-up: the worker loads the compiler's wasm
    for (let i = 0; i < 20; i++) {
      const start = performance.now();
      counts = await simulator.count(source);
      counting.push(performance.now() - start);
    }
  } finally {
    await simulator.close();
  }
  counting.sort((a, b) => a - b);
  const gated = ghz(20).replace("h q[0];", "gate prepare a { h a; }\nprepare q[0];");
  const request: PlacementRequest = {
    qubits: 20,
    shots: 4000,
    gates: { singleQubit: 1, twoQubit: 19, measurements: 20 },
    features: languageFeatures(gated),
    strategy: "Balanced",
    maxErrorRate: 0.5,
    fallbackToSimulator: true,
  };
  const backends = fleet();
  const first = place(request, backends);
  if (!first.chosen) throw new Error(`no backend was chosen:\n${first.reasons.join("\n")}`);
  const feasible = first.reasons.filter((r) => !r.includes(": rejected: ")).length;

  const time = (runs: number, work: () => unknown): number[] => {
    const samples: number[] = [];
    for (let i = 0; i < runs; i++) {
      const start = performance.now();
      work();
      samples.push((performance.now() - start) * 1000);
    }
    return samples.sort((a, b) => a - b);
  };
  const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  time(PLACEMENT_DECISIONS / 10, () => place(request, backends)); // warm-up: let the JIT optimise it
  const decisions = time(PLACEMENT_DECISIONS, () => place(request, backends));
  const source = ghz(100);
  time(1000, () => languageFeatures(source));
  const scans = time(1000, () => languageFeatures(source));
  const over = `place() across ${PLACEMENT_BACKENDS} backends (${feasible} feasible), ${PLACEMENT_DECISIONS} decisions`;
  return {
    [`${over}: mean µs`]: mean(decisions).toFixed(1),
    [`${over}: p99 µs`]: percentile(decisions, 99).toFixed(1),
    [`compiler's counts of a 100-qubit GHZ (${counts?.gates.total} gates), 20 runs in the worker: median ms`]:
      percentile(counting, 50).toFixed(0),
    [`compiler's counts of a 100-qubit GHZ, 20 runs in the worker: p99 ms`]: percentile(counting, 99).toFixed(0),
    "language feature scan of a 100-qubit GHZ, 1000 runs: mean µs": mean(scans).toFixed(1),
  };
}

/**
 * The largest GHZ circuit the embedded simulator (the same Simulator the embedded backend runs, one thread)
 * completes within the limit: doubling from 8 qubits until a run times out or fails, then bisecting. The QDK
 * simulator is sparse: a GHZ state has two nonzero amplitudes whatever n, so run time grows with n (gates and
 * bits per shot), not with 2^n, and the search is capped rather than left to run into the thousands.
 */
async function largestGhz(): Promise<{ qubits: number; ms: number; capped: boolean; failure?: string }> {
  const simulator = new Simulator({ threads: 1 });
  try {
    const attempt = async (n: number): Promise<{ ms: number; error?: string }> => {
      // A timeout terminates the thread; a fresh one loads the wasm first, which is not the circuit's time.
      await simulator.run({ source: ghz(2), shots: 1 });
      const start = performance.now();
      try {
        const r = await simulator.run({ source: ghz(n), shots: GHZ_SHOTS }, { timeoutMs: GHZ_LIMIT_MS });
        const ms = performance.now() - start;
        const outcomes = Object.keys(r.counts).sort();
        if (outcomes.join() !== ["0".repeat(n), "1".repeat(n)].join()) return { ms, error: "wrong counts" };
        return ms > GHZ_LIMIT_MS ? { ms, error: "over the limit" } : { ms };
      } catch (e) {
        return { ms: performance.now() - start, error: e instanceof Error ? e.name : String(e) };
      }
    };
    let best: { qubits: number; ms: number } | undefined;
    let failure: { qubits: number; error: string } | undefined;
    for (let n = 8; n <= GHZ_MAX_QUBITS && !failure; n *= 2) {
      const r = await attempt(n);
      if (r.error) failure = { qubits: n, error: r.error };
      else best = { qubits: n, ms: r.ms };
    }
    if (!best) throw new Error(`GHZ(8) did not complete: ${failure?.error}`);
    while (failure && failure.qubits - best.qubits > 1) {
      const n: number = (best.qubits + failure.qubits) >> 1;
      const r = await attempt(n);
      if (r.error) failure = { qubits: n, error: r.error };
      else best = { qubits: n, ms: r.ms };
    }
    return {
      ...best,
      capped: !failure,
      failure: failure && `${failure.qubits} (${failure.error})`,
    };
  } finally {
    await simulator.close();
  }
}
