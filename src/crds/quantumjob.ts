import type { Condition, Resource } from "../runtime/objects.ts";
import type { LabelSelector } from "../runtime/labels.ts";
import { LANGUAGE_FEATURES, type LanguageFeature } from "../quantum/circuit.ts";
import { PRECISIONS, type Precision } from "../quantum/placement.ts";
import { BACKEND_TYPES, type BackendType } from "./quantumbackend.ts";
import {
  type CrdDefinition,
  type ValidationRule,
  conditionsSchema,
  customKind,
  dateTime,
  int,
  labelSelectorSchema,
  observedGenerationSchema,
  str,
} from "./types.ts";

export const QuantumJobKind = customKind("QuantumJob", "quantumjobs", true);

export const STRATEGIES = ["Balanced", "Fidelity", "Latency", "Cost", "Carbon"] as const;
export const JOB_PHASES = ["Pending", "Queued", "Scheduled", "Running", "Succeeded", "Failed", "Cancelled"] as const;
export type JobPhase = (typeof JOB_PHASES)[number];
/** Bitstrings shown in status.result.counts; the full histogram goes to the resultRef ConfigMap. */
export const MAX_COUNTS_IN_STATUS = 16;

export interface QuantumJobSpec {
  circuit: { openqasm?: string; configMapRef?: { name: string; key: string } };
  shots: number;
  backend: {
    name?: string;
    selector?: LabelSelector;
    types?: BackendType[];
    maxErrorRate?: number;
    minQuantumVolume?: number;
    fallbackToSimulator: boolean;
  };
  placement: { strategy: (typeof STRATEGIES)[number] };
  priority: number;
  maxRetries: number;
  activeDeadlineSeconds?: number;
  noise?: { fromBackend?: string };
  ttlSecondsAfterFinished?: number;
  schedule?: { deferrable?: boolean; notBefore?: string; notAfter?: string };
}

export interface QuantumJobStatus {
  phase?: JobPhase;
  qubits?: number;
  gates?: { singleQubit: number; twoQubit: number; multiQubit: number; measurements: number; total: number };
  depth?: number;
  languageFeatures?: LanguageFeature[];
  circuitHash?: string;
  placement?: { backend?: string; site?: string; score?: number; reasons: string[]; fallbackUsed: boolean };
  attempts?: number;
  remoteJobId?: string;
  jobRef?: { name: string };
  schedule?: { deferredUntil?: string; startReason?: string; forecastGramsPerKWh?: number };
  startTime?: string;
  retryTime?: string;
  completionTime?: string;
  durationSeconds?: number;
  result?: {
    shots: number;
    counts: Record<string, number>;
    distinct: number;
    topResult: string;
    failedShots?: number;
    resultRef?: { name: string; key: string };
    device?: string;
    precision?: Precision;
  };
  lastError?: string;
  observedGeneration?: number;
  conditions?: Condition[];
}

export type QuantumJob = Resource<QuantumJobSpec, QuantumJobStatus>;

/** Phases of a job that has not run yet; a job back in Pending or Queued after a failed attempt has a startTime. */
const UNSTARTED_PHASES: readonly JobPhase[] = ["Pending", "Queued"];
/** CEL, on the whole object: the stored job has started a run or finished. */
const startedOrFinished =
  "has(oldSelf.status) && (has(oldSelf.status.startTime) || (has(oldSelf.status.phase) && " +
  `!(oldSelf.status.phase in [${UNSTARTED_PHASES.map((p) => `'${p}'`).join(", ")}])))`;

/**
 * A spec field that is what the job runs: placement may still weigh a change before the first run, but once a run
 * started (or the job finished) a change would apply to retries only, or to nothing.
 */
const fixedOnceStarted = (field: "circuit" | "shots", instead: string): ValidationRule => ({
  rule: `!(${startedOrFinished}) || self.spec.${field} == oldSelf.spec.${field}`,
  message: `cannot change once the job has started or finished: create a new QuantumJob ${instead}.`,
  reason: "FieldValueForbidden",
  fieldPath: `.spec.${field}`,
});

export const quantumJobCrd: CrdDefinition = {
  kind: QuantumJobKind,
  singular: "quantumjob",
  shortNames: ["qj"],
  description:
    "A quantum circuit (OpenQASM 3) to run for a number of shots: the operator places it on the QuantumBackend that " +
    "suits it best (explaining why), runs it, and reports the measured counts in status.",
  spec: {
    type: "object",
    description: "The circuit and how it should be run.",
    required: ["circuit"],
    properties: {
      circuit: {
        type: "object",
        description: "The OpenQASM 3 program: inline, or in a ConfigMap (exactly one).",
        "x-kubernetes-validations": [
          {
            rule: "has(self.openqasm) != has(self.configMapRef)",
            message:
              "Give the program in exactly one of spec.circuit.openqasm (inline) or spec.circuit.configMapRef " +
              "(a ConfigMap holding it).",
          },
        ],
        properties: {
          openqasm: { type: "string", minLength: 1, description: "The program's source." },
          configMapRef: {
            type: "object",
            description: "A ConfigMap in the job's namespace holding the program.",
            required: ["name"],
            properties: {
              name: str("The ConfigMap's name."),
              key: { type: "string", default: "circuit.qasm", description: "The key holding the source." },
            },
          },
        },
      },
      shots: { type: "integer", minimum: 1, maximum: 100000, default: 1024, description: "Times to run the circuit." },
      backend: {
        type: "object",
        description: "Which backends may run it.",
        default: {},
        properties: {
          name: str("Run only on this QuantumBackend."),
          selector: labelSelectorSchema("QuantumBackends", "a QuantumBackend"),
          types: {
            type: "array",
            description: "Backend types allowed (default: any).",
            items: { type: "string", enum: [...BACKEND_TYPES], description: "Simulator or QPU." },
          },
          maxErrorRate: {
            type: "number",
            minimum: 0,
            maximum: 1,
            description: "Reject backends whose estimated chance of a wrong shot (from calibration) exceeds this.",
          },
          minQuantumVolume: { type: "integer", minimum: 1, description: "Reject QPUs below this quantum volume." },
          fallbackToSimulator: {
            type: "boolean",
            default: true,
            description: "When no allowed backend can take the circuit, run it on a simulator rather than wait.",
          },
        },
      },
      placement: {
        type: "object",
        description: "How to choose among the backends that can take it.",
        default: {},
        properties: {
          strategy: {
            type: "string",
            enum: [...STRATEGIES],
            default: "Balanced",
            description:
              "Fidelity (estimated success from calibration), Latency (queue wait and site latency), Cost, " +
              "Carbon, or Balanced (all of them).",
          },
        },
      },
      priority: {
        type: "integer",
        default: 0,
        description: "Higher runs first when a backend's slots are full; equal priorities run oldest first.",
      },
      maxRetries: {
        type: "integer",
        minimum: 0,
        maximum: 20,
        default: 3,
        description: "Attempts after a failed one, with backoff, before the job is Failed.",
      },
      activeDeadlineSeconds: {
        type: "integer",
        minimum: 1,
        description: "Fail the job (cancelling its run) if it has not finished this long after it first started.",
      },
      noise: {
        type: "object",
        description: "Simulate a device's noise.",
        properties: {
          fromBackend: str("A QPU QuantumBackend whose calibration a simulator applies as Pauli noise."),
        },
      },
      ttlSecondsAfterFinished: {
        type: "integer",
        minimum: 0,
        description: "Delete the job this long after it Succeeded, Failed or was Cancelled.",
      },
      schedule: {
        type: "object",
        description:
          "When the job may start. A deferrable job in a namespace whose CarbonBudget defers QuantumJobs starts at " +
          "the lowest forecast intensity between notBefore and notAfter, and at notAfter at the latest.",
        "x-kubernetes-validations": [
          {
            rule: "!has(self.deferrable) || !self.deferrable || has(self.notAfter)",
            message: "a deferrable job needs notAfter, the latest time it may start.",
            fieldPath: ".notAfter",
          },
          {
            rule: "!has(self.notBefore) || !has(self.notAfter) || timestamp(self.notBefore) <= timestamp(self.notAfter)",
            message: "notBefore must not be after notAfter.",
          },
        ],
        properties: {
          deferrable: { type: "boolean", description: "The job may wait for a cleaner grid." },
          notBefore: dateTime("The earliest time the job may start."),
          notAfter: dateTime("The latest time the job may start."),
        },
      },
    },
  },
  status: {
    type: "object",
    description: "Where the job is, and what it measured.",
    properties: {
      phase: {
        type: "string",
        enum: [...JOB_PHASES],
        description: "Pending, Queued, Scheduled, Running, Succeeded, Failed or Cancelled.",
      },
      qubits: int("Qubits the circuit allocates, as the QDK compiler counts them."),
      gates: {
        type: "object",
        description:
          "Gate applications as the QDK compiler unrolls the circuit (loops, gate definitions and subroutines " +
          "expanded); for a circuit whose operations depend on what it measures, those of one simulated run.",
        properties: {
          singleQubit: int("Single-qubit gates."),
          twoQubit: int("Two-qubit gates."),
          multiQubit: int("Gates on three or more qubits."),
          measurements: int("Qubit measurements."),
          total: int("All gates."),
        },
      },
      depth: int("Layers of the compiler's circuit: operations on disjoint qubits share one."),
      languageFeatures: {
        type: "array",
        description:
          "The OpenQASM 3 features the circuit uses that some runner lacks; placement needs a runner with them.",
        items: { type: "string", enum: [...LANGUAGE_FEATURES], description: "An OpenQASM 3 feature." },
      },
      circuitHash: str("sha256 of the circuit's source: the counts above are the compiler's for this source."),
      placement: {
        type: "object",
        description: "Where the job was placed, and why.",
        properties: {
          backend: str("The QuantumBackend chosen."),
          site: str("The EdgeNode it runs at."),
          score: { type: "number", description: "Its score under the strategy, 0 to 1." },
          reasons: {
            type: "array",
            description: "Why the chosen backend won, and why each other was rejected or scored lower.",
            items: str("One backend's line."),
          },
          fallbackUsed: { type: "boolean", description: "No allowed backend could take it: a simulator did." },
        },
      },
      attempts: int("Runs started, including retries."),
      remoteJobId: str("The provider's job ID (Remote backends); resumed, never resubmitted."),
      jobRef: {
        type: "object",
        description: "The batch/v1 Job running it (Job backends).",
        properties: { name: str("The Job's name.") },
      },
      schedule: {
        type: "object",
        description: "Why the job starts when it does.",
        properties: {
          deferredUntil: dateTime("While deferred: when it will start."),
          startReason: str(
            "NotBefore, LowestForecast (the forecast's minimum in its window), Deadline (notAfter reached) or " +
              "NoForecast (the budget has no usable forecast).",
          ),
          forecastGramsPerKWh: { type: "number", description: "The forecast intensity at the chosen start." },
        },
      },
      startTime: dateTime("When the job first started running (activeDeadlineSeconds counts from here)."),
      retryTime: dateTime(
        "When the next start may be made: after a failed attempt (backoff), or when the provider asked to wait.",
      ),
      completionTime: dateTime("When the job finished."),
      durationSeconds: { type: "number", description: "Seconds from start to completion." },
      result: {
        type: "object",
        description: "What the shots measured.",
        properties: {
          shots: int("Shots that produced a result."),
          counts: {
            type: "object",
            description:
              "The most frequent bitstrings (at most 16), most-significant classical bit first as OpenQASM and " +
              "Qiskit print them; registers separated by spaces, the last declared first.",
            additionalProperties: { type: "integer", description: "Shots that measured this bitstring." },
          },
          distinct: int("Distinct bitstrings measured."),
          topResult: str("The most frequent bitstring and its share."),
          failedShots: int("Shots that stopped with a runtime error."),
          device: str(
            "Job mode: the hardware the runner simulated on, as it reported it, e.g. " +
              '"GPU NVIDIA A100-SXM4-80GB, 80 GiB" or "CPU AMD EPYC 7763, 1 thread".',
          ),
          precision: {
            type: "string",
            enum: [...PRECISIONS],
            description: "Job mode: the state vector's precision, as the runner reported it.",
          },
          resultRef: {
            type: "object",
            description: "A ConfigMap with the full histogram, when it does not fit here.",
            properties: { name: str("The ConfigMap's name."), key: str("The key holding counts as JSON.") },
          },
        },
      },
      lastError: str("The last attempt's error."),
      observedGeneration: observedGenerationSchema,
      conditions: conditionsSchema,
    },
  },
  validations: [
    fixedOnceStarted("circuit", "to run another circuit"),
    fixedOnceStarted("shots", "for another number of shots"),
  ],
  printerColumns: [
    { name: "Qubits", type: "integer", jsonPath: ".status.qubits", description: "Qubits in the circuit." },
    { name: "Shots", type: "integer", jsonPath: ".spec.shots", description: "Shots asked for." },
    { name: "Backend", type: "string", jsonPath: ".status.placement.backend", description: "Where it runs." },
    { name: "Phase", type: "string", jsonPath: ".status.phase", description: "The job's phase." },
    { name: "Top result", type: "string", jsonPath: ".status.result.topResult", description: "Most frequent." },
  ],
};
