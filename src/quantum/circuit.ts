/**
 * What placement needs to know of an OpenQASM program that the compiler does not say. Qubits, gate counts, depth
 * and diagnostics come from the QDK compiler (Simulator.count, in a worker thread). Two things stay here:
 *
 * - the language features a program uses: the QDK lowers OpenQASM to Q# and keeps no record of the constructs it
 *   came from, yet runners differ in the constructs they accept (Qiskit's importer converts no subroutine);
 * - the source's hash, which says whether the compiler's counts kept in a job's status still hold.
 *
 * The program is checked by the compiler before anything here matters, so a keyword is a keyword: the scan only has
 * to leave out comments, strings, pragmas and annotations.
 */
import { createHash } from "node:crypto";

/** OpenQASM 3 constructs that some runner lacks; a program using none of them runs on every runner. */
export const LANGUAGE_FEATURES = [
  /** gate name(params) qubits { ... } */
  "GateDefinitions",
  /** ctrl @, negctrl @, inv @, pow(k) @ */
  "GateModifiers",
  /** if / else */
  "Conditionals",
  /** for ... in ... */
  "ForLoops",
  /** while (...) */
  "WhileLoops",
  /** switch (...) { case ... } */
  "Switch",
  /** def name(...) { ... } */
  "Subroutines",
  /** Declarations of classical values other than bits: int, uint, float, angle, bool, complex, array, const… */
  "ClassicalTypes",
  /** output declarations */
  "Outputs",
] as const;
export type LanguageFeature = (typeof LANGUAGE_FEATURES)[number];

/**
 * What a runner built on Qiskit runs: the GPU runner imports the program with Qiskit's OpenQASM 3 importer
 * (qiskit-qasm3-import, runners/gpu's pinned version) and hands the circuit to Aer as it is. Checked by running the
 * runner on one program per feature (test/unit/gpu-runner.test.ts). The importer converts no subroutine, switch,
 * output or classical declaration other than bits, nor a for loop that indexes by its variable (nearly every loop);
 * gate definitions it converts, but Aer does not know the gates they define.
 */
export const QISKIT_FEATURES: readonly LanguageFeature[] = ["GateModifiers", "Conditionals", "WhileLoops"];

const CLASSICAL_TYPES = "int|uint|float|angle|bool|complex|array|duration|stretch";

// What each feature looks like once comments, strings and directives are gone. A classical declaration is a type
// at the start of a statement (or after const/input/output); a type in a for header or a cast is not one.
const FEATURE_PATTERNS: Record<LanguageFeature, RegExp> = {
  GateDefinitions: /(?:^|[;{}])\s*gate\s/,
  GateModifiers: /\b(?:ctrl|negctrl|inv|pow)\b\s*(?:\([^)]*\))?\s*@/,
  Conditionals: /\bif\s*\(/,
  ForLoops: /\bfor\b/,
  WhileLoops: /\bwhile\s*\(/,
  Switch: /\bswitch\s*\(/,
  Subroutines: /(?:^|[;{}])\s*def\s/,
  ClassicalTypes: new RegExp(`(?:^|[;{}]|\\bconst|\\binput|\\boutput)\\s*(?:const\\s+)?(?:${CLASSICAL_TYPES})\\b`),
  Outputs: /(?:^|[;{}])\s*output\s/,
};

// Comments, strings, and the lines the grammar hands to tools whole (pragmas, annotations such as @bind).
const NOT_CODE = /\/\/[^\n]*|\/\*[\s\S]*?\*\/|"[^"\n]*"|'[^'\n]*'|^[ \t]*(?:#?pragma\b|@[\p{L}_])[^\n]*/gmu;

/** The features of LANGUAGE_FEATURES a (compiling) program uses, in that list's order. */
export function languageFeatures(source: string): LanguageFeature[] {
  const code = source.replace(NOT_CODE, " ");
  return LANGUAGE_FEATURES.filter((f) => FEATURE_PATTERNS[f].test(code));
}

/** "sha256:<hex>" of the source with line endings normalised to \n. */
export function circuitHash(source: string): string {
  const normalised = source.replace(/\r\n?/g, "\n");
  return `sha256:${createHash("sha256").update(normalised).digest("hex")}`;
}
