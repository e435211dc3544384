#!/usr/bin/env python3
"""Trains the anomaly trigger's default models and writes them, with their metadata, to src/anomaly/models/.

  autoencoder.onnx  a 6→3→6 tanh autoencoder fitted to healthy pods; its score is the reconstruction error mapped
                    to [0, 1] so that the healthy median scores 0.05 and the healthy 99th percentile 0.95.
  failure.onnx      a logistic regression: the probability that a pod fails, fitted to healthy pods against
                    failing and about-to-fail ones.

Both take float32 [N, 6] (the features of src/anomaly/features.ts, in that order) and return float32 [N], and carry
their normalisation inside the graph. The pods are synthetic, drawn by this script from a fixed seed: the same
script, seed and pinned requirements give byte-identical files (see README.md).

  python hack/models/train.py [--out DIR]
"""

import os

# One BLAS thread: a multi-threaded reduction may sum in another order from run to run and change the last bits.
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

SCRIPT_VERSION = 1
SEED = 20260601
# Opset 17 and IR version 8: old enough for any onnxruntime of the last three years, new enough for everything used.
OPSET = 17
IR_VERSION = 8
INPUT = "features"
OUTPUT = "score"

# src/anomaly/features.ts's FEATURES: name, clip range and the fill that stands in when the feature is unobserved.
# The unit tests compare this (as written to the metadata) with the TypeScript.
FEATURES = [
    {"name": "restarts", "min": 0, "max": 1},
    {"name": "oomKills", "min": 0, "max": 1},
    {"name": "notReadyFraction", "min": 0, "max": 1},
    {"name": "cpuRatio", "min": 0, "max": 2, "fill": 0.3},
    {"name": "memoryRatio", "min": 0, "max": 1, "fill": 0.45},
    {"name": "errorRatio", "min": 0, "max": 1, "fill": 0.002},
]
RESTARTS, OOM, NOT_READY, CPU, MEMORY, ERRORS = range(len(FEATURES))
F = len(FEATURES)

# How often each Prometheus-derived feature is missing in the training rows: no metrics at all (CPU and memory
# together), no memory limit, no application metrics.
ABSENT_METRICS = 0.10
ABSENT_MEMORY_LIMIT = 0.15
ABSENT_ERRORS = 0.40

# A feature healthy pods hardly move (OOM kills, restarts) would get a standard deviation near zero, and its first
# blip an unbounded z-score; features live in [0, 2], so 0.05 is a twentieth of the narrowest range.
STD_FLOOR = 0.05
HIDDEN = 3
AUTOENCODER_STEPS = 3000
FAILURE_STEPS = 3000
# The score at the healthy median and 99th percentile of reconstruction error (see score_mapping).
MEDIAN_SCORE = 0.05
P99_SCORE = 0.95
FAILURE_THRESHOLD = 0.8
LOG_EPSILON = 1e-12

SICK_MODES = ["crashLoop", "memoryNearLimit", "cpuSaturated", "errorStorm", "notReady"]


def clip(x, column):
    return np.clip(x, FEATURES[column]["min"], FEATURES[column]["max"])


def healthy(rng, n):
    """Pods doing their job: CPU, memory and errors follow one shared load; restarts, OOM kills and not-Ready
    time are rare blips (a node drain, a rolling update's readiness gap)."""
    x = np.zeros((n, F))
    load = rng.beta(2, 3, n)
    restarts = np.minimum(rng.poisson(0.03, n), 5)
    x[:, RESTARTS] = restarts / 5
    x[:, OOM] = (rng.random(n) < 0.002) / 3
    blip = np.where(rng.random(n) < 0.05, rng.beta(1, 20, n), 0)
    x[:, NOT_READY] = clip(blip + (restarts > 0) * rng.uniform(0.02, 0.06, n), NOT_READY)
    x[:, CPU] = clip(0.08 + 0.55 * load + rng.normal(0, 0.04, n), CPU)
    x[:, MEMORY] = clip(0.33 + 0.3 * load + rng.normal(0, 0.05, n), MEMORY)
    x[:, ERRORS] = clip(rng.lognormal(np.log(0.002), 0.8, n) * (1 + 3 * load**3), ERRORS)
    return x


def sick(rng, n, mode):
    """Pods failing in one way each, the other features as a healthy pod's where the failure leaves them."""
    x = healthy(rng, n)
    if mode == "crashLoop":
        x[:, RESTARTS] = clip((rng.poisson(3.5, n) + 2) / 5, RESTARTS)
        x[:, NOT_READY] = rng.uniform(0.4, 0.95, n)
        x[:, CPU] = rng.uniform(0, 0.15, n)
        x[:, MEMORY] = rng.uniform(0.05, 0.35, n)
        x[:, ERRORS] = rng.uniform(0.2, 1, n)
    elif mode == "memoryNearLimit":
        ooms = rng.choice(3, n, p=[0.4, 0.4, 0.2])
        x[:, MEMORY] = rng.uniform(0.9, 1, n)
        x[:, OOM] = ooms / 3
        x[:, RESTARTS] = clip(ooms / 5, RESTARTS)
    elif mode == "cpuSaturated":
        x[:, CPU] = rng.uniform(0.95, 1.8, n)
        x[:, ERRORS] = rng.uniform(0.02, 0.3, n)
        x[:, NOT_READY] = rng.beta(2, 6, n)
    elif mode == "errorStorm":
        x[:, ERRORS] = rng.uniform(0.05, 0.6, n)
    elif mode == "notReady":
        x[:, NOT_READY] = rng.uniform(0.3, 1, n)
    else:
        raise ValueError(mode)
    return x


def degrading(rng, n):
    """Pods that will fail but show only an early sign, one each: memory creeping up, a first restart, errors or
    readiness starting to slip. The failure model learns them as failing; the autoencoder never sees them."""
    x = healthy(rng, n)
    sign = rng.integers(0, 4, n)
    rows = np.arange(n)
    x[rows[sign == 0], MEMORY] = rng.uniform(0.8, 0.93, (sign == 0).sum())
    x[rows[sign == 1], RESTARTS] = rng.choice([0.2, 0.4], (sign == 1).sum())
    x[rows[sign == 2], ERRORS] = rng.uniform(0.02, 0.08, (sign == 2).sum())
    x[rows[sign == 3], NOT_READY] = rng.uniform(0.1, 0.3, (sign == 3).sum())
    return x


def with_absences(rng, x):
    """Rows as the operator sees them: some Prometheus-derived features unobserved, their fills in their place."""
    x = x.copy()
    n = len(x)
    no_metrics = rng.random(n) < ABSENT_METRICS
    x[no_metrics, CPU] = FEATURES[CPU]["fill"]
    x[no_metrics | (rng.random(n) < ABSENT_MEMORY_LIMIT), MEMORY] = FEATURES[MEMORY]["fill"]
    x[rng.random(n) < ABSENT_ERRORS, ERRORS] = FEATURES[ERRORS]["fill"]
    return x


def f32(x):
    return np.asarray(x, dtype=np.float32)


def adam(params, grads_of, steps, rate):
    """Full-batch Adam: deterministic, and quick on a few thousand rows of six features."""
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    beta1, beta2 = 0.9, 0.999
    loss = float("nan")
    for t in range(1, steps + 1):
        loss, grads = grads_of(params)
        for i, g in enumerate(grads):
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            params[i] -= rate * (m[i] / (1 - beta1**t)) / (np.sqrt(v[i] / (1 - beta2**t)) + 1e-8)
    return params, loss


def train_autoencoder(rng, z):
    w1 = rng.normal(0, 1 / np.sqrt(F), (F, HIDDEN))
    b1 = np.zeros(HIDDEN)
    w2 = rng.normal(0, 1 / np.sqrt(HIDDEN), (HIDDEN, F))
    b2 = np.zeros(F)

    def grads_of(params):
        w1, b1, w2, b2 = params
        h = np.tanh(z @ w1 + b1)
        d = h @ w2 + b2 - z
        loss = np.mean(d * d)
        dr = 2 * d / d.size
        dh = (dr @ w2.T) * (1 - h * h)
        return loss, [z.T @ dh, dh.sum(0), h.T @ dr, dr.sum(0)]

    return adam([w1, b1, w2, b2], grads_of, AUTOENCODER_STEPS, 0.01)


def train_logistic(z, y):
    w = np.zeros(F)
    b = np.zeros(1)
    # A little L2, so that features the failing pods separate perfectly (restarts) get no unbounded weight.
    l2 = 1e-3

    def grads_of(params):
        w, b = params
        p = 1 / (1 + np.exp(-(z @ w + b)))
        loss = -np.mean(y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12)) + l2 * np.sum(w * w)
        g = (p - y) / len(y)
        return loss, [z.T @ g + 2 * l2 * w, g.sum(keepdims=True)]

    return adam([w, b], grads_of, FAILURE_STEPS, 0.05)


def score_mapping(errors):
    """A logistic curve in log error through (healthy median, 0.05) and (healthy 99th percentile, 0.95):
    score = sigmoid(slope · (ln e − centre)). It is monotone in the error, 0 at no error and → 1 as the error
    grows, and each tenfold error moves it by the same amount on the logit scale; so a threshold of 0.95 flags
    about 1 % of healthy pods, and a failing pod's error, orders of magnitude above, scores ≈ 1."""
    e50, e99 = np.percentile(errors, 50), np.percentile(errors, 99)
    logit = np.log(P99_SCORE / (1 - P99_SCORE))
    assert np.isclose(logit, -np.log(MEDIAN_SCORE / (1 - MEDIAN_SCORE)))
    slope = 2 * logit / (np.log(e99) - np.log(e50))
    centre = (np.log(e99) + np.log(e50)) / 2
    return float(e50), float(e99), slope, centre


def node(op, inputs, output, **attrs):
    return helper.make_node(op, inputs, [output], name=output, **attrs)


def constant(name, value):
    return numpy_helper.from_array(f32(value), name)


def model(name, doc, nodes, initializers):
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", F])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N"])],
        initializers,
    )
    m = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="nextgen-operator hack/models/train.py",
        producer_version=str(SCRIPT_VERSION),
        doc_string=doc,
    )
    onnx.checker.check_model(m, full_check=True)
    return m


def standardise_nodes(mean, std):
    return [node("Sub", [INPUT, "mean"], "centred"), node("Mul", ["centred", "inverse_std"], "z")], [
        constant("mean", mean),
        constant("inverse_std", 1 / f32(std)),
    ]


def autoencoder_model(mean, std, params, slope, centre):
    w1, b1, w2, b2 = params
    nodes, initializers = standardise_nodes(mean, std)
    nodes += [
        node("MatMul", ["z", "w1"], "h_linear"),
        node("Add", ["h_linear", "b1"], "h_biased"),
        node("Tanh", ["h_biased"], "h"),
        node("MatMul", ["h", "w2"], "r_linear"),
        node("Add", ["r_linear", "b2"], "reconstruction"),
        node("Sub", ["z", "reconstruction"], "residual"),
        node("Mul", ["residual", "residual"], "squared"),
        node("ReduceMean", ["squared"], "error", axes=[1], keepdims=0),
        node("Add", ["error", "epsilon"], "error_nonzero"),
        node("Log", ["error_nonzero"], "log_error"),
        node("Sub", ["log_error", "centre"], "log_error_centred"),
        node("Mul", ["log_error_centred", "slope"], "logit"),
        node("Sigmoid", ["logit"], OUTPUT),
    ]
    initializers += [
        constant("w1", w1),
        constant("b1", b1),
        constant("w2", w2),
        constant("b2", b2),
        constant("epsilon", LOG_EPSILON),
        constant("centre", centre),
        constant("slope", slope),
    ]
    doc = (
        "Anomaly score in [0, 1] of each pod's features (src/anomaly/features.ts): the mean squared error of a "
        "6-3-6 tanh autoencoder fitted to healthy pods, on standardised features, through a logistic curve in log "
        "error putting the healthy median at 0.05 and the healthy 99th percentile at 0.95."
    )
    return model("autoencoder", doc, nodes, initializers)


def failure_model(mean, std, w, b):
    nodes, initializers = standardise_nodes(mean, std)
    # w as a column and the result reshaped to [N]: ONNX Runtime's MatMul by a 1-D vector took 3 times as long.
    nodes += [
        node("MatMul", ["z", "w"], "logit_column"),
        node("Reshape", ["logit_column", "flat"], "logit_unbiased"),
        node("Add", ["logit_unbiased", "b"], "logit"),
        node("Sigmoid", ["logit"], OUTPUT),
    ]
    initializers += [
        constant("w", np.reshape(w, (F, 1))),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "flat"),
        constant("b", b),
    ]
    doc = (
        "Probability in [0, 1] that each pod fails, from its features (src/anomaly/features.ts): logistic regression "
        "on standardised features, fitted to healthy pods against failing and about-to-fail ones."
    )
    return model("failure", doc, nodes, initializers)


def run(m, x, output=OUTPUT):
    """The graph's own float32 arithmetic on rows x: the output, or any intermediate value by name."""
    # The reference Sigmoid evaluates exp(x) on both sides of 0 and warns where it overflows, on the side it drops.
    with np.errstate(over="ignore", invalid="ignore"):
        return ReferenceEvaluator(m).run([output], {INPUT: f32(x)})[0]


def number(x):
    """A float32 as its shortest decimal that reads back as the same float32: what the graph holds, legibly."""
    return float(np.format_float_positional(np.float32(x), unique=True, trim="-"))


def numbers(xs):
    return [number(x) for x in np.ravel(xs)]


def share(scores, threshold):
    return number(np.mean(scores >= threshold))


def metadata(name, description, output_meaning, mean, std, extra):
    return {
        "name": name,
        "description": description,
        "generatedBy": "hack/models/train.py",
        "scriptVersion": SCRIPT_VERSION,
        "seed": SEED,
        "opset": OPSET,
        "irVersion": IR_VERSION,
        "requirements": {"numpy": np.__version__, "onnx": onnx.__version__},
        "input": {"name": INPUT, "type": "float32", "shape": ["N", F]},
        "output": {"name": OUTPUT, "type": "float32", "shape": ["N"], "meaning": output_meaning},
        "features": FEATURES,
        "normalisation": {
            "kind": "standard score inside the graph: (x − mean) / std, std floored",
            "mean": numbers(mean),
            "std": numbers(std),
            "stdFloor": STD_FLOOR,
        },
        **extra,
    }


def to_json(value, indent=""):
    """JSON as Prettier prints it (the repository's lint checks these files): objects one key a line, arrays of
    scalars on one line, which every array here fits within Prettier's 120 columns."""
    inner = indent + "  "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {to_json(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{indent}}}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return "[\n" + ",\n".join(inner + to_json(v, inner) for v in value) + f"\n{indent}]"
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def write_json(path, value):
    path.write_text(to_json(value) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = pathlib.Path(__file__).resolve().parent
    parser.add_argument("--out", type=pathlib.Path, default=here.parent.parent / "src" / "anomaly" / "models")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)

    train_healthy = with_absences(rng, healthy(rng, 20_000))
    # Healthy pods the autoencoder is not fitted to: one set to calibrate its score on, another to judge it by.
    calibrate_healthy = with_absences(rng, healthy(rng, 20_000))
    check_healthy = with_absences(rng, healthy(rng, 20_000))
    train_sick = np.concatenate([with_absences(rng, sick(rng, 1_000, mode)) for mode in SICK_MODES])
    train_degrading = with_absences(rng, degrading(rng, 5_000))
    # Judged as the operator sees them when the failing signal is observed: no absences.
    check_sick = {mode: sick(rng, 1_000, mode) for mode in SICK_MODES}
    check_degrading = degrading(rng, 1_000)

    mean = train_healthy.mean(0)
    std = np.maximum(train_healthy.std(0), STD_FLOOR)
    standardise = lambda x: (x - mean) / std  # noqa: E731

    params, autoencoder_loss = train_autoencoder(rng, standardise(train_healthy))
    # Calibrated on the graph's own float32 arithmetic, on healthy pods it was not fitted to.
    errors = run(autoencoder_model(mean, std, params, 1, 0), calibrate_healthy, "error").astype(np.float64)
    e50, e99, slope, centre = score_mapping(errors)
    autoencoder = autoencoder_model(mean, std, params, slope, centre)
    healthy_scores = run(autoencoder, check_healthy)
    sick_scores = {mode: run(autoencoder, x) for mode, x in check_sick.items()}

    failure_x = np.concatenate([train_healthy, train_sick, train_degrading])
    failure_y = np.concatenate([np.zeros(len(train_healthy)), np.ones(len(train_sick) + len(train_degrading))])
    (w, b), failure_loss = train_logistic(standardise(failure_x), failure_y)
    failure = failure_model(mean, std, w, b)
    failure_healthy = run(failure, check_healthy)
    failure_sick = {mode: run(failure, x) for mode, x in check_sick.items()}
    failure_degrading = run(failure, check_degrading)

    onnx.save(autoencoder, out / "autoencoder.onnx")
    onnx.save(failure, out / "failure.onnx")
    write_json(
        out / "autoencoder.json",
        metadata(
            "autoencoder",
            "A 6→3→6 autoencoder (tanh hidden layer, linear output) fitted to healthy pods only; a pod it cannot "
            "reconstruct is unlike them.",
            "anomaly score in [0, 1]: the mean squared reconstruction error e of the standardised features, mapped "
            "by scoreMapping; higher is more anomalous",
            mean,
            std,
            {
                "scoreMapping": {
                    "formula": "score = sigmoid(slope · (ln(e + epsilon) − centre))",
                    "anchors": "the healthy median error scores 0.05, the healthy 99th percentile 0.95",
                    "healthyMedianError": number(e50),
                    "healthyP99Error": number(e99),
                    "slope": number(slope),
                    "centre": number(centre),
                    "epsilon": LOG_EPSILON,
                },
                "threshold": P99_SCORE,
                "training": {
                    "healthyRows": len(train_healthy),
                    "steps": AUTOENCODER_STEPS,
                    "optimiser": "Adam, full batch, rate 0.01",
                    "finalMeanSquaredError": number(autoencoder_loss),
                },
                "evaluation": {
                    "rows": "20 000 healthy pods with absences, 1 000 of each failure with its signal observed",
                    "healthyMedianScore": number(np.median(healthy_scores)),
                    "healthyShareAtOrAboveThreshold": share(healthy_scores, P99_SCORE),
                    "sickShareAtOrAboveThreshold": {m: share(s, P99_SCORE) for m, s in sick_scores.items()},
                },
            },
        ),
    )
    write_json(
        out / "failure.json",
        metadata(
            "failure",
            "Logistic regression fitted to healthy pods (label 0) against failing and about-to-fail ones (label 1), "
            "at one failing pod to two healthy: its probability is relative to that mix, not to a fleet's base rate.",
            "probability in [0, 1] that the pod fails; act above threshold",
            mean,
            std,
            {
                "weights": numbers(w),
                "bias": number(b[0]),
                "threshold": FAILURE_THRESHOLD,
                "training": {
                    "healthyRows": len(train_healthy),
                    "failingRows": len(train_sick) + len(train_degrading),
                    "steps": FAILURE_STEPS,
                    "optimiser": "Adam, full batch, rate 0.05, L2 0.001",
                    "finalLogLoss": number(failure_loss),
                },
                "evaluation": {
                    "rows": "20 000 healthy pods with absences, 1 000 of each failure and of about-to-fail pods "
                    "with the signal observed",
                    "healthyShareAtOrAboveThreshold": share(failure_healthy, FAILURE_THRESHOLD),
                    "sickShareAtOrAboveThreshold": {m: share(s, FAILURE_THRESHOLD) for m, s in failure_sick.items()},
                    "degradingShareAtOrAboveThreshold": share(failure_degrading, FAILURE_THRESHOLD),
                },
            },
        ),
    )
    for path in sorted(out.iterdir()):
        print(f"{path}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
