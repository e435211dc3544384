import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type HistoryEntry,
  type RemediationPolicy,
  RemediationPolicyKind,
  type RemediationPolicySpec,
} from "../../src/crds/remediationpolicy.ts";
import type { KubeClient } from "../../src/runtime/client.ts";
import { waitUntil } from "./harness.ts";

/** The alert rule the alert tests fire: HighErrorRate for a pod whose app_errors is above 1. */
export const HIGH_ERROR_RATE_RULES = `
groups:
  - name: app
    rules:
      - alert: HighErrorRate
        expr: app_errors > 1
        for: 0s
`;

/** An exporter of the series a test sets (a metric and its labels), for the test's Prometheus to scrape. */
export async function startSeriesExporter() {
  const series = new Map<string, number>();
  const server: Server = createServer((_req, res) => {
    res.setHeader("content-type", "text/plain; version=0.0.4");
    res.end(`${[...series].map(([k, v]) => `${k} ${v}`).join("\n")}\n`);
  });
  await once(server.listen(0, "127.0.0.1"), "listening");
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    /** Sets the series, or removes it (undefined). */
    set(metric: string, labels: Record<string, string>, value: number | undefined) {
      const key = `${metric}{${Object.entries(labels)
        .map(([k, v]) => `${k}="${v}"`)
        .join(",")}}`;
      if (value === undefined) series.delete(key);
      else series.set(key, value);
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** A bearer token for the alert webhook in a file, as a mounted Secret holds it. */
export function webhookToken() {
  const token = randomBytes(24).toString("hex");
  const dir = mkdtempSync(join(tmpdir(), "nextgen-alert-token-"));
  const file = join(dir, "token");
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return { token, file, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A policy on the Deployment of its own name, with brakes opened up (tests close the one they are about):
 * spec's fields win, and spec.safety's over these.
 */
export function remediationPolicy(
  namespace: string,
  name: string,
  labels: Record<string, string>,
  spec: Partial<RemediationPolicySpec>,
): RemediationPolicy {
  return {
    apiVersion: "nextgen.itechsmart.io/v1alpha1",
    kind: "RemediationPolicy",
    metadata: { name, namespace, labels },
    spec: {
      targetRef: { apiVersion: "apps/v1", kind: "Deployment", name },
      actions: [{ restartPod: {}, timeout: "8s" }],
      ...spec,
      safety: { maxConcurrent: 5, cooldown: "0s", maxActionsPerHour: 50, minAvailable: 0, ...spec.safety },
    } as RemediationPolicySpec,
  };
}

/** Waits for the policy to satisfy pred; on timeout, the error shows the status it had last. */
export async function waitForPolicy(
  admin: KubeClient,
  namespace: string,
  name: string,
  what: string,
  pred: (p: RemediationPolicy) => boolean,
  timeoutMs = 60_000,
): Promise<RemediationPolicy> {
  let last: RemediationPolicy | undefined;
  try {
    return await waitUntil(
      `RemediationPolicy ${name}: ${what}`,
      async () => {
        last = await admin.get<RemediationPolicy>(RemediationPolicyKind, namespace, name);
        return last && pred(last) ? last : undefined;
      },
      { timeoutMs, intervalMs: 250 },
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}; its status was ${JSON.stringify(last?.status, null, 1)}`);
  }
}

/** Whether the policy's history holds an entry of this action and result. */
export function hasHistory(p: RemediationPolicy, action: string, result: HistoryEntry["result"]): boolean {
  return (p.status?.history ?? []).some((h) => h.action === action && h.result === result);
}
