import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { once } from "node:events";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { ensureAssets, ensureTool } from "./assets.ts";
import { KWOK_NODE_SELECTOR, KWOK_STAGES } from "./kwok.ts";
import { findCondition } from "../runtime/conditions.ts";
import type { Condition } from "../runtime/objects.ts";
import type { BuiltImage } from "./images.ts";
import { HOST_ADDRESS, REAL_NODE_NAME, RealNode, type RealNodeProcess, type RealNodeState } from "./real-node.ts";

type Name = "etcd" | "kube-apiserver" | "kube-controller-manager" | "kube-scheduler" | "kwok" | RealNodeProcess;
type Proc = { child: ChildProcess; log: string };
export type ControlPlaneState = {
  pids: Partial<Record<Name, number>>;
  apiserverUrl: string;
  adminKubeconfig: string;
  operatorKubeconfig: string;
  dir: string;
  /** The Kubernetes version running (undefined for KUBEBUILDER_ASSETS binaries). */
  version?: string;
  /** What the real node needs cleaned up after its processes, when there is one. */
  realNode?: RealNodeState;
};
export type StartOptions = {
  dir?: string;
  log?: (line: string) => void;
  controllerManager?: boolean;
  scheduler?: boolean;
  /** Start KWOK for simulated Nodes and Pods (default true). */
  kwok?: boolean;
  /**
   * The Lease duration kwok gives its Nodes, renewed every quarter of it as a kubelet does. Default 40 s (the
   * kubelet's); tests that watch heartbeats go stale use less, a large fleet more, to spare the API server.
   */
  nodeLeaseDurationSeconds?: number;
  /** A pinned Kubernetes version or minor (hack/k8s); default NEXTGEN_K8S_VERSION, else the newest. */
  version?: string;
  /** Leave the processes running when this Node process exits (`control-plane up`). */
  detached?: boolean;
  /**
   * More addresses of this machine the API server serves on, as IP SANs of its certificate: it then listens on every
   * address, not only 127.0.0.1 (the chaos suite reaches it from a network namespace over a veth pair).
   */
  extraServingIPs?: string[];
  /**
   * Also start a real node (src/controlplane/real-node.ts): containerd, a kubelet and kube-proxy running Pods for real
   * on Node REAL_NODE_NAME. Needs the Kubernetes version built here (not KUBEBUILDER_ASSETS) and root.
   */
  realNode?: boolean;
  /** Images (archives) the real node's containerd imports before its kubelet starts, besides its own. */
  nodeImages?: BuiltImage[];
};

const OPERATOR_USER = "system:serviceaccount:itechsmart-nextgen:nextgen-operator";
const STOP_ORDER: Name[] = [
  "kube-proxy",
  "kubelet",
  "containerd",
  "kwok",
  "kube-scheduler",
  "kube-controller-manager",
  "kube-apiserver",
  "etcd",
];

// Children of non-detached control planes, killed if this Node process exits before stop() ran.
const owned = new Set<number>();
const ownedDirs = new Set<string>();
let exitHooked = false;

export class ControlPlane {
  readonly dir: string;
  readonly apiserverUrl: string;
  readonly adminKubeconfig: string;
  readonly operatorKubeconfig: string;
  readonly version: string | undefined;
  private readonly etcdUrl: string;
  readonly adminToken = randomBytes(24).toString("hex");
  private readonly procs = new Map<Name, Proc>();
  private readonly ownsDir: boolean;
  private readonly detached: boolean;
  private readonly log: (line: string) => void;
  private apiserverCmd: [string, string[]] = ["", []];
  private realNode: RealNode | undefined;
  private etcdCmd: [string, string[]] = ["", []];

  private constructor(
    dir: string,
    ownsDir: boolean,
    detached: boolean,
    log: (line: string) => void,
    apiAddress: string,
    apiPort: number,
    etcdPort: number,
    version: string | undefined,
  ) {
    this.dir = dir;
    this.etcdUrl = `http://127.0.0.1:${etcdPort}`;
    this.version = version;
    this.log = log;
    this.ownsDir = ownsDir;
    this.detached = detached;
    this.apiserverUrl = `https://${apiAddress}:${apiPort}`;
    this.adminKubeconfig = join(dir, "admin.kubeconfig");
    this.operatorKubeconfig = join(dir, "operator.kubeconfig");
  }

  static async start(opts: StartOptions = {}): Promise<ControlPlane> {
    const log = opts.log ?? (() => {});
    const bins = await ensureAssets(log, opts.version);
    const wantKwok = opts.kwok ?? true;
    const kwok = wantKwok ? await ensureTool("kwok", log) : undefined;
    const [apiPort, etcdPort, peerPort, kwokPort] = await freePorts(4);
    const dir = opts.dir ?? mkdtempSync(join(tmpdir(), "nextgen-cp-"));
    if (opts.dir && ControlPlane.runningState(dir)) throw new Error(`a control plane is already running in ${dir}`);
    // With a real node the API server serves on the host's end of its veth pair, and only there: the one address
    // both the host and the node reach, where listening on every address would expose it beyond this machine.
    const apiAddress = opts.realNode ? HOST_ADDRESS : "127.0.0.1";
    const cp = new ControlPlane(
      dir,
      !opts.dir,
      opts.detached ?? false,
      log,
      apiAddress,
      apiPort!,
      etcdPort!,
      bins.version,
    );
    if (!cp.detached) hookExit();
    if (cp.ownsDir && !cp.detached) ownedDirs.add(dir);

    // A previous control plane in the same dir left data bound to other ports; start clean.
    for (const sub of ["etcd", "apiserver-certs", "logs", "kwok"])
      rmSync(join(dir, sub), { recursive: true, force: true });
    mkdirSync(join(dir, "logs"), { recursive: true });
    if (opts.realNode) {
      if (!bins.version) throw new Error("a real node runs the kubelet built here: unset KUBEBUILDER_ASSETS");
      // The node's namespace first: the API server advertises the host's end of its veth pair.
      cp.realNode = await RealNode.prepare(dir);
      cp.saveState();
    }
    const file = (name: string, content: string) => (
      writeFileSync(join(dir, name), content, { mode: 0o600 }),
      join(dir, name)
    );
    const token = () => randomBytes(24).toString("hex");
    const [cmToken, schedToken, operatorToken, kwokToken] = [token(), token(), token(), token()];
    const [kubeletToken, proxyToken] = [token(), token()];
    const tokens = file(
      "tokens.csv",
      [
        `${cp.adminToken},admin,admin,"system:masters"`,
        // With --use-service-account-credentials=false every controller acts as this user, whose bootstrap
        // role is only meant for the controller-manager's own bookkeeping (it cannot create ReplicaSets, Pods...).
        `${cmToken},system:kube-controller-manager,kube-controller-manager,"system:masters"`,
        `${schedToken},system:kube-scheduler,kube-scheduler`,
        // kwok plays every kubelet: Node and Pod status, Leases, deletions, events.
        `${kwokToken},kwok,kwok,"system:masters"`,
        `${operatorToken},${OPERATOR_USER},nextgen-operator,"system:serviceaccounts,system:serviceaccounts:itechsmart-nextgen,system:authenticated"`,
        // The real node's identities: the Node authorizer's for its kubelet, the bootstrap role binding's
        // (system:node-proxier) for its kube-proxy.
        ...(cp.realNode
          ? [
              `${kubeletToken},system:node:${REAL_NODE_NAME},kubelet-${REAL_NODE_NAME},"system:nodes"`,
              `${proxyToken},system:kube-proxy,kube-proxy`,
            ]
          : []),
      ].join("\n") + "\n",
    );
    const keys = generateKeyPairSync("rsa", {
      modulusLength: 2048,
      publicKeyEncoding: { type: "spki", format: "pem" },
      privateKeyEncoding: { type: "pkcs8", format: "pem" },
    });
    const saKey = file("sa.key", keys.privateKey);
    const saPub = file("sa.pub", keys.publicKey);
    const certDir = join(dir, "apiserver-certs");

    try {
      const etcdUrl = cp.etcdUrl;
      const peerUrl = `http://127.0.0.1:${peerPort}`;
      cp.etcdCmd = [
        bins.etcd,
        [
          `--data-dir=${join(dir, "etcd")}`,
          `--listen-client-urls=${etcdUrl}`,
          `--advertise-client-urls=${etcdUrl}`,
          `--listen-peer-urls=${peerUrl}`,
          `--initial-advertise-peer-urls=${peerUrl}`,
          `--initial-cluster=default=${peerUrl}`,
          "--unsafe-no-fsync", // a throwaway cluster: durability is not worth an fsync per write
          "--quota-backend-bytes=1073741824",
          "--snapshot-count=10000",
          "--logger=zap",
        ],
      ];
      await cp.startEtcd();

      // A real node reaches the API server on the host's end of its veth pair, and its pods through the kubernetes
      // Service's ClusterIP (the first of the range).
      const extraIPs = [...(opts.extraServingIPs ?? []), ...(cp.realNode ? [HOST_ADDRESS, "10.0.0.1"] : [])];
      // kube-apiserver keeps a certificate it finds in --cert-dir; its own self-signed one names only 127.0.0.1.
      if (extraIPs.length > 0) writeServingCert(certDir, ["127.0.0.1", ...extraIPs]);

      cp.apiserverCmd = [
        bins.kubeApiserver,
        [
          `--etcd-servers=${etcdUrl}`,
          `--secure-port=${apiPort}`,
          `--bind-address=${opts.extraServingIPs?.length ? "0.0.0.0" : apiAddress}`,
          ...(cp.realNode
            ? [
                // Pods reach it through the kubernetes Service, whose endpoint is this address.
                `--advertise-address=${HOST_ADDRESS}`,
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                "--kubelet-preferred-address-types=InternalIP",
                `--kubelet-client-certificate=${cp.realNode.apiserverClient.cert}`,
                `--kubelet-client-key=${cp.realNode.apiserverClient.key}`,
              ]
            : [
                "--advertise-address=127.0.0.1",
                // The kubernetes Service's endpoints may not be loopback addresses; nothing here reaches the API
                // through that Service (as with envtest), so it has none.
                "--endpoint-reconciler-type=none",
                "--authorization-mode=RBAC",
                // Without kubelets nothing consumes Pod tokens, and this plugin would reject Pods created in a fresh
                // namespace until the controller-manager has made its default ServiceAccount.
                "--disable-admission-plugins=ServiceAccount",
              ]),
          `--cert-dir=${certDir}`,
          `--token-auth-file=${tokens}`,
          `--service-account-key-file=${saPub}`,
          `--service-account-signing-key-file=${saKey}`,
          "--service-account-issuer=https://kubernetes.default.svc",
          "--service-cluster-ip-range=10.0.0.0/24",
          "--allow-privileged=true",
        ],
      ];
      await cp.startApiserver();

      const ca = readFileSync(join(certDir, "apiserver.crt"));
      const kubeconfig = (name: string, user: string, tok: string) =>
        file(name, kubeconfigYaml(cp.apiserverUrl, ca, user, tok));
      kubeconfig("admin.kubeconfig", "admin", cp.adminToken);
      kubeconfig("operator.kubeconfig", "nextgen-operator", operatorToken);
      const wantCm = (opts.controllerManager ?? true) && bins.kubeControllerManager;
      if (wantCm) {
        log("starting kube-controller-manager");
        await cp.spawn("kube-controller-manager", wantCm, [
          `--kubeconfig=${kubeconfig("controller-manager.kubeconfig", "kube-controller-manager", cmToken)}`,
          "--leader-elect=false",
          "--controllers=*",
          `--service-account-private-key-file=${saKey}`,
          `--root-ca-file=${join(certDir, "apiserver.crt")}`,
          "--use-service-account-credentials=false",
          "--bind-address=127.0.0.1",
          "--secure-port=0",
        ]);
      }
      const wantSched = (opts.scheduler ?? true) && bins.kubeScheduler;
      if (wantSched) {
        log("starting kube-scheduler");
        await cp.spawn("kube-scheduler", wantSched, [
          `--kubeconfig=${kubeconfig("scheduler.kubeconfig", "kube-scheduler", schedToken)}`,
          "--leader-elect=false",
          "--bind-address=127.0.0.1",
          "--secure-port=0",
        ]);
      }
      // The serviceaccount controller creating default/default proves the controller-manager reached the apiserver.
      if (wantCm) {
        const sa = "/api/v1/namespaces/default/serviceaccounts/default";
        await cp.waitFor(
          "kube-controller-manager to create default/default ServiceAccount",
          async () => (await cp.get(sa)) === 200,
          60_000,
        );
      }
      if (kwok) {
        log("starting kwok (simulated kubelets)");
        const kwokDir = join(dir, "kwok");
        mkdirSync(kwokDir, { recursive: true });
        const leaseSeconds = opts.nodeLeaseDurationSeconds ?? 40;
        await cp.spawn(
          "kwok",
          kwok,
          [
            `--kubeconfig=${kubeconfig("kwok.kubeconfig", "kwok", kwokToken)}`,
            `--config=${KWOK_STAGES}`,
            `--manage-nodes-with-label-selector=${KWOK_NODE_SELECTOR}`,
            `--node-lease-duration-seconds=${leaseSeconds}`,
            "--cidr=10.244.0.0/16",
            "--node-ip=10.1.0.1",
            `--server-address=127.0.0.1:${kwokPort}`,
          ],
          // kwok always reads $KWOK_WORKDIR/kwok.yaml first: keep a developer's ~/.kwok out of the tests.
          { KWOK_WORKDIR: kwokDir },
        );
        await cp.waitFor("kwok /healthz", () => httpOk(`http://127.0.0.1:${kwokPort}/healthz`), 30_000);
      }
      if (cp.realNode) {
        await cp.realNode.start(
          {
            version: bins.version!,
            kubeconfigs: {
              kubelet: kubeconfig("kubelet.kubeconfig", `system:node:${REAL_NODE_NAME}`, kubeletToken),
              proxy: kubeconfig("kube-proxy.kubeconfig", "system:kube-proxy", proxyToken),
            },
            log,
            images: opts.nodeImages ?? [],
            spawn: async (name, bin, args) => (await cp.spawn(name, bin, args)).pid!,
            waitFor: (what, ready, timeoutMs) => cp.waitFor(what, ready, timeoutMs),
          },
          async () => {
            const { status, body } = await cp.request(`/api/v1/nodes/${REAL_NODE_NAME}`);
            if (status !== 200) return false;
            const node = JSON.parse(body) as { status?: { conditions?: Condition[] } };
            return findCondition(node.status?.conditions, "Ready")?.status === "True";
          },
        );
      }
      log(`control plane${bins.version ? ` ${bins.version}` : ""} ready at ${cp.apiserverUrl} (files in ${dir})`);
      return cp;
    } catch (err) {
      await cp.terminateAll();
      ownedDirs.delete(dir); // keep the logs the error points at
      throw err;
    }
  }

  /** The state of a control plane whose kube-apiserver still runs in `dir`, if any. */
  static runningState(dir: string): ControlPlaneState | undefined {
    const state = readState(dir);
    const pid = state?.pids["kube-apiserver"];
    return pid && isOurs(pid, "kube-apiserver") ? state : undefined;
  }

  /** Stops the processes recorded in `dir`/state.json; resolves to whether any was still running. */
  static async stopFromState(dir: string): Promise<boolean> {
    const state = readState(dir);
    let stopped = false;
    for (const name of STOP_ORDER) {
      const pid = state?.pids[name];
      if (pid && isOurs(pid, name)) {
        stopped = true;
        await terminate(pid);
      }
    }
    if (state?.realNode) await RealNode.clean(state.realNode);
    rmSync(join(dir, "state.json"), { force: true });
    return stopped;
  }

  env(): Record<string, string> {
    return controlPlaneEnv(this);
  }

  async stopApiserver(): Promise<void> {
    await this.terminate("kube-apiserver");
  }

  async startApiserver(): Promise<void> {
    this.log(`starting kube-apiserver on ${this.apiserverUrl}`);
    await this.spawn("kube-apiserver", ...this.apiserverCmd);
    await this.waitFor("kube-apiserver /readyz", async () => (await this.get("/readyz")) === 200, 90_000);
  }

  /** Kills etcd at once (SIGKILL), as a crash or an OOM kill would; startEtcd brings it back on the same data. */
  async killEtcd(): Promise<void> {
    const etcd = this.procs.get("etcd")?.child;
    if (!etcd) return;
    const exited = once(etcd, "exit");
    etcd.kill("SIGKILL");
    await exited;
    owned.delete(etcd.pid as number);
    this.procs.delete("etcd");
    this.saveState();
  }

  async startEtcd(): Promise<void> {
    this.log(`starting etcd on ${this.etcdUrl}`);
    await this.spawn("etcd", ...this.etcdCmd);
    await this.waitFor("etcd /health", () => httpOk(`${this.etcdUrl}/health`), 30_000);
  }

  /** Freezes one of the control plane's processes (SIGSTOP): it holds its sockets open but answers nothing. */
  pause(name: Name): void {
    this.procs.get(name)?.child.kill("SIGSTOP");
  }

  /** Lets a paused process run again (SIGCONT). */
  resume(name: Name): void {
    this.procs.get(name)?.child.kill("SIGCONT");
  }

  /**
   * Compacts etcd's history up to its current revision, as kube-apiserver does every 5 minutes: a watch or list from
   * an older resourceVersion then answers 410 Gone, whether the API server serves it from its cache or from etcd.
   */
  async compactEtcd(): Promise<void> {
    const call = async (path: string, body: object) => {
      const res = await fetch(`${this.etcdUrl}/v3/kv/${path}`, { method: "POST", body: JSON.stringify(body) });
      if (!res.ok) throw new Error(`etcd ${path}: ${res.status} ${await res.text()}`);
      return (await res.json()) as { header: { revision: string } };
    };
    // etcd's JSON gateway: keys are base64; any key's range answers the store's current revision.
    const { revision } = (await call("range", { key: Buffer.from("/").toString("base64") })).header;
    await call("compaction", { revision, physical: true });
  }

  async stop(): Promise<void> {
    await this.terminateAll();
    rmSync(join(this.dir, "state.json"), { force: true });
    if (this.ownsDir) rmSync(this.dir, { recursive: true, force: true });
    ownedDirs.delete(this.dir);
  }

  private async terminateAll(): Promise<void> {
    for (const name of STOP_ORDER) await this.terminate(name);
    // containerd's shims and the containers outlive it by design; the node's namespace and cgroups outlive all.
    if (this.realNode) await RealNode.clean(this.realNode.state);
  }

  private async terminate(name: Name): Promise<void> {
    const pid = this.procs.get(name)?.child.pid;
    if (pid === undefined) return;
    await terminate(pid);
    owned.delete(pid);
    this.procs.delete(name);
    this.saveState();
  }

  private async spawn(
    name: Name,
    bin: string,
    args: string[],
    env: Record<string, string> = {},
  ): Promise<ChildProcess> {
    const log = join(this.dir, "logs", `${name}.log`);
    const fd = openSync(log, "a");
    const child = spawn(bin, args, {
      stdio: ["ignore", fd, fd],
      detached: this.detached,
      env: { ...process.env, ...env },
    });
    closeSync(fd);
    await once(child, "spawn");
    if (this.detached) child.unref();
    else owned.add(child.pid!);
    this.procs.set(name, { child, log });
    this.saveState();
    return child;
  }

  private async waitFor(what: string, ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (const [name, { child, log }] of this.procs) {
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(
            `${name} exited (${child.exitCode ?? child.signalCode}) while waiting for ${what}; last lines of ${log}:\n${tail(log)}`,
          );
        }
      }
      if (await ready()) return;
      await delay(200);
    }
    throw new Error(
      `timed out after ${timeoutMs / 1000}s waiting for ${what}; see the logs in ${join(this.dir, "logs")}`,
    );
  }

  private async get(path: string): Promise<number> {
    return (await this.request(path)).status;
  }

  /** A GET as admin; status 0 when the API server did not answer. */
  private request(path: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve) => {
      const req = request(`${this.apiserverUrl}${path}`, {
        agent: false,
        rejectUnauthorized: false, // only readiness probes; the kubeconfigs pin the apiserver's certificate
        headers: { authorization: `Bearer ${this.adminToken}` },
        timeout: 5000,
      });
      req.on("response", (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      });
      req.on("timeout", () => req.destroy()).on("error", () => resolve({ status: 0, body: "" }));
      req.end();
    });
  }

  // Kept current with every spawn and exit, so `control-plane down` finds even a half-started control plane.
  private saveState(): void {
    const pids = Object.fromEntries([...this.procs].map(([name, p]) => [name, p.child.pid]));
    const { apiserverUrl, adminKubeconfig, operatorKubeconfig, dir, version } = this;
    const state: ControlPlaneState = {
      pids,
      apiserverUrl,
      adminKubeconfig,
      operatorKubeconfig,
      dir,
      version,
      realNode: this.realNode?.state,
    };
    writeFileSync(join(dir, "state.json"), JSON.stringify(state, null, 2) + "\n");
  }
}

export function controlPlaneEnv(
  cp: Pick<ControlPlaneState, "adminKubeconfig" | "operatorKubeconfig" | "dir">,
): Record<string, string> {
  return {
    KUBECONFIG: cp.adminKubeconfig,
    NEXTGEN_OPERATOR_KUBECONFIG: cp.operatorKubeconfig,
    NEXTGEN_CONTROL_PLANE_DIR: cp.dir,
  };
}

/** A self-signed serving certificate for these IP addresses, where kube-apiserver looks for its own. */
function writeServingCert(certDir: string, ips: string[]): void {
  mkdirSync(certDir, { recursive: true });
  // node:crypto makes keys but not certificates; openssl is on every machine the control plane runs on.
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "365",
      "-subj",
      "/CN=kube-apiserver",
      "-addext",
      `subjectAltName=${["DNS:localhost", ...ips.map((ip) => `IP:${ip}`)].join(",")}`,
      "-keyout",
      join(certDir, "apiserver.key"),
      "-out",
      join(certDir, "apiserver.crt"),
    ],
    { stdio: "ignore" },
  );
}

function kubeconfigYaml(server: string, ca: Buffer, user: string, token: string): string {
  return `apiVersion: v1
kind: Config
clusters:
  - name: nextgen
    cluster:
      server: ${server}
      certificate-authority-data: ${ca.toString("base64")}
users:
  - name: ${user}
    user:
      token: ${token}
contexts:
  - name: nextgen
    context:
      cluster: nextgen
      user: ${user}
current-context: nextgen
`;
}

async function freePorts(n: number): Promise<number[]> {
  // All listeners stay open until every port is known, so the kernel cannot hand out the same port twice.
  const servers: Server[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((res, rej) => server.once("error", rej).listen(0, "127.0.0.1", res));
    }
    return servers.map((s) => (s.address() as { port: number }).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((res) => s.close(res))));
  }
}

function httpOk(url: string): Promise<boolean> {
  return fetch(url, { signal: AbortSignal.timeout(2000) }).then(
    async (r) => (await r.body?.cancel(), r.ok),
    () => false,
  );
}

function readState(dir: string): ControlPlaneState | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, "state.json"), "utf8")) as ControlPlaneState;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

// state.json outlives reboots, after which its PIDs may belong to unrelated processes.
function isOurs(pid: number, name: Name): boolean {
  if (!alive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(name);
  } catch {
    return process.platform !== "linux";
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

async function terminate(pid: number): Promise<void> {
  // A short grace: kube-apiserver drains open watches for up to --request-timeout (60s) before exiting on SIGTERM.
  for (const [sig, timeoutMs] of [
    ["SIGTERM", 5_000],
    ["SIGKILL", 5_000],
  ] as const) {
    signal(pid, sig);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!alive(pid)) return;
      await delay(50);
    }
  }
  throw new Error(`process ${pid} survived SIGKILL`);
}

function tail(file: string, lines = 25): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

function hookExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  const killOwned = () => {
    for (const pid of owned) signal(pid, "SIGKILL");
    for (const dir of ownedDirs) {
      try {
        rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
      } catch {
        // a just-killed process may still be writing; a stray temp dir is the lesser evil than failing exit
      }
    }
  };
  process.on("exit", killOwned);
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    const onSignal = () => {
      // Another handler owns shutdown and will exit, which fires "exit"; alone, we must still die by the signal.
      if (process.listenerCount(sig) > 1) return;
      killOwned();
      process.removeListener(sig, onSignal);
      process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}
