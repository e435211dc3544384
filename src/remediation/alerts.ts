import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { apiUrl, get } from "../prometheus/query.ts";

/** One alert of Alertmanager's webhook payload (version 4). */
export interface WebhookAlert {
  status: "firing" | "resolved";
  labels: Record<string, string>;
  annotations?: Record<string, string>;
  startsAt?: string;
  endsAt?: string;
  fingerprint?: string;
}

interface WebhookPayload {
  version?: string;
  status?: string;
  alerts?: WebhookAlert[];
}

/** Alerts with this alertname whose labels include matchLabels. */
export function matchAlerts(
  alerts: Iterable<WebhookAlert>,
  alertname: string,
  matchLabels: Record<string, string> = {},
): WebhookAlert[] {
  return [...alerts].filter(
    (a) => a.labels.alertname === alertname && Object.entries(matchLabels).every(([k, v]) => a.labels[k] === v),
  );
}

/**
 * Alertmanager's default repeat_interval (4h) and group_interval (5m), and a little: a firing alert its webhook has
 * not repeated for this long was resolved in a notification this replica did not get (another replica did, or it
 * was lost).
 */
export const DEFAULT_ALERT_EXPIRY_MS = (4 * 60 + 10) * 60_000;

/**
 * The alerts firing now, as the notifications this replica received said: a firing notification adds an alert, a
 * resolved one removes it, and one not repeated within expireAfterMs (set it above Alertmanager's repeat_interval
 * plus group_interval) expires. Alertmanager repeats firing alerts every repeat_interval, so a restarted operator
 * learns them again. It is one replica's view: behind a Service, a policy's spec.alertmanager makes Alertmanager's
 * own API the source of truth instead, and this store only wakes the policies up.
 */
export class AlertStore {
  expireAfterMs = DEFAULT_ALERT_EXPIRY_MS;
  private readonly firing = new Map<string, { alert: WebhookAlert; receivedAt: number }>();
  private readonly listeners: Array<(alerts: WebhookAlert[]) => void> = [];

  /** Called with the alerts of each notification, after the store took them in. */
  onChange(listener: (alerts: WebhookAlert[]) => void): () => void {
    this.listeners.push(listener);
    return () => void this.listeners.splice(this.listeners.indexOf(listener), 1);
  }

  receive(alerts: WebhookAlert[], now = Date.now()): void {
    for (const a of alerts) {
      const key = a.fingerprint ?? JSON.stringify(Object.entries(a.labels).sort());
      if (a.status === "firing") this.firing.set(key, { alert: a, receivedAt: now });
      else this.firing.delete(key);
    }
    for (const l of this.listeners) l(alerts);
  }

  /** Firing alerts with this alertname whose labels include matchLabels, repeated within expireAfterMs. */
  matching(alertname: string, matchLabels: Record<string, string> = {}, now = Date.now()): WebhookAlert[] {
    for (const [key, f] of this.firing) if (now - f.receivedAt > this.expireAfterMs) this.firing.delete(key);
    return matchAlerts(
      [...this.firing.values()].map((f) => f.alert),
      alertname,
      matchLabels,
    );
  }
}

export type WebhookOutcome = "accepted" | "unauthorized" | "bad_request" | "not_found";

const MAX_BODY_BYTES = 4 * 1024 * 1024;

/**
 * Serves Alertmanager's webhook receiver at POST /alerts: a bearer token (compared in constant time) guards it,
 * and every request's outcome is reported (for a counter) without the token or the payload in any log. token is
 * read on each request, so a rotated Secret (a mounted file) takes effect without a restart.
 */
export function alertWebhookHandler(
  store: AlertStore,
  token: () => string,
  observe: (outcome: WebhookOutcome) => void,
): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const answer = (res: ServerResponse, code: number, outcome: WebhookOutcome, text: string) => {
    observe(outcome);
    res.statusCode = code;
    res.end(text);
  };
  return async (req, res) => {
    if ((req.url ?? "").split("?")[0] !== "/alerts" || req.method !== "POST")
      return answer(res, 404, "not_found", "POST /alerts\n");
    const expected = Buffer.from(`Bearer ${token()}`);
    const got = Buffer.from(req.headers.authorization ?? "");
    if (got.length !== expected.length || !timingSafeEqual(got, expected))
      return answer(res, 401, "unauthorized", "a valid bearer token is required\n");
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) return answer(res, 413, "bad_request", "payload too large\n");
      chunks.push(chunk as Buffer);
    }
    let payload: WebhookPayload;
    try {
      payload = JSON.parse(Buffer.concat(chunks).toString("utf8")) as WebhookPayload;
    } catch {
      return answer(res, 400, "bad_request", "the body is not JSON\n");
    }
    if (payload.version !== "4" || !Array.isArray(payload.alerts))
      return answer(res, 400, "bad_request", 'expected Alertmanager\'s webhook payload, version "4"\n');
    store.receive(payload.alerts.filter((a) => a && typeof a.labels === "object"));
    return answer(res, 200, "accepted", "ok\n");
  };
}

type AlertmanagerAlert = { labels: Record<string, string>; startsAt?: string; endsAt?: string; fingerprint?: string };

/**
 * The alerts Alertmanager holds active now (not silenced, not inhibited): GET /api/v2/alerts. Its answer is the
 * same whichever operator replica asks and whichever received the notifications, and an alert whose resolution
 * was never delivered is gone from it once its endsAt passes.
 */
export async function activeAlerts(
  baseUrl: string,
  timeoutMs = 10_000,
): Promise<{ ok: true; alerts: WebhookAlert[] } | { ok: false; reason: string; message: string }> {
  const url = apiUrl(baseUrl, "api/v2/alerts", {
    active: "true",
    silenced: "false",
    inhibited: "false",
    unprocessed: "false",
  });
  const got = await get(url, timeoutMs);
  if (!got.ok) return { ok: false, reason: "AlertmanagerUnreachable", message: got.message };
  const res = got.res;
  const body = (await res.json().catch(() => undefined)) as AlertmanagerAlert[] | undefined;
  if (!res.ok || !Array.isArray(body))
    return { ok: false, reason: "AlertmanagerFailed", message: `GET ${url.pathname} answered ${res.status}` };
  return {
    ok: true,
    alerts: body.map((a) => ({
      status: "firing" as const,
      labels: a.labels,
      startsAt: a.startsAt,
      endsAt: a.endsAt,
      fingerprint: a.fingerprint,
    })),
  };
}
