/** The site hierarchy: tier order, parents, cycles and subtree roll-ups, as pure functions over site records. */

export const TIERS = ["ContinentalHub", "RegionalCluster", "LocalEdge"] as const;
export type Tier = (typeof TIERS)[number];

export const DEFAULT_LATENCY_TARGET_MS: Record<Tier, number> = {
  ContinentalHub: 50,
  RegionalCluster: 10,
  LocalEdge: 1,
};

export interface SiteRecord {
  name: string;
  tier: Tier;
  parent?: string;
}

export type HierarchyCheck = { valid: true } | { valid: false; reason: string; message: string };

/** Whether site sits correctly in the hierarchy described by sites (by name). */
export function checkHierarchy(site: SiteRecord, sites: ReadonlyMap<string, SiteRecord>): HierarchyCheck {
  const level = TIERS.indexOf(site.tier);
  if (level === 0) {
    return site.parent
      ? {
          valid: false,
          reason: "UnexpectedParent",
          message: `a ContinentalHub has no parent, but parentRef names ${site.parent}`,
        }
      : { valid: true };
  }
  const expected = TIERS[level - 1] as Tier;
  if (!site.parent) {
    return { valid: false, reason: "MissingParentRef", message: `a ${site.tier} needs a parentRef to a ${expected}` };
  }
  const parent = sites.get(site.parent);
  if (!parent)
    return { valid: false, reason: "ParentNotFound", message: `parent EdgeNode ${site.parent} does not exist` };
  const seen = new Set([site.name]);
  for (let p: SiteRecord | undefined = parent; p; p = p.parent ? sites.get(p.parent) : undefined) {
    if (seen.has(p.name)) {
      return { valid: false, reason: "Cycle", message: `parentRef forms a cycle: ${[...seen, p.name].join(" -> ")}` };
    }
    seen.add(p.name);
  }
  if (parent.tier !== expected) {
    return {
      valid: false,
      reason: "WrongTierOrder",
      message: `a ${site.tier}'s parent must be a ${expected}, but ${parent.name} is a ${parent.tier}`,
    };
  }
  return { valid: true };
}

export interface Rollup {
  sites: number;
  nodes: number;
  readyNodes: number;
  gpus: number;
}

/** A site's roll-up: itself plus its children's roll-ups. */
export function rollup(own: Omit<Rollup, "sites">, children: Array<Rollup | undefined>): Rollup {
  const r: Rollup = { sites: 1, ...own };
  for (const c of children) {
    if (!c) continue;
    r.sites += c.sites;
    r.nodes += c.nodes;
    r.readyNodes += c.readyNodes;
    r.gpus += c.gpus;
  }
  return r;
}

/** Of several sites selecting one Node, the one it belongs to: the most specific tier, then the first by name. */
export function owningSite<S extends SiteRecord>(candidates: S[]): S | undefined {
  return [...candidates].sort((a, b) => TIERS.indexOf(b.tier) - TIERS.indexOf(a.tier) || (a.name < b.name ? -1 : 1))[0];
}
