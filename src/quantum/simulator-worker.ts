import { readFile } from "node:fs/promises";
import { parentPort } from "node:worker_threads";
import {
  type ICompiler,
  type ProgramConfig,
  QdkDiagnostics,
  QscEventTarget,
  getCompiler,
  loadWasmModule,
} from "qsharp-lang";
import { qdkResultToBitstring } from "./counts.ts";
import type { CircuitCounts, Diagnostic, SimulationResult, SimulatorReply, SimulatorRequest } from "./simulation.ts";

/** A failed Result event's value: a VS Code-style diagnostic (0-based positions) with every error in errors. */
interface FailureValue {
  code?: string;
  message: string;
  range: { start: { line: number; character: number } };
  errors?: Array<{ diagnostic: FailureValue }>;
}

let compiler: Promise<ICompiler> | undefined;

// The Node entry of qsharp-lang does not load its wasm: each thread loads it once and keeps the compiler.
function loadCompiler(): Promise<ICompiler> {
  compiler ??= (async () => {
    const wasm = new URL("../lib/web/qsc_wasm_bg.wasm", import.meta.resolve("qsharp-lang"));
    const bytes = await readFile(wasm);
    await loadWasmModule(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    return getCompiler();
  })();
  return compiler;
}

function toDiagnostics(failure: FailureValue): Diagnostic[] {
  const seen = new Set<string>();
  const out: Diagnostic[] = [];
  for (const d of failure.errors?.length ? failure.errors.map((e) => e.diagnostic) : [failure]) {
    const diagnostic = {
      code: d.code ?? "",
      message: d.message,
      line: d.range.start.line + 1,
      column: d.range.start.character + 1,
    };
    // The lowerer can report the same error twice.
    const key = JSON.stringify(diagnostic);
    if (!seen.has(key)) out.push(diagnostic);
    seen.add(key);
  }
  return out;
}

const programOf = (source: string): ProgramConfig => ({
  sources: [["circuit.qasm", source]],
  languageFeatures: [],
  projectType: "openqasm",
});

/** Runs the program; zero shots checks that it compiles. */
async function simulate(request: Extract<SimulatorRequest, { kind: "run" }>): Promise<SimulatorReply> {
  const qdk = await loadCompiler();
  const program = programOf(request.source);
  const counts: Record<string, number> = {};
  let shots = 0;
  let failedShots = 0;
  let firstFailure: FailureValue | undefined;
  // false: no buffering of per-shot results (and no UI refresh timer); counts are kept here instead.
  const events = new QscEventTarget(false);
  events.addEventListener("Result", ({ detail }) => {
    if (detail.success) {
      const bits = qdkResultToBitstring(detail.value);
      counts[bits] = (counts[bits] ?? 0) + 1;
      shots++;
    } else {
      failedShots++;
      firstFailure ??= detail.value;
    }
  });
  const started = performance.now();
  try {
    if (request.noise) {
      const { pauli, qubitLoss } = request.noise;
      await qdk.runWithNoise(program, "", request.shots, pauli, qubitLoss ?? 0, events);
    } else {
      await qdk.run(program, "", request.shots, events);
    }
  } catch (e) {
    // A program that does not compile fails with one Result event that carries the diagnostics, then rejects.
    if (shots === 0 && failedShots === 1 && firstFailure)
      return { kind: "invalid", diagnostics: toDiagnostics(firstFailure) };
    throw e;
  }
  const result: SimulationResult = { shots, counts, failedShots, durationMs: performance.now() - started };
  if (firstFailure) result.shotError = firstFailure.message;
  return { kind: "result", result };
}

/** An operation of the compiler's circuit; a group (groupByScope) holds its operations in children. */
interface CircuitOperation {
  kind: "unitary" | "measurement" | "ket";
  targets?: unknown[];
  controls?: unknown[];
  qubits?: unknown[];
  children?: Array<{ components: CircuitOperation[] }>;
}

/**
 * More operations than this and the compiler stops drawing: far more than any device runs in one shot, and the
 * circuit it returns (one object per operation) stays within the worker's memory.
 */
const MAX_OPERATIONS = 1_000_000;

/**
 * The compiler's circuit of the program, counted. Classical evaluation unrolls loops and calls with everything the
 * program computes before it runs; a program whose operations depend on what it measures cannot be evaluated so,
 * and is counted as one simulated run executed it instead.
 */
async function count(source: string): Promise<SimulatorReply> {
  // Zero shots compiles with the same profile as a run and simulates nothing: the cheapest complete check (getAst
  // and getHir report no errors, getQir compiles for a restricted profile that rejects valid programs, and
  // getCircuit's classical evaluation stops at the first measurement-dependent branch, which a run takes).
  const checked = await simulate({ kind: "run", source, shots: 0 });
  if (checked.kind === "invalid") return checked;
  const qdk = await loadCompiler();
  const program = { ...programOf(source), profile: "unrestricted" as const };
  const config = { maxOperations: MAX_OPERATIONS, sourceLocations: false, groupByScope: false };
  let exact = true;
  let group;
  try {
    group = await qdk.getCircuit(program, { ...config, generationMethod: "classicalEval" });
  } catch (e) {
    if (!(e instanceof QdkDiagnostics)) throw e;
    exact = false;
    try {
      group = await qdk.getCircuit(program, { ...config, generationMethod: "simulate" });
    } catch (again) {
      // It compiles but cannot run (an index out of range once a loop has run): located as the compiler says.
      if (!(again instanceof QdkDiagnostics) || !again.diagnostics[0]) throw again;
      return {
        kind: "invalid",
        diagnostics: toDiagnostics({ ...again.diagnostics[0].diagnostic, errors: again.diagnostics }),
      };
    }
  }
  const circuit = group.circuits[0];
  const counts: CircuitCounts = {
    qubits: circuit?.qubits.length ?? 0,
    gates: { singleQubit: 0, twoQubit: 0, multiQubit: 0, measurements: 0, total: 0 },
    depth: circuit?.componentGrid.length ?? 0,
    exact,
  };
  const add = (operations: CircuitOperation[]) => {
    for (const op of operations) {
      if (op.children?.length) for (const column of op.children) add(column.components);
      else if (op.kind === "measurement") counts.gates.measurements += op.qubits?.length ?? 1;
      else if (op.kind === "unitary") {
        const width = (op.targets?.length ?? 0) + (op.controls?.length ?? 0);
        if (width === 1) counts.gates.singleQubit++;
        else if (width === 2) counts.gates.twoQubit++;
        else if (width > 2) counts.gates.multiQubit++;
        // A global phase acts on no qubit: no gate a device runs.
        if (width > 0) counts.gates.total++;
      }
    }
  };
  for (const column of circuit?.componentGrid ?? []) add(column.components as CircuitOperation[]);
  return { kind: "counts", counts };
}

parentPort?.on("message", (request: SimulatorRequest) => {
  (request.kind === "count" ? count(request.source) : simulate(request)).then(
    (value) => parentPort?.postMessage({ ok: true, value }),
    (e: unknown) => parentPort?.postMessage({ ok: false, error: e instanceof Error ? e.message : String(e) }),
  );
});
