import { afterAll, describe, expect, test } from "vitest";
import { qdkResultToBitstring, topCountEntries, topCounts } from "../../src/quantum/counts.ts";
import { CircuitError, Simulator, noiseFromCalibration } from "../../src/quantum/simulator.ts";
import {
  BELL,
  FEATURE_PROGRAMS,
  LOOP_AND_GATE,
  dense,
  ghz,
  qasm,
  qftPhaseEstimation,
  randomCircuit,
  teleportation,
} from "../fixtures/circuits.ts";

/** |observed − expected| in standard deviations of a binomial(n, p) count. */
const sigmas = (observed: number, n: number, p: number) => Math.abs(observed - n * p) / Math.sqrt(n * p * (1 - p));

const simulator = new Simulator({ threads: 2 });
afterAll(() => simulator.close());

/**
 * Counts of a flat program (one gate or measurement per statement, no loops or definitions, one register q of n
 * qubits), read off its text: the width of a call is its operands, a whole-register operand is n calls.
 */
function flatCounts(source: string, n: number) {
  const counts = { singleQubit: 0, twoQubit: 0, multiQubit: 0, measurements: 0, total: 0 };
  for (const line of source.split("\n")) {
    if (/^c = measure q;$/.test(line)) counts.measurements += n;
    const call = /^(\w+)(?:\([^)]*\))? (q(?:\[\d+\])?(?:, q\[\d+\])*);$/.exec(line);
    if (!call) continue;
    const operands = (call[2] as string).split(", ");
    const [times, width] = operands[0] === "q" ? [n, 1] : [1, operands.length];
    if (width === 1) counts.singleQubit += times;
    else if (width === 2) counts.twoQubit += times;
    else counts.multiQubit += times;
    counts.total += times;
  }
  return counts;
}

describe("the compiler's counts", () => {
  test("flat corpus circuits: what their text says", async () => {
    const corpus: Array<[string, number]> = [
      [BELL, 2],
      [ghz(5), 5],
      [dense(6), 6],
      [qftPhaseEstimation(4, 3.3), 4],
      ...[1, 2, 3].map((seed): [string, number] => [randomCircuit(5, 6, seed), 5]),
    ];
    for (const [source, n] of corpus) {
      const counts = await simulator.count(source);
      expect(counts.gates).toEqual(flatCounts(source, n));
      expect(counts).toMatchObject({ qubits: n, exact: true });
    }
    // h, cx, then both measurements side by side.
    expect((await simulator.count(BELL)).depth).toBe(3);
  });

  test("loops with a variable bound and defined gates are unrolled", async () => {
    expect(await simulator.count(LOOP_AND_GATE)).toEqual({
      qubits: 2,
      gates: { singleQubit: 4, twoQubit: 2, multiQubit: 0, measurements: 2, total: 6 },
      depth: 7,
      exact: true,
    });
    const bell = { singleQubit: 1, twoQubit: 1, multiQubit: 0, measurements: 2, total: 2 };
    expect((await simulator.count(FEATURE_PROGRAMS.GateDefinitions)).gates).toEqual(bell);
    expect((await simulator.count(FEATURE_PROGRAMS.Subroutines)).gates).toEqual(bell);
    expect((await simulator.count(FEATURE_PROGRAMS.ForLoops)).gates).toMatchObject({ singleQubit: 1, twoQubit: 2 });
    expect((await simulator.count(FEATURE_PROGRAMS.GateModifiers)).gates).toMatchObject({
      singleQubit: 2,
      twoQubit: 1,
    });
  });

  test("a circuit that branches on what it measures is counted as one run went: not exact", async () => {
    const counts = await simulator.count(teleportation(1.2));
    expect(counts).toMatchObject({ qubits: 3, exact: false });
    expect(counts.gates.measurements).toBe(3);
    // ry, h, cx, cx, h, then the corrections that run took (none, one or both).
    expect(counts.gates.singleQubit - 3).toBeGreaterThanOrEqual(0);
    expect(counts.gates.singleQubit - 3).toBeLessThanOrEqual(2);
    expect(counts.gates.twoQubit).toBe(2);
  });

  test("an undefined gate and an index a loop runs past are errors located in the source", async () => {
    const undefinedGate = await simulator.count(qasm(2, "h q[0];\nswapish q[0], q[1];")).catch((e: unknown) => e);
    expect(undefinedGate).toBeInstanceOf(CircuitError);
    expect((undefinedGate as CircuitError).diagnostics[0]).toMatchObject({
      code: "Qdk.Qasm.Lowerer.UndefinedSymbol",
      line: 6,
      column: 1,
    });
    const pastTheEnd = await simulator.count(qasm(2, "for uint i in [0:2] { h q[i]; }")).catch((e: unknown) => e);
    expect(pastTheEnd).toBeInstanceOf(CircuitError);
    expect((pastTheEnd as CircuitError).message).toMatch(/^line 5, column \d+: .*index out of range/);
  });
});

describe("QDK results as Qiskit bitstrings", () => {
  test("registers are written c[n-1] first, the last-declared register first, non-bit outputs left out", () => {
    expect(qdkResultToBitstring("[One, Zero]")).toBe("01");
    expect(qdkResultToBitstring("One")).toBe("1");
    expect(qdkResultToBitstring("([One, Zero], One)")).toBe("1 01");
    expect(qdkResultToBitstring("([One, Zero], One, 7, true, 1.5)")).toBe("1 01");
    expect(qdkResultToBitstring("([1, 2], (1.0, 2.0), 1.5707963267948966, [Zero, One, One])")).toBe("110");
    expect(qdkResultToBitstring("[Loss, Zero]")).toBe("0-");
    expect(qdkResultToBitstring("()")).toBe("");
  });

  test("topCounts keeps the most frequent, ties in bitstring order", () => {
    const counts = { "0001": 5, "0110": 9, "0011": 9, "0111": 1, "0000": 9 };
    expect(topCountEntries(counts, 4)).toEqual([
      ["0000", 9],
      ["0011", 9],
      ["0110", 9],
      ["0001", 5],
    ]);
    expect(Object.entries(topCounts(counts, 2))).toEqual([
      ["0000", 9],
      ["0011", 9],
    ]);
    expect(topCounts(counts, 10)).toEqual(counts);
    expect(topCounts(counts, 0)).toEqual({});
  });
});

describe("the simulator", () => {
  test("Bell pairs: only 00 and 11, each about half of the shots", async () => {
    const r = await simulator.run({ source: BELL, shots: 1000 });
    expect(r.shots).toBe(1000);
    expect(r.failedShots).toBe(0);
    expect(Object.keys(r.counts).sort()).toEqual(["00", "11"]);
    expect(sigmas(r.counts["00"] ?? 0, 1000, 0.5)).toBeLessThan(5);
    expect(sigmas(r.counts["11"] ?? 0, 1000, 0.5)).toBeLessThan(5);
  });

  test("GHZ-5: only 00000 and 11111", async () => {
    const r = await simulator.run({ source: ghz(5), shots: 500 });
    expect(Object.keys(r.counts).sort()).toEqual(["00000", "11111"]);
    expect((r.counts["00000"] ?? 0) + (r.counts["11111"] ?? 0)).toBe(500);
  });

  test("bit order: c[0] is the rightmost bit, the last-declared register comes first", async () => {
    const one = await simulator.run({ source: qasm(2, "x q[0];\nc = measure q;"), shots: 10 });
    expect(one.counts).toEqual({ "01": 10 });
    const two = await simulator.run({
      source: qasm(
        3,
        "int k = 7;\nbool f = true;\nfloat r = 1.5;\nx q[0];\nx q[2];\na = measure q[0:1];\nb = measure q[2];",
        "bit[2] a;\nbit b;",
      ),
      shots: 10,
    });
    expect(two.counts).toEqual({ "1 01": 10 });
  });

  test("Pauli X noise on a Bell pair flips the parity at the predicted rate", async () => {
    // X noise hits each qubit after every gate and every measurement (both with probability 0.05): the cx and the
    // two measurements give four independent flips, and an odd number of them makes 01 or 10. The flip after h
    // does nothing to |+>. So the error share is (1 - (1 - 2·0.05)^4) / 2 ≈ 0.172.
    const shots = 2000;
    const r = await simulator.run({ source: BELL, shots, noise: { pauli: [0.05, 0, 0] } });
    const errors = (r.counts["01"] ?? 0) + (r.counts["10"] ?? 0);
    expect(errors).toBeGreaterThan(0);
    expect(sigmas(errors, shots, (1 - 0.9 ** 4) / 2)).toBeLessThan(5);
  });

  test("a program that does not compile: CircuitError with the 1-based position of the bad token; count agrees", async () => {
    const bad = qasm(2, "h q[0];\ncx q[0], q[1];\nc = measure qq;");
    const expected = { code: "Qdk.Qasm.Lowerer.UndefinedSymbol", message: "undefined symbol: qq", line: 7, column: 13 };
    const error = await simulator.run({ source: bad, shots: 10 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CircuitError);
    expect((error as CircuitError).message).toBe("line 7, column 13: undefined symbol: qq");
    expect((error as CircuitError).diagnostics).toEqual([expected]);
    const counting = await simulator.count(bad).catch((e: unknown) => e);
    expect((counting as CircuitError).diagnostics).toEqual([expected]);
  });

  test("a runtime error in some shots is reported with the shots that succeeded", async () => {
    // When b is 1, c[3] is out of range: about half the shots fail.
    const source = qasm(
      1,
      "h q[0];\nbit b = measure q[0];\nint i = 1 + 2 * int(b);\nc[i] = measure q[0];",
      "bit[2] c;",
    );
    const r = await simulator.run({ source, shots: 200 });
    expect(r.failedShots).toBeGreaterThan(0);
    expect(r.shots).toBeGreaterThan(0);
    expect(r.shots + r.failedShots).toBe(200);
    expect(r.shotError).toMatch(/index out of range/);
    expect(r.counts).toEqual({ "0 00": r.shots });
  });

  test("abort and timeoutMs stop a long run by terminating its thread; the simulator goes on", async () => {
    const one = new Simulator({ threads: 1 });
    const long = { source: dense(18), shots: 100_000 };
    const stop = new AbortController();
    const aborted = one.run(long, { signal: stop.signal });
    setTimeout(() => stop.abort(), 300);
    await expect(aborted).rejects.toMatchObject({ name: "AbortError" });
    await expect(one.run(long, { timeoutMs: 300 })).rejects.toMatchObject({ name: "TimeoutError" });
    // One thread: had the long run kept it, this one would wait for minutes and time out.
    const r = await one.run({ source: BELL, shots: 100 }, { timeoutMs: 30_000 });
    expect(r.shots).toBe(100);
    await one.close();
  });

  test("shots must be a positive integer", async () => {
    await expect(simulator.run({ source: BELL, shots: 0 })).rejects.toThrow(/shots must be a positive integer/);
    await expect(simulator.run({ source: BELL, shots: 1.5 })).rejects.toThrow(/shots must be a positive integer/);
  });
});

describe("noise from calibration", () => {
  test("depolarizing from the gate errors, weighted toward two-qubit gates; readout adds to px", () => {
    const n = noiseFromCalibration({ singleQubitError: 0.0004, twoQubitError: 0.008, readoutError: 0.02 });
    const gate = 0.25 * 0.0004 + 0.75 * 0.008;
    expect(n?.pauli[0]).toBeCloseTo(gate / 3 + 0.02, 12);
    expect(n?.pauli[1]).toBeCloseTo(gate / 3, 12);
    expect(n?.pauli[2]).toBeCloseTo(gate / 3, 12);
    expect(n?.qubitLoss).toBeUndefined();
  });

  test("one kind of gate error alone is used as it is; nothing known or all zero means no noise", () => {
    expect(noiseFromCalibration({ twoQubitError: 0.03 })?.pauli).toEqual([0.01, 0.01, 0.01]);
    expect(noiseFromCalibration({ singleQubitError: 0.003 })?.pauli[1]).toBeCloseTo(0.001, 12);
    expect(noiseFromCalibration({ readoutError: 0.1 })?.pauli).toEqual([0.1, 0, 0]);
    expect(noiseFromCalibration({})).toBeUndefined();
    expect(noiseFromCalibration({ singleQubitError: 0, twoQubitError: 0, readoutError: 0 })).toBeUndefined();
  });

  test("values are clamped to [0, 0.5]", () => {
    expect(noiseFromCalibration({ twoQubitError: 3, readoutError: 0.4 })?.pauli).toEqual([0.5, 0.5, 0.5]);
    expect(noiseFromCalibration({ twoQubitError: -1, readoutError: 0.9 })?.pauli).toEqual([0.5, 0, 0]);
  });
});
