import type { LabelSelector } from "../runtime/labels.ts";
import type { Condition, Resource } from "../runtime/objects.ts";
import { durationAtLeast, durationSchema } from "./duration.ts";
import {
  type CrdDefinition,
  type Schema,
  conditionsSchema,
  customKind,
  dateTime,
  decimal,
  exactlyOne,
  int,
  labelSelectorSchema,
  observedGenerationSchema,
  str,
  tenantUrl,
} from "./types.ts";

export const CarbonBudgetKind = customKind("CarbonBudget", "carbonbudgets", true);

export const PERIOD_TYPES = ["Daily", "Weekly", "Monthly", "Rolling"] as const;
export const INTENSITY_SOURCES = ["carbonAwareSDK", "electricityMaps", "configMap", "static"] as const;
export type IntensitySourceType = (typeof INTENSITY_SOURCES)[number];

/** How often a budget may look at its intensity source and account, at the most. */
export const MIN_REFRESH_INTERVAL = "5s";

export interface CapBand {
  aboveGramsPerKWh: number;
  maxReplicas: number;
}

export interface CarbonBudgetSpec {
  budgetGrams: number;
  period: { type: (typeof PERIOD_TYPES)[number]; timeZone: string; duration?: string };
  selector?: LabelSelector;
  mode: "Advisory" | "Enforce";
  energy: {
    kepler?: { prometheus: { url: string } };
    estimate?: { wattsPerCore: string; idleWattsPerCore: string; wattsPerGPU: string; utilization: string };
    pue: string;
  };
  intensity: {
    carbonAwareSDK?: { url: string; location: string };
    electricityMaps?: { url: string; zone: string; tokenSecretRef: { name: string; key: string } };
    configMap?: { name: string; namespace?: string };
    static?: { gramsPerKWh: number };
    refreshInterval: string;
    staleAfter: string;
  };
  actions: {
    deferQuantumJobs: boolean;
    preferGreenSites: boolean;
    capReplicas?: Array<{
      targetRef: { apiVersion: string; kind: "Deployment" | "StatefulSet"; name: string };
      bands: CapBand[];
    }>;
    onExhausted: "None" | "Suspend";
  };
}

/** A replica count the budget lowered (a cap or a suspension), kept so that it is restored exactly. */
export interface HeldReplicas {
  /** "Kind/name". */
  target: string;
  /** The count before the budget changed it. */
  replicas: number;
  /** The count the budget set. */
  setTo: number;
  reason: "Capped" | "Suspended";
  /** Capped through the HorizontalPodAutoscaler that drives the workload: its bounds before (restored exactly). */
  hpa?: { name: string; minReplicas: number; maxReplicas: number };
  /**
   * Held through the KEDA ScaledObject that drives the workload: what it had before (a field absent is absent
   * again after), restored exactly.
   */
  scaledObject?: { name: string; minReplicaCount?: number; maxReplicaCount?: number; pausedReplicas?: string };
}

export interface CarbonBudgetStatus {
  observedGeneration?: number;
  window?: { start: string; end: string };
  /** Emissions are accounted up to here: the next accounting starts at this instant, so none is lost or doubled. */
  accountedUntil?: string;
  consumedGrams?: number;
  projectedGrams?: number;
  remainingGrams?: number;
  energyKWh?: number;
  exhaustionTime?: string;
  intensity?: { gramsPerKWh: number; source: string; region: string; observedAt: string };
  /** Hourly totals of a Rolling window, oldest first. */
  buckets?: Array<{ start: string; grams: number; energyKWh: number }>;
  pods?: number;
  held?: HeldReplicas[];
  conditions?: Condition[];
}

export type CarbonBudget = Resource<CarbonBudgetSpec, CarbonBudgetStatus>;

const grams = (description: string): Schema => ({ type: "number", description });

const targetRefSchema: Schema = {
  type: "object",
  description: "The workload to cap, in the budget's namespace.",
  required: ["kind", "name"],
  properties: {
    apiVersion: { type: "string", enum: ["apps/v1"], default: "apps/v1", description: "apps/v1." },
    kind: { type: "string", enum: ["Deployment", "StatefulSet"], description: "Deployment or StatefulSet." },
    name: str("The workload's name."),
  },
};

export const carbonBudgetCrd: CrdDefinition = {
  kind: CarbonBudgetKind,
  singular: "carbonbudget",
  shortNames: ["cb"],
  description:
    "An emissions budget for a namespace's pods over a period: grams of CO2e accounted from measured (or estimated) " +
    "energy and the grid's intensity over time, with work deferred to cleaner hours, shifted to cleaner sites, " +
    "capped while the grid is dirty, or suspended when the budget is spent.",
  spec: {
    type: "object",
    description: "The budget, where its energy and intensity come from, and what it may do.",
    required: ["budgetGrams", "period", "energy", "intensity"],
    properties: {
      budgetGrams: { type: "number", minimum: 0, description: "Grams of CO2e the selected pods may emit per period." },
      period: {
        type: "object",
        description: "The accounting period: a calendar day, ISO week or month in timeZone, or a Rolling duration.",
        required: ["type"],
        "x-kubernetes-validations": [
          {
            rule: "(self.type == 'Rolling') == has(self.duration)",
            message: "duration is required for Rolling periods and only for them.",
          },
        ],
        properties: {
          type: { type: "string", enum: [...PERIOD_TYPES], description: "Daily, Weekly, Monthly or Rolling." },
          timeZone: {
            type: "string",
            default: "UTC",
            description: "The IANA time zone whose days, weeks and months count (e.g. Europe/Paris).",
          },
          duration: {
            ...durationSchema("The length of a Rolling window (whole hours, at most 744h)."),
            "x-kubernetes-validations": [durationAtLeast("1h")],
          },
        },
      },
      selector: labelSelectorSchema("Pods", "a Pod"),
      mode: {
        type: "string",
        enum: ["Advisory", "Enforce"],
        default: "Advisory",
        description: "Advisory: account and report only. Enforce: also defer, cap and suspend as actions say.",
      },
      energy: {
        type: "object",
        description: "Where the pods' energy comes from.",
        "x-kubernetes-validations": [exactlyOne(["kepler", "estimate"], "energy")],
        properties: {
          kepler: {
            type: "object",
            description:
              "Kepler's (0.10 or later) pod joules counters in Prometheus, zones package and dram; for pods holding " +
              "GPUs, Kepler's GPU joules or else dcgm-exporter's DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION or " +
              "DCGM_FI_DEV_POWER_USAGE. Series that are absent while a pod runs are NoData, not zero.",
            required: ["prometheus"],
            properties: {
              prometheus: {
                type: "object",
                description: "The Prometheus that scrapes Kepler (and dcgm-exporter).",
                required: ["url"],
                properties: { url: tenantUrl("Prometheus' base URL.") },
              },
            },
          },
          estimate: {
            type: "object",
            description:
              "Where no Kepler runs: each Running pod draws requested cores x (idle + (busy - idle) x utilization) " +
              "plus GPUs x wattsPerGPU.",
            required: ["wattsPerCore"],
            properties: {
              wattsPerCore: decimal("Watts of a fully busy core."),
              idleWattsPerCore: { ...decimal("Watts of an idle core."), default: "0" },
              wattsPerGPU: { ...decimal("Watts of a GPU (nvidia.com/gpu or amd.com/gpu limits)."), default: "0" },
              utilization: { ...decimal("The assumed busy fraction of requested cores (0 to 1)."), default: "0.5" },
            },
          },
          pue: {
            ...decimal("Power usage effectiveness of the site: the facility's draw per watt the pods draw."),
            default: "1",
          },
        },
      },
      intensity: {
        type: "object",
        description: "Where the grid's carbon intensity (gCO2e/kWh) comes from.",
        "x-kubernetes-validations": [exactlyOne(INTENSITY_SOURCES, "intensity")],
        properties: {
          carbonAwareSDK: {
            type: "object",
            description: "The Green Software Foundation's Carbon Aware SDK WebAPI.",
            required: ["url", "location"],
            properties: {
              url: tenantUrl("The WebAPI's base URL."),
              location: str("The location (e.g. westeurope)."),
            },
          },
          electricityMaps: {
            type: "object",
            description: "Electricity Maps' API (v3).",
            required: ["zone", "tokenSecretRef"],
            properties: {
              url: tenantUrl("The API's base URL.", "https://api.electricitymaps.com"),
              zone: str("The zone (e.g. FR)."),
              tokenSecretRef: {
                type: "object",
                description: "The Secret, in the budget's namespace, that holds the API token.",
                required: ["name"],
                properties: {
                  name: str("The Secret's name."),
                  key: { type: "string", default: "token", description: "The key of the token in the Secret." },
                },
              },
            },
          },
          configMap: {
            type: "object",
            description: "A ConfigMap in kubernetes-carbon-intensity-exporter's format (forecast data).",
            required: ["name"],
            properties: {
              name: str("The ConfigMap's name."),
              namespace: str(
                "Its namespace (default: the exporter's kube-system). A ConfigMap outside the budget's namespace is " +
                  "read only when its namespace's owner shares it: label nextgen.itechsmart.io/carbon-intensity=shared.",
              ),
            },
          },
          static: {
            type: "object",
            description: "A fixed intensity.",
            required: ["gramsPerKWh"],
            properties: { gramsPerKWh: { type: "number", minimum: 0, description: "gCO2e per kWh." } },
          },
          refreshInterval: {
            ...durationSchema("How often to read the intensity and account the energy since the last time.", "5m"),
            "x-kubernetes-validations": [durationAtLeast(MIN_REFRESH_INTERVAL)],
          },
          staleAfter: durationSchema(
            "How old the last value may grow (source failing or its data old) before the 400 g/kWh default replaces it.",
            "1h",
          ),
        },
      },
      actions: {
        type: "object",
        description: "What the budget does in Enforce mode.",
        default: {},
        properties: {
          deferQuantumJobs: {
            type: "boolean",
            default: false,
            description:
              "QuantumJobs with schedule.deferrable start at the lowest forecast intensity in their window, and at " +
              "the latest at schedule.notAfter.",
          },
          preferGreenSites: {
            type: "boolean",
            default: false,
            description:
              "Placement of this namespace's QuantumJobs weighs each site's intensity (EdgeNode carbonRegion).",
          },
          capReplicas: {
            type: "array",
            description:
              "Replica caps while the grid is dirty (the highest band the intensity is above applies); restored " +
              "exactly when no band applies. A cap bounds RemediationPolicy scale-ups too.",
            items: {
              type: "object",
              description: "A workload and its bands.",
              required: ["targetRef", "bands"],
              properties: {
                targetRef: targetRefSchema,
                bands: {
                  type: "array",
                  minItems: 1,
                  description: "Caps by intensity.",
                  items: {
                    type: "object",
                    description: "At most maxReplicas while the intensity is above aboveGramsPerKWh.",
                    required: ["aboveGramsPerKWh", "maxReplicas"],
                    properties: {
                      aboveGramsPerKWh: { type: "number", minimum: 0, description: "gCO2e per kWh." },
                      maxReplicas: { type: "integer", minimum: 0, description: "The cap." },
                    },
                  },
                },
              },
            },
          },
          onExhausted: {
            type: "string",
            enum: ["None", "Suspend"],
            default: "None",
            description:
              "Suspend: once the budget is spent, scale the selected pods' Deployments and StatefulSets to zero; " +
              "their counts come back exactly when the period ends or the budget grows.",
          },
        },
      },
    },
  },
  status: {
    type: "object",
    description: "What the budget has accounted, and what it holds back.",
    properties: {
      observedGeneration: observedGenerationSchema,
      window: {
        type: "object",
        description: "The period being accounted.",
        properties: { start: dateTime("Its start."), end: dateTime("Its end (for Rolling: now).") },
      },
      accountedUntil: dateTime("Emissions are accounted up to here; the next accounting starts here."),
      consumedGrams: grams("gCO2e emitted in the window: the integral of power x PUE x intensity."),
      projectedGrams: grams("gCO2e by the window's end at the latest rate."),
      remainingGrams: grams("budgetGrams - consumedGrams, at least 0."),
      energyKWh: grams("Energy the selected pods drew in the window, kWh (before PUE)."),
      exhaustionTime: dateTime("When the budget was, or at the latest rate will be, spent (within the window)."),
      intensity: {
        type: "object",
        description: "The intensity in force.",
        properties: {
          gramsPerKWh: grams("gCO2e per kWh."),
          source: str("carbonAwareSDK, electricityMaps, configMap, static, or default (400 g/kWh: no usable data)."),
          region: str("The location or zone."),
          observedAt: dateTime("Since when the source says this value holds."),
        },
      },
      buckets: {
        type: "array",
        description: "Hourly totals of a Rolling window, oldest first.",
        items: {
          type: "object",
          description: "One hour.",
          properties: { start: dateTime("The hour."), grams: grams("gCO2e."), energyKWh: grams("kWh.") },
        },
      },
      pods: int("Pods the budget counts."),
      held: {
        type: "array",
        description: "Replica counts the budget lowered, with the counts it restores exactly.",
        items: {
          type: "object",
          description: "A lowered count.",
          properties: {
            target: str("The workload, Kind/name."),
            replicas: int("The count before."),
            setTo: int("The count the budget set (with an HPA: its maxReplicas)."),
            reason: { type: "string", enum: ["Capped", "Suspended"], description: "Capped or Suspended." },
            hpa: {
              type: "object",
              description:
                "Capped through the HorizontalPodAutoscaler driving the workload (its maxReplicas, and minReplicas " +
                "when above it), so that the HPA does not scale back what the budget lowered: its bounds before.",
              properties: {
                name: str("The HPA."),
                minReplicas: int("Its minReplicas before."),
                maxReplicas: int("Its maxReplicas before."),
              },
            },
            scaledObject: {
              type: "object",
              description:
                "Held through the KEDA ScaledObject driving the workload (KEDA owns its HPA): a cap on its " +
                "maxReplicaCount, a suspension by its autoscaling.keda.sh/paused-replicas annotation at 0. What it " +
                "had before; a field absent here was unset and is unset again after.",
              properties: {
                name: str("The ScaledObject."),
                minReplicaCount: int("Its minReplicaCount before."),
                maxReplicaCount: int("Its maxReplicaCount before."),
                pausedReplicas: str("Its autoscaling.keda.sh/paused-replicas annotation before."),
              },
            },
          },
        },
      },
      conditions: conditionsSchema,
    },
  },
  printerColumns: [
    { name: "Budget", type: "number", jsonPath: ".spec.budgetGrams", description: "gCO2e per period." },
    { name: "Consumed", type: "number", jsonPath: ".status.consumedGrams", description: "gCO2e so far." },
    { name: "Projected", type: "number", jsonPath: ".status.projectedGrams", description: "gCO2e by the end." },
    {
      name: "Intensity",
      type: "number",
      jsonPath: ".status.intensity.gramsPerKWh",
      description: "gCO2e/kWh in force.",
    },
    { name: "Mode", type: "string", jsonPath: ".spec.mode", description: "Advisory or Enforce." },
    {
      name: "Exceeded",
      type: "string",
      jsonPath: '.status.conditions[?(@.type=="BudgetExceeded")].status',
      description: "Whether the budget is spent.",
    },
    {
      name: "Ready",
      type: "string",
      jsonPath: '.status.conditions[?(@.type=="Ready")].status',
      description: "Whether accounting works.",
    },
  ],
};
