/**
 * Where the API server is and how to authenticate to it: kubeconfig files and the in-cluster service account,
 * read by the operator itself. @kubernetes/client-node's KubeConfig did this before, but importing it loads the
 * whole generated client (about 87 MB of RSS) for the few hundred lines used here.
 *
 * Supported: $KUBECONFIG as a list of files merged as kubectl merges them (the first file to name a cluster, user
 * or context wins, and the first current-context set), ~/.kube/config, the in-cluster service account; clusters'
 * server, certificate-authority(-data), insecure-skip-tls-verify and tls-server-name; users' client-certificate
 * (-data), client-key(-data), token, tokenFile, username/password and exec plugins (client.authentication.k8s.io
 * v1 and v1beta1). Not supported: auth-provider (the removed in-tree gcp/azure/oidc plugins), impersonation and
 * proxy-url; each is refused with an error naming it rather than ignored.
 */
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { delimiter, dirname, isAbsolute, join, resolve } from "node:path";
import { promisify } from "node:util";
import { load as parseYaml } from "js-yaml";

/** Where a pod's service-account credentials are mounted. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** TLS settings of the connection, fixed for the life of the configuration. */
export interface TlsSettings {
  ca?: Buffer;
  rejectUnauthorized: boolean;
  servername?: string;
}

/** What authenticates a request now: headers, and a client certificate when the user has one. */
export interface Credentials {
  headers: Record<string, string>;
  cert?: Buffer;
  key?: Buffer;
}

interface ExecConfig {
  apiVersion?: string;
  command?: string;
  args?: string[];
  env?: Array<{ name: string; value: string }> | null;
  provideClusterInfo?: boolean;
}

interface NamedCluster {
  server?: string;
  "certificate-authority"?: string;
  "certificate-authority-data"?: string;
  "insecure-skip-tls-verify"?: boolean;
  "tls-server-name"?: string;
  "proxy-url"?: string;
  extensions?: Array<{ name: string; extension: unknown }>;
}

interface NamedUser {
  "client-certificate"?: string;
  "client-certificate-data"?: string;
  "client-key"?: string;
  "client-key-data"?: string;
  token?: string;
  tokenFile?: string;
  username?: string;
  password?: string;
  exec?: ExecConfig;
  "auth-provider"?: { name?: string };
  as?: string;
}

/** A kubeconfig file's entries, each remembering the directory of the file it came from (relative paths). */
interface Entry<T> {
  value: T;
  dir: string;
}

interface Merged {
  currentContext?: string;
  clusters: Map<string, Entry<NamedCluster>>;
  users: Map<string, Entry<NamedUser>>;
  contexts: Map<string, { cluster?: string; user?: string }>;
  files: string[];
}

const EXEC_API_VERSIONS = ["client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1"];
const EXEC_TIMEOUT_MS = 60_000;
/** An exec credential is renewed this long before it expires, so no request carries one that lapses in flight. */
const EXEC_EXPIRY_MARGIN_MS = 10_000;

/** A resolved configuration: the server, its TLS settings, and where each request's credentials come from. */
export class KubeConfig {
  readonly server: string;
  readonly tls: TlsSettings;
  /** What this configuration was read from, for error messages and logs. */
  readonly source: string;
  private readonly credentialSource: () => Promise<Credentials>;
  private readonly expire: (() => void) | undefined;

  constructor(opts: {
    server: string;
    tls: TlsSettings;
    source: string;
    credentials: () => Promise<Credentials>;
    /** Forgets a cached credential the server refused. */
    expire?: () => void;
  }) {
    this.server = opts.server.replace(/\/$/, "");
    this.tls = opts.tls;
    this.source = opts.source;
    this.credentialSource = opts.credentials;
    this.expire = opts.expire;
  }

  /**
   * Credentials for the next requests. Token files are read anew on each call (service-account tokens rotate);
   * exec plugins run again once their credential expires.
   */
  credentials(): Promise<Credentials> {
    return this.credentialSource();
  }

  /** The API server refused the credentials (401): an exec plugin runs again on the next call, as kubectl does. */
  expireCredentials(): void {
    this.expire?.();
  }
}

/**
 * The configuration to use: the file given, else the files in $KUBECONFIG, else ~/.kube/config, else the
 * in-cluster service account.
 */
export function loadKubeConfig(
  path: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  home: string | undefined = homeDirectory(),
  serviceAccountDir: string = SERVICE_ACCOUNT_DIR,
): KubeConfig {
  if (path) return fromFiles([path], env);
  const listed = (env.KUBECONFIG ?? "").split(delimiter).filter((p) => p !== "");
  if (listed.length) return fromFiles(listed, env);
  const own = home === undefined ? undefined : join(home, ".kube", "config");
  if (own && existsSync(own)) return fromFiles([own], env);
  if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT) return inClusterConfig(env, serviceAccountDir);
  throw new Error(
    `no kubeconfig: give one (--kubeconfig), set KUBECONFIG, create ${own ?? "~/.kube/config"}, or run in a pod ` +
      "(KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset)",
  );
}

/** The user's home directory; none for a user without one (the image's numeric user has no passwd entry). */
function homeDirectory(): string | undefined {
  try {
    return homedir();
  } catch {
    return undefined;
  }
}

/** The pod's service account: its token (re-read on each call, as the kubelet rotates it) and the cluster's CA. */
export function inClusterConfig(env: NodeJS.ProcessEnv = process.env, dir: string = SERVICE_ACCOUNT_DIR): KubeConfig {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port)
    throw new Error("not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are unset");
  const tokenFile = join(dir, "token");
  const caFile = join(dir, "ca.crt");
  for (const f of [tokenFile, caFile]) if (!existsSync(f)) throw new Error(`in-cluster configuration: ${f} is missing`);
  return new KubeConfig({
    server: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    tls: { ca: readFileSync(caFile), rejectUnauthorized: true },
    source: `the in-cluster service account (${dir})`,
    credentials: async () => ({ headers: { authorization: `Bearer ${await readToken(tokenFile)}` } }),
  });
}

/** Parses kubeconfig files (merged in order, as kubectl does) and resolves their current context. */
export function fromFiles(files: string[], env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const merged: Merged = { clusters: new Map(), users: new Map(), contexts: new Map(), files: [] };
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      // kubectl skips files of $KUBECONFIG that do not exist; one named alone must.
      if (files.length > 1 && (e as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw new Error(`kubeconfig ${file}: ${(e as Error).message}`, { cause: e });
    }
    mergeInto(merged, parseFile(text, file), dirname(resolve(file)));
    merged.files.push(file);
  }
  if (!merged.files.length) throw new Error(`none of the kubeconfig files ${files.join(", ")} exists`);
  return resolveContext(merged, env);
}

interface RawFile {
  "current-context"?: string;
  clusters?: Array<{ name?: string; cluster?: NamedCluster }> | null;
  users?: Array<{ name?: string; user?: NamedUser }> | null;
  contexts?: Array<{ name?: string; context?: { cluster?: string; user?: string } }> | null;
}

function parseFile(text: string, file: string): RawFile {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new Error(`kubeconfig ${file} is not YAML: ${(e as Error).message}`, { cause: e });
  }
  if (doc === undefined || doc === null) return {};
  if (typeof doc !== "object" || Array.isArray(doc)) throw new Error(`kubeconfig ${file} is not a mapping`);
  return doc as RawFile;
}

function mergeInto(m: Merged, f: RawFile, dir: string): void {
  m.currentContext ||= f["current-context"] || undefined;
  for (const c of f.clusters ?? []) {
    if (c.name && !m.clusters.has(c.name)) m.clusters.set(c.name, { value: c.cluster ?? {}, dir });
  }
  for (const u of f.users ?? []) if (u.name && !m.users.has(u.name)) m.users.set(u.name, { value: u.user ?? {}, dir });
  for (const c of f.contexts ?? []) if (c.name && !m.contexts.has(c.name)) m.contexts.set(c.name, c.context ?? {});
}

function resolveContext(m: Merged, env: NodeJS.ProcessEnv): KubeConfig {
  const where = `kubeconfig ${m.files.join(", ")}`;
  if (!m.currentContext) throw new Error(`${where} sets no current-context`);
  const context = m.contexts.get(m.currentContext);
  if (!context) throw new Error(`${where}: the current context ${m.currentContext} is not among its contexts`);
  if (!context.cluster) throw new Error(`${where}: context ${m.currentContext} names no cluster`);
  const cluster = m.clusters.get(context.cluster);
  if (!cluster) throw new Error(`${where}: context ${m.currentContext} names cluster ${context.cluster}, not defined`);
  const c = cluster.value;
  if (!c.server) throw new Error(`${where}: cluster ${context.cluster} has no server`);
  if (c["proxy-url"]) throw new Error(`${where}: cluster ${context.cluster} sets proxy-url, which is not supported`);
  const user = context.user ? m.users.get(context.user) : undefined;
  if (context.user && !user)
    throw new Error(`${where}: context ${m.currentContext} names user ${context.user}, not defined`);
  const source = `${where}, context ${m.currentContext}`;

  const ca = pem(c["certificate-authority-data"], c["certificate-authority"], cluster.dir, "certificate-authority");
  const tls: TlsSettings = {
    ...(ca && { ca }),
    rejectUnauthorized: !c["insecure-skip-tls-verify"],
    ...(c["tls-server-name"] && { servername: c["tls-server-name"] }),
  };
  const server = c.server;
  if (!user) return new KubeConfig({ server, tls, source, credentials: () => Promise.resolve({ headers: {} }) });

  const u = user.value;
  const name = context.user as string;
  if (u["auth-provider"]) {
    throw new Error(
      `${where}: user ${name} uses auth-provider ${u["auth-provider"].name ?? ""}, which is not supported (use an exec plugin)`,
    );
  }
  if (u.as) throw new Error(`${where}: user ${name} impersonates (as), which is not supported`);
  const cert = pem(u["client-certificate-data"], u["client-certificate"], user.dir, "client-certificate");
  const key = pem(u["client-key-data"], u["client-key"], user.dir, "client-key");
  if (!cert !== !key) throw new Error(`${where}: user ${name} has a client certificate or key without the other`);
  const staticCredentials = (headers: Record<string, string>): Credentials => ({
    headers,
    ...(cert && key && { cert, key }),
  });

  if (u.exec) {
    const exec = new ExecPlugin(u.exec, user.dir, env, `${where}: user ${name}'s exec plugin`, {
      server,
      "certificate-authority-data": ca?.toString("base64"),
      "insecure-skip-tls-verify": c["insecure-skip-tls-verify"],
      "tls-server-name": c["tls-server-name"],
      config: c.extensions?.find((e) => e.name === "client.authentication.k8s.io/exec")?.extension,
    });
    return new KubeConfig({
      server,
      tls,
      source,
      expire: () => exec.expire(),
      credentials: async () => {
        const got = await exec.credential();
        const headers: Record<string, string> = got.token ? { authorization: `Bearer ${got.token}` } : {};
        return got.cert && got.key ? { headers, cert: got.cert, key: got.key } : staticCredentials(headers);
      },
    });
  }
  if (u.tokenFile) {
    const file = inDir(user.dir, u.tokenFile);
    return new KubeConfig({
      server,
      tls,
      source,
      credentials: async () => staticCredentials({ authorization: `Bearer ${await readToken(file)}` }),
    });
  }
  let headers: Record<string, string> = {};
  if (u.token) headers = { authorization: `Bearer ${u.token}` };
  else if (u.username !== undefined) {
    headers = { authorization: `Basic ${Buffer.from(`${u.username}:${u.password ?? ""}`).toString("base64")}` };
  }
  const credentials = staticCredentials(headers);
  return new KubeConfig({ server, tls, source, credentials: () => Promise.resolve(credentials) });
}

/** PEM from inline base64 data, else from a file (relative to its kubeconfig's directory). */
function pem(data: string | undefined, file: string | undefined, dir: string, what: string): Buffer | undefined {
  if (data) return Buffer.from(data, "base64");
  if (!file) return undefined;
  const path = inDir(dir, file);
  try {
    return readFileSync(path);
  } catch (e) {
    throw new Error(`${what} ${path}: ${(e as Error).message}`, { cause: e });
  }
}

const inDir = (dir: string, path: string) => (isAbsolute(path) ? path : join(dir, path));

async function readToken(file: string): Promise<string> {
  let token: string;
  try {
    token = (await readFile(file, "utf8")).trim();
  } catch (e) {
    throw new Error(`token file ${file}: ${(e as Error).message}`, { cause: e });
  }
  if (!token) throw new Error(`token file ${file} is empty`);
  return token;
}

interface ExecResult {
  token?: string;
  cert?: Buffer;
  key?: Buffer;
  /** Epoch ms after which the plugin runs again; undefined: until the server refuses it. */
  expiresAt?: number;
}

/** Runs a client-go credential plugin and keeps its credential until it expires. */
class ExecPlugin {
  private readonly config: ExecConfig;
  private readonly dir: string;
  private readonly env: NodeJS.ProcessEnv;
  private readonly what: string;
  private readonly cluster: Record<string, unknown>;
  private current: Promise<ExecResult> | undefined;

  constructor(config: ExecConfig, dir: string, env: NodeJS.ProcessEnv, what: string, cluster: Record<string, unknown>) {
    if (!config.command) throw new Error(`${what} has no command`);
    if (!config.apiVersion || !EXEC_API_VERSIONS.includes(config.apiVersion)) {
      throw new Error(`${what} asks for apiVersion ${config.apiVersion}; supported: ${EXEC_API_VERSIONS.join(", ")}`);
    }
    this.config = config;
    this.dir = dir;
    this.env = env;
    this.what = what;
    this.cluster = cluster;
  }

  /** The cached credential, or a new one once it expired; concurrent callers share one run of the plugin. */
  async credential(): Promise<ExecResult> {
    if (this.current) {
      const pending = this.current;
      const got = await pending.catch(() => undefined);
      const fresh = got && (got.expiresAt === undefined || Date.now() < got.expiresAt - EXEC_EXPIRY_MARGIN_MS);
      if (fresh) return got;
      // A failed or expired credential: the first caller to see it starts the next run.
      if (this.current === pending) this.current = undefined;
    }
    this.current ??= this.run();
    return this.current;
  }

  expire(): void {
    this.current = undefined;
  }

  private async run(): Promise<ExecResult> {
    const { apiVersion, command, args = [], env = [], provideClusterInfo } = this.config;
    // client-go resolves a command with a path separator against the kubeconfig's directory, and looks a bare
    // name up on PATH.
    const file = (command as string).includes("/") ? inDir(this.dir, command as string) : (command as string);
    const info = {
      apiVersion,
      kind: "ExecCredential",
      spec: { interactive: false, ...(provideClusterInfo && { cluster: this.cluster }) },
    };
    let stdout: string;
    try {
      ({ stdout } = await promisify(execFile)(file, args, {
        env: {
          ...this.env,
          ...Object.fromEntries((env ?? []).map((e) => [e.name, e.value])),
          KUBERNETES_EXEC_INFO: JSON.stringify(info),
        },
        timeout: EXEC_TIMEOUT_MS,
        maxBuffer: 1 << 20,
      }));
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`${this.what} (${file}) failed: ${(err.stderr || err.message).trim()}`, { cause: e });
    }
    let out: {
      apiVersion?: string;
      kind?: string;
      status?: { token?: string; expirationTimestamp?: string; clientCertificateData?: string; clientKeyData?: string };
    };
    try {
      out = JSON.parse(stdout) as typeof out;
    } catch (e) {
      throw new Error(`${this.what} (${file}) printed no ExecCredential JSON: ${(e as Error).message}`, { cause: e });
    }
    if (out.kind !== "ExecCredential" || out.apiVersion !== apiVersion) {
      throw new Error(
        `${this.what} printed ${out.apiVersion}/${out.kind}, not the ${apiVersion} ExecCredential asked for`,
      );
    }
    const s = out.status ?? {};
    if (!s.token && !(s.clientCertificateData && s.clientKeyData)) {
      throw new Error(`${this.what} returned neither status.token nor status.clientCertificateData and clientKeyData`);
    }
    const expiresAt = s.expirationTimestamp ? Date.parse(s.expirationTimestamp) : undefined;
    if (expiresAt !== undefined && Number.isNaN(expiresAt)) {
      throw new Error(`${this.what} returned expirationTimestamp ${s.expirationTimestamp}, not a time`);
    }
    return {
      ...(s.token && { token: s.token }),
      ...(s.clientCertificateData &&
        s.clientKeyData && { cert: Buffer.from(s.clientCertificateData), key: Buffer.from(s.clientKeyData) }),
      expiresAt,
    };
  }
}
