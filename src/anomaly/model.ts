/**
 * Anomaly models: ONNX graphs run by onnxruntime-node on the CPU, scoring many pods in one batched run. No API
 * calls: the bytes come from the caller (a ConfigMap's binaryData, a mounted file, or the defaults in ./models).
 *
 * The contract a model must meet, checked when it is loaded (anything else is a ModelInvalidError naming what was
 * expected and what was found):
 *
 * - Input: exactly one, a float32 tensor of shape [N, F]. N is the batch, and must be dynamic (a named or unknown
 *   dimension, not a number); F is FEATURES.length, the features of ./features.ts in that order, each on its
 *   documented scale with absent ones already filled. Any normalisation beyond that is the model's own, inside
 *   its graph.
 * - Output: the one named "score", or the only one; float32, its first dimension dynamic, and either
 *   - [N] or [N, 1]: a score per pod, compared with the trigger's threshold as it is (the default models' are in
 *     [0, 1]: the autoencoder's 0.95 is the healthy 99th percentile, the failure model's is a probability); or
 *   - [N, F]: a reconstruction of each row (an autoencoder), whose score is the mean squared difference from the
 *     row over the F features, on the features' own scales; a threshold for it is calibrated by whoever trained it.
 *
 * Sessions run on one thread: 1 000 pods take about 0.1 ms on one or two, and on this project's busy 2-core
 * machine a second thread only added CPU and a p99 of 4 ms (its pool thread waiting for a core) against 0.5 ms.
 */
import { readFile } from "node:fs/promises";
import type * as Ort from "onnxruntime-node";
import type { InferenceSession, Tensor } from "onnxruntime-node";
import { FEATURES } from "./features.ts";

type OnnxRuntime = typeof Ort;
let onnxRuntime: Promise<OnnxRuntime> | undefined;

/**
 * ONNX Runtime, imported on the first model loaded: its native binding costs about 10 MB of RSS, which an operator
 * whose RemediationPolicies use no anomaly model should not pay.
 */
const loadOnnxRuntime = (): Promise<OnnxRuntime> => (onnxRuntime ??= import("onnxruntime-node"));

const OUTPUT_NAME = "score";

/** A model that does not meet the contract above; the condition reason a controller reports for it. */
export class ModelInvalidError extends Error {
  override name = "ModelInvalidError";
  readonly reason = "ModelInvalid";
  /** What the contract asks for, and what the model has, each as text for a condition message. */
  readonly expected: string;
  readonly found: string;

  constructor(what: string, expected: string, found: string, cause?: unknown) {
    super(`${what}: expected ${expected}, found ${found}`, cause === undefined ? undefined : { cause });
    this.expected = expected;
    this.found = found;
  }
}

type ValueMetadata = InferenceSession.ValueMetadata;

/** A dimension the model leaves open: named ("N", "batch"), or unnamed, which ONNX Runtime reports as "". */
const isDynamic = (dim: number | string) => typeof dim === "string";

const describeShape = (shape: readonly (number | string)[]) => `[${shape.map((d) => (d === "" ? "?" : d)).join(", ")}]`;

function describeValue(v: ValueMetadata): string {
  if (!v.isTensor) return `${v.name}: not a tensor`;
  return `${v.name}: ${v.type} ${v.shape.length ? describeShape(v.shape) : "of undeclared shape"}`;
}

const F = FEATURES.length;
const FEATURE_NAMES = FEATURES.map((f) => f.name).join(", ");
const EXPECTED_INPUT = `one float32 input [N, ${F}] (N dynamic, ${F} the features ${FEATURE_NAMES})`;
const EXPECTED_OUTPUT =
  `a float32 output "${OUTPUT_NAME}" (or a single output) ` + `of shape [N], [N, 1] or [N, ${F}] (N dynamic)`;

function checkInput(inputs: readonly ValueMetadata[]): string {
  const input = inputs[0];
  const ok =
    inputs.length === 1 &&
    input?.isTensor &&
    input.type === "float32" &&
    input.shape.length === 2 &&
    isDynamic(input.shape[0] as number | string) &&
    input.shape[1] === F;
  if (!ok || !input) {
    const found = inputs.length ? inputs.map(describeValue).join("; ") : "no inputs";
    throw new ModelInvalidError("the model's input does not match", EXPECTED_INPUT, found);
  }
  return input.name;
}

/** The output's name, and whether it holds scores or reconstructions. */
function checkOutput(outputs: readonly ValueMetadata[]): { name: string; kind: "score" | "reconstruction" } {
  const output = outputs.find((o) => o.name === OUTPUT_NAME) ?? (outputs.length === 1 ? outputs[0] : undefined);
  const shape = output?.isTensor ? output.shape : [];
  const width = shape.length === 1 ? 1 : shape[1];
  const ok =
    output?.isTensor &&
    output.type === "float32" &&
    (shape.length === 1 || shape.length === 2) &&
    isDynamic(shape[0] as number | string) &&
    (width === 1 || width === F);
  if (!ok || !output) {
    const found = outputs.length ? outputs.map(describeValue).join("; ") : "no outputs";
    throw new ModelInvalidError("the model's output does not match", EXPECTED_OUTPUT, found);
  }
  return { name: output.name, kind: width === F ? "reconstruction" : "score" };
}

/** A loaded model: score() runs a whole batch of pods at once. */
export class AnomalyModel {
  /** Whether the model's output is a score per pod or a reconstruction scored by its error (see the contract). */
  readonly output: "score" | "reconstruction";
  private readonly ort: OnnxRuntime;
  private readonly session: InferenceSession;
  private readonly inputName: string;
  private readonly outputName: string;

  private constructor(
    ort: OnnxRuntime,
    session: InferenceSession,
    inputName: string,
    output: { name: string; kind: AnomalyModel["output"] },
  ) {
    this.ort = ort;
    this.session = session;
    this.inputName = inputName;
    this.outputName = output.name;
    this.output = output.kind;
  }

  /**
   * Loads a model from its bytes and checks it against the contract; a ModelInvalidError if it is not ONNX or
   * does not match. The session is released if the check fails; otherwise close() releases it.
   */
  static async load(bytes: Uint8Array): Promise<AnomalyModel> {
    const ort = await loadOnnxRuntime();
    let session: InferenceSession;
    try {
      session = await ort.InferenceSession.create(bytes, {
        executionProviders: ["cpu"],
        intraOpNumThreads: 1,
        interOpNumThreads: 1,
        // Errors only: ONNX Runtime's warnings (an initializer it folds, a thread it does not pin) are not ours.
        logSeverityLevel: 3,
      });
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new ModelInvalidError(
        "the model cannot be loaded",
        `an ONNX model (protobuf) that ONNX Runtime ${ort.env.versions.common} loads`,
        `${bytes.byteLength} bytes it refuses: ${why}`,
        e,
      );
    }
    try {
      const inputName = checkInput(session.inputMetadata);
      return new AnomalyModel(ort, session, inputName, checkOutput(session.outputMetadata));
    } catch (e) {
      await session.release();
      throw e;
    }
  }

  /**
   * One score per row, in one run: rows is a list of FEATURES.length-long rows (from featureRow) or one row-major
   * N × FEATURES.length array (from featureRows), which is used as it is, without a copy.
   */
  async score(rows: readonly Float32Array[] | Float32Array): Promise<Float32Array> {
    const batch = rows instanceof Float32Array ? rows : concatRows(rows);
    if (batch.length % F !== 0) {
      throw new RangeError(`a batch of rows of ${F} features has a multiple of ${F} values, not ${batch.length}`);
    }
    const n = batch.length / F;
    if (n === 0) return new Float32Array(0);
    const results = await this.session.run({ [this.inputName]: new this.ort.Tensor("float32", batch, [n, F]) });
    const out = results[this.outputName] as Tensor;
    const expectedDims = this.output === "reconstruction" ? [[n, F]] : [[n], [n, 1]];
    if (out.type !== "float32" || !expectedDims.some((d) => d.join() === out.dims.join())) {
      const expected = expectedDims.map((d) => `float32 ${describeShape(d)}`).join(" or ");
      throw new ModelInvalidError(
        `the model's output for ${n} rows`,
        expected,
        `${out.type} ${describeShape(out.dims)}`,
      );
    }
    const data = out.data as Float32Array;
    return this.output === "reconstruction" ? reconstructionErrors(batch, data) : data;
  }

  /** Releases the session's native memory. */
  async close(): Promise<void> {
    await this.session.release();
  }
}

function concatRows(rows: readonly Float32Array[]): Float32Array {
  const batch = new Float32Array(rows.length * F);
  rows.forEach((row, i) => {
    if (row.length !== F) throw new RangeError(`row ${i} has ${row.length} values, not the ${F} features`);
    batch.set(row, i * F);
  });
  return batch;
}

/** Each row's mean squared difference from its reconstruction. */
function reconstructionErrors(rows: Float32Array, reconstructions: Float32Array): Float32Array {
  const errors = new Float32Array(rows.length / F);
  for (let i = 0; i < errors.length; i++) {
    let sum = 0;
    for (let j = i * F; j < (i + 1) * F; j++) sum += ((rows[j] as number) - (reconstructions[j] as number)) ** 2;
    errors[i] = sum / F;
  }
  return errors;
}

/** The models shipped with the operator, trained by hack/models/train.py. */
export type DefaultModelName = "autoencoder" | "failure";

/** What hack/models/train.py records next to each default model (the fields the operator reads). */
export interface DefaultModelMetadata {
  name: DefaultModelName;
  scriptVersion: number;
  seed: number;
  features: { name: string; min: number; max: number; fill?: number }[];
  output: { name: string; meaning: string };
  /** The threshold the model was calibrated for: see the metadata's scoreMapping or evaluation. */
  threshold: number;
}

/** Where a default model's file is: next to this module, in src/ as in dist/. */
export function defaultModelUrl(name: DefaultModelName, extension: "onnx" | "json"): URL {
  return new URL(`./models/${name}.${extension}`, import.meta.url);
}

/** A default model, loaded, with its metadata. */
export async function loadDefaultModel(
  name: DefaultModelName,
): Promise<{ model: AnomalyModel; metadata: DefaultModelMetadata }> {
  const [bytes, metadata] = await Promise.all([
    readFile(defaultModelUrl(name, "onnx")),
    readFile(defaultModelUrl(name, "json"), "utf8"),
  ]);
  return { model: await AnomalyModel.load(bytes), metadata: JSON.parse(metadata) as DefaultModelMetadata };
}
