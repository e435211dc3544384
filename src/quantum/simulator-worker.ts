import { readFile } from "node:fs/promises";
import { parentPort } from "node:worker_threads";
import { type ICompiler, type ProgramConfig, QscEventTarget, getCompiler, loadWasmModule } from "qsharp-lang";
import { qdkResultToBitstring } from "./counts.ts";
import type { Diagnostic, SimulationResult, SimulatorReply, SimulatorRequest } from "./simulation.ts";

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

async function simulate(request: SimulatorRequest): Promise<SimulatorReply> {
  const qdk = await loadCompiler();
  const program: ProgramConfig = {
    sources: [["circuit.qasm", request.source]],
    languageFeatures: [],
    projectType: "openqasm",
  };
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
    // Zero shots compiles with the same profile as a run and simulates nothing: the cheapest complete check
    // (getAst and getHir report no errors, getQir compiles for a restricted profile that rejects valid programs).
    const shotsToRun = request.kind === "run" ? request.shots : 0;
    if (request.kind === "run" && request.noise) {
      const { pauli, qubitLoss } = request.noise;
      await qdk.runWithNoise(program, "", shotsToRun, pauli, qubitLoss ?? 0, events);
    } else {
      await qdk.run(program, "", shotsToRun, events);
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

parentPort?.on("message", (request: SimulatorRequest) => {
  simulate(request).then(
    (value) => parentPort?.postMessage({ ok: true, value }),
    (e: unknown) => parentPort?.postMessage({ ok: false, error: e instanceof Error ? e.message : String(e) }),
  );
});
