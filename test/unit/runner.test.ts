import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import {
  type RunnerFailure,
  type RunnerSuccess,
  TERMINATION_MESSAGE_MAX_BYTES,
  parseRunnerResult,
  successDocument,
} from "../../src/quantum/runner-result.ts";
import { BELL } from "../fixtures/circuits.ts";

const dir = mkdtempSync(join(tmpdir(), "nextgen-runner-"));
const header = `OPENQASM 3.0;\ninclude "stdgates.inc";\n`;

/** Runs `nextgen-operator runner` as a real process with only env (and PATH) in its environment. */
function runner(name: string, env: Record<string, string>) {
  const resultFile = join(dir, `${name}.json`);
  const child = spawn("node_modules/.bin/node", ["src/cli/main.ts", "runner"], {
    env: { PATH: process.env.PATH, NEXTGEN_RESULT_FILE: resultFile, ...env },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d));
  child.stderr.on("data", (d: Buffer) => (stderr += d));
  return new Promise<{ code: number | null; stdout: string; stderr: string; result: string }>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code) => {
      // A runner that crashed before writing leaves no file: the assertions on code and result then say so.
      const result = existsSync(resultFile) ? readFileSync(resultFile, "utf8") : "";
      resolve({ code, stdout, stderr, result });
    });
  });
}

describe("nextgen-operator runner", () => {
  test("a Bell circuit: counts in the result file and on stdout, exit 0", async () => {
    const r = await runner("BELL", { NEXTGEN_CIRCUIT: BELL, NEXTGEN_SHOTS: "1000" });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe(r.result);
    const doc = JSON.parse(r.result) as RunnerSuccess;
    expect(doc).toMatchObject({ shots: 1000, distinct: 2, truncated: false });
    expect(Object.keys(doc.counts).sort()).toEqual(["00", "11"]);
    expect((doc.counts["00"] ?? 0) + (doc.counts["11"] ?? 0)).toBe(1000);
    expect(parseRunnerResult(r.result)).toEqual(doc);
  });

  test("a circuit that does not compile: the InvalidCircuit document, exit 3", async () => {
    const r = await runner("invalid", {
      NEXTGEN_CIRCUIT: BELL.replace("measure q;", "measure qq;"),
      NEXTGEN_SHOTS: "10",
    });
    expect(r.code, r.stderr).toBe(3);
    expect(JSON.parse(r.result)).toEqual({
      error: { reason: "InvalidCircuit", message: "line 7, column 13: undefined symbol: qq" },
    });
  });

  test("missing or invalid input: the InvalidInput document, exit 2", async () => {
    for (const [name, env, message] of [
      ["no-shots", { NEXTGEN_CIRCUIT: BELL }, /NEXTGEN_SHOTS must be an integer/],
      ["no-circuit", { NEXTGEN_SHOTS: "5" }, /no circuit/],
      ["bad-noise", { NEXTGEN_CIRCUIT: BELL, NEXTGEN_SHOTS: "5", NEXTGEN_NOISE: '{"pauli":[0.1]}' }, /NEXTGEN_NOISE/],
      [
        "single-precision",
        { NEXTGEN_CIRCUIT: BELL, NEXTGEN_SHOTS: "5", NEXTGEN_PRECISION: "single" },
        /the QDK simulator runs in double precision only/,
      ],
      [
        "bad-max-bytes",
        { NEXTGEN_CIRCUIT: BELL, NEXTGEN_SHOTS: "5", NEXTGEN_RESULT_MAX_BYTES: "4k" },
        /NEXTGEN_RESULT_MAX_BYTES must be a positive integer, got "4k"/,
      ],
    ] as const) {
      const r = await runner(name, env);
      expect(r.code, name).toBe(2);
      const doc = JSON.parse(r.result) as RunnerFailure;
      expect(doc.error.reason, name).toBe("InvalidInput");
      expect(doc.error.message, name).toMatch(message);
    }
  });

  test("many distinct outcomes: counts cut to the most frequent so that the document fits a termination message", async () => {
    const file = join(dir, "uniform12.qasm");
    writeFileSync(file, `${header}qubit[12] q;\nbit[12] c;\nh q;\nc = measure q;\n`);
    // Empty variables count as unset, as a template that fills in nothing leaves them.
    const ok = await runner("uniform12", {
      NEXTGEN_CIRCUIT_FILE: file,
      NEXTGEN_CIRCUIT: "",
      NEXTGEN_SHOTS: "2000",
      NEXTGEN_NOISE: "",
    });
    expect(ok.code, ok.stderr).toBe(0);
    expect(Buffer.byteLength(ok.result)).toBeLessThanOrEqual(TERMINATION_MESSAGE_MAX_BYTES);
    const doc = JSON.parse(ok.result) as RunnerSuccess;
    expect(doc.truncated).toBe(true);
    expect(doc.shots).toBe(2000);
    const kept = Object.values(doc.counts);
    expect(doc.distinct).toBeGreaterThan(kept.length);
    expect(kept).toEqual([...kept].sort((a, b) => b - a));
  });
});

describe("the runner's documents", () => {
  const result = (counts: Record<string, number>) => ({ shots: 100, counts, failedShots: 0, durationMs: 12.3 });
  const where = { device: { type: "CPU", name: "AMD EPYC 7763", threads: 1 }, precision: "double" } as const;

  test("counts are kept whole when they fit, else cut to as many of the most frequent as fit", () => {
    expect(successDocument(result({ "01": 60, "10": 40 }), where)).toEqual({
      shots: 100,
      counts: { "01": 60, "10": 40 },
      distinct: 2,
      truncated: false,
      durationMs: 12,
      device: { type: "CPU", name: "AMD EPYC 7763", threads: 1 },
      precision: "double",
    });
    const counts = Object.fromEntries(
      Array.from({ length: 50 }, (_, i) => [`b${String(i).padStart(2, "0")}`, 100 - i]),
    );
    const doc = successDocument(result(counts), where, 300);
    const size = (d: object) => Buffer.byteLength(JSON.stringify(d));
    expect(size(doc)).toBeLessThanOrEqual(300);
    expect(doc.truncated).toBe(true);
    const kept = Object.keys(doc.counts).length;
    expect(Object.keys(doc.counts)).toEqual(Object.keys(counts).slice(0, kept));
    // One more bitstring would not have fitted.
    expect(size({ ...doc, counts: Object.fromEntries(Object.entries(counts).slice(0, kept + 1)) })).toBeGreaterThan(
      300,
    );
  });

  test("runtime errors in some shots are part of the document", () => {
    const doc = successDocument(
      {
        ...result({ "0": 3 }),
        failedShots: 2,
        shotError: "runtime error: index out of range: 3",
      },
      where,
    );
    expect(doc).toMatchObject({ failedShots: 2, shotError: "runtime error: index out of range: 3" });
  });

  test("parseRunnerResult reads documents back, from a log tail too, and answers MalformedResult for anything else", () => {
    const failure = { error: { reason: "SimulationFailed", message: "worker exited with code 1" } };
    expect(parseRunnerResult(JSON.stringify(failure))).toEqual(failure);
    const success = successDocument(result({ "11": 100 }), where);
    expect(parseRunnerResult(`some log line\n${JSON.stringify(success)}\n`)).toEqual(success);
    const withDevice = (device: unknown) => JSON.stringify({ ...success, device });
    for (const garbage of [
      "",
      "OOMKilled",
      '{"shots":"many"}',
      '{"error":{"reason":"Bored","message":"x"}}',
      "null",
      withDevice({ type: "TPU", name: "v5e" }),
      withDevice({ type: "GPU", name: "H100", memoryBytes: -1 }),
      JSON.stringify({ ...success, precision: "half" }),
    ]) {
      expect((parseRunnerResult(garbage) as RunnerFailure).error.reason, garbage).toBe("MalformedResult");
    }
  });
});
