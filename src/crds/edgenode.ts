import { TIERS, type Tier } from "../edge/hierarchy.ts";
import type { LabelSelector } from "../runtime/labels.ts";
import type { Condition, Resource } from "../runtime/objects.ts";
import { durationSchema } from "./duration.ts";
import {
  type CrdDefinition,
  conditionsSchema,
  customKind,
  dateTime,
  int,
  labelSelectorSchema,
  observedGenerationSchema,
  str,
} from "./types.ts";

export const EdgeNodeKind = customKind("EdgeNode", "edgenodes", false);

export interface Taint {
  key: string;
  value?: string;
  effect: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
}

export interface EdgeNodeSpec {
  tier: Tier;
  parentRef?: { name: string };
  region?: string;
  zone?: string;
  carbonRegion?: string;
  nodeSelector?: LabelSelector;
  nodeNames?: string[];
  latencyTargetMs?: number;
  nodeLabels?: Record<string, string>;
  nodeTaints?: Taint[];
  probe?: { url: string; intervalSeconds: number; timeoutSeconds: number };
  offline: { gracePeriod: string; action: "None" | "Taint" };
}

export interface EdgeNodeStatus {
  phase?: "Online" | "Degraded" | "Partitioned" | "Offline" | "Empty";
  nodes?: { total: number; ready: number; notReady: number };
  readyNodes?: string;
  members?: Array<{ name: string; ready: boolean; reason: string; lastHeartbeat?: string }>;
  allocatable?: Record<string, string>;
  latency?: { p50Ms?: number; p95Ms?: number; samples: number; lastProbeTime?: string };
  latencyTargetMs?: number;
  children?: string[];
  rollup?: { sites: number; nodes: number; readyNodes: number; gpus: number };
  observedGeneration?: number;
  conditions?: Condition[];
}

export type EdgeNode = Resource<EdgeNodeSpec, EdgeNodeStatus>;

const [TOP_TIER] = TIERS;
/** Each tier below the top and the tier of its parent, as a CEL map. */
const PARENT_TIER = `{${TIERS.slice(1)
  .map((tier, i) => `'${tier}': '${TIERS[i]}'`)
  .join(", ")}}`;

export const edgeNodeCrd: CrdDefinition = {
  kind: EdgeNodeKind,
  singular: "edgenode",
  shortNames: ["en"],
  description:
    "An edge site: a group of the cluster's Nodes at one place in a hierarchy of continental hubs, regional clusters " +
    "and local edges, with its membership, health (telling a network partition from a crash), capacity and latency.",
  spec: {
    type: "object",
    description: "The desired site.",
    required: ["tier"],
    "x-kubernetes-validations": [
      {
        rule: `self.tier != '${TOP_TIER}' || !has(self.parentRef)`,
        message: `a ${TOP_TIER} has no parent: remove spec.parentRef.`,
        reason: "FieldValueForbidden",
        fieldPath: ".parentRef",
      },
      {
        rule: `self.tier == '${TOP_TIER}' || (has(self.parentRef) && self.parentRef.name != '')`,
        message: "a site below the top tier needs spec.parentRef: the name of the EdgeNode one tier up.",
        messageExpression: `'a ' + self.tier + ' needs spec.parentRef: the name of its ' + ${PARENT_TIER}[self.tier] + '.'`,
        reason: "FieldValueRequired",
        fieldPath: ".parentRef",
      },
    ],
    properties: {
      tier: { type: "string", enum: [...TIERS], description: "ContinentalHub, RegionalCluster or LocalEdge." },
      parentRef: {
        type: "object",
        description:
          "The EdgeNode one tier up (a RegionalCluster for a LocalEdge, a ContinentalHub for a RegionalCluster).",
        required: ["name"],
        properties: { name: str("The parent EdgeNode's name.") },
      },
      region: str("The site's region (also set as topology.kubernetes.io/region on members that have none)."),
      zone: str("The site's zone (also set as topology.kubernetes.io/zone on members that have none)."),
      carbonRegion: str("The electricity grid region whose carbon intensity applies to this site."),
      nodeSelector: labelSelectorSchema("Nodes", "a Node"),
      nodeNames: { type: "array", description: "Nodes that belong to the site by name.", items: str("A Node's name.") },
      latencyTargetMs: {
        type: "integer",
        minimum: 0,
        description: "The round-trip time the site should meet; defaults by tier: 50, 10 and 1 ms.",
      },
      nodeLabels: {
        type: "object",
        description: "Labels pushed onto member Nodes (removed when a Node leaves).",
        additionalProperties: { type: "string", description: "The label's value." },
      },
      nodeTaints: {
        type: "array",
        description: "Taints pushed onto member Nodes (removed when a Node leaves).",
        items: {
          type: "object",
          description: "A taint.",
          required: ["key", "effect"],
          properties: {
            key: str("The taint key."),
            value: str("The taint value."),
            effect: {
              type: "string",
              enum: ["NoSchedule", "PreferNoSchedule", "NoExecute"],
              description: "The effect.",
            },
          },
        },
      },
      probe: {
        type: "object",
        description: "An HTTP(S) endpoint at the site whose round-trip time the operator measures.",
        required: ["url"],
        properties: {
          url: { type: "string", pattern: "^https?://", description: "The URL to GET." },
          intervalSeconds: { type: "integer", minimum: 1, default: 10, description: "Seconds between probes." },
          timeoutSeconds: { type: "integer", minimum: 1, default: 2, description: "Seconds before a probe fails." },
        },
      },
      offline: {
        type: "object",
        description: "When the site counts as offline, and what happens then.",
        default: {},
        properties: {
          gracePeriod: durationSchema("How long without any member heartbeat before the site is Offline.", "40s"),
          action: {
            type: "string",
            enum: ["None", "Taint"],
            default: "None",
            description: "Taint: members get a NoSchedule taint while the site is Offline.",
          },
        },
      },
    },
  },
  status: {
    type: "object",
    description: "The observed state of the site.",
    properties: {
      phase: {
        type: "string",
        enum: ["Online", "Degraded", "Partitioned", "Offline", "Empty"],
        description: "Online, Degraded (some members down), Partitioned (unreachable but alive), Offline or Empty.",
      },
      nodes: {
        type: "object",
        description: "Member counts.",
        properties: { total: int("Members."), ready: int("Ready members."), notReady: int("Members not Ready.") },
      },
      readyNodes: str("Ready/total members, for display."),
      members: {
        type: "array",
        description: "Members (at most 50), with why each is or is not Ready.",
        items: {
          type: "object",
          description: "A member Node.",
          properties: {
            name: str("The Node."),
            ready: { type: "boolean", description: "Ready with a fresh heartbeat." },
            reason: str("Ready, HeartbeatStale, NoHeartbeat or the Node's NotReady reason."),
            lastHeartbeat: dateTime("Its last heartbeat."),
          },
        },
      },
      allocatable: {
        type: "object",
        description: "Summed allocatable of Ready members (cpu, memory, pods, nvidia.com/gpu, amd.com/gpu).",
        additionalProperties: { type: "string", description: "A quantity, as in a Node's allocatable." },
      },
      latency: {
        type: "object",
        description: "Round-trip times of recent probes.",
        properties: {
          p50Ms: { type: "number", description: "Median, ms." },
          p95Ms: { type: "number", description: "95th percentile, ms." },
          samples: int("Successful probes the percentiles cover."),
          lastProbeTime: dateTime("When the site was last probed."),
        },
      },
      latencyTargetMs: int("The latency target in force."),
      children: { type: "array", description: "Sites whose parent this is.", items: str("A child EdgeNode.") },
      rollup: {
        type: "object",
        description: "Totals over this site and every site below it.",
        properties: {
          sites: int("Sites."),
          nodes: int("Member Nodes."),
          readyNodes: int("Ready member Nodes."),
          gpus: int("GPUs allocatable on Ready members."),
        },
      },
      observedGeneration: observedGenerationSchema,
      conditions: conditionsSchema,
    },
  },
  printerColumns: [
    { name: "Tier", type: "string", jsonPath: ".spec.tier", description: "The site's tier." },
    { name: "Region", type: "string", jsonPath: ".spec.region", description: "The site's region." },
    { name: "Parent", type: "string", jsonPath: ".spec.parentRef.name", description: "The site one tier up." },
    { name: "Nodes", type: "string", jsonPath: ".status.readyNodes", description: "Ready/total members." },
    { name: "GPUs", type: "integer", jsonPath: ".status.rollup.gpus", description: "GPUs in the subtree." },
    { name: "P95", type: "number", jsonPath: ".status.latency.p95Ms", description: "p95 probe latency, ms." },
    { name: "Phase", type: "string", jsonPath: ".status.phase", description: "The site's phase." },
  ],
};
