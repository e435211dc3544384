import type { KindRef } from "../runtime/kinds.ts";

export const GROUP = "nextgen.itechsmart.io";
export const VERSION = "v1alpha1";

/** An OpenAPI v3 schema as apiextensions.k8s.io/v1 accepts it (structural; every field described). */
export interface Schema {
  type?: "object" | "array" | "string" | "integer" | "number" | "boolean";
  description?: string;
  properties?: Record<string, Schema>;
  items?: Schema;
  additionalProperties?: Schema | boolean;
  required?: string[];
  enum?: (string | number)[];
  default?: unknown;
  format?: string;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  nullable?: boolean;
  "x-kubernetes-preserve-unknown-fields"?: boolean;
  "x-kubernetes-int-or-string"?: boolean;
  "x-kubernetes-list-type"?: "atomic" | "set" | "map";
  "x-kubernetes-list-map-keys"?: string[];
  "x-kubernetes-map-type"?: "atomic" | "granular";
  "x-kubernetes-validations"?: ValidationRule[];
}

/**
 * A CEL rule the API server checks on every write (x-kubernetes-validations), for what one field's schema cannot
 * say: how fields relate, and (with oldSelf, checked on updates only) how they may change. The controllers keep
 * their own checks, for objects stored before a rule existed.
 */
export interface ValidationRule {
  /** A CEL expression over self (the value this rule is on) and, in transition rules, oldSelf. */
  rule: string;
  /** What is wrong and what to do about it, as the API server's error shows it. */
  message: string;
  /** A CEL expression giving the message, when the object's values make it clearer; message is the fallback. */
  messageExpression?: string;
  /** The kind of error reported (default FieldValueInvalid; FieldValueDuplicate is left out: it drops the message). */
  reason?: "FieldValueInvalid" | "FieldValueForbidden" | "FieldValueRequired";
  /** The field the error names, relative to the rule's value (e.g. ".parentRef"), when it is not that value. */
  fieldPath?: string;
}

export interface PrinterColumn {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "date";
  jsonPath: string;
  description: string;
  priority?: number;
}

/** One custom resource kind: its identity, schema and printer columns. config/crd is generated from these. */
export interface CrdDefinition {
  kind: KindRef;
  singular: string;
  shortNames: string[];
  description: string;
  spec: Schema;
  status: Schema;
  /** Rules over the whole object: for what spans spec and status, or needs metadata.name. */
  validations?: ValidationRule[];
  printerColumns: PrinterColumn[];
}

export function customKind(kind: string, plural: string, namespaced: boolean): KindRef {
  return { group: GROUP, version: VERSION, kind, plural, namespaced };
}

/** metav1.Condition's schema, as every kind's status.conditions. */
export const conditionsSchema: Schema = {
  type: "array",
  description: "The latest observations of the resource's state (metav1.Condition).",
  "x-kubernetes-list-type": "map",
  "x-kubernetes-list-map-keys": ["type"],
  items: {
    type: "object",
    description: "One aspect of the resource's state.",
    required: ["type", "status", "lastTransitionTime", "reason", "message"],
    properties: {
      type: { type: "string", description: "The aspect this condition reports, in CamelCase (e.g. Ready)." },
      status: { type: "string", enum: ["True", "False", "Unknown"], description: "True, False or Unknown." },
      observedGeneration: {
        type: "integer",
        description: "The metadata.generation the condition was set for.",
      },
      lastTransitionTime: {
        type: "string",
        format: "date-time",
        description: "When the status last changed.",
      },
      reason: { type: "string", description: "A CamelCase word for why the condition is in this state." },
      message: { type: "string", description: "A human-readable explanation, saying what to do if anything." },
    },
  },
};

/** A described string field. */
export const str = (description: string): Schema => ({ type: "string", description });
/** A described integer field. */
/**
 * A URL a namespaced object has the operator's pod send requests to: asked only when the cluster's admin allows it
 * (`run --allowed-endpoints`, src/controllers/shared/endpoints.ts).
 */
export const tenantUrl = (description: string, defaultValue?: string): Schema => ({
  type: "string",
  pattern: "^https?://",
  description: `${description} Asked only if the operator's --allowed-endpoints covers it; otherwise Ready=False, EndpointNotAllowed.`,
  ...(defaultValue ? { default: defaultValue } : {}),
});

export const int = (description: string): Schema => ({ type: "integer", description });
/** A described metav1.Time field (RFC 3339). */
export const dateTime = (description: string): Schema => ({ type: "string", format: "date-time", description });

/** A non-negative decimal written as a string ("1.2"), as API conventions keep floats out of specs. */
export const decimal = (description: string): Schema => ({
  type: "string",
  pattern: "^[0-9]+(\\.[0-9]+)?$",
  description,
});

/** A CEL rule that exactly one of fields is set, on each `what` (e.g. "action"). */
export const exactlyOne = (fields: readonly string[], what: string): ValidationRule => ({
  rule: `[${fields.map((f) => `has(self.${f})`).join(", ")}].filter(x, x).size() == 1`,
  message: `set exactly one of ${fields.join(", ")} in each ${what}.`,
});

export const observedGenerationSchema: Schema = {
  type: "integer",
  description: "The metadata.generation the operator last acted on.",
};

/** metav1.LabelSelector over objects of one kind (plural "Nodes", singular "a Node"). */
export const labelSelectorSchema = (plural: string, singular: string): Schema => ({
  type: "object",
  description: `A label selector over ${plural} (metav1.LabelSelector).`,
  properties: {
    matchLabels: {
      type: "object",
      description: `Labels ${singular} must have.`,
      additionalProperties: { type: "string", description: "The label's value." },
    },
    matchExpressions: {
      type: "array",
      description: `Requirements on ${singular}'s labels, all of which must hold.`,
      items: {
        type: "object",
        description: "One requirement.",
        required: ["key", "operator"],
        properties: {
          key: str("The label key."),
          operator: {
            type: "string",
            enum: ["In", "NotIn", "Exists", "DoesNotExist"],
            description: "How the key relates to values.",
          },
          values: {
            type: "array",
            description: "Values for In and NotIn.",
            items: { type: "string", description: "A value." },
          },
        },
      },
    },
  },
});
