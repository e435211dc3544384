import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { ensureGpuRunnerPython } from "../../src/controlplane/assets.ts";
import { LANGUAGE_FEATURES, type LanguageFeature, QISKIT_FEATURES } from "../../src/quantum/circuit.ts";
import { TERMINATION_MESSAGE_MAX_BYTES, parseRunnerResult } from "../../src/quantum/runner-result.ts";
import type { Noise } from "../../src/quantum/simulation.ts";
import { Simulator } from "../../src/quantum/simulator.ts";
import {
  BELL,
  FEATURE_PROGRAMS,
  ghz,
  qasm,
  qftPhaseEstimation,
  randomCircuit,
  teleportation,
  twoRegisters,
} from "../fixtures/circuits.ts";
import { type Counts, compareCounts, marginal, reversed } from "../statistics.ts";

/**
 * The GPU runner (runners/gpu, Qiskit Aer) run as a Job-mode backend's container runs it — the contract's
 * environment in, the result file out — on this machine's CPU, and cross-checked against the embedded QDK
 * simulator on a corpus of circuits, noise included.
 */

const RUNNER = join(import.meta.dirname, "../../runners/gpu/runner.py");

/**
 * Each comparison's significance. The corpus makes about 40 comparisons: with both simulators right, the whole file
 * fails by chance with probability under 40 × 1e-5 = 0.04 % (Bonferroni). Wrong bit order, missing or misplaced
 * noise move the p-values below 1e-30 (the negative controls below show it).
 */
const ALPHA = 1e-5;
/** Noise strong enough that noise in the wrong place shows: a few percent per operation and qubit. */
const NOISE: Noise = { pauli: [0.03, 0.01, 0.02] };

let python: string;
let dir: string;
const qdk = new Simulator({ threads: 1 });

beforeAll(async () => {
  python = await ensureGpuRunnerPython((line) => process.stderr.write(`${line}\n`));
  dir = await mkdtemp(join(tmpdir(), "gpu-runner-"));
}, 600_000);
afterAll(async () => {
  await qdk.close();
  await rm(dir, { recursive: true, force: true });
});

interface RunnerRun {
  code: number | null;
  /** The result file, parsed. */
  doc: Record<string, unknown> & { counts?: Counts; error?: { reason: string; message: string } };
  /** The result file as written: what the kubelet would keep as the termination message. */
  text: string;
  stdout: string;
}

let runs = 0;
/** Runs the runner with exactly the contract's environment (no inherited NEXTGEN_ variables), as the Job does. */
async function runner(env: Record<string, string>): Promise<RunnerRun> {
  const resultFile = join(dir, `termination-log-${++runs}`);
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("NEXTGEN_")));
  const child = spawn(python, [RUNNER], {
    env: { ...base, ...env, NEXTGEN_RESULT_FILE: resultFile },
    stdio: ["ignore", "pipe", "inherit"],
  });
  let stdout = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  const text = await readFile(resultFile, "utf8");
  return { code, doc: JSON.parse(text), text, stdout };
}

const run = (source: string, shots: number, noise?: Noise, extra: Record<string, string> = {}) =>
  runner({
    NEXTGEN_CIRCUIT: source,
    NEXTGEN_SHOTS: String(shots),
    ...(noise ? { NEXTGEN_NOISE: JSON.stringify(noise) } : {}),
    ...extra,
  });

// Whole distributions, larger than a termination message holds: the test reads the result file, not the pod.
const WHOLE = { NEXTGEN_RESULT_MAX_BYTES: String(4 * 1024 * 1024) };

async function aerCounts(source: string, shots: number, noise?: Noise, extra?: Record<string, string>) {
  const r = await run(source, shots, noise, { ...WHOLE, ...extra });
  expect(r.code, JSON.stringify(r.doc)).toBe(0);
  expect(r.doc.truncated).toBe(false);
  return r.doc.counts as Counts;
}

async function qdkCounts(source: string, shots: number, noise?: Noise) {
  const result = await qdk.run({ source, shots, noise });
  expect(result.failedShots).toBe(0);
  return result.counts;
}

describe("the runner contract", () => {
  test("a Bell pair: the document the operator reads, naming the device, precision and time", async () => {
    const r = await run(BELL, 1000);
    expect(r.code).toBe(0);
    // The same document on stdout and in the result file.
    expect(r.stdout.trim()).toBe(r.text);
    expect(Object.keys(r.doc.counts ?? {}).sort()).toEqual(["00", "11"]);
    expect(r.doc).toMatchObject({ shots: 1000, distinct: 2, truncated: false, precision: "double" });
    expect(r.doc.device).toMatchObject({ type: "CPU" });
    expect((r.doc.device as { threads: number }).threads).toBeGreaterThan(0);
    expect(r.doc.durationMs).toBeGreaterThan(0);
    // The operator's own reader takes it as a success.
    expect(parseRunnerResult(r.text)).toMatchObject({ shots: 1000, device: { type: "CPU" }, precision: "double" });
  });

  test("single precision is used when asked for, and a circuit can come from a file", async () => {
    const file = join(dir, "ghz.qasm");
    await writeFile(file, ghz(3));
    const r = await runner({ NEXTGEN_CIRCUIT_FILE: file, NEXTGEN_SHOTS: "200", NEXTGEN_PRECISION: "single" });
    expect(r.code).toBe(0);
    expect(r.doc.precision).toBe("single");
    expect(Object.keys(r.doc.counts ?? {}).sort()).toEqual(["000", "111"]);
  });

  test("counts that would not fit in a termination message are cut to the most frequent", async () => {
    const r = await run(qasm(16, "h q;\nc = measure q;"), 20_000);
    expect(r.code).toBe(0);
    expect(Buffer.byteLength(r.text)).toBeLessThanOrEqual(TERMINATION_MESSAGE_MAX_BYTES);
    const counts = r.doc.counts as Counts;
    expect(r.doc.truncated).toBe(true);
    expect(r.doc.distinct as number).toBeGreaterThan(Object.keys(counts).length);
    // The most frequent were kept: nothing left out was seen more often than the rarest kept.
    expect(Object.keys(counts).length).toBeGreaterThan(50);
    expect(r.doc.shots).toBe(20_000);
  });

  test.each([
    ["a syntax error", qasm(2, "h q[0]\nc = measure q;"), "line 6, column 1: unexpected 'c'"],
    ["an unknown gate", qasm(2, "foo q[0];"), "line 5, column 1: gate 'foo' is not defined."],
  ])("%s is InvalidCircuit, exit 3, located as the embedded runner locates it", async (_what, source, message) => {
    const r = await run(source, 10);
    expect(r.code).toBe(3);
    expect(r.doc).toEqual({ error: { reason: "InvalidCircuit", message } });
    expect(parseRunnerResult(r.text)).toEqual({ error: { reason: "InvalidCircuit", message } });
  });

  test("it runs the language features QISKIT_FEATURES names and refuses the others; the QDK runs them all", async () => {
    const runsOnAer: LanguageFeature[] = [];
    for (const feature of LANGUAGE_FEATURES) {
      const r = await run(FEATURE_PROGRAMS[feature], 10);
      if (r.code === 0) runsOnAer.push(feature);
      // Refused, never a crash: the importer's InvalidCircuit, or Aer's SimulationFailed for a gate it does not know.
      else
        expect(r.doc.error?.reason, `${feature}: ${JSON.stringify(r.doc)}`).toMatch(
          /^(InvalidCircuit|SimulationFailed)$/,
        );
      // The embedded runner takes every feature (Embedded and the QDK runner image default to all of them).
      expect((await qdk.run({ source: FEATURE_PROGRAMS[feature], shots: 10 })).failedShots).toBe(0);
    }
    expect(runsOnAer).toEqual(QISKIT_FEATURES);
  });

  test.each([
    [{ NEXTGEN_SHOTS: "0" }, 'NEXTGEN_SHOTS must be an integer from 1 to 2147483647, got "0"'],
    [{ NEXTGEN_PRECISION: "half" }, 'NEXTGEN_PRECISION must be double or single, got "half"'],
    [{ NEXTGEN_NOISE: '{"pauli":[0.5,0.5,0.5]}' }, "NEXTGEN_NOISE must be"],
    [{ NEXTGEN_NOISE: '{"pauli":[0,0,0],"qubitLoss":0.1}' }, "qubitLoss is not supported"],
    [{ NEXTGEN_CIRCUIT: "" }, "no circuit: set NEXTGEN_CIRCUIT or NEXTGEN_CIRCUIT_FILE"],
  ])("%o is InvalidInput, exit 2", async (env, message) => {
    const r = await runner({ NEXTGEN_CIRCUIT: BELL, NEXTGEN_SHOTS: "10", ...env });
    expect(r.code).toBe(2);
    expect(r.doc.error?.reason).toBe("InvalidInput");
    expect(r.doc.error?.message).toContain(message);
  });

  test("asking for a GPU where Aer sees none fails the run and says why", async () => {
    const r = await run(BELL, 10, undefined, { NEXTGEN_DEVICE: "GPU" });
    expect(r.code).toBe(1);
    expect(r.doc.error).toEqual({
      reason: "SimulationFailed",
      message: "NEXTGEN_DEVICE is GPU but Aer sees no GPU (is this qiskit-aer-gpu?)",
    });
  });
});

describe("cross-checked against the embedded QDK simulator", () => {
  // Shots per side; the 16-qubit circuit takes the QDK about 7 ms a shot.
  const corpus: Array<[name: string, source: string, shots: number]> = [
    ["Bell", BELL, 4000],
    ["GHZ-5", ghz(5), 4000],
    ["GHZ-12", ghz(12), 4000],
    ["QFT phase estimation, 6 qubits", qftPhaseEstimation(6, 37.3), 4000],
    ["random, 5 qubits, seed 1", randomCircuit(5, 8, 1), 4000],
    ["random, 8 qubits, seed 2", randomCircuit(8, 8, 2), 4000],
    ["random, 12 qubits, seed 3", randomCircuit(12, 6, 3), 4000],
    ["random, 16 qubits, seed 4", randomCircuit(16, 4, 4), 2000],
    ["teleportation (mid-circuit measurement, conditioned gates)", teleportation(1.1), 4000],
    ["two registers", twoRegisters, 4000],
  ];

  /**
   * The full distributions, and for wide registers also blocks of four bits: with more outcomes than shots the full
   * test has little to go on, the blocks' marginals still have plenty.
   */
  function expectSameDistribution(a: Counts, b: Counts) {
    const full = compareCounts(a, b);
    expect(full.pValue, `full distribution: ${JSON.stringify(full)}`).toBeGreaterThan(ALPHA);
    const width = Object.keys(a)[0]?.length ?? 0;
    if (width <= 8) return;
    for (let start = 0; start < width; start += 4) {
      const positions = Array.from({ length: Math.min(4, width - start) }, (_, i) => start + i);
      const block = compareCounts(marginal(a, positions), marginal(b, positions));
      expect(block.pValue, `bits ${positions.join(",")}: ${JSON.stringify(block)}`).toBeGreaterThan(ALPHA);
    }
  }

  describe.each([
    ["without noise", undefined],
    ["with Pauli noise", NOISE],
  ])("%s", (_label, noise) => {
    test.each(corpus)("%s", async (_name, source, shots) => {
      const [fromQdk, fromAer] = await Promise.all([qdkCounts(source, shots, noise), aerCounts(source, shots, noise)]);
      expectSameDistribution(fromQdk, fromAer);
    });
  });

  test("single precision draws from the same distribution", async () => {
    const source = randomCircuit(8, 8, 2);
    const [fromQdk, fromAer] = await Promise.all([
      qdkCounts(source, 4000, NOISE),
      aerCounts(source, 4000, NOISE, { NEXTGEN_PRECISION: "single" }),
    ]);
    expectSameDistribution(fromQdk, fromAer);
  });

  test("both agree with what the circuits must give: bit order pinned to Qiskit's", async () => {
    // 37.3 / 64: the inverse QFT peaks at 37 = 100101 and 38 = 100110, c[5] first.
    const qft = await aerCounts(qftPhaseEstimation(6, 37.3), 2000);
    const peak = Object.entries(qft).sort(([, x], [, y]) => y - x);
    expect(peak.slice(0, 2).map(([bits]) => bits)).toEqual(["100101", "100110"]);
    // a = 01 (x on q[0]), b uniform, written "b a".
    expect(Object.keys(await aerCounts(twoRegisters, 400)).sort()).toEqual(["0 01", "1 01"]);
    expect(Object.keys(await qdkCounts(twoRegisters, 400)).sort()).toEqual(["0 01", "1 01"]);
    // Teleportation: c[2] (the first character) is 1 with probability sin²(0.55) ≈ 0.272, whatever c[0] and c[1].
    const tele = marginal(await aerCounts(teleportation(1.1), 20_000), [0]);
    expect((tele["1"] ?? 0) / 20_000).toBeCloseTo(Math.sin(0.55) ** 2, 1);
  });

  test("negative controls: reversed bit order and noise left out are rejected", async () => {
    const source = randomCircuit(8, 8, 2);
    const [fromQdk, fromAer, noiseless] = await Promise.all([
      qdkCounts(source, 4000, NOISE),
      aerCounts(source, 4000, NOISE),
      aerCounts(source, 4000),
    ]);
    expect(compareCounts(reversed(fromQdk), fromAer).pValue).toBeLessThan(ALPHA);
    expect(compareCounts(fromQdk, noiseless).pValue).toBeLessThan(ALPHA);
  });
});
