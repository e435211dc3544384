/**
 * Decides whether a server-side apply would change anything, so a converged reconcile sends none: the applied
 * object is already contained in the live one, and this field manager owns no field the applied object dropped
 * (an apply without a field it set before removes that field).
 */
export function applyWouldChange(
  desired: unknown,
  live: unknown,
  managedFields: ManagedFieldsEntry[] | undefined,
  manager: string,
): boolean {
  if (!contains(live, desired)) return true;
  const owned = (managedFields ?? []).filter((m) => m.manager === manager && m.operation === "Apply" && !m.subresource);
  return owned.some((m) => ownsMissing(m.fieldsV1 ?? {}, desired));
}

export interface ManagedFieldsEntry {
  manager: string;
  operation: string;
  subresource?: string;
  fieldsV1?: FieldsV1;
}
type FieldsV1 = { [k: string]: FieldsV1 };

/** Whether every field of part stands with the same value in whole (lists compared whole). */
export function contains(whole: unknown, part: unknown): boolean {
  if (part === null || typeof part !== "object") return whole === part;
  if (Array.isArray(part)) {
    return Array.isArray(whole) && whole.length === part.length && part.every((v, i) => contains(whole[i], v));
  }
  const members = Object.entries(part).filter(([, v]) => v !== undefined);
  if (members.length === 0) return true; // an empty map sets nothing, whatever stands there
  if (whole === null || typeof whole !== "object" || Array.isArray(whole)) return false;
  return members.every(([k, v]) => v === undefined || contains((whole as Record<string, unknown>)[k], v));
}

/** Whether fieldsV1 names a field ("f:name") that desired lacks; list items ("k:", "v:", "i:") count with their list. */
function ownsMissing(fields: FieldsV1, desired: unknown): boolean {
  for (const [k, sub] of Object.entries(fields)) {
    if (!k.startsWith("f:")) continue;
    const name = k.slice(2);
    if (desired === null || typeof desired !== "object" || Array.isArray(desired)) return true;
    const value = (desired as Record<string, unknown>)[name];
    if (value === undefined) return true;
    if (value !== null && typeof value === "object" && !Array.isArray(value) && ownsMissing(sub, value)) return true;
  }
  return false;
}

/**
 * The JSON merge patch (RFC 7386) that turns from into to: changed members, nulls for removed ones; arrays and
 * scalars are replaced whole. Undefined when nothing differs.
 */
export function mergePatch(from: unknown, to: unknown): unknown {
  if (!isPlainObject(from) || !isPlainObject(to)) return JSON.stringify(from) === JSON.stringify(to) ? undefined : to;
  const patch: Record<string, unknown> = {};
  for (const k of new Set([...Object.keys(from), ...Object.keys(to)])) {
    if (to[k] === undefined) {
      if (from[k] !== undefined) patch[k] = null;
      continue;
    }
    const sub = from[k] === undefined ? to[k] : mergePatch(from[k], to[k]);
    if (sub !== undefined) patch[k] = sub;
  }
  return Object.keys(patch).length ? patch : undefined;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
