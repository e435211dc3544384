/**
 * The remote QPU provider interface: what the operator needs from a cloud quantum service, with no Kubernetes in
 * it. A second provider implements QpuProvider in one new file and registers its factory in index.ts.
 */
import type { LanguageFeature } from "../circuit.ts";

export type RemoteJobState = "Queued" | "Running" | "Completed" | "Failed" | "Cancelled";

export interface Calibration {
  singleQubitError?: number;
  twoQubitError?: number;
  readoutError?: number;
  quantumVolume?: number;
  /** RFC 3339 */
  updated?: string;
}

export interface RemoteBackendStatus {
  operational: boolean;
  queueLength: number;
  message?: string;
}

export interface RemoteJobStatus {
  state: RemoteJobState;
  message?: string;
}

export interface RemoteResult {
  shots: number;
  counts: Record<string, number>;
}

export interface ProviderConfig {
  /** API base URL; each provider has its documented default. */
  endpoint?: string;
  /** Token service base URL; each provider has its default (IBM: https://iam.cloud.ibm.com). */
  authEndpoint?: string;
  /** The provider's device name, e.g. ibm_kingston. */
  backend: string;
  /** Decoded Secret data. */
  credentials: Record<string, string>;
  fetch?: typeof fetch;
  /** Retries of transient failures (network, 5xx, 429) inside one call before giving up; default 3. */
  maxRetries?: number;
  /**
   * Longest Retry-After / backoff a call waits in-line; anything longer is thrown as RateLimited with retryAfterMs
   * so the caller (a reconciler) requeues instead of blocking; default 5000 ms.
   */
  maxInlineWaitMs?: number;
}

export interface QpuProvider {
  /** Submits one circuit; `tag` is a unique idempotency tag (the Kubernetes object's UID). Answers the job id. */
  submit(job: { qasm: string; shots: number; tag: string }): Promise<string>;
  /**
   * The job submitted earlier with this tag, if any (to resume rather than resubmit after a crash or a timed-out
   * POST).
   */
  findByTag(tag: string): Promise<string | undefined>;
  status(id: string): Promise<RemoteJobStatus>;
  /**
   * Counts keyed by bitstring, most-significant classical bit first as Qiskit prints them; several registers joined
   * by a space, the last-declared register first.
   */
  results(id: string): Promise<RemoteResult>;
  cancel(id: string): Promise<void>;
  backendStatus(): Promise<RemoteBackendStatus>;
  /** Calibration summarised from the device's properties (medians), or undefined if it offers none. */
  calibration(): Promise<Calibration | undefined>;
}

/**
 * Unauthorized: the credentials are missing or refused (fix the Secret). RateLimited: try again after
 * retryAfterMs. Unavailable: the service failed or could not be reached (try again later). Rejected: the service
 * refused the request itself (retrying the same request will not help). NotFound: no such job or device.
 */
export type ProviderErrorKind = "Unauthorized" | "RateLimited" | "Unavailable" | "Rejected" | "NotFound";

/** A provider call that failed; its message never holds credentials. */
export class ProviderError extends Error {
  readonly kind: ProviderErrorKind;
  /** The HTTP status that caused it, if any. */
  readonly status?: number;
  /** For RateLimited: how long the service asked to wait. */
  readonly retryAfterMs?: number;
  constructor(
    kind: ProviderErrorKind,
    message: string,
    opts: { status?: number; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "ProviderError";
    this.kind = kind;
    if (opts.status !== undefined) this.status = opts.status;
    if (opts.retryAfterMs !== undefined) this.retryAfterMs = opts.retryAfterMs;
  }
}

export interface ProviderFactory {
  /** Secret keys it needs. */
  requiredCredentials: string[];
  /** The OpenQASM features its service accepts: placement sends it no circuit using another one. */
  languageFeatures: readonly LanguageFeature[];
  create(cfg: ProviderConfig): QpuProvider;
}
