import { type AddressInfo, type Socket, createServer } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { KubeClient, isConflict } from "../../src/runtime/client.ts";
import { ReconcileContext } from "../../src/runtime/controller.ts";
import { KubeConfig } from "../../src/runtime/kubeconfig.ts";
import { EventRecorder } from "../../src/runtime/events.ts";
import { ConfigMapKind, EventKind } from "../../src/runtime/kinds.ts";
import { Logger } from "../../src/runtime/log.ts";
import type { Manager } from "../../src/runtime/manager.ts";
import type { KubeObject } from "../../src/runtime/objects.ts";
import { cluster, createNamespace, waitUntil } from "./harness.ts";
import {
  type ReconcileLog,
  WIDGET_FINALIZER,
  type Widget,
  WidgetKind,
  installWidgetCrd,
  widget,
  startWidgetManager,
} from "./widget.ts";

const { admin, adminKubeconfig } = cluster();
const log: ReconcileLog = { entries: [], finished: new Set() };
let stop: () => Promise<void>;
let manager: Manager;
let client: KubeClient;
let ns: string;

const reconcilesOf = (key: string) => log.entries.filter((e) => e.key === key);
const get = (name: string) => admin.get<Widget>(WidgetKind, ns, name);
const ready = (w: Widget | undefined) => w?.status?.conditions?.find((c) => c.type === "Ready");
const writes = async (m: Manager) => {
  const counts = await m.metrics.restRequests.get();
  return counts.values.filter((v) => v.labels.method !== "GET").reduce((s, v) => s + v.value, 0);
};
const counter = async (c: { get(): Promise<{ values: { value: number }[] }> }) =>
  (await c.get()).values.reduce((s, v) => s + v.value, 0);

beforeAll(async () => {
  await installWidgetCrd(admin);
  ns = await createNamespace(admin, "runtime");
  client = KubeClient.load(adminKubeconfig, "nextgen-operator");
  // No resync here: it would enqueue keys in backoff early; the idle test runs a manager of its own with one.
  ({ manager, stop } = await startWidgetManager(client, log, { namespaces: [ns], resyncMs: 0 }));
});

afterAll(async () => {
  await stop();
  await client.close();
});

describe("a controller on the runtime", () => {
  test("reconciles a resource into an owned child, a Ready status and one event", async () => {
    await admin.create(WidgetKind, widget(ns, "a", { message: "hello" }));
    const w = await waitUntil(
      "widget a to be Ready",
      async () => {
        const w = await get("a");
        return ready(w)?.status === "True" ? w : undefined;
      },
      { timeoutMs: 30_000 },
    );
    expect(w.status?.observedGeneration).toBe(w.metadata.generation);
    expect(w.status?.message).toBe("hello");
    expect(w.metadata.finalizers).toEqual([WIDGET_FINALIZER]);
    const child = await admin.get<KubeObject & { data: Record<string, string> }>(ConfigMapKind, ns, "a-child");
    expect(child?.data).toEqual({ message: "hello" });
    expect(child?.metadata.ownerReferences).toEqual([
      expect.objectContaining({ kind: "Widget", name: "a", uid: w.metadata.uid, controller: true }),
    ]);
    const events = await admin.list<KubeObject & { reason: string; regarding: { uid: string } }>(EventKind, {
      namespace: ns,
    });
    expect(events.items.filter((e) => e.regarding.uid === w.metadata.uid).map((e) => e.reason)).toEqual(["Reconciled"]);
  });

  test("once converged, reconciles write nothing: neither on metadata changes nor on resyncs", async () => {
    await waitUntil("widget a to be Ready", async () => ready(await get("a"))?.status === "True", {
      timeoutMs: 30_000,
    });
    const before = await writes(manager);
    const reconciles = reconcilesOf(`${ns}/a`).length;
    for (let i = 0; i < 3; i++)
      await admin.patch(WidgetKind, ns, "a", "merge", { metadata: { annotations: { poke: `${i}` } } });
    await waitUntil("three more reconciles", () => reconcilesOf(`${ns}/a`).length >= reconciles + 3, {
      timeoutMs: 30_000,
    });
    expect(await writes(manager)).toBe(before);

    // A second manager whose informers resync every 300 ms finds the same converged state.
    const resyncLog: ReconcileLog = { entries: [], finished: new Set() };
    const second = await startWidgetManager(client, resyncLog, { namespaces: [ns], resyncMs: 300 });
    await waitUntil("three resync reconciles", () => resyncLog.entries.filter((e) => e.key === `${ns}/a`).length >= 4, {
      timeoutMs: 30_000,
    });
    await second.stop();
    expect(await writes(second.manager)).toBe(0);
  });

  test("a spec change moves observedGeneration and the message, not lastTransitionTime", async () => {
    const before = ready(await get("a"));
    await admin.patch(WidgetKind, ns, "a", "merge", { spec: { message: "changed" } });
    const w = await waitUntil(
      "widget a to observe generation 2",
      async () => {
        const w = await get("a");
        return w?.status?.observedGeneration === 2 ? w : undefined;
      },
      { timeoutMs: 30_000 },
    );
    expect(ready(w)).toMatchObject({ status: "True", message: "child holds changed", observedGeneration: 2 });
    expect(ready(w)?.lastTransitionTime).toBe(before?.lastTransitionTime);
  });

  test("a terminal error is reported in a condition and never retried", async () => {
    const retries = await counter(manager.metrics.queueRetries);
    await admin.create(WidgetKind, widget(ns, "bad", { message: "x", mode: "terminal" }));
    const w = await waitUntil(
      "widget bad to report InvalidSpec",
      async () => {
        const w = await get("bad");
        return ready(w)?.reason === "InvalidSpec" ? w : undefined;
      },
      { timeoutMs: 30_000 },
    );
    expect(ready(w)).toMatchObject({ status: "False", message: "mode terminal can never succeed" });
    expect(await counter(manager.metrics.terminalReconcileErrors)).toBeGreaterThanOrEqual(1);
    expect(await counter(manager.metrics.queueRetries)).toBe(retries);
  });

  test("transient errors are retried with per-key exponential backoff, then succeed", async () => {
    // Created with the finalizer in place, so no write of the controller's own re-enqueues the key: every attempt
    // after the first is a backoff retry.
    await admin.create(WidgetKind, withFinalizer(widget(ns, "flaky", { message: "x", mode: "fail" })));
    const key = `${ns}/flaky`;
    await waitUntil("eight attempts", () => reconcilesOf(key).length >= 8, { timeoutMs: 30_000 });
    const at = reconcilesOf(key).map((e) => e.at);
    const gaps = at.slice(1, 8).map((t, i) => t - (at[i] as number));
    // The queue waits 5 ms · 2^n before retry n; timers never fire early, so each gap is at least that.
    gaps.forEach((gap, n) => expect(gap).toBeGreaterThanOrEqual(5 * 2 ** n - 1));
    expect(gaps[6]).toBeGreaterThan(4 * (gaps[1] as number));
    await admin.patch(WidgetKind, ns, "flaky", "merge", { spec: { mode: "ok" } });
    await waitUntil("widget flaky to become Ready", async () => ready(await get("flaky"))?.status === "True", {
      timeoutMs: 30_000,
    });
  });

  test("changes made while a reconcile runs coalesce into one more reconcile of the latest state", async () => {
    // Created with the finalizer in place, as in the test above: the controller's first write is then the status,
    // after the slow work, and no finalizer patch of its own races the changes below into conflicts.
    await admin.create(WidgetKind, withFinalizer(widget(ns, "busy", { message: "m0", slowMs: 800 })));
    const key = `${ns}/busy`;
    await waitUntil("the first reconcile to start", () => reconcilesOf(key).length >= 1, { timeoutMs: 30_000 });
    for (let i = 1; i <= 20; i++) await admin.patch(WidgetKind, ns, "busy", "merge", { spec: { message: `m${i}` } });
    await waitUntil("widget busy to hold m20", async () => (await get("busy"))?.status?.message === "m20", {
      timeoutMs: 60_000,
    });
    // 21 generations, but each change queued while the key was in flight folded into one pending key.
    expect(reconcilesOf(key).length).toBeLessThan(10);
  });

  test("deleting a resource runs its finalizer", async () => {
    await admin.delete(WidgetKind, ns, "a");
    await waitUntil("widget a to be gone", async () => (await get("a")) === undefined, { timeoutMs: 30_000 });
  });

  test("a delete, which carries a body, leaves its kept-alive connection clean for the requests after it", async () => {
    const configMap = (name: string) => ({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: ns } });
    for (let i = 0; i < 3; i++) {
      await admin.create(ConfigMapKind, configMap(`deleted-${i}`));
      expect(await admin.delete(ConfigMapKind, ns, `deleted-${i}`, { propagationPolicy: "Background" })).toBe(true);
      // One request at a time: each reuses the connection the delete was sent on.
      expect(await admin.get(ConfigMapKind, ns, `deleted-${i}`)).toBeUndefined();
    }
  });

  test("a request that gets no answer is given up after requestTimeoutMs, not left hanging", async () => {
    // A server that takes the connection and never says a word (not even TLS): a socket a partition left dead.
    const sockets: Socket[] = [];
    const silent = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as AddressInfo;
    const stalled = new KubeClient(
      new KubeConfig({
        server: `https://127.0.0.1:${port}`,
        tls: admin.kubeConfig.tls,
        source: "a silent server",
        credentials: async () => ({ headers: {} }),
      }),
      "test",
    );
    stalled.requestTimeoutMs = 300;
    try {
      const err = await stalled.get(ConfigMapKind, ns, "anything").catch((e: unknown) => e);
      expect(String(err)).toMatch(/no answer within 300 ms/);
      expect(sockets.length).toBeGreaterThan(0);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
      await stalled.close();
    }
  });

  test("finalizer writes are guarded by resourceVersion", async () => {
    await admin.create(WidgetKind, widget(ns, "guarded", { message: "x", mode: "terminal" }));
    const stale = await waitUntil("widget guarded to exist", () => get("guarded"), { timeoutMs: 10_000 });
    await admin.patch(WidgetKind, ns, "guarded", "merge", { metadata: { finalizers: ["someone.else/keep"] } });
    const ctx = new ReconcileContext(`${ns}/guarded`, WidgetKind, {
      cache: manager.cache,
      client,
      events: new EventRecorder(client, "test", "test", new Logger("error")),
      log: new Logger("error"),
      registry: manager.metrics.registry,
    });
    const err = await ctx.addFinalizer(stale, "test.nextgen.itechsmart.io/other").catch((e) => e);
    expect(isConflict(err)).toBe(true);
    const live = await get("guarded");
    expect(live?.metadata.finalizers).toContain("someone.else/keep");
    await admin.patch(WidgetKind, ns, "guarded", "merge", { metadata: { finalizers: null } });
  });

  test("stopping drains the reconcile in flight before returning", async () => {
    await admin.create(WidgetKind, widget(ns, "draining", { message: "d", slowMs: 1500 }));
    const key = `${ns}/draining`;
    await waitUntil("the slow reconcile to start", () => reconcilesOf(key).length >= 1, { timeoutMs: 30_000 });
    await stop();
    expect(log.finished.has(`${key}@1`)).toBe(true);
  });
});

function withFinalizer(w: Widget): Widget {
  return { ...w, metadata: { ...w.metadata, finalizers: [WIDGET_FINALIZER] } };
}
