/**
 * IBM Quantum Platform (Qiskit Runtime REST API): SamplerV2 jobs of OpenQASM 3 circuits, authenticated with an IBM
 * Cloud API key exchanged for an IAM bearer token.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { jittered } from "../../runtime/backoff.ts";
import { QISKIT_FEATURES } from "../circuit.ts";
import {
  type Calibration,
  type ProviderConfig,
  ProviderError,
  type ProviderFactory,
  type QpuProvider,
  type RemoteBackendStatus,
  type RemoteJobState,
  type RemoteJobStatus,
  type RemoteResult,
} from "./provider.ts";

/** The response schemas this adapter was written against. */
export const IBM_API_VERSION = "2026-03-15";
export const IBM_DEFAULT_ENDPOINT = "https://quantum.cloud.ibm.com/api";
export const IBM_DEFAULT_AUTH_ENDPOINT = "https://iam.cloud.ibm.com";

const FIRST_BACKOFF_MS = 200;
const REQUEST_TIMEOUT_MS = 60_000;
/** Refresh when 80% of a token's lifetime has passed, as IBM's SDKs do. */
const TOKEN_REFRESH_FRACTION = 0.8;
const MAX_MESSAGE_CHARS = 500;

/** Gates that do no physical work (rz is virtual, id a no-op) or are not gates: left out of the 1-qubit median. */
const NOT_SINGLE_QUBIT_GATES = new Set(["id", "rz", "reset", "measure", "delay", "barrier"]);

/** One classical register in a SamplerV2 result: a hex value per shot, bit k = register bit k. */
export interface IbmRegisterSamples {
  samples: string[];
  num_bits?: number;
}

/** The parts of a Qiskit BackendProperties document the calibration summary reads. */
export interface IbmBackendProperties {
  last_update_date?: string;
  qubits?: { name: string; value: number }[][];
  gates?: { gate: string; qubits: number[]; parameters?: { name: string; value: number }[] }[];
}

export const ibmQuantum: ProviderFactory = {
  requiredCredentials: ["apiKey", "serviceCRN"],
  // Qiskit Runtime turns an OpenQASM 3 submission into a circuit with Qiskit's importer, as the GPU runner does
  // (whose features test/unit/gpu-runner.test.ts checks); the service itself is not reachable from the tests.
  languageFeatures: QISKIT_FEATURES,
  create: (cfg) => new IbmQuantumProvider(cfg),
};

/** Thrown inside the adapter when a request may or may not have taken effect (a network error or 5xx). */
class OutcomeUnknown extends Error {
  readonly status?: number;
  constructor(message: string, status?: number) {
    super(message);
    if (status !== undefined) this.status = status;
  }
}

export class IbmQuantumProvider implements QpuProvider {
  private readonly endpoint: string;
  private readonly authEndpoint: string;
  private readonly backend: string;
  private readonly apiKey: string;
  private readonly serviceCRN: string;
  private readonly fetch: typeof fetch;
  private readonly maxRetries: number;
  private readonly maxInlineWaitMs: number;
  private token?: { value: string; refreshAt: number };
  private pendingToken?: Promise<string>;

  constructor(cfg: ProviderConfig) {
    for (const key of ibmQuantum.requiredCredentials) {
      if (!cfg.credentials[key]) throw new ProviderError("Unauthorized", `the credentials Secret has no ${key}`);
    }
    this.endpoint = (cfg.endpoint ?? IBM_DEFAULT_ENDPOINT).replace(/\/+$/, "");
    this.authEndpoint = (cfg.authEndpoint ?? IBM_DEFAULT_AUTH_ENDPOINT).replace(/\/+$/, "");
    this.backend = cfg.backend;
    this.apiKey = cfg.credentials.apiKey as string;
    this.serviceCRN = cfg.credentials.serviceCRN as string;
    this.fetch = cfg.fetch ?? globalThis.fetch;
    this.maxRetries = cfg.maxRetries ?? 3;
    this.maxInlineWaitMs = cfg.maxInlineWaitMs ?? 5000;
  }

  async submit(job: { qasm: string; shots: number; tag: string }): Promise<string> {
    const body = {
      program_id: "sampler",
      backend: this.backend,
      params: { pubs: [[job.qasm, null, job.shots]], version: 2 },
      tags: [job.tag],
    };
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await this.api("POST", "/v1/jobs", body, { idempotent: false });
        const id = (await readJson<{ id?: unknown }>(res)).id;
        if (typeof id !== "string" || !id) throw new ProviderError("Unavailable", "IBM Quantum answered no job id");
        return id;
      } catch (e) {
        if (!(e instanceof OutcomeUnknown)) throw e;
        // The job may have been created before the failure: submitting again would run (and bill) it twice.
        const existing = await this.findByTag(job.tag);
        if (existing) return existing;
        if (attempt >= this.maxRetries) {
          throw new ProviderError("Unavailable", `IBM Quantum job submission failed: ${e.message}`, {
            status: e.status,
          });
        }
        await sleep(this.backoffMs(attempt));
      }
    }
  }

  async findByTag(tag: string): Promise<string | undefined> {
    const query = new URLSearchParams({ tags: tag, limit: "1", exclude_params: "true" });
    const res = await this.api("GET", `/v1/jobs?${query}`);
    const id = (await readJson<{ jobs?: { id?: unknown }[] }>(res)).jobs?.[0]?.id;
    return typeof id === "string" && id ? id : undefined;
  }

  async status(id: string): Promise<RemoteJobStatus> {
    const res = await this.api("GET", `/v1/jobs/${encodeURIComponent(id)}?exclude_params=true`);
    const job = await readJson<{ status?: string; state?: { status?: string; reason?: string } }>(res);
    const raw = job.status ?? job.state?.status;
    const state = raw === undefined ? undefined : jobState(raw);
    if (!state) throw new ProviderError("Unavailable", `IBM Quantum answered an unknown job status ${String(raw)}`);
    const reason = job.state?.reason;
    return reason ? { state, message: reason } : { state };
  }

  async results(id: string): Promise<RemoteResult> {
    const res = await this.api("GET", `/v1/jobs/${encodeURIComponent(id)}/results`);
    const data = (await readJson<{ results?: { data?: Record<string, IbmRegisterSamples> }[] }>(res)).results?.[0]
      ?.data;
    if (!data) throw new ProviderError("Unavailable", `IBM Quantum job ${id} has no result data`);
    return countsFromSamples(data);
  }

  async cancel(id: string): Promise<void> {
    try {
      const res = await this.api("POST", `/v1/jobs/${encodeURIComponent(id)}/cancel`);
      await res.body?.cancel();
    } catch (e) {
      if (!(e instanceof ProviderError) || e.kind !== "Rejected") throw e;
      // Only Queued and Running jobs can be cancelled; a job that already ended needs nothing more.
      if (e.status === 409) return;
      const { state } = await this.status(id);
      if (state !== "Completed" && state !== "Failed" && state !== "Cancelled") throw e;
    }
  }

  async backendStatus(): Promise<RemoteBackendStatus> {
    const res = await this.api("GET", `/v1/backends/${encodeURIComponent(this.backend)}/status`);
    const body = await readJson<{ state?: unknown; status?: unknown; length_queue?: unknown }>(res);
    const status: RemoteBackendStatus = {
      operational: body.state === true,
      queueLength: typeof body.length_queue === "number" ? body.length_queue : 0,
    };
    if (typeof body.status === "string" && body.status) status.message = body.status;
    return status;
  }

  async calibration(): Promise<Calibration | undefined> {
    const device = `/v1/backends/${encodeURIComponent(this.backend)}`;
    const [properties, configuration] = await Promise.all([
      this.optionalJson<IbmBackendProperties>(`${device}/properties`),
      this.optionalJson<{ quantum_volume?: unknown }>(`${device}/configuration`),
    ]);
    const qv = configuration?.quantum_volume;
    return calibrationFromProperties(properties ?? {}, typeof qv === "number" ? qv : undefined);
  }

  /** A GET whose 404 means the device offers no such document (simulators have no properties). */
  private async optionalJson<T>(path: string): Promise<T | undefined> {
    try {
      return await readJson<T>(await this.api("GET", path));
    } catch (e) {
      if (e instanceof ProviderError && e.kind === "NotFound") return undefined;
      throw e;
    }
  }

  /**
   * One API call: authenticated, transient failures retried, a 401 answered by one fresh token exchange. Answers a
   * 2xx response; throws ProviderError for the rest, or OutcomeUnknown for a request that is not idempotent.
   */
  private async api(
    method: "GET" | "POST",
    path: string,
    body?: unknown,
    opts: { idempotent: boolean } = { idempotent: true },
  ): Promise<Response> {
    for (let reauthenticated = false; ; reauthenticated = true) {
      const token = await this.bearer();
      const headers: Record<string, string> = {
        Authorization: `Bearer ${token}`,
        "Service-CRN": this.serviceCRN,
        "IBM-API-Version": IBM_API_VERSION,
        Accept: "application/json",
      };
      if (body !== undefined) headers["Content-Type"] = "application/json";
      const init: RequestInit = { method, headers };
      if (body !== undefined) init.body = JSON.stringify(body);
      const res = await this.exchange(`${method} ${path}`, this.endpoint + path, init, opts.idempotent);
      if (res.ok) return res;
      const message = await this.errorMessage(res, token);
      if (res.status === 401) {
        if (this.token?.value === token) this.token = undefined;
        if (!reauthenticated) continue;
        throw new ProviderError(
          "Unauthorized",
          "IBM Quantum refused a freshly issued token; check apiKey and serviceCRN in the credentials Secret",
          { status: 401 },
        );
      }
      const kind = res.status === 404 ? "NotFound" : "Rejected";
      throw new ProviderError(kind, `IBM Quantum ${method} ${path}: ${message}`, { status: res.status });
    }
  }

  /** The cached IAM bearer token, exchanged for the API key when absent or near its expiry. */
  private async bearer(): Promise<string> {
    if (this.token && Date.now() < this.token.refreshAt) return this.token.value;
    this.pendingToken ??= this.exchangeApiKey().finally(() => (this.pendingToken = undefined));
    return this.pendingToken;
  }

  private async exchangeApiKey(): Promise<string> {
    const res = await this.exchange("IAM token exchange", `${this.authEndpoint}/identity/token`, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: new URLSearchParams({ grant_type: "urn:ibm:params:oauth:grant-type:apikey", apikey: this.apiKey }),
    });
    if (!res.ok) {
      await res.body?.cancel();
      // IAM's error text is left out: nothing in it helps beyond "the key was refused".
      if (res.status === 400 || res.status === 401 || res.status === 403) {
        throw new ProviderError(
          "Unauthorized",
          `IBM Cloud IAM refused the API key (HTTP ${res.status}); check apiKey in the credentials Secret`,
          { status: res.status },
        );
      }
      throw new ProviderError("Unavailable", `IBM Cloud IAM token exchange answered HTTP ${res.status}`, {
        status: res.status,
      });
    }
    const received = Date.now();
    const body = await readJson<{ access_token?: unknown; expires_in?: unknown }>(res);
    if (typeof body.access_token !== "string" || !body.access_token) {
      throw new ProviderError("Unavailable", "IBM Cloud IAM answered no access token");
    }
    const lifetimeMs = (typeof body.expires_in === "number" ? body.expires_in : 3600) * 1000;
    this.token = { value: body.access_token, refreshAt: received + TOKEN_REFRESH_FRACTION * lifetimeMs };
    return body.access_token;
  }

  /**
   * One HTTP request with network errors, 5xx and 429 retried in-line up to maxRetries; answers any other response.
   * A request that is not idempotent is not retried when its outcome is unknown: OutcomeUnknown is thrown instead.
   */
  private async exchange(what: string, url: string, init: RequestInit, idempotent = true): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      let failure: string;
      let status: number | undefined;
      try {
        const res = await this.fetch(url, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
        if (res.status !== 429 && res.status < 500) return res;
        status = res.status;
        if (res.status === 429) {
          await res.body?.cancel();
          const waitMs = retryAfterMs(res.headers.get("retry-after"), Date.now()) ?? this.backoffMs(attempt);
          if (waitMs > this.maxInlineWaitMs || attempt >= this.maxRetries) {
            throw new ProviderError("RateLimited", `${what}: rate limited by the service`, {
              status,
              retryAfterMs: Math.ceil(waitMs),
            });
          }
          await sleep(waitMs);
          continue;
        }
        failure = `HTTP ${res.status}: ${await this.errorMessage(res)}`;
      } catch (e) {
        if (e instanceof ProviderError) throw e;
        failure = networkFailure(e);
      }
      if (!idempotent) throw new OutcomeUnknown(`${what}: ${failure}`, status);
      if (attempt >= this.maxRetries) {
        throw new ProviderError("Unavailable", `${what}: ${failure} (after ${attempt + 1} attempts)`, { status });
      }
      await sleep(this.backoffMs(attempt));
    }
  }

  private backoffMs(attempt: number): number {
    return Math.min(this.maxInlineWaitMs, jittered(FIRST_BACKOFF_MS * 2 ** attempt));
  }

  /** The API's error message (errors[0].message, error.message, or the text), shortened and with secrets masked. */
  private async errorMessage(res: Response, token = this.token?.value): Promise<string> {
    const text = await res.text().catch(() => "");
    let message = text.trim() || `HTTP ${res.status}`;
    try {
      const body = JSON.parse(text) as { errors?: { message?: unknown }[]; error?: { message?: unknown } };
      const found = body.errors?.[0]?.message ?? body.error?.message;
      if (typeof found === "string" && found) message = found;
    } catch {
      // Not JSON: the text itself is the message.
    }
    for (const secret of [this.apiKey, token]) {
      if (secret) message = message.replaceAll(secret, "[redacted]");
    }
    return message.length > MAX_MESSAGE_CHARS ? `${message.slice(0, MAX_MESSAGE_CHARS)}…` : message;
  }
}

/** The job state a Qiskit Runtime status names (case-insensitive; "Cancelled - Ran too long" is Cancelled). */
export function jobState(status: string): RemoteJobState | undefined {
  const s = status.trim().toLowerCase();
  if (s === "queued") return "Queued";
  if (s === "running") return "Running";
  if (s === "completed") return "Completed";
  if (s === "failed") return "Failed";
  if (s.startsWith("cancelled")) return "Cancelled";
  return undefined;
}

/**
 * Counts from SamplerV2 register samples (registers in declaration order), keyed as Qiskit prints them: each
 * register most-significant bit first, registers joined by a space with the last-declared first.
 */
export function countsFromSamples(data: Record<string, IbmRegisterSamples>): RemoteResult {
  const registers = Object.entries(data).map(([name, reg]) => {
    if (!Array.isArray(reg?.samples)) throw malformed(`register ${name} has no samples`);
    const values = reg.samples.map((hex) => {
      if (typeof hex !== "string" || !/^0x[0-9a-f]+$/i.test(hex)) throw malformed(`register ${name} sample ${hex}`);
      return BigInt(hex).toString(2);
    });
    const width = typeof reg.num_bits === "number" ? reg.num_bits : values.reduce((w, v) => Math.max(w, v.length), 1);
    return values.map((v) => v.padStart(width, "0"));
  });
  const shots = registers[0]?.length ?? 0;
  if (registers.some((r) => r.length !== shots)) throw malformed("registers have different numbers of shots");
  const counts: Record<string, number> = {};
  for (let shot = 0; shot < shots; shot++) {
    const key = registers
      .map((r) => r[shot])
      .reverse()
      .join(" ");
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return { shots, counts };
}

/**
 * Medians over a device's calibration: 1-qubit gate errors (virtual and non-gates left out), 2-qubit gate errors
 * and qubit readout errors; undefined if there is nothing to summarise.
 */
export function calibrationFromProperties(
  props: IbmBackendProperties,
  quantumVolume?: number,
): Calibration | undefined {
  const single: number[] = [];
  const two: number[] = [];
  for (const g of props.gates ?? []) {
    const error = g.parameters?.find((p) => p.name === "gate_error")?.value;
    if (typeof error !== "number") continue;
    if (g.qubits.length === 1 && !NOT_SINGLE_QUBIT_GATES.has(g.gate)) single.push(error);
    if (g.qubits.length === 2) two.push(error);
  }
  const readout = (props.qubits ?? [])
    .map((q) => q.find((p) => p.name === "readout_error")?.value)
    .filter((v) => typeof v === "number");
  const summary = {
    singleQubitError: median(single),
    twoQubitError: median(two),
    readoutError: median(readout),
    quantumVolume,
  };
  const cal: Calibration = Object.fromEntries(Object.entries(summary).filter(([, v]) => v !== undefined));
  if (Object.keys(cal).length === 0) return undefined;
  const updated = props.last_update_date ? Date.parse(props.last_update_date) : NaN;
  if (!Number.isNaN(updated)) cal.updated = new Date(updated).toISOString().replace(/\.000Z$/, "Z");
  return cal;
}

/** Milliseconds a Retry-After header (delay-seconds or an HTTP date) asks to wait, if it is readable. */
export function retryAfterMs(header: string | null, now: number): number | undefined {
  if (header === null || header.trim() === "") return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function median(values: number[]): number | undefined {
  if (!values.length) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function malformed(detail: string): ProviderError {
  return new ProviderError("Unavailable", `IBM Quantum answered malformed results: ${detail}`);
}

async function readJson<T>(res: Response): Promise<T> {
  try {
    return (await res.json()) as T;
  } catch (e) {
    throw new ProviderError("Unavailable", `IBM Quantum answered a body that is not JSON (HTTP ${res.status})`, {
      cause: e,
    });
  }
}

/** What went wrong with a request that got no response: the cause (ECONNREFUSED, a timeout), not "fetch failed". */
function networkFailure(e: unknown): string {
  if (e instanceof Error) return e.cause instanceof Error ? e.cause.message : e.message;
  return String(e);
}
