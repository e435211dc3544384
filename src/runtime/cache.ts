import type { Informer } from "./informer.ts";
import { OWNER_INDEX } from "./informer.ts";
import { type KindRef, kindKey } from "./kinds.ts";
import type { LabelSelector } from "./labels.ts";
import type { KubeObject } from "./objects.ts";

/** Read access to the shared informer caches: what reconcilers read instead of asking the API server. */
export class Cache {
  private readonly informers: ReadonlyMap<string, Informer>;
  constructor(informers: ReadonlyMap<string, Informer>) {
    this.informers = informers;
  }

  informer<T extends KubeObject>(kind: KindRef): Informer<T> {
    const inf = this.informers.get(kindKey(kind));
    if (!inf) throw new Error(`no informer for ${kindKey(kind)}: add it to a controller's for, owns or watches`);
    return inf as unknown as Informer<T>;
  }

  get<T extends KubeObject>(kind: KindRef, namespace: string | undefined, name: string): T | undefined {
    return this.informer<T>(kind).get(namespace, name);
  }

  list<T extends KubeObject>(kind: KindRef, filter: { namespace?: string; selector?: LabelSelector } = {}): T[] {
    return this.informer<T>(kind).list(filter);
  }

  byIndex<T extends KubeObject>(kind: KindRef, index: string, value: string): T[] {
    return this.informer<T>(kind).byIndex(index, value);
  }

  /** Objects of kind that name owner among their ownerReferences. */
  ownedBy<T extends KubeObject>(kind: KindRef, owner: KubeObject): T[] {
    return owner.metadata.uid ? this.byIndex<T>(kind, OWNER_INDEX, owner.metadata.uid) : [];
  }
}
