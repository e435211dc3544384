import { afterAll, beforeAll, expect, test } from "vitest";
import { ControlPlane } from "../../src/controlplane/control-plane.ts";
import { ApiError, KubeClient, isGone } from "../../src/runtime/client.ts";
import { ConfigMapKind, NamespaceKind } from "../../src/runtime/kinds.ts";
import type { Manager } from "../../src/runtime/manager.ts";
import { waitUntil } from "../../src/runtime/wait.ts";
import { type ReconcileLog, type Widget, WidgetKind, installWidgetCrd, startWidgetManager, widget } from "./widget.ts";

// This file restarts kube-apiserver, so it runs on a control plane of its own.
let cp: ControlPlane;
let admin: KubeClient;
let client: KubeClient;
let manager: Manager;
let stop: () => Promise<void>;
const log: ReconcileLog = { entries: [], finished: new Set() };
const ns = "restart";
const ready = async (name: string) =>
  (await admin.get<Widget>(WidgetKind, ns, name))?.status?.conditions?.some(
    (c) => c.type === "Ready" && c.status === "True",
  );

beforeAll(async () => {
  cp = await ControlPlane.start({ controllerManager: false, scheduler: false, kwok: false });
  admin = KubeClient.load(cp.adminKubeconfig, "nextgen-test-admin");
  await installWidgetCrd(admin);
  await admin.create(NamespaceKind, { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
  client = KubeClient.load(cp.adminKubeconfig, "nextgen-operator");
  ({ manager, stop } = await startWidgetManager(client, log));
});

afterAll(async () => {
  await stop();
  await client.close();
  await admin.close();
  await cp.stop();
});

test("informers recover from an API server restart, re-list after 410, and reconciling goes on", async () => {
  await admin.create(WidgetKind, widget(ns, "before", { message: "1" }));
  await waitUntil("widget before to be Ready", () => ready("before"), { timeoutMs: 30_000 });
  const widgets = manager.cache.informer(WidgetKind);
  const listsBefore = widgets.lists;
  const seenBefore = (await client.list(WidgetKind, { namespace: ns })).metadata.resourceVersion;

  // A write to another kind moves etcd's revision past the last one the Widget informer saw, and compacting etcd
  // there drops the informer's resourceVersion from history: its watch must answer 410 however the restarted
  // server serves it (a fresh watch cache, or etcd itself while that cache initialises).
  await admin.create(ConfigMapKind, { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "bump", namespace: ns } });
  await cp.stopApiserver();
  // Cut off, the cache knows that it is behind, and since when: what judges heartbeats by time reads this.
  const { behindSince } = await waitUntil(
    "the Widget cache to know that it is behind",
    () => {
      const now = Date.now();
      const asOf = widgets.currentAsOf(now);
      return asOf < now ? { behindSince: asOf } : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 50 },
  );
  expect(widgets.currentAsOf(Date.now() + 60_000)).toBe(behindSince);
  // A request now gets no answer at all; the server's next answer wakes whatever waits in untilReachable (informers
  // backing off), rather than leaving each to its backoff.
  const unanswered = await client.list(WidgetKind, { namespace: ns }).then(
    () => "answered",
    (e: unknown) => (e instanceof ApiError ? "answered" : "no answer"),
  );
  expect(unanswered).toBe("no answer");
  const gaveUp = new AbortController();
  let answeredAgain = false;
  void client.untilReachable(gaveUp.signal).then(() => (answeredAgain = !gaveUp.signal.aborted));
  await cp.compactEtcd();
  await cp.startApiserver();
  // While its watch cache initialises, the restarted server answers 429 ("storage is (re)initializing"), which
  // clients retry: so does this probe, until the server gives its real answer.
  const { answer } = await waitUntil(
    "the restarted server to answer a watch from the old resourceVersion",
    async () => {
      const answer: unknown = await client
        .watch(
          WidgetKind,
          { resourceVersion: seenBefore, timeoutSeconds: 5 },
          () => undefined,
          AbortSignal.timeout(10_000),
        )
        .catch((e: unknown) => e);
      return answer instanceof ApiError && answer.status === 429 ? undefined : { answer };
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
  expect(isGone(answer), String(answer)).toBe(true);

  await admin.create(WidgetKind, widget(ns, "after", { message: "2" }));
  await waitUntil("widget after to be Ready", () => ready("after"), { timeoutMs: 60_000 });
  gaveUp.abort();
  expect(answeredAgain, "untilReachable resolved by the server's answer").toBe(true);
  expect(widgets.lists).toBeGreaterThan(listsBefore);
  await waitUntil(
    "the Widget cache to be current again",
    () => {
      const now = Date.now();
      return widgets.currentAsOf(now) === now;
    },
    { timeoutMs: 30_000, intervalMs: 50 },
  );
  expect(manager.cachesSynced).toBe(true);
});
