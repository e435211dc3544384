import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import {
  FEATURES,
  type PodObservation,
  defaultedFeatures,
  featureRow,
  featureRows,
} from "../../src/anomaly/features.ts";
import { forecastCrossing } from "../../src/anomaly/forecast.ts";
import {
  AnomalyModel,
  type DefaultModelMetadata,
  ModelInvalidError,
  defaultModelUrl,
  loadDefaultModel,
} from "../../src/anomaly/model.ts";
import { DOUBLE, type TensorSpec, floatInitializer, identity, onnxModel } from "../fixtures/onnx.ts";

const WINDOW = 600;
const healthyPods: PodObservation[] = [
  {
    restarts: 0,
    oomKills: 0,
    notReadySeconds: 0,
    windowSeconds: WINDOW,
    cpuUsageCores: 0.15,
    cpuLimitCores: 0.5,
    memoryWorkingSetBytes: 400e6,
    memoryLimitBytes: 1e9,
    errorRatio: 0.001,
  },
  {
    restarts: 0,
    oomKills: 0,
    notReadySeconds: 0,
    windowSeconds: WINDOW,
    cpuUsageCores: 0.45,
    cpuRequestCores: 1,
    memoryWorkingSetBytes: 1.1e9,
    memoryLimitBytes: 2e9,
    errorRatio: 0.004,
  },
  // No Prometheus at all: only what the API server shows.
  { restarts: 0, oomKills: 0, notReadySeconds: 0, windowSeconds: WINDOW },
  // A rolling update's readiness gap, no application metrics.
  {
    restarts: 0,
    oomKills: 0,
    notReadySeconds: 5,
    windowSeconds: WINDOW,
    cpuUsageCores: 0.2,
    cpuLimitCores: 1,
    memoryWorkingSetBytes: 300e6,
    memoryLimitBytes: 1e9,
  },
];
const crashLooping: PodObservation = {
  restarts: 5,
  oomKills: 0,
  notReadySeconds: 420,
  windowSeconds: WINDOW,
  cpuUsageCores: 0.01,
  cpuLimitCores: 0.5,
  memoryWorkingSetBytes: 150e6,
  memoryLimitBytes: 1e9,
};
const memoryNearLimit: PodObservation = {
  restarts: 1,
  oomKills: 1,
  notReadySeconds: 20,
  windowSeconds: WINDOW,
  cpuUsageCores: 0.3,
  cpuLimitCores: 1,
  memoryWorkingSetBytes: 0.97e9,
  memoryLimitBytes: 1e9,
  errorRatio: 0.003,
};

describe("features", () => {
  test("each observation is scaled and clipped to its feature's range", () => {
    const row = featureRow({
      restarts: 12,
      oomKills: 1,
      notReadySeconds: 150,
      windowSeconds: WINDOW,
      cpuUsageCores: 3,
      cpuLimitCores: 1,
      memoryWorkingSetBytes: 1.2e9,
      memoryLimitBytes: 1e9,
      errorRatio: 0.25,
    });
    expect([...row]).toEqual([1, Math.fround(1 / 3), 0.25, 2, 1, 0.25]);
  });

  test("CPU is against the limit, else the request; memory only against a limit; unobserved ones take the fill", () => {
    const base = { restarts: 1, oomKills: 0, notReadySeconds: 0, windowSeconds: WINDOW };
    const fill = (name: string) => Math.fround(FEATURES.find((f) => f.name === name)?.fill as number);
    const withLimit = featureRow({ ...base, cpuUsageCores: 0.5, cpuLimitCores: 2, cpuRequestCores: 1 });
    expect(withLimit[3]).toBe(0.25);
    expect(featureRow({ ...base, cpuUsageCores: 0.5, cpuRequestCores: 1 })[3]).toBe(0.5);
    const requestOnly = featureRow({ ...base, memoryWorkingSetBytes: 5e8 });
    expect([...requestOnly]).toEqual([
      Math.fround(0.2),
      0,
      0,
      fill("cpuRatio"),
      fill("memoryRatio"),
      fill("errorRatio"),
    ]);
    expect(defaultedFeatures({ ...base, memoryWorkingSetBytes: 5e8 })).toEqual([
      "cpuRatio",
      "memoryRatio",
      "errorRatio",
    ]);
    expect(defaultedFeatures({ ...base, cpuUsageCores: 0.5, cpuRequestCores: 1, errorRatio: 0 })).toEqual([
      "memoryRatio",
    ]);
  });

  test("a batch is the rows one after another", () => {
    const batch = featureRows([crashLooping, memoryNearLimit]);
    expect(batch).toEqual(new Float32Array([...featureRow(crashLooping), ...featureRow(memoryNearLimit)]));
  });

  test.each(["autoencoder", "failure"] as const)("the %s model was trained on these features", (name) => {
    const metadata = JSON.parse(readFileSync(defaultModelUrl(name, "json"), "utf8")) as DefaultModelMetadata;
    expect(metadata.features).toEqual(FEATURES.map(({ name, min, max, fill }) => ({ name, min, max, fill })));
  });
});

describe("default models", () => {
  const loaded: Partial<Record<"autoencoder" | "failure", Awaited<ReturnType<typeof loadDefaultModel>>>> = {};
  beforeAll(async () => {
    loaded.autoencoder = await loadDefaultModel("autoencoder");
    loaded.failure = await loadDefaultModel("failure");
  });
  afterAll(async () => {
    await loaded.autoencoder?.model.close();
    await loaded.failure?.model.close();
  });

  test("the autoencoder scores healthy pods low and crash-looping or memory-starved ones above its 0.95", async () => {
    const { model, metadata } = loaded.autoencoder as Awaited<ReturnType<typeof loadDefaultModel>>;
    expect(metadata.threshold).toBe(0.95);
    const healthy = await model.score(featureRows(healthyPods));
    const sick = await model.score(featureRows([crashLooping, memoryNearLimit]));
    expect(Math.max(...healthy)).toBeLessThan(0.5);
    expect(Math.min(...sick)).toBeGreaterThan(metadata.threshold);
  });

  test("the failure model gives healthy pods a low probability and failing ones above its 0.8", async () => {
    const { model, metadata } = loaded.failure as Awaited<ReturnType<typeof loadDefaultModel>>;
    expect(metadata.threshold).toBe(0.8);
    const healthy = await model.score(featureRows(healthyPods));
    const sick = await model.score(featureRows([crashLooping, memoryNearLimit]));
    expect(Math.max(...healthy)).toBeLessThan(0.2);
    expect(Math.min(...sick)).toBeGreaterThan(metadata.threshold);
  });

  test("rows given one by one score as the same rows in one array; 1 000 pods in one run", async () => {
    const { model } = loaded.autoencoder as Awaited<ReturnType<typeof loadDefaultModel>>;
    const pods = [...healthyPods, crashLooping, memoryNearLimit];
    expect(await model.score(pods.map(featureRow))).toEqual(await model.score(featureRows(pods)));
    const many = Array.from({ length: 1000 }, (_, i) => pods[i % pods.length] as PodObservation);
    const scores = await model.score(featureRows(many));
    expect(scores).toHaveLength(1000);
    const alone = await model.score(featureRow(pods[999 % pods.length] as PodObservation));
    expect(scores[999]).toBeCloseTo(alone[0] as number, 6);
  });

  test("a batch of the wrong width is refused before it runs", async () => {
    const { model } = loaded.autoencoder as Awaited<ReturnType<typeof loadDefaultModel>>;
    await expect(model.score(new Float32Array(7))).rejects.toThrow(/multiple of 6 values, not 7/);
    await expect(model.score([new Float32Array(5)])).rejects.toThrow(/row 0 has 5 values/);
  });
});

describe("models users bring", () => {
  const F = FEATURES.length;
  const invalid = async (bytes: Uint8Array) => {
    const e = await AnomalyModel.load(bytes).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(e).toBeInstanceOf(ModelInvalidError);
    return e as ModelInvalidError;
  };

  test("an input of the wrong width is ModelInvalid, naming the expected and the found shape", async () => {
    const e = await invalid(identity({ name: "x", shape: ["N", 5] }, { name: "score", shape: ["N", 5] }));
    expect(e.reason).toBe("ModelInvalid");
    expect(e.expected).toBe(
      "one float32 input [N, 6] (N dynamic, 6 the features " +
        "restarts, oomKills, notReadyFraction, cpuRatio, memoryRatio, errorRatio)",
    );
    expect(e.found).toBe("x: float32 [N, 5]");
    expect(e.message).toBe(`the model's input does not match: expected ${e.expected}, found x: float32 [N, 5]`);
  });

  test.each([
    ["a float64 input", { name: "x", type: DOUBLE, shape: ["N", F] }, "x: float64 [N, 6]"],
    ["a fixed batch", { name: "x", shape: [1, F] }, "x: float32 [1, 6]"],
    ["a single row", { name: "x", shape: [F] }, "x: float32 [6]"],
    ["an unnamed batch of the wrong width", { name: "x", shape: [null, 5] }, "x: float32 [?, 5]"],
  ] as [string, TensorSpec, string][])("%s is ModelInvalid", async (_, input, found) => {
    const e = await invalid(identity(input, { ...input, name: "score" }));
    expect(e.found).toBe(found);
  });

  test("an output of another type, or of neither a score's nor a reconstruction's shape, is ModelInvalid", async () => {
    const float64 = onnxModel({
      inputs: [{ name: "x", shape: ["N", F] }],
      outputs: [{ name: "score", type: DOUBLE, shape: ["N", F] }],
      nodes: [{ op: "Cast", inputs: ["x"], output: "score", intAttributes: { to: DOUBLE } }],
    });
    expect((await invalid(float64)).found).toBe("score: float64 [N, 6]");
    const transposed = onnxModel({
      inputs: [{ name: "x", shape: ["N", F] }],
      outputs: [{ name: "y", shape: [F, "N"] }],
      nodes: [{ op: "Transpose", inputs: ["x"], output: "y" }],
    });
    const e = await invalid(transposed);
    expect(e.expected).toBe('a float32 output "score" (or a single output) of shape [N], [N, 1] or [N, 6] (N dynamic)');
    expect(e.found).toBe("y: float32 [6, N]");
  });

  test("bytes that are not ONNX get a ModelInvalidError saying so", async () => {
    const e = await invalid(new TextEncoder().encode("apiVersion: v1\nkind: ConfigMap\n"));
    expect(e.message).toMatch(/^the model cannot be loaded: expected an ONNX model \(protobuf\) that ONNX Runtime 1\./);
    expect(e.found).toMatch(/^31 bytes it refuses: .*protobuf parsing failed/);
  });

  test("a score of shape [N, 1] is taken as it is; an unnamed batch dimension is dynamic too", async () => {
    // The mean of each row: a MatMul by a column of sixths.
    const mean = onnxModel({
      inputs: [{ name: "features", shape: [null, F] }],
      outputs: [{ name: "score", shape: [null, 1] }],
      nodes: [{ op: "MatMul", inputs: ["features", "w"], output: "score" }],
      initializers: [floatInitializer("w", [F, 1], Array(F).fill(1 / F))],
    });
    const model = await AnomalyModel.load(mean);
    expect(model.output).toBe("score");
    const scores = await model.score([new Float32Array([1, 2, 3, 4, 5, 6]), new Float32Array(F)]);
    expect(scores[0]).toBeCloseTo(3.5, 5);
    expect(scores[1]).toBe(0);
    await model.close();
  });

  test("a reconstruction of shape [N, F] is scored by its mean squared error", async () => {
    // Reconstructs x as −x: an error of (2x)² per feature.
    const negate = onnxModel({
      inputs: [{ name: "features", shape: ["N", F] }],
      outputs: [{ name: "reconstruction", shape: ["N", F] }],
      nodes: [{ op: "Neg", inputs: ["features"], output: "reconstruction" }],
    });
    const model = await AnomalyModel.load(negate);
    expect(model.output).toBe("reconstruction");
    const scores = await model.score([new Float32Array([1, 0, 0, 0, 0, 0]), new Float32Array([1, 1, 1, 1, 1, 1])]);
    expect(scores[0]).toBeCloseTo(4 / 6, 6);
    expect(scores[1]).toBe(4);
    await model.close();
  });
});

describe("forecast", () => {
  test("a rising line: when it crosses, and whether within the horizon", () => {
    const samples = Array.from({ length: 7 }, (_, i) => ({ time: i * 10, value: 0.2 + 0.01 * i * 10 }));
    const soon = forecastCrossing(samples, 1, 30);
    expect(soon?.slope).toBeCloseTo(0.01, 12);
    expect(soon?.valueNow).toBeCloseTo(0.8, 12);
    expect(soon?.secondsUntilCrossing).toBeCloseTo(20, 9);
    expect(soon?.crossesWithinHorizon).toBe(true);
    expect(forecastCrossing(samples, 1, 10)?.crossesWithinHorizon).toBe(false);
  });

  test("noisy samples: the least-squares line, not the last two points", () => {
    // mean t 1.5, mean v 2.5; covariance 4, variance 5: slope 0.8, 3.7 at t = 3, 5 reached 1.3 / 0.8 s later.
    const f = forecastCrossing(
      [1, 3, 2, 4].map((value, time) => ({ time, value })),
      5,
      60,
    );
    expect(f?.slope).toBeCloseTo(0.8, 12);
    expect(f?.valueNow).toBeCloseTo(3.7, 12);
    expect(f?.secondsUntilCrossing).toBeCloseTo(1.625, 12);
  });

  test("already over the threshold is 0 s; a falling or flat trend never crosses", () => {
    expect(
      forecastCrossing(
        [
          { time: 0, value: 5 },
          { time: 60, value: 6 },
        ],
        5.5,
        60,
      )?.secondsUntilCrossing,
    ).toBe(0);
    const falling = forecastCrossing(
      [
        { time: 0, value: 5 },
        { time: 60, value: 4 },
      ],
      10,
      3600,
    );
    expect(falling?.secondsUntilCrossing).toBeUndefined();
    expect(falling?.crossesWithinHorizon).toBe(false);
    expect(
      forecastCrossing(
        [
          { time: 0, value: 5 },
          { time: 60, value: 5 },
        ],
        10,
        3600,
      )?.slope,
    ).toBe(0);
  });

  test("Unix timestamps keep their precision", () => {
    const start = 1_780_000_000;
    const samples = Array.from({ length: 40 }, (_, i) => ({ time: start + 15 * i, value: 100 + 0.5 * i }));
    const f = forecastCrossing(samples, 150, 600);
    expect(f?.slope).toBeCloseTo(0.5 / 15, 12);
    expect(f?.secondsUntilCrossing).toBeCloseTo((150 - 119.5) * 30, 6);
  });

  test("fewer than two distinct times fix no line", () => {
    expect(forecastCrossing([{ time: 5, value: 1 }], 2, 60)).toBeUndefined();
    expect(
      forecastCrossing(
        [
          { time: 5, value: 1 },
          { time: 5, value: 3 },
        ],
        2,
        60,
      ),
    ).toBeUndefined();
  });
});
