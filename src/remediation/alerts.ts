import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";

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

/**
 * The alerts firing now, as Alertmanager last said: a firing notification adds an alert, a resolved one removes
 * it. Alertmanager repeats firing alerts every repeat_interval, so a restarted operator learns them again.
 */
export class AlertStore {
  private readonly firing = new Map<string, WebhookAlert>();
  private readonly listeners: Array<(alerts: WebhookAlert[]) => void> = [];

  /** Called with the alerts of each notification, after the store took them in. */
  onChange(listener: (alerts: WebhookAlert[]) => void): () => void {
    this.listeners.push(listener);
    return () => void this.listeners.splice(this.listeners.indexOf(listener), 1);
  }

  receive(alerts: WebhookAlert[]): void {
    for (const a of alerts) {
      const key = a.fingerprint ?? JSON.stringify(Object.entries(a.labels).sort());
      if (a.status === "firing") this.firing.set(key, a);
      else this.firing.delete(key);
    }
    for (const l of this.listeners) l(alerts);
  }

  /** Firing alerts with this alertname whose labels include matchLabels. */
  matching(alertname: string, matchLabels: Record<string, string> = {}): WebhookAlert[] {
    return [...this.firing.values()].filter(
      (a) => a.labels.alertname === alertname && Object.entries(matchLabels).every(([k, v]) => a.labels[k] === v),
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
