import { FEATURE_WINDOW_SECONDS, type PodObservation, featureRows } from "../../anomaly/features.ts";
import { AnomalyModel, type DefaultModelName, ModelInvalidError, loadDefaultModel } from "../../anomaly/model.ts";
import type { ModelRef, RemediationPolicy } from "../../crds/remediationpolicy.ts";
import type { PodHistory } from "../../remediation/pod-history.ts";
import { instantQuery } from "../../prometheus/query.ts";
import { parseQuantity } from "../../runtime/quantity.ts";
import type { Cache } from "../../runtime/cache.ts";
import { ConfigMapKind } from "../../runtime/kinds.ts";
import type { KubeObject } from "../../runtime/objects.ts";
import type { Pod } from "./workloads.ts";

type ConfigMap = KubeObject & { binaryData?: Record<string, string> };

export type ScoreResult = { ok: true; scores: Float32Array } | { ok: false; reason: string; message: string };

const WINDOW_MS = FEATURE_WINDOW_SECONDS * 1000;

/**
 * Loaded models, by where they come from: the defaults once, a ConfigMap's model until the ConfigMap changes (its
 * resourceVersion is part of the key). A model that fails to load is never replaced by an older one: the trigger
 * is Unknown until the ConfigMap is fixed.
 */
class ModelCache {
  private readonly loaded = new Map<string, Promise<AnomalyModel>>();

  async get(ref: ModelRef, namespace: string, cache: Cache): Promise<{ model: AnomalyModel; name: string }> {
    if (ref.configMapRef) {
      const { name, key } = ref.configMapRef;
      const cm = cache.get<ConfigMap>(ConfigMapKind, namespace, name);
      const data = cm?.binaryData?.[key];
      if (!cm) throw new ModelMissing(`ConfigMap ${namespace}/${name} does not exist`);
      if (data === undefined) throw new ModelMissing(`ConfigMap ${namespace}/${name} has no binaryData key ${key}`);
      const id = `${namespace}/${name}/${key}@${cm.metadata.resourceVersion}`;
      for (const old of this.loaded.keys())
        if (old.startsWith(`${namespace}/${name}/${key}@`) && old !== id) this.drop(old);
      return { model: await this.load(id, async () => AnomalyModel.load(Buffer.from(data, "base64"))), name: id };
    }
    const builtin: DefaultModelName = ref.builtin ?? "autoencoder";
    return { model: await this.load(builtin, async () => (await loadDefaultModel(builtin)).model), name: builtin };
  }

  private load(id: string, load: () => Promise<AnomalyModel>): Promise<AnomalyModel> {
    let p = this.loaded.get(id);
    if (!p) {
      p = load();
      this.loaded.set(id, p);
      // A failure is not cached: the next reconcile tries again (the ConfigMap may have been fixed since).
      p.catch(() => this.loaded.delete(id));
    }
    return p;
  }

  private drop(id: string): void {
    const p = this.loaded.get(id);
    this.loaded.delete(id);
    void p?.then((m) => m.close()).catch(() => undefined);
  }
}

class ModelMissing extends Error {}

const models = new ModelCache();

/** Fraction of the feature window the pod has not been Ready: from the Ready condition's last transition. */
function notReadySeconds(pod: Pod, now: number): number {
  const ready = pod.status?.conditions?.find((c) => c.type === "Ready");
  if (ready?.status === "True") return 0;
  const since = ready?.lastTransitionTime ? Date.parse(ready.lastTransitionTime) : now - WINDOW_MS;
  return Math.min(FEATURE_WINDOW_SECONDS, Math.max(0, (now - since) / 1000));
}

/**
 * CPU and memory per pod from Prometheus (cAdvisor's metric names) when the policy names one; an error there is
 * an error of the trigger (never scored on guesses).
 */
async function resourceUsage(
  policy: RemediationPolicy,
): Promise<
  { ok: true; cpu: Map<string, number>; memory: Map<string, number> } | { ok: false; reason: string; message: string }
> {
  const url = policy.spec.prometheus?.url;
  if (!url) return { ok: true, cpu: new Map(), memory: new Map() };
  const ns = policy.metadata.namespace;
  const cpu = await instantQuery(
    url,
    `sum by (pod) (rate(container_cpu_usage_seconds_total{namespace="${ns}",container!=""}[${FEATURE_WINDOW_SECONDS}s]))`,
  );
  const memory = await instantQuery(
    url,
    `sum by (pod) (container_memory_working_set_bytes{namespace="${ns}",container!=""})`,
  );
  for (const r of [cpu, memory]) if (!r.ok && r.reason !== "NoData") return r;
  const byPod = (r: typeof cpu) => new Map(r.ok ? r.samples.map((s) => [s.labels.pod ?? "", s.value]) : []);
  return { ok: true, cpu: byPod(cpu), memory: byPod(memory) };
}

type Resources = { limits?: Record<string, string>; requests?: Record<string, string> };

function sumResource(pod: Pod, kind: "limits" | "requests", name: "cpu" | "memory"): number | undefined {
  const containers = (pod as Pod & { spec?: { containers?: Array<{ resources?: Resources }> } }).spec?.containers ?? [];
  let total = 0;
  for (const c of containers) {
    const q = c.resources?.[kind]?.[name];
    if (!q) return undefined; // a container without it: the pod as a whole has no such bound
    total += parseQuantity(q);
  }
  return containers.length ? total : undefined;
}

/** Scores the pods with the trigger's model over their observed features, in one batch. */
export async function scorePods(
  policy: RemediationPolicy,
  ref: ModelRef,
  pods: Pod[],
  history: PodHistory,
  cache: Cache,
  now: number,
  observeSeconds: (model: string, seconds: number) => void,
): Promise<ScoreResult> {
  let loaded: { model: AnomalyModel; name: string };
  try {
    loaded = await models.get(ref, policy.metadata.namespace as string, cache);
  } catch (e) {
    if (e instanceof ModelInvalidError) return { ok: false, reason: "ModelInvalid", message: e.message };
    if (e instanceof ModelMissing) return { ok: false, reason: "ModelNotFound", message: e.message };
    throw e;
  }
  const usage = await resourceUsage(policy);
  if (!usage.ok) return usage;
  const observations: PodObservation[] = pods.map((p) => ({
    restarts: history.restartsWithin(p, WINDOW_MS, now),
    oomKills: history.oomKillsWithin(p, WINDOW_MS, now),
    notReadySeconds: notReadySeconds(p, now),
    windowSeconds: FEATURE_WINDOW_SECONDS,
    cpuUsageCores: usage.cpu.get(p.metadata.name),
    cpuLimitCores: sumResource(p, "limits", "cpu"),
    cpuRequestCores: sumResource(p, "requests", "cpu"),
    memoryWorkingSetBytes: usage.memory.get(p.metadata.name),
    memoryLimitBytes: sumResource(p, "limits", "memory"),
  }));
  const started = performance.now();
  try {
    const scores = await loaded.model.score(featureRows(observations));
    observeSeconds(
      ref.configMapRef ? "configmap" : (ref.builtin ?? "autoencoder"),
      (performance.now() - started) / 1000,
    );
    return { ok: true, scores };
  } catch (e) {
    if (e instanceof ModelInvalidError) return { ok: false, reason: "ModelInvalid", message: e.message };
    throw e;
  }
}
