/**
 * Who may read /metrics: the bearer token of each request authenticated by the API server (TokenReview) and the
 * user it names authorized for the path and verb (SubjectAccessReview), as controller-runtime's
 * filters.WithAuthenticationAndAuthorization does (sigs.k8s.io/controller-runtime v0.25.2,
 * pkg/metrics/filters/filters.go): no anonymous access, TokenReviews cached for a minute, allowed decisions for
 * five, denied ones for thirty seconds. The same answers: 401 without a valid token, 403 without the permission
 * (`get` on the non-resource URL, the metrics-reader ClusterRole), 500 when the API server could not say.
 */
import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { KubeClient } from "./client.ts";
import type { PolicyRule } from "./rbac.ts";

/** What the operator's own identity needs to ask: config/rbac's metrics-auth role. */
export const METRICS_AUTH_RULES: PolicyRule[] = [
  { apiGroups: ["authentication.k8s.io"], resources: ["tokenreviews"], verbs: ["create"] },
  { apiGroups: ["authorization.k8s.io"], resources: ["subjectaccessreviews"], verbs: ["create"] },
];

/** The one path the metrics server serves; a scraper needs `get` on it (config/rbac's metrics-reader ClusterRole). */
export const METRICS_PATH = "/metrics";

const TOKEN_TTL_MS = 60_000;
const ALLOW_TTL_MS = 5 * 60_000;
const DENY_TTL_MS = 30_000;
/** Bounds each cache: random tokens sent by anyone who can reach the port must not grow the heap. */
const MAX_ENTRIES = 1_000;

interface UserInfo {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export type Verdict =
  | { status: 200; user: string }
  | { status: 401 | 403; message: string }
  /** The API server could not say; cause is for the log, not the caller. */
  | { status: 500; message: string; cause: string };

/** A small cache of answers with their expiry, emptied whole when full. */
class Answers<T> {
  private readonly entries = new Map<string, { until: number; value: T }>();
  get(key: string): T | undefined {
    const e = this.entries.get(key);
    if (e && e.until > Date.now()) return e.value;
    this.entries.delete(key);
    return undefined;
  }
  set(key: string, value: T, ttlMs: number): void {
    if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
    this.entries.set(key, { until: Date.now() + ttlMs, value });
  }
}

export class DelegatedAuth {
  private readonly client: KubeClient;
  /** By the token's SHA-256: tokens themselves are not kept. */
  private readonly users = new Answers<UserInfo | null>();
  private readonly decisions = new Answers<boolean>();

  constructor(client: KubeClient) {
    this.client = client;
  }

  async check(req: IncomingMessage): Promise<Verdict> {
    const header = req.headers.authorization ?? "";
    const token = /^Bearer\s+(\S+)$/i.exec(header)?.[1];
    if (!token) return { status: 401, message: "Unauthorized" };
    let user: UserInfo | null;
    try {
      user = await this.authenticate(token);
    } catch (e) {
      return { status: 500, message: "Authentication failed", cause: String(e) };
    }
    if (!user) return { status: 401, message: "Unauthorized" };
    const verb = (req.method ?? "GET").toLowerCase();
    const path = (req.url ?? "/").split("?")[0] as string;
    let allowed: boolean;
    try {
      allowed = await this.authorize(user, verb, path);
    } catch (e) {
      return { status: 500, message: `Authorization for user ${user.username} failed`, cause: String(e) };
    }
    return allowed
      ? { status: 200, user: user.username }
      : { status: 403, message: `Authorization denied for user ${user.username}` };
  }

  private async authenticate(token: string): Promise<UserInfo | null> {
    const key = createHash("sha256").update(token).digest("hex");
    const cached = this.users.get(key);
    if (cached !== undefined) return cached;
    const review = await this.client.request<{ status?: { authenticated?: boolean; user?: UserInfo } }>(
      "POST",
      "/apis/authentication.k8s.io/v1/tokenreviews",
      { body: { apiVersion: "authentication.k8s.io/v1", kind: "TokenReview", spec: { token } } },
    );
    const user = review.status?.authenticated && review.status.user?.username ? review.status.user : null;
    this.users.set(key, user, TOKEN_TTL_MS);
    return user;
  }

  private async authorize(user: UserInfo, verb: string, path: string): Promise<boolean> {
    const key = JSON.stringify([user.username, user.uid, user.groups, user.extra, verb, path]);
    const cached = this.decisions.get(key);
    if (cached !== undefined) return cached;
    const review = await this.client.request<{ status?: { allowed?: boolean } }>(
      "POST",
      "/apis/authorization.k8s.io/v1/subjectaccessreviews",
      {
        body: {
          apiVersion: "authorization.k8s.io/v1",
          kind: "SubjectAccessReview",
          spec: {
            user: user.username,
            uid: user.uid,
            groups: user.groups,
            extra: user.extra,
            nonResourceAttributes: { path, verb },
          },
        },
      },
    );
    const allowed = review.status?.allowed === true;
    this.decisions.set(key, allowed, allowed ? ALLOW_TTL_MS : DENY_TTL_MS);
    return allowed;
  }
}
