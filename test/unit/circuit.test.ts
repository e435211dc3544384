import { describe, expect, test } from "vitest";
import { type CircuitAnalysis, type CircuitStats, analyzeCircuit } from "../../src/quantum/circuit.ts";
import { BELL } from "../fixtures/circuits.ts";

function stats(source: string): CircuitStats {
  const analysis = analyzeCircuit(source);
  if (!analysis.ok) throw new Error(`line ${analysis.line}, column ${analysis.column}: ${analysis.message}`);
  return analysis.stats;
}

const gates = (source: string) => stats(source).gates;

function failure(source: string): Extract<CircuitAnalysis, { ok: false }> {
  const analysis = analyzeCircuit(source);
  if (analysis.ok) throw new Error("expected the analysis to fail");
  return analysis;
}

describe("circuit counts", () => {
  test("Bell and GHZ circuits", () => {
    expect(stats(BELL)).toMatchObject({
      qubits: 2,
      registers: [{ name: "c", size: 2 }],
      gates: { singleQubit: 1, twoQubit: 1, multiQubit: 0, measurements: 2, total: 2 },
    });
    const ghz = `OPENQASM 3.0;
include "stdgates.inc";
qubit[5] q;
bit[5] c;
h q[0];
cx q[0], q[1];
cx q[1], q[2];
cx q[2], q[3];
cx q[3], q[4];
c = measure q;
`;
    expect(stats(ghz)).toMatchObject({
      qubits: 5,
      gates: { singleQubit: 1, twoQubit: 4, multiQubit: 0, measurements: 5, total: 5 },
    });
  });

  test("a gate on whole registers applies once per qubit", () => {
    expect(gates("qubit[3] a; qubit[3] b; h a; cx a, b; cx a[0], b; x a[0:1]; y b[{0, 2}];")).toMatchObject({
      singleQubit: 3 + 2 + 2,
      twoQubit: 3 + 3,
    });
    expect(stats("qubit q; qubit[4] r; h q; h r;")).toMatchObject({ qubits: 5, gates: { singleQubit: 5 } });
  });

  test("modifiers: ctrl adds the control qubits; inv, pow and negctrl keep the call one gate", () => {
    const source = `qubit[4] q;
ctrl @ x q[0], q[1];
ctrl(2) @ x q[0], q[1], q[2];
negctrl @ ctrl @ z q[0], q[1], q[2];
inv @ pow(2) @ s q[3];
ctrl @ gphase(pi / 4) q[0];
gphase(pi);
rz(pi/2) q[0];
ctrl @ rx(pi) q[2], q[3];
`;
    expect(gates(source)).toEqual({ singleQubit: 3, twoQubit: 2, multiQubit: 2, measurements: 0, total: 7 });
  });

  test("measurement forms count one per qubit measured", () => {
    const source = `qubit[3] q;
bit[3] c;
c = measure q;
c[0] = measure q[0];
measure q -> c;
measure q[1] -> c[1];
measure q[0:1];
bit b = measure q[2];
bit[2] pair = measure q[1:2];
`;
    expect(stats(source)).toMatchObject({
      registers: [
        { name: "c", size: 3 },
        { name: "b", size: 1 },
        { name: "pair", size: 2 },
      ],
      gates: { singleQubit: 0, measurements: 3 + 1 + 3 + 1 + 2 + 1 + 2, total: 0 },
    });
  });

  test("reset, barrier and delay are not gates", () => {
    expect(gates("qubit[2] q; reset q; barrier q; barrier; delay[100ns] q[0]; h q;")).toMatchObject({
      singleQubit: 2,
      total: 2,
    });
  });

  test("a defined gate's call is one gate of its arity and its body is not counted", () => {
    const source = `qubit[3] q;
gate bellpair a, b { h a; cx a, b; }
gate rot(theta, phi) a { rz(theta) a; rx(phi) a; ry(theta) a; }
gate toffoli3 a, b, c { ccx a, b, c; h a; }
bellpair q[0], q[1];
rot(0.1, 0.2) q[2];
rot(0.1, 0.2) q;
toffoli3 q[0], q[1], q[2];
`;
    expect(gates(source)).toEqual({ singleQubit: 4, twoQubit: 1, multiQubit: 1, measurements: 0, total: 6 });
  });

  test("a for loop over a literal range counts its body once per iteration; other control flow once", () => {
    const source = `OPENQASM 3.0;
const int n = 5;
qubit[n] q;
bit[n] c;
for int i in [0:n-2] {
  cx q[i], q[i + 1];
}
for uint i in [0:2:4] { h q[i]; }
for int i in {0, 3} x q[i];
for int i in [0:1] { for int j in [0:2] { cz q[i], q[j + 2]; } }
for i in [0:n - 1] { c[i] = measure q[i]; }
if (c[0]) { x q[0]; } else { y q[0]; z q[0]; }
while (c[1]) { h q[1]; }
for int i in [3:1] { h q[i]; }
`;
    expect(gates(source)).toEqual({
      singleQubit: 3 + 2 + 1 + 2 + 1,
      twoQubit: 4 + 6,
      multiQubit: 0,
      measurements: 5,
      total: 3 + 2 + 1 + 2 + 1 + 10,
    });
  });

  test("a subroutine counts its body once per call", () => {
    const source = `qubit[4] q;
def entangle(qubit a, qubit b) -> bit { h a; cx a, b; return measure b; }
bit r = entangle(q[0], q[1]);
entangle(q[2], q[3]);
`;
    expect(gates(source)).toMatchObject({ singleQubit: 2, twoQubit: 2, measurements: 2 });
  });

  test("comments, pragmas and annotations are ignored", () => {
    const source = `OPENQASM 3.0; // version
/* a block comment
   h q[0]; spanning lines */
qubit[2] q; // h q[1];
#pragma braket verbatim
pragma qiskit something
@reversible
h q[0]; /* inline */ x q[1];
`;
    expect(gates(source)).toMatchObject({ singleQubit: 2, total: 2 });
  });

  test("OpenQASM 2.0", () => {
    const source = `OPENQASM 2.0;
include "qelib1.inc";
qreg q[3];
creg c[3];
creg flag[1];
U(pi/2, 0, pi) q[0];
CX q[0], q[1];
cx q[1],q[2];
ccx q[0], q[1], q[2];
barrier q;
measure q -> c;
if (c == 1) x q[0];
opaque custom a, b;
`;
    expect(stats(source)).toMatchObject({
      qubits: 3,
      registers: [
        { name: "c", size: 3 },
        { name: "flag", size: 1 },
      ],
      gates: { singleQubit: 2, twoQubit: 2, multiQubit: 1, measurements: 3, total: 5 },
    });
  });

  test("classical declarations, aliases, switch and box", () => {
    const source = `OPENQASM 3.0;
input angle[32] theta;
output bit[2] result;
qubit[4] q;
int[32] count = 0x10 + 0b11;
float[64] f = 1.5e-3;
duration d = 100ns;
array[int[32], 3] arr = {1, 2, 3};
let pair = q[0:1] ++ q[3];
h pair;
rx(theta) q[2];
switch (count) { case 0, 1 { x q[0]; } default { cx q[0], q[1]; } }
box[200ns] { z q[1]; }
result[0] = measure q[0];
`;
    expect(stats(source)).toMatchObject({
      qubits: 4,
      registers: [{ name: "result", size: 2 }],
      gates: { singleQubit: 6, twoQubit: 1, measurements: 1 },
    });
  });

  test("physical qubits: the highest index sets the count", () => {
    expect(stats("h $0; cx $0, $4; measure $4;")).toMatchObject({
      qubits: 5,
      gates: { singleQubit: 1, twoQubit: 1, measurements: 1 },
    });
  });
});

describe("circuit errors", () => {
  test("a qubit index out of range is reported at the index", () => {
    const source = "OPENQASM 3.0;\nqubit[2] q;\nh q[0];\ncx q[0], q[2];\n";
    expect(failure(source)).toEqual({
      ok: false,
      message: "q[2] is out of range: q has 2 qubits",
      line: 4,
      column: 12,
    });
    expect(failure("qubit[3] q;\nh q[-4];")).toMatchObject({ line: 2, column: 5 });
    expect(stats("qubit[3] q; h q[-3];").gates.singleQubit).toBe(1);
    expect(failure("qubit[3] q;\nx q[1:3];")).toMatchObject({ line: 2, column: 7 });
    expect(failure("qreg q[2];\ncreg c[2];\nmeasure q[0] -> c[2];")).toMatchObject({
      message: "c[2] is out of range: c has 2 bits",
      line: 3,
      column: 19,
    });
  });

  test("a loop that runs off the end of a register is caught at its last iteration", () => {
    const source = "qubit[4] q;\nfor int i in [0:3] {\n  cx q[i], q[i + 1];\n}";
    expect(failure(source)).toEqual({
      ok: false,
      message: "q[4] is out of range: q has 4 qubits (when i = 3)",
      line: 3,
      column: 14,
    });
  });

  test("an undeclared register, in a gate or a measurement", () => {
    expect(failure("qubit[2] q;\nh r[0];")).toMatchObject({
      message: "register r is not declared",
      line: 2,
      column: 3,
    });
    expect(failure("qubit[2] q;\nmeasure q -> c;")).toMatchObject({ line: 2, column: 14 });
    expect(failure("qubit[2] q;\nc = measure q;")).toMatchObject({ line: 2, column: 1 });
    expect(failure("qubit[2] q;\nbit[2] c;\nx c[0];")).toMatchObject({ message: "c is not a qubit register" });
  });

  test("register sizes must be positive constants", () => {
    expect(failure("qubit[0] q;")).toMatchObject({ line: 1, column: 7 });
    expect(failure("input int n;\nqubit[n] q;")).toMatchObject({ line: 2, column: 7 });
    expect(failure("qubit[2] q;\nqubit[3] q;")).toMatchObject({ message: "q is already declared", line: 2 });
  });

  test("text that is clearly not OpenQASM", () => {
    expect(failure('{"circuit": "BELL"}')).toMatchObject({ line: 1, column: 2 });
    expect(failure("qubit[2] q;\nh q[0]\ncx q[0], q[1];")).toMatchObject({
      message: "expected ';', found 'cx'",
      line: 3,
    });
    expect(failure("qubit[2] q; h q[0]; }")).toMatchObject({ message: "'}' closes nothing" });
    expect(failure("qubit[2] q;\n\nh q[0]; /* never closed")).toMatchObject({ line: 3, column: 9 });
    expect(failure("qubit[2] q;\nh q[0]; ?")).toMatchObject({ line: 2, column: 9 });
  });

  test("unknown but plausible statements are left to the compiler", () => {
    const source = `OPENQASM 3.0;
defcalgrammar "openpulse";
cal { extern port d0; }
extern get_parameter() -> float[64];
qubit[1] q;
float[64] p = get_parameter();
p += 1.0;
mystery_gate q[0];
`;
    expect(gates(source)).toMatchObject({ singleQubit: 1 });
  });
});

describe("circuit hash", () => {
  test("stable under CRLF and LF, and sensitive to content", () => {
    const lf = stats(BELL).hash;
    expect(lf).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(stats(BELL.replaceAll("\n", "\r\n")).hash).toBe(lf);
    expect(stats(BELL.replace("h q[0]", "x q[0]")).hash).not.toBe(lf);
  });

  test("CRLF line endings do not shift error positions", () => {
    expect(failure("qubit[2] q;\r\nh q[0];\r\nh q[5];")).toMatchObject({ line: 3, column: 5 });
  });
});
