/**
 * A local stand-in for IBM Quantum Platform (Qiskit Runtime REST API) and IBM Cloud IAM, speaking the documented
 * API: token exchange, SamplerV2 jobs, backend status, properties and configuration. Failures are injected per path
 * so that clients' retry, re-authentication and idempotency can be tested.
 */
import { randomBytes } from "node:crypto";
import { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";

export type FakeJobStatus = "Queued" | "Running" | "Completed" | "Failed" | "Cancelled";

export interface FakeIbmJob {
  id: string;
  backend: string;
  status: FakeJobStatus;
  /** Shown as state.reason (why a job failed). */
  reason?: string;
  tags: string[];
  shots: number;
  qasm: string;
  created: string;
}

export interface FakeIbmQuantumOptions {
  /** Each status GET moves the job one state forward after answering; default true. */
  autoAdvance?: boolean;
  /** Per-register hex samples (registers in declaration order) for a job; default Bell-like (see bellSamples). */
  sample?: (qasm: string, shots: number) => Record<string, string[]>;
  /** The one device served; default ibm_kingston. */
  backend?: string;
  apiKey?: string;
  serviceCRN?: string;
  /** expires_in of issued tokens; default 3600. */
  tokenTtlSeconds?: number;
}

export interface RecordedRequest {
  method: string;
  /** Path and query as received, e.g. /api/v1/jobs?tags=x&limit=1 or /identity/token. */
  path: string;
  headers: IncomingHttpHeaders;
  /** When it arrived (epoch ms). */
  at: number;
}

export interface FakeIbmQuantum {
  /** API base, e.g. http://127.0.0.1:PORT/api */
  url: string;
  /** IAM base: the token service is at `${authUrl}/identity/token`. */
  authUrl: string;
  apiKey: string;
  serviceCRN: string;
  backend: string;
  /** Whether each status GET moves the job one state forward (tests switch it to hold jobs where they are). */
  autoAdvance: boolean;
  requests: RecordedRequest[];
  /** The POST /v1/jobs requests that arrived (whether or not they created a job). */
  submissions(): RecordedRequest[];
  /** How many of them. */
  submitted(): number;
  jobs: Map<string, FakeIbmJob>;
  /**
   * The next `times` requests whose path matches answer `status` (with `headers`) before being handled; status 0
   * drops the connection instead.
   */
  failNext(path: RegExp, status: number, times?: number, headers?: Record<string, string>): void;
  /**
   * The next `times` requests whose path matches are handled (a job gets created, a job cancelled) but answer
   * `status`, or drop the connection for 0: the client cannot tell whether the request took effect.
   */
  failAfterHandlingNext(path: RegExp, status: number, times?: number): void;
  /** Every token issued so far is refused (401) from now on; a new token exchange works. */
  expireTokens(): void;
  setBackend(state: { operational?: boolean; queueLength?: number; status?: string }): void;
  /** Moves one job (or every job) one state forward: Queued → Running → Completed. */
  advance(id?: string): void;
  close(): Promise<void>;
}

interface Failure {
  path: RegExp;
  status: number;
  remaining: number;
  headers: Record<string, string>;
  afterHandling: boolean;
}

interface Reply {
  status: number;
  body?: unknown;
}

const GRANT_TYPE = "urn:ibm:params:oauth:grant-type:apikey";
const NEXT_STATUS: Partial<Record<FakeJobStatus, FakeJobStatus>> = { Queued: "Running", Running: "Completed" };

/** The classical registers an OpenQASM 2 or 3 program declares, in declaration order, with their widths. */
export function declaredRegisters(qasm: string): { name: string; bits: number }[] {
  const found: { at: number; name: string; bits: number }[] = [];
  for (const m of qasm.matchAll(/\b(?:output\s+)?bit(?:\s*\[\s*(\d+)\s*\])?\s+([A-Za-z_]\w*)/g)) {
    found.push({ at: m.index, name: m[2] as string, bits: m[1] ? Number(m[1]) : 1 });
  }
  for (const m of qasm.matchAll(/\bcreg\s+([A-Za-z_]\w*)\s*\[\s*(\d+)\s*\]/g)) {
    found.push({ at: m.index, name: m[1] as string, bits: Number(m[2]) });
  }
  return found.sort((a, b) => a.at - b.at).map(({ name, bits }) => ({ name, bits }));
}

/** Bell-like samples, deterministic: every register reads all zeros on even shots and all ones on odd shots. */
export function bellSamples(qasm: string, shots: number): Record<string, string[]> {
  return Object.fromEntries(
    declaredRegisters(qasm).map(({ name, bits }) => [
      name,
      Array.from({ length: shots }, (_, i) => `0x${(i % 2 ? (1n << BigInt(bits)) - 1n : 0n).toString(16)}`),
    ]),
  );
}

/** Starts the fake on 127.0.0.1 at a free port. */
export async function startFakeIbmQuantum(opts: FakeIbmQuantumOptions = {}): Promise<FakeIbmQuantum> {
  const mode = { autoAdvance: opts.autoAdvance ?? true };
  const sample = opts.sample ?? bellSamples;
  const backend = opts.backend ?? "ibm_kingston";
  const apiKey = opts.apiKey ?? `fake-api-key-${randomBytes(8).toString("hex")}`;
  const serviceCRN =
    opts.serviceCRN ?? "crn:v1:bluemix:public:quantum-computing:us-east:a/0123456789abcdef:fake-instance::";
  const tokenTtlSeconds = opts.tokenTtlSeconds ?? 3600;

  const requests: RecordedRequest[] = [];
  const submissions = () =>
    requests.filter((r) => r.method === "POST" && new URL(r.path, "http://fake").pathname === "/api/v1/jobs");
  const jobs = new Map<string, FakeIbmJob>();
  const tokens = new Map<string, number>(); // token → expiry (ms since epoch)
  const failures: Failure[] = [];
  const device = { operational: true, queueLength: 0, status: "active" };

  const advance = (job: FakeIbmJob) => {
    job.status = NEXT_STATUS[job.status] ?? job.status;
  };

  const issueToken = (form: URLSearchParams): Reply => {
    if (form.get("grant_type") !== GRANT_TYPE || form.get("apikey") !== apiKey) {
      return {
        status: 400,
        body: { errorCode: "BXNIM0415E", errorMessage: "Provided API key could not be found.", context: {} },
      };
    }
    const token = `fake-token-${randomBytes(16).toString("hex")}`;
    tokens.set(token, Date.now() + tokenTtlSeconds * 1000);
    const expiration = Math.floor(Date.now() / 1000) + tokenTtlSeconds;
    return {
      status: 200,
      body: {
        access_token: token,
        refresh_token: "not_supported",
        token_type: "Bearer",
        expires_in: tokenTtlSeconds,
        expiration,
        scope: "ibm_openid",
      },
    };
  };

  const authorized = (headers: IncomingHttpHeaders) => {
    const token = /^Bearer (.+)$/.exec(headers.authorization ?? "")?.[1];
    const expiry = token === undefined ? undefined : tokens.get(token);
    return expiry !== undefined && Date.now() < expiry && headers["service-crn"] === serviceCRN;
  };

  const submit = (body: unknown): Reply => {
    const req = body as {
      program_id?: unknown;
      backend?: unknown;
      params?: { pubs?: unknown; shots?: unknown };
      tags?: unknown;
    };
    if (req.program_id !== "sampler") return error(400, "program_id must be sampler");
    if (req.backend !== backend) return error(400, `Backend ${String(req.backend)} is not available`);
    const pub = Array.isArray(req.params?.pubs) && req.params.pubs.length === 1 ? req.params.pubs[0] : undefined;
    if (!Array.isArray(pub) || typeof pub[0] !== "string") return error(400, "params.pubs must hold one PUB");
    const shots = typeof pub[2] === "number" ? pub[2] : typeof req.params?.shots === "number" ? req.params.shots : 4096;
    const tags = Array.isArray(req.tags) ? req.tags.filter((t) => typeof t === "string") : [];
    const id = `d${randomBytes(10).toString("hex").slice(0, 19)}`;
    jobs.set(id, { id, backend, status: "Queued", tags, shots, qasm: pub[0], created: new Date().toISOString() });
    return { status: 200, body: { id, backend } };
  };

  const jobView = (job: FakeIbmJob) => ({
    id: job.id,
    backend: job.backend,
    status: job.status,
    state: { status: job.status, reason: job.reason ?? "" },
    program: { id: "sampler" },
    created: job.created,
    tags: job.tags,
    usage: { seconds: job.status === "Completed" ? 1 : 0 },
  });

  const results = (job: FakeIbmJob): Reply => {
    if (job.status !== "Completed") return error(409, `Job ${job.id} has no results: it is ${job.status}`);
    const widths = new Map(declaredRegisters(job.qasm).map((r) => [r.name, r.bits]));
    const data = Object.fromEntries(
      Object.entries(sample(job.qasm, job.shots)).map(([name, samples]) => {
        const bits = widths.get(name);
        return [name, bits === undefined ? { samples } : { samples, num_bits: bits }];
      }),
    );
    return {
      status: 200,
      body: {
        results: [{ data, metadata: { circuit_metadata: {} } }],
        metadata: { execution: { execution_spans: [] }, version: 2 },
      },
    };
  };

  const route = (method: string, url: URL, body: string, headers: IncomingHttpHeaders): Reply => {
    if (url.pathname === "/identity/token" && method === "POST") return issueToken(new URLSearchParams(body));
    if (!url.pathname.startsWith("/api/v1/")) return error(404, "Not found");
    if (!authorized(headers)) return error(401, "Unauthorized: invalid or expired token, or wrong Service-CRN");
    const parts = url.pathname.slice("/api/v1/".length).split("/").map(decodeURIComponent);

    if (parts[0] === "jobs" && parts.length === 1) {
      if (method === "POST") return submit(parseJson(body));
      const tag = url.searchParams.get("tags");
      const limit = Number(url.searchParams.get("limit") ?? 200);
      const matching = [...jobs.values()].filter((j) => tag === null || j.tags.includes(tag)).reverse();
      return { status: 200, body: { jobs: matching.slice(0, limit).map(jobView), count: matching.length } };
    }
    if (parts[0] === "jobs" && parts[1]) {
      const job = jobs.get(parts[1]);
      if (!job) return error(404, `Job not found: ${parts[1]}`);
      if (parts.length === 2 && method === "GET") {
        const view = jobView(job);
        if (mode.autoAdvance) advance(job);
        return { status: 200, body: view };
      }
      if (parts[2] === "results" && method === "GET") return results(job);
      if (parts[2] === "cancel" && method === "POST") {
        if (job.status !== "Queued" && job.status !== "Running") {
          return error(409, `Job ${job.id} cannot be cancelled: it is ${job.status}`);
        }
        job.status = "Cancelled";
        return { status: 204 };
      }
    }
    if (parts[0] === "backends" && parts[1] !== undefined && method === "GET") {
      if (parts[1] !== backend) return error(404, `Backend not found: ${parts[1]}`);
      if (parts[2] === "status") {
        return {
          status: 200,
          body: {
            state: device.operational,
            status: device.status,
            message: "",
            length_queue: device.queueLength,
            backend_version: "1.2.3",
          },
        };
      }
      if (parts[2] === "properties") return { status: 200, body: properties(backend) };
      if (parts[2] === "configuration") return { status: 200, body: configuration(backend) };
    }
    return error(404, "Not found");
  };

  const takeFailure = (path: string, afterHandling: boolean) => {
    const f = failures.find((x) => x.remaining > 0 && x.afterHandling === afterHandling && x.path.test(path));
    if (f) f.remaining--;
    return f;
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const method = req.method ?? "GET";
      const path = req.url ?? "/";
      requests.push({ method, path, headers: req.headers, at: Date.now() });
      const before = takeFailure(path, false);
      if (before) return fail(res, before);
      const url = new URL(path, "http://fake");
      const reply = route(method, url, Buffer.concat(chunks).toString("utf8"), req.headers);
      const after = takeFailure(path, true);
      if (after) return fail(res, after);
      send(res, reply.status, reply.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    get autoAdvance() {
      return mode.autoAdvance;
    },
    set autoAdvance(on: boolean) {
      mode.autoAdvance = on;
    },
    url: `http://127.0.0.1:${port}/api`,
    authUrl: `http://127.0.0.1:${port}`,
    apiKey,
    serviceCRN,
    backend,
    requests,
    jobs,
    submissions,
    submitted: () => submissions().length,
    failNext: (path, status, times = 1, headers = {}) =>
      void failures.push({ path, status, remaining: times, headers, afterHandling: false }),
    failAfterHandlingNext: (path, status, times = 1) =>
      void failures.push({ path, status, remaining: times, headers: {}, afterHandling: true }),
    expireTokens: () => tokens.clear(),
    setBackend: (state) => Object.assign(device, state),
    advance: (id) => {
      for (const job of jobs.values()) if (id === undefined || job.id === id) advance(job);
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
    },
  };
}

function fail(res: ServerResponse, f: Failure): void {
  if (f.status === 0) {
    res.socket?.destroy();
    return;
  }
  for (const [k, v] of Object.entries(f.headers)) res.setHeader(k, v);
  send(res, f.status, { errors: [{ code: f.status, message: `injected failure (HTTP ${f.status})` }] });
}

function send(res: ServerResponse, status: number, body?: unknown): void {
  if (body === undefined) {
    res.writeHead(status).end();
    return;
  }
  res.writeHead(status, { "Content-Type": "application/json" }).end(JSON.stringify(body));
}

function error(status: number, message: string): Reply {
  return {
    status,
    body: { errors: [{ code: status, message, more_info: "" }], trace: randomBytes(8).toString("hex") },
  };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return {};
  }
}

const CALIBRATED = "2026-03-20T06:12:41+00:00";

/**
 * Five qubits in a line, Heron-like (cz, sx, x, rz, id, measure). Medians: 1-qubit gate error 3.0e-4 (sx and x;
 * with rz the median would be 2.5e-4), cz error 3.8e-3, readout error 1.2e-2. Qubit 4's gates and the cz on 3_4 are faulty
 * (error 1), as IBM marks them.
 */
export const FAKE_GATE_ERRORS = {
  oneQubit: [2.1e-4, 3.0e-4, 2.5e-4, 9.0e-4, 1],
  cz: [2.8e-3, 3.5e-3, 4.1e-3, 1],
  readout: [1.2e-2, 8.0e-3, 1.5e-2, 2.0e-2, 9.5e-3],
};

function properties(backend: string) {
  const param = (name: string, value: number, unit = "") => ({ date: CALIBRATED, name, unit, value });
  const gate = (gate: string, qubits: number[], error: number) => ({
    gate,
    qubits,
    name: `${gate}${qubits.join("_")}`,
    parameters: [param("gate_error", error), param("gate_length", gate === "cz" ? 68 : 32, "ns")],
  });
  const gates = [];
  for (let q = 0; q < 5; q++) {
    const e = FAKE_GATE_ERRORS.oneQubit[q] as number;
    gates.push(gate("id", [q], e), gate("rz", [q], 0), gate("sx", [q], e), gate("x", [q], e));
    gates.push(gate("measure", [q], FAKE_GATE_ERRORS.readout[q] as number));
  }
  for (let q = 0; q < 4; q++) gates.push(gate("cz", [q, q + 1], FAKE_GATE_ERRORS.cz[q] as number));
  const qubits = FAKE_GATE_ERRORS.readout.map((readout, q) => [
    param("T1", 180 + 10 * q, "us"),
    param("T2", 120 + 5 * q, "us"),
    param("frequency", 4.8 + 0.05 * q, "GHz"),
    param("anharmonicity", -0.31, "GHz"),
    param("readout_error", readout),
    param("prob_meas0_prep1", readout * 1.2),
    param("prob_meas1_prep0", readout * 0.8),
    param("readout_length", 1560, "ns"),
  ]);
  return {
    backend_name: backend,
    backend_version: "1.2.3",
    last_update_date: CALIBRATED,
    qubits,
    gates,
    general: [],
  };
}

function configuration(backend: string) {
  return {
    backend_name: backend,
    backend_version: "1.2.3",
    n_qubits: 5,
    basis_gates: ["cz", "id", "rz", "sx", "x"],
    coupling_map: [
      [0, 1],
      [1, 0],
      [1, 2],
      [2, 1],
      [2, 3],
      [3, 2],
      [3, 4],
      [4, 3],
    ],
    simulator: false,
    local: false,
    conditional: false,
    open_pulse: false,
    memory: true,
    max_shots: 100000,
    max_experiments: 300,
    quantum_volume: 32,
    processor_type: { family: "Heron", revision: "2" },
    supported_instructions: ["cz", "id", "delay", "measure", "reset", "rz", "sx", "x"],
  };
}
