/** An RBAC PolicyRule: what a controller declares it needs; config/rbac is generated from these. */
export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

const order = ["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"];

/** Merges rules over the same group and resource, so the generated ClusterRole lists each pair once. */
export function mergeRules(rules: PolicyRule[]): PolicyRule[] {
  const byTarget = new Map<string, Set<string>>();
  for (const r of rules) {
    if (r.resourceNames?.length) throw new Error("resourceNames rules are not merged; declare them in a Role");
    for (const g of r.apiGroups)
      for (const res of r.resources) {
        const k = `${g}\u0000${res}`;
        const verbs = byTarget.get(k) ?? new Set<string>();
        for (const v of r.verbs) verbs.add(v);
        byTarget.set(k, verbs);
      }
  }
  // Group resources of one API group that need the same verbs into one rule, as controller-gen does.
  const grouped = new Map<string, PolicyRule>();
  for (const [k, verbs] of [...byTarget].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const [group, resource] = k.split("\u0000") as [string, string];
    const sortedVerbs = [...verbs].sort((a, b) => order.indexOf(a) - order.indexOf(b));
    const gk = `${group}\u0000${sortedVerbs.join(",")}`;
    const rule = grouped.get(gk);
    if (rule) rule.resources.push(resource);
    else grouped.set(gk, { apiGroups: [group], resources: [resource], verbs: sortedVerbs });
  }
  return [...grouped.values()];
}
