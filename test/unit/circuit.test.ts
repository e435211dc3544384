import { describe, expect, test } from "vitest";
import { LANGUAGE_FEATURES, circuitHash, languageFeatures } from "../../src/quantum/circuit.ts";
import { BELL, FEATURE_PROGRAMS, LOOP_AND_GATE, ghz, qftPhaseEstimation, qasm } from "../fixtures/circuits.ts";

describe("language features", () => {
  test.each(LANGUAGE_FEATURES)("the %s program uses that feature alone", (feature) => {
    expect(languageFeatures(FEATURE_PROGRAMS[feature])).toEqual([feature]);
  });

  test("plain circuits use none", () => {
    for (const source of [BELL, ghz(5), qftPhaseEstimation(4, 3.3)]) expect(languageFeatures(source)).toEqual([]);
  });

  test("several at once, in the list's order", () => {
    expect(languageFeatures(LOOP_AND_GATE)).toEqual(["GateDefinitions", "ForLoops", "ClassicalTypes"]);
  });

  test("keywords in comments, strings, pragmas and annotations are not features", () => {
    const source = qasm(
      2,
      [
        "// for i in [0:1] { } gate g a { }",
        "/* def f() { }",
        "   while (true) { } */",
        "#pragma braket verbatim for while if (x)",
        "pragma qiskit def f",
        "@annotation for if (c) ctrl @ x",
        "h q[0]; // inv @ s q[0];",
        "c = measure q;",
      ].join("\n"),
    );
    expect(languageFeatures(source)).toEqual([]);
  });

  test("a type in a for header or a cast is no classical declaration; one after const or a brace is", () => {
    expect(languageFeatures(qasm(2, "for int i in [0:1] { h q[i]; }"))).toEqual(["ForLoops"]);
    expect(languageFeatures(qasm(1, "rx(float(1)) q[0];"))).toEqual([]);
    expect(languageFeatures(qasm(1, "const int n = 1;"))).toEqual(["ClassicalTypes"]);
    expect(languageFeatures(qasm(1, "if (c[0]) { bool b = true; }"))).toEqual(["Conditionals", "ClassicalTypes"]);
  });

  test("every modifier, with or without an argument", () => {
    for (const call of ["ctrl @ x q[0], q[1];", "negctrl(1) @ x q[0], q[1];", "pow(2) @ s q[0];", "inv@s q[0];"])
      expect(languageFeatures(qasm(2, call))).toEqual(["GateModifiers"]);
  });
});

describe("circuit hash", () => {
  test("stable under CRLF and LF, and sensitive to content", () => {
    expect(circuitHash(BELL)).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(circuitHash(BELL.replaceAll("\n", "\r\n"))).toBe(circuitHash(BELL));
    expect(circuitHash(BELL.replace("h q[0]", "x q[0]"))).not.toBe(circuitHash(BELL));
  });
});
