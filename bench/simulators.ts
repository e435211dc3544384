import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureGpuRunnerPython } from "../src/controlplane/assets.ts";
import { dense } from "../test/fixtures/circuits.ts";

/**
 * The runners a Job-mode backend can run, each as its Job runs it — one process per circuit, the contract's
 * environment in, the result file out — on the same dense circuits (every amplitude nonzero, 1 000 shots):
 * `nextgen-operator runner` (the embedded QDK simulator, WebAssembly) and the GPU runner (Qiskit Aer) on this
 * machine's CPU, or on a GPU where there is one (`npm run bench -- gpu`).
 */

const SHOTS = 1000;
const TIME_LIMIT_MS = 60_000;
const MEMORY_LIMIT_BYTES = 4 * 1024 ** 3;
const FIRST_QUBITS = 16;
/** Past the limits the runs go on to show where each stops; this bounds them on a 24 GiB machine. */
const MAX_QUBITS_CPU = 29;
/** An 80 GB GPU holds 33 qubits in single precision; the run stops at the first size that fails. */
const MAX_QUBITS_GPU = 34;
/**
 * Beyond its 60 s, the QDK simulator's time for 1 000 shots is estimated from runs of 1 and 5 shots: it simulates
 * every shot from the start (for circuits that measure at the end, Aer samples 1 000 shots from one state), so its
 * time is the start-up plus the same cost per shot.
 */
const ESTIMATE_SHOTS = [1, 5] as const;

interface Measurement {
  /** Wall-clock time of the process, start to exit. */
  seconds: number;
  /** Peak resident memory of the process (GNU time's %M). */
  peakBytes: number;
  /** The runner's document, or why there is none. */
  doc?: { durationMs?: number; device?: { type: string; name: string }; error?: { message: string } };
  timedOut: boolean;
}

/**
 * Runs one runner process under GNU time (Debian's `time` package) for its peak memory, killed at the time limit.
 */
async function measure(command: string[], env: Record<string, string>, limitMs: number): Promise<Measurement> {
  const dir = await mkdtemp(join(tmpdir(), "bench-runner-"));
  const resultFile = join(dir, "result.json");
  const timeFile = join(dir, "time");
  const started = performance.now();
  const child = spawn("/usr/bin/time", ["-o", timeFile, "-f", "%M", ...command], {
    env: { PATH: process.env.PATH, ...env, NEXTGEN_RESULT_FILE: resultFile },
    stdio: "ignore",
    detached: true,
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    process.kill(-(child.pid as number), "SIGKILL");
  }, limitMs);
  await new Promise((resolve) => child.on("exit", resolve));
  clearTimeout(timer);
  const seconds = (performance.now() - started) / 1000;
  const read = (file: string) => readFile(file, "utf8").catch(() => "");
  const peakKb = Number((await read(timeFile)).trim().split("\n").pop());
  const text = await read(resultFile);
  await rm(dir, { recursive: true, force: true });
  return {
    seconds,
    peakBytes: Number.isFinite(peakKb) ? peakKb * 1024 : Number.NaN,
    doc: text ? JSON.parse(text) : undefined,
    timedOut,
  };
}

const circuitEnv = (qubits: number, shots: number, extra: Record<string, string> = {}) => ({
  NEXTGEN_CIRCUIT: dense(qubits),
  NEXTGEN_SHOTS: String(shots),
  ...extra,
});

const ok = (m: Measurement) => !m.timedOut && m.doc !== undefined && m.doc.error === undefined;
const within = (m: Measurement) => ok(m) && m.seconds <= TIME_LIMIT_MS / 1000 && m.peakBytes <= MEMORY_LIMIT_BYTES;
const gib = (bytes: number) => `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
const outcome = (m: Measurement) =>
  m.timedOut ? `> ${TIME_LIMIT_MS / 1000} s` : m.doc?.error ? m.doc.error.message.slice(0, 60) : "";

/** Seconds for SHOTS shots from two shorter runs: start-up plus cost per shot; undefined if either failed. */
async function estimateQdk(
  command: string[],
  qubits: number,
): Promise<{ seconds?: number; peakBytes: number; note: string }> {
  const [few, more] = ESTIMATE_SHOTS;
  const a = await measure(command, circuitEnv(qubits, few), 10 * TIME_LIMIT_MS);
  if (!ok(a)) return { peakBytes: a.peakBytes, note: `${few} shot: ${outcome(a)}` };
  const b = await measure(command, circuitEnv(qubits, more), 10 * TIME_LIMIT_MS);
  if (!ok(b)) return { peakBytes: b.peakBytes, note: `${more} shots: ${outcome(b)}` };
  const perShot = (b.seconds - a.seconds) / (more - few);
  return {
    seconds: a.seconds + (SHOTS - few) * perShot,
    peakBytes: Math.max(a.peakBytes, b.peakBytes),
    note: `estimated from ${few} and ${more} shots: ${perShot.toFixed(2)} s a shot`,
  };
}

/** `npm run bench -- simulators`: the QDK runner against the GPU runner's CPU path, size by size. */
export async function benchSimulators(): Promise<Record<string, string | number>[]> {
  const python = await ensureGpuRunnerPython((line) => console.error(line));
  const qdk = [process.execPath, "dist/cli/main.js", "runner"];
  const aer = [python, "runners/gpu/runner.py"];
  const rows: Record<string, string | number>[] = [];
  const largest = { qdk: 0, aer: 0 };
  // The QDK's largest within the limits may lie below the sizes compared: found first, counting down.
  for (let n = FIRST_QUBITS; n > 0 && !largest.qdk; n--) {
    const m = await measure(qdk, circuitEnv(n, SHOTS), TIME_LIMIT_MS);
    if (within(m)) {
      largest.qdk = n;
      if (n < FIRST_QUBITS)
        rows.push({ qubits: n, "QDK runner s": Number(m.seconds.toFixed(1)), "QDK peak": gib(m.peakBytes) });
    }
  }
  for (let n = FIRST_QUBITS; n <= MAX_QUBITS_CPU; n++) {
    const fromAer = await measure(aer, circuitEnv(n, SHOTS, { NEXTGEN_DEVICE: "CPU" }), TIME_LIMIT_MS);
    if (within(fromAer)) largest.aer = n;
    const full = n <= largest.qdk ? await measure(qdk, circuitEnv(n, SHOTS), TIME_LIMIT_MS) : undefined;
    const fromQdk =
      full && ok(full) ? { seconds: full.seconds, peakBytes: full.peakBytes, note: "" } : await estimateQdk(qdk, n);
    rows.push({
      qubits: n,
      "QDK runner s": fromQdk.seconds === undefined ? "" : Number(fromQdk.seconds.toFixed(1)),
      "QDK peak": gib(fromQdk.peakBytes),
      "QDK note": fromQdk.note,
      "Aer CPU s": ok(fromAer) ? Number(fromAer.seconds.toFixed(2)) : outcome(fromAer),
      "Aer peak": ok(fromAer) ? gib(fromAer.peakBytes) : "",
      "ratio = QDK / Aer (the floor: the fastest runner here)":
        ok(fromAer) && fromQdk.seconds !== undefined ? Number((fromQdk.seconds / fromAer.seconds).toFixed(1)) : "",
    });
    if (!ok(fromAer)) break;
  }
  rows.push({
    qubits: `largest within ${TIME_LIMIT_MS / 1000} s and ${gib(MEMORY_LIMIT_BYTES)}`,
    "QDK runner s": largest.qdk,
    "Aer CPU s": largest.aer,
  });
  return rows;
}

/**
 * `npm run bench -- gpu`: the GPU runner on this machine's GPU (Aer's CUDA build, runners/gpu/requirements-gpu.txt),
 * single and double precision, from 16 qubits until a size fails or passes 60 s; every row names the device the
 * runner reported. Where Aer sees no GPU the first run says so and the benchmark stops.
 */
export async function benchGpu(): Promise<Record<string, string | number>[]> {
  const python = await ensureGpuRunnerPython((line) => console.error(line), "requirements-gpu.txt");
  const aer = [python, "runners/gpu/runner.py"];
  const rows: Record<string, string | number>[] = [];
  for (const precision of ["single", "double"]) {
    for (let n = FIRST_QUBITS; n <= MAX_QUBITS_GPU; n++) {
      const m = await measure(
        aer,
        circuitEnv(n, SHOTS, { NEXTGEN_DEVICE: "GPU", NEXTGEN_PRECISION: precision }),
        TIME_LIMIT_MS,
      );
      rows.push({
        precision,
        qubits: n,
        seconds: ok(m) ? Number(m.seconds.toFixed(2)) : outcome(m),
        "simulation ms": m.doc?.durationMs ?? "",
        device: m.doc?.device ? `${m.doc.device.type} ${m.doc.device.name}` : "",
        "host peak": gib(m.peakBytes),
      });
      if (!ok(m)) break;
    }
    if (rows.at(-1)?.qubits === FIRST_QUBITS && rows.at(-1)?.device === "") break;
  }
  return rows;
}

if (import.meta.main) console.table(await benchSimulators());
