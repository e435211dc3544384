import { LANGUAGE_FEATURES, type LanguageFeature, QISKIT_FEATURES } from "../quantum/circuit.ts";
import { PRECISIONS, type Precision, STATE_VECTOR_SHARE } from "../quantum/placement.ts";
import type { Condition, Resource } from "../runtime/objects.ts";
import {
  type CrdDefinition,
  type Schema,
  conditionsSchema,
  customKind,
  dateTime,
  int,
  observedGenerationSchema,
  str,
} from "./types.ts";

export const QuantumBackendKind = customKind("QuantumBackend", "quantumbackends", false);

export const BACKEND_TYPES = ["Simulator", "QPU"] as const;
export type BackendType = (typeof BACKEND_TYPES)[number];
export const EXECUTION_MODES = ["Embedded", "Job", "Remote"] as const;
export type ExecutionMode = (typeof EXECUTION_MODES)[number];
/** Remote providers the operator has an adapter for (src/quantum/providers). */
export const REMOTE_PROVIDERS = ["IBMQuantum"] as const;

export interface Toleration {
  key?: string;
  operator?: "Exists" | "Equal";
  value?: string;
  effect?: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
  tolerationSeconds?: number;
}

export interface Calibration {
  singleQubitError?: number;
  twoQubitError?: number;
  readoutError?: number;
  quantumVolume?: number;
}

export interface QuantumBackendSpec {
  type: BackendType;
  execution: {
    mode: ExecutionMode;
    image?: string;
    command?: string[];
    resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
    nodeSelector?: Record<string, string>;
    tolerations?: Toleration[];
    provider?: (typeof REMOTE_PROVIDERS)[number];
    endpoint?: string;
    authEndpoint?: string;
    device?: string;
    credentialsSecretRef?: { name: string; namespace?: string };
    calibrationRefreshSeconds: number;
    precision: Precision;
    gpuMemory?: string | number;
  };
  siteRef?: { name: string };
  capabilities: {
    maxQubits: number;
    maxShots: number;
    basisGates?: string[];
    languageFeatures?: LanguageFeature[];
  };
  calibration?: Calibration;
  capacity: { maxConcurrentJobs: number };
  cost?: { perShot?: number; perSecond?: number; currency: string };
  carbon?: { intensityGramsPerKWh?: number; powerWatts?: number };
}

export interface QuantumBackendStatus {
  phase?: "Ready" | "Unavailable";
  reason?: string;
  message?: string;
  running?: number;
  queued?: number;
  queueHead?: QueuedJob[];
  remoteQueueLength?: number;
  maxQubits?: number;
  calibration?: Calibration;
  lastCalibrationTime?: string;
  observedGeneration?: number;
  conditions?: Condition[];
}

/** One job of a backend's queue: its position (1 starts next), which job, and its priority. */
export interface QueuedJob {
  position: number;
  namespace: string;
  name: string;
  priority: number;
}

export type QuantumBackend = Resource<QuantumBackendSpec, QuantumBackendStatus>;

/**
 * Why a spec cannot work whatever else exists. The schema's rules reject such specs, and the controller reports
 * objects stored before the rules existed (status reason InvalidSpec), in the same words.
 */
export const INVALID_SPEC = {
  embeddedNotSimulator: "An Embedded backend runs the operator's simulator: set type Simulator.",
  jobNotSimulator: "A Job backend runs a simulator image on the site's nodes: set type Simulator.",
  remoteIncomplete: "A Remote backend needs spec.execution.provider and spec.execution.credentialsSecretRef.",
  jobWithoutSite: "A Job backend runs on a site's nodes: set spec.siteRef.",
  singleNeedsRunner:
    "Single precision needs a Job backend whose image runs it (e.g. the GPU runner): the operator's own " +
    "simulator runs in double precision.",
} as const;

const rate = (description: string): Schema => ({ type: "number", minimum: 0, maximum: 1, description });
const quantityMap = (description: string): Schema => ({
  type: "object",
  description,
  additionalProperties: { "x-kubernetes-int-or-string": true, description: "A quantity (e.g. 2, 4Gi, 500m)." },
});

export const calibrationSchema = (description: string): Schema => ({
  type: "object",
  description,
  properties: {
    singleQubitError: rate("Typical (median) error of a single-qubit gate, 0 to 1."),
    twoQubitError: rate("Typical (median) error of a two-qubit gate, 0 to 1."),
    readoutError: rate("Typical (median) measurement error, 0 to 1."),
    quantumVolume: { type: "integer", minimum: 1, description: "The device's quantum volume." },
  },
});

export const quantumBackendCrd: CrdDefinition = {
  kind: QuantumBackendKind,
  singular: "quantumbackend",
  shortNames: ["qb"],
  description:
    "A place where quantum circuits run: a simulator inside the operator, a simulator run as a Kubernetes Job on an " +
    "edge site's nodes (CPU or GPU), or a remote QPU behind a provider's API, with its capabilities, calibration, " +
    "capacity and cost, which placement weighs for each QuantumJob.",
  spec: {
    type: "object",
    description: "The backend as the admin declares it.",
    required: ["type"],
    "x-kubernetes-validations": [
      {
        rule: "self.execution.mode != 'Embedded' || self.type == 'Simulator'",
        message: INVALID_SPEC.embeddedNotSimulator,
        fieldPath: ".type",
      },
      {
        rule: "self.execution.mode != 'Job' || self.type == 'Simulator'",
        message: INVALID_SPEC.jobNotSimulator,
        fieldPath: ".type",
      },
      {
        rule: "self.execution.mode != 'Job' || has(self.siteRef)",
        message: INVALID_SPEC.jobWithoutSite,
        reason: "FieldValueRequired",
        fieldPath: ".siteRef",
      },
      {
        rule:
          "!has(self.execution.precision) || self.execution.precision != 'Single' || " +
          "(self.execution.mode == 'Job' && has(self.execution.image))",
        message: INVALID_SPEC.singleNeedsRunner,
        fieldPath: ".execution.precision",
      },
    ],
    properties: {
      type: { type: "string", enum: [...BACKEND_TYPES], description: "Simulator or QPU." },
      execution: {
        type: "object",
        description: "How circuits are run.",
        default: {},
        "x-kubernetes-validations": [
          {
            // The API server also checks this rule on execution's default ({}), where mode's own default is not applied.
            rule: "!has(self.mode) || self.mode != 'Remote' || (has(self.provider) && has(self.credentialsSecretRef))",
            message: INVALID_SPEC.remoteIncomplete,
            reason: "FieldValueRequired",
          },
        ],
        properties: {
          mode: {
            type: "string",
            enum: [...EXECUTION_MODES],
            default: "Embedded",
            description:
              "Embedded: in the operator's worker threads (the QDK simulator); Job: one batch/v1 Job per " +
              "QuantumJob on the site's nodes; Remote: a provider's HTTP API.",
          },
          image: str(
            "Job mode: the runner image (default: this operator's image running `nextgen-operator runner`). " +
              "Any image that honours the runner contract in the README will do, e.g. a GPU state-vector simulator.",
          ),
          command: {
            type: "array",
            description:
              "Job mode: the runner's command (default: the image's entrypoint; `runner` for this operator's image).",
            items: str("An argument."),
          },
          resources: {
            type: "object",
            description: "Job mode: the runner container's resources, e.g. limits of nvidia.com/gpu: 1.",
            properties: {
              requests: quantityMap("Resources requested."),
              limits: quantityMap("Resource limits; limits.memory bounds the circuits placement sends here."),
            },
          },
          nodeSelector: {
            type: "object",
            description: "Job mode: labels the runner's node must have, on top of being a member of the site.",
            additionalProperties: { type: "string", description: "The label's value." },
          },
          tolerations: {
            type: "array",
            description: "Job mode: taints the runner tolerates (e.g. of GPU nodes).",
            items: {
              type: "object",
              description: "A toleration (core/v1 Toleration).",
              properties: {
                key: str("The taint key."),
                operator: { type: "string", enum: ["Exists", "Equal"], description: "Exists or Equal." },
                value: str("The taint value, for Equal."),
                effect: {
                  type: "string",
                  enum: ["NoSchedule", "PreferNoSchedule", "NoExecute"],
                  description: "The effect tolerated; empty for all.",
                },
                tolerationSeconds: int("For NoExecute: how long the pod stays bound after the taint appears."),
              },
            },
          },
          provider: {
            type: "string",
            enum: [...REMOTE_PROVIDERS],
            description: "Remote mode: whose API (IBMQuantum: the IBM Quantum Platform's Qiskit Runtime REST API).",
          },
          endpoint: {
            type: "string",
            pattern: "^https?://",
            description:
              "Remote mode: the API's base URL (default: the provider's, e.g. https://quantum.cloud.ibm.com/api).",
          },
          authEndpoint: {
            type: "string",
            pattern: "^https?://",
            description:
              "Remote mode: the token service's base URL (default: the provider's, e.g. https://iam.cloud.ibm.com).",
          },
          device: str("Remote mode: the provider's name for the device (default: this backend's name)."),
          credentialsSecretRef: {
            type: "object",
            description:
              "Remote mode: the Secret holding the provider's credentials (IBMQuantum: keys apiKey and serviceCRN).",
            required: ["name"],
            properties: {
              name: str("The Secret's name."),
              namespace: str("The Secret's namespace (default: the operator's namespace, itechsmart-nextgen)."),
            },
          },
          calibrationRefreshSeconds: {
            type: "integer",
            minimum: 60,
            default: 900,
            description: "Remote mode: how often the device's status and calibration are read from the provider.",
          },
          precision: {
            type: "string",
            enum: [...PRECISIONS],
            default: "Double",
            description:
              "Simulators: the state vector's amplitudes, complex128 (Double, 16 bytes) or complex64 (Single, 8 " +
              "bytes: twice the qubits' worth of states in the same memory, about 7 significant digits). Job mode " +
              "passes it to the runner as NEXTGEN_PRECISION; Single needs a runner that has it, e.g. the GPU runner.",
          },
          gpuMemory: {
            "x-kubernetes-int-or-string": true,
            pattern: "^[0-9]+(\\.[0-9]+)?(k|M|G|T|P|Ki|Mi|Gi|Ti|Pi)?$",
            description:
              "Job mode on GPUs: the memory of the GPU the runner gets (e.g. 80Gi for an A100 80GB), which the state " +
              "vector must fit in; without it, limits.memory bounds the state. Placement sends a circuit of n qubits " +
              `here only if 2^n amplitudes take at most ${STATE_VECTOR_SHARE * 100}% of it (the rest is the CUDA context ` +
              "and workspace).",
          },
        },
      },
      siteRef: {
        type: "object",
        description: "The EdgeNode (site) the backend runs at; Job-mode runners are placed on its member nodes.",
        required: ["name"],
        properties: { name: str("The EdgeNode's name.") },
      },
      capabilities: {
        type: "object",
        description: "What circuits the backend can take.",
        default: {},
        properties: {
          maxQubits: { type: "integer", minimum: 1, default: 20, description: "The most qubits a circuit may use." },
          maxShots: {
            type: "integer",
            minimum: 1,
            default: 100000,
            description: "The most shots one job may ask for.",
          },
          basisGates: {
            type: "array",
            description: "The gates the device runs natively (informational; QPUs need circuits in these gates).",
            items: str("A gate name."),
          },
          languageFeatures: {
            type: "array",
            description:
              "The OpenQASM 3 features the runner accepts; placement sends no job using another one here. Default: " +
              "every feature for the QDK (Embedded, and Job mode with this operator's image); Qiskit's " +
              `(${QISKIT_FEATURES.join(", ")}) for IBMQuantum; none of them for any other image (say what ` +
              "it runs: the GPU runner takes Qiskit's).",
            "x-kubernetes-list-type": "set",
            items: { type: "string", enum: [...LANGUAGE_FEATURES], description: "An OpenQASM 3 feature." },
          },
        },
      },
      calibration: calibrationSchema(
        "Error rates as the admin knows them; for Remote backends the provider's figures replace these when it " +
          "offers them (see status.calibration).",
      ),
      capacity: {
        type: "object",
        description: "How much the backend runs at once.",
        default: {},
        properties: {
          maxConcurrentJobs: {
            type: "integer",
            minimum: 1,
            default: 2,
            description: "QuantumJobs running at once; more wait Queued by priority, then age.",
          },
        },
      },
      cost: {
        type: "object",
        description: "What a job costs, for the Cost strategy.",
        properties: {
          perShot: { type: "number", minimum: 0, description: "Cost of one shot." },
          perSecond: { type: "number", minimum: 0, description: "Cost of one second of execution." },
          currency: { type: "string", default: "USD", description: "The currency of both figures." },
        },
      },
      carbon: {
        type: "object",
        description:
          "What running here emits, for placement's carbon score. A CarbonBudget with preferGreenSites supplies the " +
          "live intensity of the backend's site (its EdgeNode's carbonRegion); intensityGramsPerKWh is the fallback.",
        properties: {
          intensityGramsPerKWh: {
            type: "number",
            minimum: 0,
            description:
              "Grid carbon intensity where the backend runs, gCO2e/kWh, when no CarbonBudget knows its site's.",
          },
          powerWatts: { type: "number", minimum: 0, description: "Power drawn while a job runs, W." },
        },
      },
    },
  },
  status: {
    type: "object",
    description: "The backend as the operator observes it.",
    properties: {
      phase: {
        type: "string",
        enum: ["Ready", "Unavailable"],
        description: "Ready: placement may send work here; Unavailable: see reason and message.",
      },
      reason: str(
        "Why it is in this phase: Ready, InvalidSpec, SiteNotFound, SiteOffline, MissingCredentials, " +
          "Unauthorized, ProviderUnreachable or DeviceOffline.",
      ),
      message: str("What happened, and what to do about it."),
      running: int("QuantumJobs running here now."),
      queued: int("QuantumJobs placed here waiting for a slot."),
      queueHead: {
        type: "array",
        description:
          "The first ten QuantumJobs waiting for a slot, in the order they will start: priority, then age. Kept " +
          "here rather than in each job's status, and refreshed at most every few seconds, so that a queue moving " +
          "costs one write of the backend instead of one per waiting job.",
        maxItems: 10,
        items: {
          type: "object",
          description: "One waiting job.",
          required: ["position", "namespace", "name", "priority"],
          properties: {
            position: int("1 starts next."),
            namespace: str("The job's namespace."),
            name: str("The job's name."),
            priority: int("The job's spec.priority."),
          },
        },
      },
      remoteQueueLength: int("Remote mode: jobs in the provider's queue for the device, at the last refresh."),
      maxQubits: int(
        "The most qubits placement sends here: spec.capabilities.maxQubits, or fewer when a larger state vector " +
          "would not fit in the backend's memory (see the Ready message for the arithmetic).",
      ),
      calibration: calibrationSchema("The calibration placement uses: the provider's latest, else the spec's."),
      lastCalibrationTime: dateTime("When the provider last calibrated the device (Remote mode)."),
      observedGeneration: observedGenerationSchema,
      conditions: conditionsSchema,
    },
  },
  printerColumns: [
    { name: "Type", type: "string", jsonPath: ".spec.type", description: "Simulator or QPU." },
    { name: "Mode", type: "string", jsonPath: ".spec.execution.mode", description: "Embedded, Job or Remote." },
    {
      name: "Qubits",
      type: "integer",
      jsonPath: ".status.maxQubits",
      description: "Most qubits, as capabilities and memory allow.",
    },
    { name: "Site", type: "string", jsonPath: ".spec.siteRef.name", description: "The EdgeNode it runs at." },
    { name: "Running", type: "integer", jsonPath: ".status.running", description: "Jobs running." },
    { name: "Queued", type: "integer", jsonPath: ".status.queued", description: "Jobs waiting." },
    { name: "Phase", type: "string", jsonPath: ".status.phase", description: "Ready or Unavailable." },
    { name: "Reason", type: "string", jsonPath: ".status.reason", description: "Why.", priority: 1 },
  ],
};
