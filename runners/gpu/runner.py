"""The GPU runner: one OpenQASM circuit on Qiskit Aer's state-vector simulator, honouring the runner contract.

The contract (README, "The runner contract") is the one `nextgen-operator runner` implements: one JSON document
goes to the result file (the container's termination message) and to stdout, with exit code 0 (success),
1 (SimulationFailed), 2 (InvalidInput) or 3 (InvalidCircuit). Aer runs on the GPU when it sees one (the
qiskit-aer-gpu build) and on the CPU otherwise; the document names the device, the precision and the time taken.

Environment:
  NEXTGEN_CIRCUIT           the OpenQASM 3 source (or NEXTGEN_CIRCUIT_FILE, a path to it)
  NEXTGEN_SHOTS             the number of shots, a positive integer
  NEXTGEN_NOISE             optional Pauli noise: {"pauli":[px,py,pz]} (qubit loss is refused: Aer has none)
  NEXTGEN_PRECISION         double (default) or single: 16 or 8 bytes per amplitude
  NEXTGEN_DEVICE            auto (default: the GPU when Aer sees one), GPU (fail without one) or CPU
  NEXTGEN_RESULT_FILE       where to write the document (default /dev/termination-log)
  NEXTGEN_RESULT_MAX_BYTES  the document's size limit (default 4096, what Kubernetes keeps of a termination message)

Noise means what it means on the operator's embedded QDK simulator: a Pauli channel (X, Y, Z with the given
probabilities) on every qubit an operation touches, after each gate and before each measurement; identity gates
and resets carry none.
"""

import contextlib
import json
import os
import re
import sys
import tempfile
import time

# A Job's root filesystem is read-only, with no writable /tmp: dill, which qiskit imports, asks for the temporary
# directory as it is imported, and Python's search for a writable one fails ("No usable temporary directory found").
# Naming the directory skips the search; the runner writes no temporary files.
tempfile.tempdir = os.environ.get("TMPDIR") or "/tmp"

# What Kubernetes keeps of a termination message.
TERMINATION_MESSAGE_MAX_BYTES = 4096
# An error message leaves room for the rest of the document in the termination message.
MAX_MESSAGE_CHARS = 1000
# Aer takes shots as a 32-bit count, as the simulator behind `nextgen-operator runner` does.
MAX_SHOTS = 2**31 - 1
PRECISIONS = ("double", "single")
DEVICES = ("auto", "GPU", "CPU")
# Operations that are not gates: Pauli noise goes before a measurement, nowhere near the others.
NOT_GATES = {"measure", "reset", "barrier", "delay", "if_else", "while_loop", "for_loop", "switch_case"}

EXIT_CODES = {"SimulationFailed": 1, "InvalidInput": 2, "InvalidCircuit": 3}


class RunnerError(Exception):
    """A failure the document reports: reason is one of EXIT_CODES."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


def invalid_input(message):
    return RunnerError("InvalidInput", message)


def read_input(env):
    """The circuit source, shots, noise, precision and device the environment asks for."""
    # Empty counts as unset, as a template that fills in nothing leaves a variable.
    inline = env.get("NEXTGEN_CIRCUIT") or None
    path = env.get("NEXTGEN_CIRCUIT_FILE") or None
    if inline is not None and path is not None:
        raise invalid_input("set NEXTGEN_CIRCUIT or NEXTGEN_CIRCUIT_FILE, not both")
    source = inline
    if path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                source = f.read()
        except OSError as e:
            raise invalid_input(f'cannot read NEXTGEN_CIRCUIT_FILE "{path}": {e.strerror}') from e
    if not source or not source.strip():
        raise invalid_input("no circuit: set NEXTGEN_CIRCUIT or NEXTGEN_CIRCUIT_FILE")
    shots_text = env.get("NEXTGEN_SHOTS", "")
    if not re.fullmatch(r"[1-9][0-9]*", shots_text) or int(shots_text) > MAX_SHOTS:
        raise invalid_input(f'NEXTGEN_SHOTS must be an integer from 1 to {MAX_SHOTS}, got "{shots_text}"')
    precision = env.get("NEXTGEN_PRECISION") or "double"
    if precision not in PRECISIONS:
        raise invalid_input(f'NEXTGEN_PRECISION must be double or single, got "{precision}"')
    device = env.get("NEXTGEN_DEVICE") or "auto"
    if device not in DEVICES:
        raise invalid_input(f'NEXTGEN_DEVICE must be auto, GPU or CPU, got "{device}"')
    max_bytes = env.get("NEXTGEN_RESULT_MAX_BYTES") or str(TERMINATION_MESSAGE_MAX_BYTES)
    if not re.fullmatch(r"[1-9][0-9]*", max_bytes):
        raise invalid_input(f'NEXTGEN_RESULT_MAX_BYTES must be a positive integer, got "{max_bytes}"')
    noise = parse_noise(env["NEXTGEN_NOISE"]) if env.get("NEXTGEN_NOISE") else None
    return {
        "source": source,
        "shots": int(shots_text),
        "noise": noise,
        "precision": precision,
        "device": device,
        "max_bytes": int(max_bytes),
    }


def parse_noise(text):
    """[px, py, pz] from {"pauli":[px,py,pz],"qubitLoss":q}; Aer has no qubit loss, so a loss above 0 is refused."""
    invalid = invalid_input(f'NEXTGEN_NOISE must be {{"pauli":[px,py,pz],"qubitLoss":q}} with probabilities, got {text}')
    try:
        value = json.loads(text)
    except ValueError:
        raise invalid from None
    if not isinstance(value, dict):
        raise invalid

    def probability(p):
        return isinstance(p, (int, float)) and not isinstance(p, bool) and 0 <= p <= 1

    pauli = value.get("pauli")
    if not isinstance(pauli, list) or len(pauli) != 3 or not all(probability(p) for p in pauli) or sum(pauli) > 1:
        raise invalid
    loss = value.get("qubitLoss", 0)
    if not probability(loss):
        raise invalid
    if loss > 0:
        raise invalid_input("qubitLoss is not supported: Qiskit Aer cannot lose a qubit; use the embedded simulator")
    return [float(p) for p in pauli]


def position_message(line, column, message):
    """The embedded runner's way of locating an error: 1-based line and column."""
    return f"line {line}, column {column + 1}: {message}"


def load_circuit(source):
    """The program as a QuantumCircuit; RunnerError InvalidCircuit, located where the importer says, if it is not one."""
    from qiskit import qasm3

    try:
        return qasm3.loads(source)
    except qasm3.QASM3ImporterError as e:
        # The importer's message starts "line,column: " (a 0-based column).
        located = re.match(r"^(\d+),(\d+): (.*)$", e.message, re.S)
        message = position_message(int(located[1]), int(located[2]), located[3]) if located else e.message
        raise RunnerError("InvalidCircuit", message) from None
    except Exception as e:  # noqa: BLE001 - the importer fails in many ways (parse errors, unsupported statements)
        raise RunnerError("InvalidCircuit", syntax_error(e) or f"the Qiskit importer cannot convert it: {e}") from None


def syntax_error(error):
    """Where the parser stopped, from the ANTLR exception the parser's empty error wraps; None if it is not one."""
    seen = error
    while seen is not None:
        for candidate in (seen, *seen.args):
            token = getattr(candidate, "offendingToken", None)
            if token is not None:
                return position_message(token.line, token.column, f"unexpected {token.text!r}")
        seen = seen.__cause__ or seen.__context__
    return None


def without_identities(circuit):
    """The circuit less its identity gates: the importer writes `id` as U(0,0,0), which would otherwise draw noise."""
    kept = circuit.copy_empty_like()
    for instruction in circuit.data:
        op = instruction.operation
        if op.name == "u" and all(float(p) == 0 for p in op.params):
            continue
        kept.append(instruction)
    return kept


def noise_model(circuit, pauli):
    """The contract's Pauli noise as an Aer noise model for the gates this circuit uses."""
    from qiskit_aer.noise import NoiseModel, pauli_error

    px, py, pz = pauli
    single = pauli_error([("X", px), ("Y", py), ("Z", pz), ("I", 1 - px - py - pz)])
    model = NoiseModel()
    # Aer applies a measurement's error before it: the embedded simulator's readout noise.
    model.add_all_qubit_quantum_error(single, "measure")
    for name, arity in gate_arities(circuit).items():
        error = single
        for _ in range(arity - 1):
            error = error.tensor(single)
        model.add_all_qubit_quantum_error(error, name)
    return model


def gate_arities(circuit):
    """Each gate name in the circuit, including inside control flow, with the number of qubits it acts on."""
    arities = {}
    for instruction in circuit.data:
        op = instruction.operation
        for block in getattr(op, "blocks", ()):
            arities.update(gate_arities(block))
        if op.name not in NOT_GATES:
            arities[op.name] = len(instruction.qubits)
    return arities


def gpu_visible():
    from qiskit_aer import AerSimulator

    return "GPU" in AerSimulator().available_devices()


def device_description(kind):
    """The device as the result names it: the GPU's model and memory (NVML), or the CPU's model and threads."""
    if kind == "GPU":
        try:
            import pynvml

            pynvml.nvmlInit()
            try:
                handle = pynvml.nvmlDeviceGetHandleByIndex(0)
                name = pynvml.nvmlDeviceGetName(handle)
                return {
                    "type": "GPU",
                    "name": name.decode() if isinstance(name, bytes) else name,
                    "memoryBytes": int(pynvml.nvmlDeviceGetMemoryInfo(handle).total),
                }
            finally:
                pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001 - no NVML in the container: Aer still ran on the GPU
            return {"type": "GPU", "name": "unknown (NVML unavailable)"}
    name = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        found = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
        name = found[1].strip() if found else name
    return {"type": "CPU", "name": name, "threads": len(os.sched_getaffinity(0))}


def simulate(request):
    """Runs the request; returns (counts, shots, device, duration ms) or raises RunnerError."""
    from qiskit_aer import AerSimulator

    started = time.perf_counter()
    circuit = without_identities(load_circuit(request["source"]))
    device = request["device"]
    if device == "auto":
        device = "GPU" if gpu_visible() else "CPU"
    elif device == "GPU" and not gpu_visible():
        raise RunnerError("SimulationFailed", "NEXTGEN_DEVICE is GPU but Aer sees no GPU (is this qiskit-aer-gpu?)")
    options = {"method": "statevector", "device": device, "precision": request["precision"]}
    if request["noise"] is not None:
        options["noise_model"] = noise_model(circuit, request["noise"])
    try:
        result = AerSimulator(**options).run(circuit, shots=request["shots"]).result()
    except Exception as e:  # noqa: BLE001 - Aer raises on circuits it cannot take (unsupported instructions)
        raise RunnerError("SimulationFailed", str(e)) from None
    if not result.success:
        raise RunnerError("SimulationFailed", result.results[0].status if result.results else result.status)
    counts = dict(result.get_counts(0)) if circuit.num_clbits else {"": request["shots"]}
    return counts, device_description(device), (time.perf_counter() - started) * 1000


def top_counts(counts, limit):
    """The limit most frequent bitstrings, most frequent first, ties in bitstring order (as the operator sorts)."""
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: max(0, limit)])


def success_document(counts, device, precision, duration_ms, max_bytes):
    """The success document, counts cut to the most frequent bitstrings when the whole would not fit in max_bytes."""
    distinct = len(counts)

    def document(kept):
        return {
            "shots": sum(counts.values()),
            "counts": kept,
            "distinct": distinct,
            "truncated": len(kept) < distinct,
            "durationMs": round(duration_ms),
            "device": device,
            "precision": precision,
        }

    def size(doc):
        return len(json.dumps(doc, separators=(",", ":")).encode())

    full = document(counts)
    if size(full) <= max_bytes:
        return full
    # The largest number of bitstrings that fits: size grows with the limit, so a binary search finds it.
    fits, too_many = 0, distinct
    while too_many - fits > 1:
        mid = (fits + too_many) // 2
        if size(document(top_counts(counts, mid))) <= max_bytes:
            fits = mid
        else:
            too_many = mid
    return document(top_counts(counts, fits))


def failure_document(reason, message):
    return {"error": {"reason": reason, "message": message[:MAX_MESSAGE_CHARS]}}


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    result_file = os.environ.get("NEXTGEN_RESULT_FILE") or "/dev/termination-log"
    try:
        request = read_input(os.environ)
        counts, device, duration_ms = simulate(request)
        doc = success_document(counts, device, request["precision"], duration_ms, request["max_bytes"])
        code = 0
    except RunnerError as e:
        doc, code = failure_document(e.reason, str(e)), EXIT_CODES[e.reason]
    except Exception as e:  # noqa: BLE001 - whatever else went wrong is a failed simulation, reported, not a traceback
        doc, code = failure_document("SimulationFailed", f"{type(e).__name__}: {e}"), 1
    text = json.dumps(doc, separators=(",", ":"))
    print(text, flush=True)
    try:
        with open(result_file, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        print(f"error: cannot write the result to {result_file}: {e.strerror}", file=sys.stderr)
        return code or 1
    return code


if __name__ == "__main__":
    sys.exit(main())
