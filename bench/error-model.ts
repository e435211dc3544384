import { successProbability } from "../src/quantum/placement.ts";
import { Simulator, noiseFromCalibration } from "../src/quantum/simulator.ts";
import { qasm } from "../test/fixtures/circuits.ts";

/**
 * Devices as placement sees them; the simulator turns each into Pauli noise with noiseFromCalibration, as it does for
 * a job's spec.noise.fromBackend. The first is like a QPU's; the second is the one the simulator's noise matches
 * best (one rate for every gate, no readout error, which noiseFromCalibration adds after every operation).
 */
const CALIBRATIONS = {
  "device-like (1e-3, 1e-2, readout 2e-2)": { singleQubitError: 1e-3, twoQubitError: 1e-2, readoutError: 2e-2 },
  "uniform (5e-3, 5e-3, readout 0)": { singleQubitError: 5e-3, twoQubitError: 5e-3, readoutError: 0 },
};
const SHOTS = 4000;

/**
 * Circuits whose noiseless result is one bitstring, so a shot is right or wrong: mirrors (a circuit then its
 * inverse) and gate sequences that come back to where they started, written with the features placement used to
 * miscount (defined gates, loops with a variable bound, subroutines) beside flat ones.
 */
const CORPUS: Record<string, string> = {
  "flat GHZ-5 and back": qasm(
    5,
    ["h q[0];", "cx q[0], q[1];", "cx q[1], q[2];", "cx q[2], q[3];", "cx q[3], q[4];"]
      .concat(["cx q[3], q[4];", "cx q[2], q[3];", "cx q[1], q[2];", "cx q[0], q[1];", "h q[0];", "c = measure q;"])
      .join("\n"),
  ),
  "defined 3-CX swap, 8 calls": qasm(
    2,
    [
      "x q[0];",
      "gate swap3 a, b { cx a, b; cx b, a; cx a, b; }",
      ...Array(8).fill("swap3 q[0], q[1];"),
      "c = measure q;",
    ].join("\n"),
  ),
  "loop to a variable bound, 40 X": qasm(2, "int n = 39;\nfor uint i in [0:n] { x q[0]; x q[1]; }\nc = measure q;"),
  "GHZ-4 there and back, 10 rounds by loop": qasm(
    4,
    [
      "int rounds = 10;",
      "for uint r in [1:rounds] {",
      "  h q[0]; cx q[0], q[1]; cx q[1], q[2]; cx q[2], q[3];",
      "  cx q[2], q[3]; cx q[1], q[2]; cx q[0], q[1]; h q[0];",
      "}",
      "c = measure q;",
    ].join("\n"),
  ),
  "subroutine of a gate and its inverse, 12 calls": qasm(
    3,
    [
      "gate ent a, b, c { h a; cx a, b; cx b, c; }",
      "def there_and_back(qubit a, qubit b, qubit c) { ent a, b, c; inv @ ent a, b, c; }",
      ...Array(12).fill("there_and_back(q[0], q[1], q[2]);"),
      "c = measure q;",
    ].join("\n"),
  ),
};

/**
 * Placement's error model against the noisy simulator: for each circuit, the success probability placement predicts
 * from the compiler's counts and the device's calibration, and the fraction of shots the simulator, given the same
 * calibration as noise, measures right. `npm run bench error-model`.
 */
export async function benchErrorModel(): Promise<Record<string, string | number>[]> {
  const simulator = new Simulator({ threads: 1 });
  const rows: Record<string, string | number>[] = [];
  try {
    for (const [device, calibration] of Object.entries(CALIBRATIONS))
      for (const [name, source] of Object.entries(CORPUS)) {
        const counts = await simulator.count(source);
        const ideal = await simulator.run({ source, shots: 50 });
        const outcomes = Object.keys(ideal.counts);
        if (outcomes.length !== 1) throw new Error(`${name} is not deterministic: ${outcomes.join(", ")}`);
        const measured = await simulator.run({ source, shots: SHOTS, noise: noiseFromCalibration(calibration) });
        const right = (measured.counts[outcomes[0] as string] ?? 0) / measured.shots;
        const predicted = successProbability(calibration, counts.gates);
        rows.push({
          device,
          circuit: name,
          "1q/2q/measured (compiler)": `${counts.gates.singleQubit}/${counts.gates.twoQubit}/${counts.gates.measurements}`,
          predicted: predicted.toFixed(3),
          [`simulated (${SHOTS} shots)`]: right.toFixed(3),
          "predicted − simulated": (predicted - right).toFixed(3),
          ratio: "n/a (accuracy, not time)",
        });
      }
  } finally {
    await simulator.close();
  }
  return rows;
}
