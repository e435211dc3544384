import type { KubeClient } from "./client.ts";
import { EventKind, apiVersionOf } from "./kinds.ts";
import type { Logger } from "./log.ts";
import type { KubeObject } from "./objects.ts";
import { microTime } from "./time.ts";

const MAX_PENDING = 1000;

/**
 * Records events.k8s.io/v1 Events in the background, as client-go's broadcaster does: a reconcile never waits on
 * one, the same event about the same object is written once per window, and when the API server falls behind,
 * events beyond a bounded backlog are dropped rather than held in memory.
 */
export class EventRecorder {
  private readonly recent = new Map<string, number>();
  private readonly pending: Array<() => Promise<void>> = [];
  private sending = false;
  private readonly client: KubeClient;
  private readonly controller: string;
  private readonly instance: string;
  private readonly log: Logger;
  private readonly windowMs: number;

  constructor(client: KubeClient, controller: string, instance: string, log: Logger, windowMs = 10 * 60_000) {
    this.client = client;
    this.controller = controller;
    this.instance = instance;
    this.log = log;
    this.windowMs = windowMs;
  }

  normal(obj: KubeObject, reason: string, note: string): void {
    this.record(obj, "Normal", reason, note);
  }

  warning(obj: KubeObject, reason: string, note: string): void {
    this.record(obj, "Warning", reason, note);
  }

  private record(obj: KubeObject, type: "Normal" | "Warning", reason: string, note: string): void {
    const key = `${obj.metadata.uid}\u0000${type}\u0000${reason}\u0000${note}`;
    const now = Date.now();
    const last = this.recent.get(key);
    if (last !== undefined && now - last < this.windowMs) return;
    this.recent.set(key, now);
    if (this.recent.size > 4096) this.recent.delete(this.recent.keys().next().value as string);
    if (this.pending.length >= MAX_PENDING) {
      this.log.warn("event backlog full; dropping an event", { reason });
      return;
    }
    this.pending.push(() => this.send(obj, type, reason, note, now));
    void this.drain();
  }

  private async drain(): Promise<void> {
    if (this.sending) return;
    this.sending = true;
    for (let next = this.pending.shift(); next; next = this.pending.shift()) await next();
    this.sending = false;
  }

  private async send(
    obj: KubeObject,
    type: "Normal" | "Warning",
    reason: string,
    note: string,
    now: number,
  ): Promise<void> {
    const name = `${obj.metadata.name}.${now.toString(16)}${Math.random().toString(16).slice(2, 6)}`;
    const ref = {
      apiVersion: obj.apiVersion,
      kind: obj.kind,
      name: obj.metadata.name,
      namespace: obj.metadata.namespace,
      uid: obj.metadata.uid,
      resourceVersion: obj.metadata.resourceVersion,
    };
    const time = new Date(now);
    try {
      await this.client.create(EventKind, {
        apiVersion: apiVersionOf(EventKind),
        kind: "Event",
        // Events about cluster-scoped objects go to "default", where the kubelet records Node events.
        metadata: { name, namespace: obj.metadata.namespace ?? "default" },
        eventTime: microTime(time),
        type,
        reason,
        action: reason,
        note: note.slice(0, 1024),
        reportingController: this.controller,
        reportingInstance: this.instance,
        regarding: ref,
      } as KubeObject);
    } catch (e) {
      // An event is informational: failing to record one must not fail the reconcile.
      this.log.warn("could not record event", { reason, error: String(e) });
    }
  }
}
