import type { KubeClient } from "./client.ts";
import type { KindRef } from "./kinds.ts";

interface APIResourceList {
  resources: Array<{ name: string; kind: string; namespaced: boolean }>;
}

/** Maps apiVersion and kind to a REST resource by asking the API server's discovery, as kubectl does. */
export class Discovery {
  private readonly client: KubeClient;
  private readonly cache = new Map<string, Promise<APIResourceList>>();
  constructor(client: KubeClient) {
    this.client = client;
  }

  async kindRef(apiVersion: string, kind: string): Promise<KindRef> {
    const path = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    let list = this.cache.get(path);
    if (!list) this.cache.set(path, (list = this.client.request<APIResourceList>("GET", path)));
    const r = (await list).resources.find((x) => x.kind === kind && !x.name.includes("/"));
    if (!r) {
      this.cache.delete(path); // a CRD may have been created since
      throw new Error(`the API server does not serve ${kind} in ${apiVersion}`);
    }
    const [group, version] = apiVersion.includes("/") ? (apiVersion.split("/") as [string, string]) : ["", apiVersion];
    return { group, version, kind, plural: r.name, namespaced: r.namespaced };
  }
}
