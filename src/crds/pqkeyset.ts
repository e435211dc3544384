import { ALGORITHMS } from "../pq/algorithms.ts";
import type { Condition, Resource } from "../runtime/objects.ts";
import { durationAtLeast, durationSchema } from "./duration.ts";
import { type CrdDefinition, conditionsSchema, customKind, dateTime, observedGenerationSchema } from "./types.ts";

export const PQKeySetKind = customKind("PQKeySet", "pqkeysets", true);

/** Changing this annotation to any new value rotates the key set once, now. */
export const ROTATE_ANNOTATION = "nextgen.itechsmart.io/rotate";
/** The shortest spec.rotationPeriod. */
export const MIN_ROTATION_PERIOD = "1m";

export interface PQKeySetSpec {
  algorithm: string;
  rotationPeriod: string;
  retainPrevious: number;
  secretName?: string;
  secretTemplate?: { labels?: Record<string, string>; annotations?: Record<string, string> };
  publicKeys?: { configMapName?: string };
  suspend: boolean;
  deletionPolicy: "Delete" | "Retain";
}

export interface PublishedKey {
  keyId: string;
  state: "Active" | "Retained";
  createdAt: string;
}

export interface PQKeySetStatus {
  currentKeyId?: string;
  shortKeyId?: string;
  revision?: number;
  keys?: PublishedKey[];
  lastRotationTime?: string;
  nextRotationTime?: string;
  failedAttempts?: number;
  observedGeneration?: number;
  conditions?: Condition[];
}

export type PQKeySet = Resource<PQKeySetSpec, PQKeySetStatus>;

const dnsName = { type: "string", maxLength: 253, pattern: "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$" } as const;
const stringMap = (description: string) =>
  ({ type: "object", description, additionalProperties: { type: "string", description: "A value." } }) as const;

export const pqKeySetCrd: CrdDefinition = {
  kind: PQKeySetKind,
  singular: "pqkeyset",
  shortNames: ["pqk"],
  description:
    "A post-quantum key set: a key pair of one algorithm kept in a Secret, rotated on schedule, with its public keys " +
    "published in a ConfigMap. Retained previous keys let consumers decrypt and verify during the overlap.",
  spec: {
    type: "object",
    description: "The desired key set.",
    properties: {
      algorithm: {
        type: "string",
        enum: [...ALGORITHMS],
        default: "ML-KEM-768",
        description:
          "The algorithm: ML-KEM (FIPS 203) for key establishment, ML-DSA (FIPS 204) or SLH-DSA (FIPS 205) for " +
          "signatures, or X-Wing, the hybrid X25519 + ML-KEM-768 KEM. Changing it rotates to a key of the new algorithm.",
      },
      rotationPeriod: {
        ...durationSchema(
          `How long a key stays current before the next rotation; at least ${MIN_ROTATION_PERIOD}.`,
          "720h",
        ),
        "x-kubernetes-validations": [durationAtLeast(MIN_ROTATION_PERIOD)],
      },
      retainPrevious: {
        type: "integer",
        minimum: 0,
        maximum: 10,
        default: 1,
        description: "How many previous keys stay in the Secret and the published set after a rotation.",
      },
      secretName: { ...dnsName, description: "The Secret holding the key pairs; defaults to the resource's name." },
      secretTemplate: {
        type: "object",
        description: "Labels and annotations put on the Secret.",
        properties: {
          labels: stringMap("Labels for the Secret."),
          annotations: stringMap("Annotations for the Secret."),
        },
      },
      publicKeys: {
        type: "object",
        description: "Where the public keys are published.",
        properties: {
          configMapName: { ...dnsName, description: "The ConfigMap of public keys; defaults to <name>-public." },
        },
      },
      suspend: {
        type: "boolean",
        default: false,
        description: "Stops rotations (scheduled and forced) while true; existing keys stay published.",
      },
      deletionPolicy: {
        type: "string",
        enum: ["Delete", "Retain"],
        default: "Delete",
        description:
          "Delete: the Secret and ConfigMap are garbage-collected with the resource. Retain: they are released " +
          "(owner references removed) and stay.",
      },
    },
  },
  status: {
    type: "object",
    description: "The observed state of the key set.",
    properties: {
      currentKeyId: {
        type: "string",
        description: "Key ID of the Active key: base64url SHA-256 of its SubjectPublicKeyInfo DER.",
      },
      shortKeyId: { type: "string", description: "The first 12 characters of currentKeyId." },
      revision: { type: "integer", description: "How many keys this key set has generated." },
      keys: {
        type: "array",
        description: "The published keys, current first.",
        items: {
          type: "object",
          description: "A published key (public information only).",
          required: ["keyId", "state", "createdAt"],
          properties: {
            keyId: { type: "string", description: "The key ID." },
            state: { type: "string", enum: ["Active", "Retained"], description: "Active (current) or Retained." },
            createdAt: dateTime("When the key was generated."),
          },
        },
      },
      lastRotationTime: dateTime("When the current key was generated."),
      nextRotationTime: dateTime("When the next scheduled rotation is due (absent while suspended)."),
      failedAttempts: {
        type: "integer",
        description: "Consecutive failed attempts to generate or store a key; reset by a success.",
      },
      observedGeneration: observedGenerationSchema,
      conditions: conditionsSchema,
    },
  },
  printerColumns: [
    { name: "Algorithm", type: "string", jsonPath: ".spec.algorithm", description: "The key algorithm." },
    { name: "Key ID", type: "string", jsonPath: ".status.shortKeyId", description: "The current key's ID (short)." },
    { name: "Revision", type: "integer", jsonPath: ".status.revision", description: "Keys generated so far." },
    {
      name: "Next Rotation",
      type: "string",
      jsonPath: ".status.nextRotationTime",
      description: "When the next rotation is due.",
    },
    {
      name: "Ready",
      type: "string",
      jsonPath: '.status.conditions[?(@.type=="Ready")].status',
      description: "Whether the key set is current and published.",
    },
  ],
};
