/**
 * Where the API server is and how to authenticate to it: kubeconfig files and the in-cluster service account,
 * read by the operator itself. @kubernetes/client-node's KubeConfig did this before, but importing it loads the
 * whole generated client (about 87 MB of RSS) for the few hundred lines used here.
 *
 * Supported: $KUBECONFIG as a list of files merged as kubectl merges them (the first file to name a cluster, user
 * or context wins, and the first current-context set), ~/.kube/config, the in-cluster service account; clusters'
 * server, certificate-authority(-data), insecure-skip-tls-verify, tls-server-name and disable-compression (this
 * client never asks for compression); users' client-certificate(-data), client-key(-data) (files read again as they
 * rotate), token, tokenFile, username/password and exec plugins (client.authentication.k8s.io v1 and v1beta1, never
 * interactive).
 *
 * Strict: what it cannot honour is refused with an error naming the field, never dropped: auth-provider (the removed
 * in-tree gcp/azure/oidc plugins), impersonation (as, as-uid, as-groups, as-user-extra), proxy-url, an exec plugin
 * that must be interactive (interactiveMode: Always), and any field a kubeconfig does not define (a misspelt
 * tokenFile would otherwise send requests anonymously). Combinations client-go refuses are refused here too (its
 * clientcmd/validation.go and transport/transport.go, v0.37.2): a certificate authority with
 * insecure-skip-tls-verify, a value given both as data and as a file, a certificate without its key, two ways to
 * authenticate; and, as client-node refuses, credentials sent to an http:// server unless verification was
 * explicitly skipped. The README lists each difference from client-node's KubeConfig.
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
  interactiveMode?: string;
}

/** The fields each kubeconfig entry may have (client-go's clientcmd/api/v1 types); any other is refused. */
const CLUSTER_FIELDS = [
  "server",
  "certificate-authority",
  "certificate-authority-data",
  "insecure-skip-tls-verify",
  "tls-server-name",
  "proxy-url",
  "disable-compression",
  "extensions",
];
const USER_FIELDS = [
  "client-certificate",
  "client-certificate-data",
  "client-key",
  "client-key-data",
  "token",
  "tokenFile",
  "username",
  "password",
  "exec",
  "auth-provider",
  "as",
  "as-uid",
  "as-groups",
  "as-user-extra",
  "extensions",
];
const EXEC_FIELDS = ["apiVersion", "command", "args", "env", "installHint", "provideClusterInfo", "interactiveMode"];
/** User fields that ask for something this client does not do: refused rather than silently dropped. */
const UNHONOURED_USER_FIELDS: Record<string, string> = {
  "auth-provider": "the in-tree auth providers were removed from client-go; use an exec plugin",
  as: "impersonation is not supported",
  "as-uid": "impersonation is not supported",
  "as-groups": "impersonation is not supported",
  "as-user-extra": "impersonation is not supported",
};

interface NamedCluster {
  server?: string;
  "certificate-authority"?: string;
  "certificate-authority-data"?: string;
  "insecure-skip-tls-verify"?: boolean;
  "tls-server-name"?: string;
  "proxy-url"?: string;
  "disable-compression"?: boolean;
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
  const clusterName = `${where}: cluster ${context.cluster}`;
  refuseUnknown(c, CLUSTER_FIELDS, clusterName);
  if (!c.server) throw new Error(`${clusterName} has no server`);
  if (c["proxy-url"]) throw new Error(`${clusterName} sets proxy-url, which is not supported`);
  const scheme = URL.canParse(c.server) ? new URL(c.server).protocol : undefined;
  if (scheme !== "https:" && scheme !== "http:")
    throw new Error(`${clusterName}: server ${c.server} is not an http(s) URL`);
  const insecure = c["insecure-skip-tls-verify"] === true;
  const user = context.user ? m.users.get(context.user) : undefined;
  if (context.user && !user)
    throw new Error(`${where}: context ${m.currentContext} names user ${context.user}, not defined`);
  const source = `${where}, context ${m.currentContext}`;

  const ca = pem(c, "certificate-authority", cluster.dir, clusterName);
  if (ca && insecure) {
    // client-go: "specifying a root certificates file with the insecure flag is not allowed".
    throw new Error(`${clusterName} sets both a certificate-authority and insecure-skip-tls-verify; choose one`);
  }
  const tls: TlsSettings = {
    ...(ca && { ca: ca() }),
    rejectUnauthorized: !insecure,
    ...(c["tls-server-name"] && { servername: c["tls-server-name"] }),
  };
  const server = c.server;
  if (!user) return new KubeConfig({ server, tls, source, credentials: () => Promise.resolve({ headers: {} }) });

  const u = user.value;
  const userName = `${where}: user ${context.user}`;
  refuseUnknown(u, USER_FIELDS, userName);
  for (const [field, why] of Object.entries(UNHONOURED_USER_FIELDS)) {
    if ((u as Record<string, unknown>)[field] !== undefined) throw new Error(`${userName} sets ${field}: ${why}`);
  }
  const methods = [
    u.token && "token",
    u.tokenFile && "tokenFile",
    (u.username !== undefined || u.password !== undefined) && "username/password",
    u.exec && "exec",
  ].filter(Boolean);
  if (methods.length > 1)
    throw new Error(`${userName} sets ${methods.join(" and ")}; only one way to authenticate is allowed`);
  const cert = pem(u, "client-certificate", user.dir, userName);
  const key = pem(u, "client-key", user.dir, userName);
  if (!cert !== !key) throw new Error(`${userName} has a client-certificate or client-key without the other`);
  if (scheme === "http:" && !insecure && (methods.length || cert)) {
    // As client-node refuses: credentials in clear text only when the kubeconfig says verification is skipped.
    throw new Error(`${userName} would send credentials in clear text to ${server}; use https`);
  }
  // Read on every call: client certificate files rotate (client-go reloads them too); the client compares contents.
  const staticCredentials = (headers: Record<string, string>): Credentials => ({
    headers,
    ...(cert && key && { cert: cert(), key: key() }),
  });

  if (u.exec) {
    const exec = new ExecPlugin(u.exec, user.dir, env, `${userName}'s exec plugin`, {
      server,
      "certificate-authority-data": tls.ca?.toString("base64"),
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
  else if (u.username !== undefined || u.password !== undefined) {
    headers = { authorization: `Basic ${Buffer.from(`${u.username ?? ""}:${u.password ?? ""}`).toString("base64")}` };
  }
  return new KubeConfig({ server, tls, source, credentials: () => Promise.resolve(staticCredentials(headers)) });
}

function refuseUnknown(entry: object, known: string[], what: string): void {
  const unknown = Object.keys(entry).filter((k) => !known.includes(k));
  if (unknown.length)
    throw new Error(`${what} sets ${unknown.join(", ")}, not a kubeconfig field (${known.join(", ")})`);
}

/**
 * A PEM value given inline as base64 `<field>-data` or as the file `<field>` (relative to its kubeconfig's
 * directory), as a reader: a file is read now, to fail early, and again on each call. Undefined when neither is set.
 */
function pem(entry: object, field: string, dir: string, what: string): (() => Buffer) | undefined {
  const fields = entry as Record<string, string | undefined>;
  const data = fields[`${field}-data`];
  const file = fields[field];
  if (data && file) throw new Error(`${what} sets both ${field} and ${field}-data; choose one`);
  if (data) {
    const value = Buffer.from(data, "base64");
    return () => value;
  }
  if (!file) return undefined;
  const path = inDir(dir, file);
  const read = () => {
    try {
      return readFileSync(path);
    } catch (e) {
      throw new Error(`${what}: ${field} ${path}: ${(e as Error).message}`, { cause: e });
    }
  };
  read();
  return read;
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
    refuseUnknown(config, EXEC_FIELDS, what);
    if (!config.command) throw new Error(`${what} has no command`);
    if (!config.apiVersion || !EXEC_API_VERSIONS.includes(config.apiVersion)) {
      throw new Error(`${what} asks for apiVersion ${config.apiVersion}; supported: ${EXEC_API_VERSIONS.join(", ")}`);
    }
    // client-go requires interactiveMode in v1 and defaults it to IfAvailable in v1beta1. The operator has no
    // terminal: a plugin that must ask a person (Always) cannot work, and is refused now rather than hang later.
    const mode = config.interactiveMode ?? (config.apiVersion.endsWith("/v1beta1") ? "IfAvailable" : undefined);
    if (mode === undefined) throw new Error(`${what} sets no interactiveMode (Never or IfAvailable)`);
    if (mode === "Always") throw new Error(`${what} sets interactiveMode Always, but the operator has no terminal`);
    if (mode !== "Never" && mode !== "IfAvailable")
      throw new Error(`${what} sets interactiveMode ${mode}, not Never, IfAvailable or Always`);
    for (const e of config.env ?? []) if (!e.name) throw new Error(`${what} has an env entry without a name`);
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
