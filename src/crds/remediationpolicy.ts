import type { LabelSelector } from "../runtime/labels.ts";
import type { Condition, Resource } from "../runtime/objects.ts";
import { durationSchema } from "./duration.ts";
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

export const RemediationPolicyKind = customKind("RemediationPolicy", "remediationpolicies", true);

/** Set to "true" on a policy to stop it acting (Paused=True); it keeps watching and reporting. */
export const PAUSED_ANNOTATION = "nextgen.itechsmart.io/paused";

/** The kinds of workload a policy targets. */
export const WORKLOAD_KINDS = ["Deployment", "StatefulSet"] as const;
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number];

export const TRIGGER_TYPES = ["crashLoop", "oomKilled", "unavailable", "prometheus", "alert", "anomaly"] as const;
export type TriggerType = (typeof TRIGGER_TYPES)[number];

export const ACTION_TYPES = ["restartPod", "rolloutRestart", "scale", "rollback", "quarantine", "drainNode"] as const;
export type ActionType = (typeof ACTION_TYPES)[number];

/** The action names history and metrics report, one per action type. */
export const ACTION_NAMES: Record<ActionType, string> = {
  restartPod: "RestartPod",
  rolloutRestart: "RolloutRestart",
  scale: "Scale",
  rollback: "Rollback",
  quarantine: "Quarantine",
  drainNode: "DrainNode",
};

export interface ModelRef {
  default?: boolean;
  /** The failure-probability model shipped with the operator instead of the autoencoder. */
  builtin?: "autoencoder" | "failure";
  configMapRef?: { name: string; key: string };
}

export interface Trigger {
  name: string;
  crashLoop?: { restarts: number; window: string };
  oomKilled?: { count: number; window: string };
  unavailable?: { ratio: string; for: string };
  prometheus?: {
    query: string;
    above?: string;
    below?: string;
    for: string;
    forecast?: { horizon: string; lookback: string };
  };
  alert?: { alertname: string; matchLabels?: Record<string, string> };
  anomaly?: { model: ModelRef; threshold: string; for: string; errorRatio?: { query: string } };
}

export interface Action {
  restartPod?: Record<string, never>;
  rolloutRestart?: Record<string, never>;
  scale?: { by: number; max: number };
  rollback?: { maxRevisionAge?: string };
  quarantine?: Record<string, never>;
  drainNode?: Record<string, never>;
  timeout: string;
}

export interface Safety {
  maxConcurrent: number;
  cooldown: string;
  maxActionsPerHour: number;
  minAvailable: string | number;
}

export interface RemediationPolicySpec {
  targetRef?: { apiVersion: string; kind: WorkloadKind; name: string };
  selector?: LabelSelector;
  mode: "Enforce" | "DryRun";
  prometheus?: { url: string; interval: string };
  alertmanager?: { url: string; interval: string };
  triggers: Trigger[];
  actions: Action[];
  safety: Safety;
  recurrenceWindow: string;
}

export type TriggerState = "Firing" | "Clear" | "Unknown";

export interface Incident {
  /** "<Kind>/<name>" of the workload. */
  target: string;
  trigger: string;
  since: string;
  /** Index into spec.actions of the step in force. */
  step: number;
  action?: string;
  attempts: number;
  /** When the step in force first acted: its timeout runs from here. */
  stepStartTime?: string;
  lastActionTime?: string;
  /** Pods the step acted on (restartPod, quarantine, drainNode's nodes' pods). */
  pods?: string[];
  /** Why the step has not run yet (a brake), or why the ladder ended. */
  heldBy?: string;
  message?: string;
  /** How many times in a row it came back within spec.recurrenceWindow of resolving. */
  recurrences?: number;
}

/** An incident that resolved after acting, remembered for spec.recurrenceWindow so a recurrence resumes its ladder. */
export interface ResolvedIncident {
  target: string;
  trigger: string;
  /** The step that was in force when it resolved. */
  step: number;
  resolvedAt: string;
  recurrences?: number;
}

/**
 * Succeeded/Failed: an action was carried out, or its API call failed. DryRun: it would have been. Held: a brake
 * stopped it. Reverted: a scale-up undone as the ladder moved on. Restored: a replica count given back once
 * healthy. Resolved: the trigger cleared after the action's verification. Exhausted: the last step did not help.
 */
export const HISTORY_RESULTS = [
  "Succeeded",
  "Failed",
  "DryRun",
  "Held",
  "Reverted",
  "Restored",
  "Resolved",
  "Exhausted",
] as const;
export type HistoryResult = (typeof HISTORY_RESULTS)[number];

export interface HistoryEntry {
  time: string;
  target: string;
  trigger: string;
  action: string;
  result: HistoryResult;
  message?: string;
}

/** A replica count (or an HPA's minReplicas) the policy changed, kept so that it is restored exactly. */
export interface ScaledRecord {
  target: string;
  /**
   * "replicas" on the workload's scale subresource, the named HPA's minReplicas, or the minReplicaCount of the KEDA
   * ScaledObject that owns the workload's HPA.
   */
  field: "replicas" | "hpaMinReplicas" | "scaledObjectMinReplicaCount";
  hpa?: string;
  scaledObject?: string;
  original: number;
  current: number;
  healthySince?: string;
}

export interface RemediationPolicyStatus {
  observedGeneration?: number;
  targets?: number;
  triggers?: Array<{
    name: string;
    state: TriggerState;
    reason: string;
    message?: string;
    since?: string;
    /** Anomaly triggers: the model's features that took their default value for some pod (not observed). */
    defaultedFeatures?: string[];
  }>;
  incidents?: Incident[];
  history?: HistoryEntry[];
  scaled?: ScaledRecord[];
  /** Actions of the last hour (and the cooldown), for the brakes: kept in status so a restart forgets none. */
  recentActions?: Array<{ time: string; target: string }>;
  resolved?: ResolvedIncident[];
  openIncidents?: number;
  conditions?: Condition[];
}

export type RemediationPolicy = Resource<RemediationPolicySpec, RemediationPolicyStatus>;

/** Bounds on status lists: a policy over many pods must not grow its object without limit. */
export const MAX_HISTORY = 50;
export const MAX_INCIDENTS = 100;

// An action without parameters: `{}`. No `properties: {}`: the API server drops an empty map from a stored CRD, and
// Argo CD then shows the CRD OutOfSync with Git for ever (test/e2e/argocd.test.ts).
const empty = (description: string): Schema => ({ type: "object", description });

const modelRefSchema: Schema = {
  type: "object",
  description: "The ONNX model that scores pods: the operator's own (default or builtin) or one from a ConfigMap.",
  "x-kubernetes-validations": [exactlyOne(["default", "builtin", "configMapRef"], "model")],
  properties: {
    default: { type: "boolean", description: "The operator's default model: the autoencoder." },
    builtin: {
      type: "string",
      enum: ["autoencoder", "failure"],
      description: "A model shipped with the operator: autoencoder (anomaly) or failure (failure probability).",
    },
    configMapRef: {
      type: "object",
      description: "A model in a ConfigMap of the policy's namespace (binaryData), under the documented contract.",
      required: ["name", "key"],
      properties: { name: str("The ConfigMap."), key: str("The binaryData key holding the .onnx bytes.") },
    },
  },
};

const triggerSchema: Schema = {
  type: "object",
  description: "A symptom that opens an incident for a workload when it fires.",
  required: ["name"],
  "x-kubernetes-validations": [exactlyOne(TRIGGER_TYPES, "trigger")],
  properties: {
    name: { type: "string", minLength: 1, maxLength: 63, description: "The trigger's name, unique in the policy." },
    crashLoop: {
      type: "object",
      description: "A container restarted at least `restarts` times within `window`.",
      required: ["restarts"],
      properties: {
        restarts: { type: "integer", minimum: 1, description: "Restarts that count as a crash loop." },
        window: durationSchema("The window restarts are counted in.", "10m"),
      },
    },
    oomKilled: {
      type: "object",
      description: "Containers were OOMKilled at least `count` times within `window`.",
      properties: {
        count: { type: "integer", minimum: 1, default: 1, description: "OOM kills that count." },
        window: durationSchema("The window OOM kills are counted in.", "30m"),
      },
    },
    unavailable: {
      type: "object",
      description: "At least `ratio` of the desired replicas were unavailable for `for`.",
      required: ["ratio"],
      properties: {
        ratio: decimal("The fraction (0 to 1) of desired replicas unavailable."),
        for: durationSchema("How long it must last.", "2m"),
      },
    },
    prometheus: {
      type: "object",
      description:
        "A PromQL query against spec.prometheus.url. Fires when any sample is above (or below) the bound for `for`; " +
        "samples with a pod label point at that pod. No data or an error is Unknown, never firing.",
      required: ["query"],
      "x-kubernetes-validations": [
        { rule: "has(self.above) != has(self.below)", message: "set exactly one of above or below." },
        {
          rule: "!has(self.forecast) || has(self.above)",
          message: "forecast predicts a rise: it needs above.",
          fieldPath: ".forecast",
        },
      ],
      properties: {
        query: { type: "string", minLength: 1, description: "The PromQL instant query." },
        above: decimal("Fires when a sample is above this."),
        below: decimal("Fires when a sample is below this."),
        for: durationSchema("How long it must hold.", "2m"),
        forecast: {
          type: "object",
          description:
            "Fire before the bound is crossed: when the least-squares trend of each series over `lookback` reaches " +
            "`above` within `horizon` (so a scale-up lands before the overload).",
          properties: {
            horizon: durationSchema("How far ahead to look.", "10m"),
            lookback: durationSchema("How much history the trend is fitted to.", "15m"),
          },
        },
      },
    },
    alert: {
      type: "object",
      description:
        "A firing alert from Alertmanager's webhook with this alertname and these labels; an alert with a pod label " +
        "points at that pod. Resolved alerts clear it.",
      required: ["alertname"],
      properties: {
        alertname: str("The alert's alertname label."),
        matchLabels: {
          type: "object",
          description: "Labels the alert must also carry.",
          additionalProperties: { type: "string", description: "The label's value." },
        },
      },
    },
    anomaly: {
      type: "object",
      description: "A pod's score from an ONNX model above `threshold` for `for`.",
      required: ["model", "threshold"],
      properties: {
        model: modelRefSchema,
        threshold: decimal("The score (0 to 1) above which the pod is anomalous."),
        errorRatio: {
          type: "object",
          description:
            "Where the errorRatio feature comes from: a PromQL query (in spec.prometheus) giving each pod's failed " +
            "over total requests in the last 10 minutes, one sample per pod labelled `pod`. Without it, or for a pod " +
            "the query has no sample of, the feature takes its typical healthy value, and the trigger's " +
            "status.triggers[].defaultedFeatures says so.",
          required: ["query"],
          properties: { query: str("The query.") },
        },
        for: durationSchema("How long it must hold.", "1m"),
      },
    },
  },
};

const actionSchema: Schema = {
  type: "object",
  description: "One step of the escalation ladder; the next runs when this one did not clear the trigger in `timeout`.",
  "x-kubernetes-validations": [exactlyOne(ACTION_TYPES, "action")],
  properties: {
    restartPod: empty("Delete the affected pods; their controller replaces them."),
    rolloutRestart: empty("Restart the workload's pods as `kubectl rollout restart` does."),
    scale: {
      type: "object",
      description:
        "Add `by` replicas up to `max` (on the HPA's minReplicas when an HPA targets the workload); restored exactly " +
        "once healthy for the cooldown, undone if the escalation moves on.",
      required: ["by", "max"],
      properties: {
        by: { type: "integer", minimum: 1, description: "Replicas to add." },
        max: { type: "integer", minimum: 1, description: "Never scale beyond this." },
      },
    },
    rollback: {
      type: "object",
      description:
        "Roll a Deployment back to its previous revision, as `kubectl rollout undo`, only while that revision served " +
        "within `maxRevisionAge` (the current revision's ReplicaSet is younger than it): an older one may no longer " +
        "fit the rest of the system, and the step is skipped, naming why.",
      properties: {
        maxRevisionAge: durationSchema("How long ago the previous revision may have last served.", "24h"),
      },
    },
    quarantine: empty(
      "Take the affected pods out of their Service and owner (labels) and isolate them with a deny-all NetworkPolicy.",
    ),
    drainNode: empty("Cordon the affected pods' Nodes and evict their pods through the Eviction API (PDBs hold)."),
    timeout: durationSchema("How long to wait for the trigger to clear before the next step.", "5m"),
  },
};

export const remediationPolicyCrd: CrdDefinition = {
  kind: RemediationPolicyKind,
  singular: "remediationpolicy",
  shortNames: ["rp"],
  description:
    "Self-healing for workloads: symptoms (pod state, PromQL, Alertmanager alerts, ONNX anomaly scores) that open " +
    "incidents, an escalation ladder of actions that are verified and undone when they do not help, and brakes.",
  spec: {
    type: "object",
    description: "The desired policy.",
    required: ["triggers", "actions"],
    "x-kubernetes-validations": [
      { rule: "has(self.targetRef) != has(self.selector)", message: "set exactly one of targetRef or selector." },
      {
        rule: "!self.triggers.exists(t, has(t.prometheus)) || has(self.prometheus)",
        message: "a prometheus trigger needs spec.prometheus.url.",
        fieldPath: ".prometheus",
        reason: "FieldValueRequired",
      },
      {
        rule: "!self.triggers.exists(t, has(t.anomaly) && has(t.anomaly.errorRatio)) || has(self.prometheus)",
        message: "an anomaly trigger's errorRatio query needs spec.prometheus.url.",
        fieldPath: ".prometheus",
        reason: "FieldValueRequired",
      },
      {
        rule: "self.triggers.all(t, self.triggers.exists_one(u, u.name == t.name))",
        message: "trigger names must be unique.",
        fieldPath: ".triggers",
      },
    ],
    properties: {
      targetRef: {
        type: "object",
        description: "The workload the policy heals.",
        required: ["kind", "name"],
        properties: {
          apiVersion: { type: "string", enum: ["apps/v1"], default: "apps/v1", description: "apps/v1." },
          kind: { type: "string", enum: [...WORKLOAD_KINDS], description: "Deployment or StatefulSet." },
          name: str("The workload's name, in the policy's namespace."),
        },
      },
      selector: labelSelectorSchema("Deployments and StatefulSets", "a workload"),
      mode: {
        type: "string",
        enum: ["Enforce", "DryRun"],
        default: "Enforce",
        description: "DryRun: status and events say what would have been done; nothing is touched.",
      },
      prometheus: {
        type: "object",
        description: "The Prometheus prometheus triggers query.",
        required: ["url"],
        properties: {
          url: tenantUrl("Prometheus' base URL."),
          interval: durationSchema("How often queries are evaluated.", "15s"),
        },
      },
      alertmanager: {
        type: "object",
        description:
          "The Alertmanager whose API (GET /api/v2/alerts) alert triggers read, every `interval`: the same answer " +
          "whichever operator replica its webhook reached. Without it, alert triggers read the webhook " +
          "notifications the leading replica received itself.",
        required: ["url"],
        properties: {
          url: tenantUrl("Alertmanager's base URL."),
          interval: durationSchema("How often its alerts are read.", "15s"),
        },
      },
      triggers: { type: "array", minItems: 1, maxItems: 16, description: "Symptoms.", items: triggerSchema },
      recurrenceWindow: durationSchema(
        "An incident that comes back within this long of resolving resumes its ladder at the step after the one " +
          "in force when it resolved (that fix did not last), instead of at the first; past the last step it is " +
          "Exhausted at once, for a human. 0s: every incident starts at the first step.",
        "30m",
      ),
      actions: { type: "array", minItems: 1, maxItems: 8, description: "The escalation ladder.", items: actionSchema },
      safety: {
        type: "object",
        description: "Brakes no action passes, however many pods fail at once.",
        default: {},
        properties: {
          maxConcurrent: {
            type: "integer",
            minimum: 1,
            default: 1,
            description: "Actions in flight at once (taken and not yet verified).",
          },
          cooldown: durationSchema("Between two actions on one workload; and healthy time before a restore.", "5m"),
          maxActionsPerHour: {
            type: "integer",
            minimum: 1,
            maximum: 50,
            default: 6,
            description: "Actions in any hour, across the policy's workloads.",
          },
          minAvailable: {
            "x-kubernetes-int-or-string": true,
            default: "50%",
            description: "Available pods no action may go below: a count or a percentage of desired replicas.",
          },
        },
      },
    },
  },
  status: {
    type: "object",
    description: "What the policy sees and did.",
    properties: {
      observedGeneration: observedGenerationSchema,
      targets: int("Workloads the policy covers."),
      triggers: {
        type: "array",
        description: "Each trigger's state: Firing, Clear or Unknown (data missing; never acted on).",
        items: {
          type: "object",
          description: "A trigger's state.",
          properties: {
            name: str("The trigger."),
            state: { type: "string", enum: ["Firing", "Clear", "Unknown"], description: "Firing, Clear or Unknown." },
            reason: str("Why, in a word."),
            message: str("Why, for a human; with the upstream error when Unknown."),
            since: dateTime("When the state began."),
            defaultedFeatures: {
              type: "array",
              description:
                "Anomaly triggers: the model's features that were not observed for some pod and took their typical " +
                "healthy value (cpuRatio and memoryRatio without cAdvisor metrics or limits, errorRatio without a query).",
              items: str("A feature."),
            },
          },
        },
      },
      incidents: {
        type: "array",
        description: "Open incidents (at most 100).",
        items: {
          type: "object",
          description: "An open incident.",
          properties: {
            target: str("The workload, Kind/name."),
            trigger: str("The trigger that opened it."),
            since: dateTime("When it opened."),
            step: int("The escalation step in force (index into spec.actions)."),
            action: str("That step's action."),
            attempts: int("Actions taken for this incident."),
            stepStartTime: dateTime("When the step in force first acted; its timeout runs from then."),
            lastActionTime: dateTime("When the last action ran."),
            pods: { type: "array", description: "Pods the step acted on.", items: str("A pod.") },
            heldBy: str("The brake holding the step back, or Exhausted when the ladder ran out."),
            message: str("What is happening, for a human."),
            recurrences: int("Times in a row it came back within spec.recurrenceWindow of resolving."),
          },
        },
      },
      history: {
        type: "array",
        description: "The latest actions and brakes (at most 50, newest last).",
        items: {
          type: "object",
          description: "An action taken, held back, reverted or restored.",
          properties: {
            time: dateTime("When."),
            target: str("The workload, Kind/name."),
            trigger: str("The trigger."),
            action: str("RestartPod, RolloutRestart, Scale, Rollback, Quarantine or DrainNode."),
            result: {
              type: "string",
              enum: [...HISTORY_RESULTS],
              description:
                "Succeeded/Failed (carried out), DryRun, Held (a brake), Reverted, Restored, Resolved or Exhausted.",
            },
            message: str("Details."),
          },
        },
      },
      scaled: {
        type: "array",
        description: "Replica counts the policy changed, with the originals it restores exactly.",
        items: {
          type: "object",
          description: "A changed replica count.",
          properties: {
            target: str("The workload, Kind/name."),
            field: {
              type: "string",
              enum: ["replicas", "hpaMinReplicas", "scaledObjectMinReplicaCount"],
              description: "What was changed.",
            },
            hpa: str("The HorizontalPodAutoscaler, when its minReplicas was changed."),
            scaledObject: str(
              "The KEDA ScaledObject, when its minReplicaCount was changed (KEDA owns the HPA and would undo a " +
                "change made there).",
            ),
            original: int("The value before the policy changed it."),
            current: int("The value the policy set."),
            healthySince: dateTime("Since when the workload has been healthy (restore after the cooldown)."),
          },
        },
      },
      recentActions: {
        type: "array",
        description: "Actions of the last hour, which maxActionsPerHour and the cooldown count.",
        items: {
          type: "object",
          description: "An action.",
          properties: { time: dateTime("When."), target: str("The workload, Kind/name.") },
        },
      },
      resolved: {
        type: "array",
        description: "Incidents that resolved after acting, kept for spec.recurrenceWindow (at most 100).",
        items: {
          type: "object",
          description: "A resolved incident.",
          properties: {
            target: str("The workload, Kind/name."),
            trigger: str("The trigger."),
            step: int("The step in force when it resolved."),
            resolvedAt: dateTime("When."),
            recurrences: int("Times in a row it had come back."),
          },
        },
      },
      openIncidents: int("Open incidents."),
      conditions: conditionsSchema,
    },
  },
  printerColumns: [
    { name: "Mode", type: "string", jsonPath: ".spec.mode", description: "Enforce or DryRun." },
    { name: "Targets", type: "integer", jsonPath: ".status.targets", description: "Workloads covered." },
    { name: "Incidents", type: "integer", jsonPath: ".status.openIncidents", description: "Open incidents." },
    {
      name: "Storm",
      type: "string",
      jsonPath: '.status.conditions[?(@.type=="StormActive")].status',
      description: "Whether brakes are holding actions back.",
    },
    {
      name: "Ready",
      type: "string",
      jsonPath: '.status.conditions[?(@.type=="Ready")].status',
      description: "Whether the policy is in force.",
    },
  ],
};
