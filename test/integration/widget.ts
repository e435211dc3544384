import { setTimeout as sleep } from "node:timers/promises";
import type { KubeClient } from "../../src/runtime/client.ts";
import { defineController } from "../../src/runtime/controller.ts";
import { TerminalError } from "../../src/runtime/errors.ts";
import { ConfigMapKind, CustomResourceDefinitionKind, type KindRef } from "../../src/runtime/kinds.ts";
import type { Resource } from "../../src/runtime/objects.ts";
import { Logger } from "../../src/runtime/log.ts";
import { Manager, type ManagerOptions } from "../../src/runtime/manager.ts";
import { waitUntil } from "../../src/runtime/wait.ts";

/**
 * A test-only kind and controller that exercise every part of the runtime a real controller uses: an owned child
 * through server-side apply, status and conditions, a finalizer, events, terminal and transient errors.
 */
export const WidgetKind: KindRef = {
  group: "test.nextgen.itechsmart.io",
  version: "v1",
  kind: "Widget",
  plural: "widgets",
  namespaced: true,
};
export type Widget = Resource<
  { message: string; mode?: "ok" | "fail" | "terminal"; slowMs?: number },
  {
    message?: string;
    conditions?: {
      type: string;
      status: string;
      reason: string;
      message: string;
      lastTransitionTime: string;
      observedGeneration?: number;
    }[];
    observedGeneration?: number;
  }
>;
export const WIDGET_FINALIZER = "test.nextgen.itechsmart.io/cleanup";

export const widgetCrd = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: `widgets.${WidgetKind.group}` },
  spec: {
    group: WidgetKind.group,
    names: { kind: "Widget", plural: "widgets", singular: "widget", listKind: "WidgetList" },
    scope: "Namespaced",
    versions: [
      {
        name: "v1",
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: "object",
            properties: {
              spec: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
              status: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
            },
          },
        },
      },
    ],
  },
};

export async function installWidgetCrd(admin: KubeClient): Promise<void> {
  await admin.apply(CustomResourceDefinitionKind, widgetCrd);
  await waitUntil(
    "the Widget CRD to be established",
    async () => {
      const crd = await admin.get<{
        apiVersion: string;
        kind: string;
        metadata: { name: string };
        status?: { conditions?: { type: string; status: string }[] };
      }>(CustomResourceDefinitionKind, undefined, widgetCrd.metadata.name);
      return crd?.status?.conditions?.some((c) => c.type === "Established" && c.status === "True");
    },
    { timeoutMs: 30_000 },
  );
}

export function widget(namespace: string, name: string, spec: Widget["spec"]): Widget {
  return { apiVersion: `${WidgetKind.group}/v1`, kind: "Widget", metadata: { name, namespace }, spec };
}

/** Every reconcile the controller ran, for tests to count and time. */
export interface ReconcileLog {
  entries: Array<{ key: string; at: number; generation?: number }>;
  finished: Set<string>;
}

export function widgetController(log: ReconcileLog) {
  return defineController<Widget>({
    name: "widget",
    for: WidgetKind,
    owns: [ConfigMapKind],
    async reconcile(ctx, w) {
      log.entries.push({ key: ctx.key, at: performance.now(), generation: w.metadata.generation });
      if (w.metadata.deletionTimestamp) {
        await ctx.removeFinalizer(w, WIDGET_FINALIZER);
        return;
      }
      w = await ctx.addFinalizer(w, WIDGET_FINALIZER);
      const status = ctx.status(w);
      if (w.spec.mode === "terminal") {
        status.condition("Ready", "False", "InvalidSpec", "mode terminal can never succeed");
        throw new TerminalError("InvalidSpec", "mode terminal can never succeed");
      }
      if (w.spec.mode === "fail") throw new Error("transient failure");
      if (w.spec.slowMs) await sleep(w.spec.slowMs); // stands for slow work in flight, e.g. key generation
      await ctx.apply(
        ConfigMapKind,
        {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: { name: `${w.metadata.name}-child`, namespace: w.metadata.namespace },
          data: { message: w.spec.message },
        },
        { owner: w },
      );
      status.set({ message: w.spec.message }).condition("Ready", "True", "Reconciled", `child holds ${w.spec.message}`);
      if (status.pending()) ctx.events.normal(w, "Reconciled", `child holds ${w.spec.message}`);
      log.finished.add(`${ctx.key}@${w.metadata.generation}`);
    },
  });
}

/** A manager running the widget controller in this process, its caches synced; stop() drains and returns. */
export async function startWidgetManager(
  client: KubeClient,
  log: ReconcileLog,
  opts: Partial<Pick<ManagerOptions, "namespaces" | "resyncMs">> = {},
): Promise<{ manager: Manager; stop(): Promise<void> }> {
  const manager = new Manager({ client, log: new Logger("warn"), metricsAddress: "0", probeAddress: "0", ...opts });
  manager.add(widgetController(log));
  const abort = new AbortController();
  const running = manager.run(abort.signal);
  await waitUntil("caches to sync", () => manager.cachesSynced, { timeoutMs: 30_000 });
  return {
    manager,
    stop: async () => {
      abort.abort();
      await running;
    },
  };
}
