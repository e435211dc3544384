import { execFile, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { promisify } from "node:util";
import { ensureNodeAssets } from "./assets.ts";
import { ensurePauseImage, ensureProbeImage, type BuiltImage } from "./images.ts";
import { NetworkNamespace, type NetworkNamespaceNames } from "./netns.ts";

const execFileAsync = promisify(execFile);

/** ctr on the containerd listening on `socket`, in the namespace of the kubelet's containers; its standard output. */
export async function ctr(socket: string, ...args: string[]): Promise<string> {
  return (await execFileAsync("ctr", [`--address=${socket}`, "--namespace=k8s.io", ...args])).stdout;
}

/** The real node's Node name; one per machine (its addresses and pod CIDR are fixed). */
export const REAL_NODE_NAME = "nextgen-node-1";
/** Set to "true" on the real node (never KWOK's `kwok.x-k8s.io/node=fake`): a Pod selecting it runs for real. */
export const REAL_NODE_LABEL = "nextgen.itechsmart.io/real-node";
/** The API server's address on the host's end of the node's veth pair, and the node's own on the other end. */
export const HOST_ADDRESS = "10.214.0.1";
export const NODE_ADDRESS = "10.214.0.2";
/** The node's pods; the host routes it through the node's namespace (a Prometheus on the host scrapes pods). */
export const POD_CIDR = "10.245.0.0/24";
const CLUSTER_CIDR = "10.245.0.0/16";

const DAEMONS = ["containerd", "kubelet", "kube-proxy"] as const;
export type RealNodeProcess = (typeof DAEMONS)[number];

/** What a stopped or killed real node left that its processes do not take with them; kept in state.json. */
export type RealNodeState = { netns: NetworkNamespaceNames; cgroup: string };

/** What RealNode.start needs of the control plane it joins. */
export type RealNodeHost = {
  version: string;
  /** The kubeconfig files (paths) of the kubelet's and kube-proxy's identities, naming the API server as they reach it. */
  kubeconfigs: { kubelet: string; proxy: string };
  /** More images to import besides the node's own (the pause image, node-probe). */
  images: BuiltImage[];
  log: (line: string) => void;
  /** Starts a process of the control plane (logged, in state.json, stopped by PID with the rest); its pid. */
  spawn: (name: RealNodeProcess, bin: string, args: string[]) => Promise<number>;
  waitFor: (what: string, ready: () => Promise<boolean>, timeoutMs: number) => Promise<void>;
};

/**
 * The kernel tunables the kubelet wants (cm.setupKernelTunables), which it writes unless protectKernelDefaults makes
 * it fail instead. The host's differ and are not ours to change, and the kubelet cannot run with either behaviour
 * against them: the node's private mount namespace shows it these values instead, in files bind-mounted over
 * /proc/sys, and protectKernelDefaults is on so that it would fail rather than write should it ever see another.
 */
export const KUBELET_TUNABLES: Record<string, number> = {
  "vm/overcommit_memory": 1,
  "vm/panic_on_oom": 0,
  "kernel/panic": 10,
  "kernel/panic_on_oops": 1,
  "kernel/keys/root_maxkeys": 1000000,
  "kernel/keys/root_maxbytes": 25000000,
};

/** The socket of the real node's containerd, beside the control plane in `dir` (`ctr --address`). */
export function containerdSocket(dir: string): string {
  return join(dir, "node", "containerd.sock");
}

/** The real node's binaries and images for a pinned Kubernetes `version`: built once and cached. */
export async function ensureRealNodeAssets(log: (line: string) => void, version: string) {
  const [bins, pause, probe] = await Promise.all([
    ensureNodeAssets(log, version),
    ensurePauseImage(log, version),
    ensureProbeImage(log),
  ]);
  return { bins, pause, probe };
}

/**
 * A real Kubernetes node beside the local control plane: containerd, the kubelet and kube-proxy in a network
 * namespace joined to the host by a veth pair, in a mount namespace of their own, with every process of theirs
 * (shims and containers too) in a cgroup tree of their own. Nothing outside the namespaces, that cgroup and the
 * control plane's folder changes: mounts stay in the private mount namespace (and go with its last process), iptables
 * rules and sysctls (the bridge plugin's forwarding) are the network namespace's, and the host gains
 * only the veth's end and a route to the pod CIDR, which go with the namespace.
 */
export class RealNode {
  readonly netns: NetworkNamespace;
  readonly cgroup: string;
  /**
   * The API server's client certificate and key for the kubelet (logs, exec, metrics), which the kubelet trusts: in
   * group system:masters, so the kubelet's SubjectAccessReviews allow it everything.
   */
  readonly apiserverClient: { cert: string; key: string };
  private readonly dir: string;
  private readonly clientCA: string;

  private constructor(dir: string, netns: NetworkNamespace, cgroup: string) {
    this.dir = dir;
    this.netns = netns;
    this.cgroup = cgroup;
    const pki = join(dir, "pki");
    this.clientCA = join(pki, "client-ca.crt");
    this.apiserverClient = { cert: join(pki, "apiserver-client.crt"), key: join(pki, "apiserver-client.key") };
  }

  /**
   * The network namespace and cgroup of the node for `dir`, named after it so that what a run killed before it could
   * clean up left is cleaned up by the next in the same folder (or in any, once that run's node daemons are gone);
   * made before the API server starts, which advertises its host address.
   */
  static async prepare(dir: string): Promise<RealNode> {
    const own = stateOf(createHash("sha256").update(dir).digest("hex").slice(0, 6));
    // Nodes of other folders hold the same addresses: one whose containerd, kubelet or kube-proxy still runs is in
    // the way; one whose have all gone (their harness exited without stopping them, leaving shims and containers) is
    // cleaned up here.
    for (const other of nodeCgroups().filter((c) => c !== own.cgroup)) {
      if (daemonsRunning(other)) {
        throw new Error(`another real node runs on this machine (cgroup ${other}): stop its control plane first`);
      }
      await RealNode.clean(stateOf(other.slice(PREFIX.length)));
    }
    await RealNode.clean(own);
    // The cgroup first: a namespace is only ever made, and so left, beside one, by which nodeCgroups finds it.
    makeCgroups(own.cgroup);
    let netns;
    try {
      netns = NetworkNamespace.create({ names: own.netns, hostAddress: HOST_ADDRESS, namespaceAddress: NODE_ADDRESS });
      netns.routeThrough(POD_CIDR);
    } catch (err) {
      await RealNode.clean(own);
      throw err;
    }
    const node = new RealNode(join(dir, "node"), netns, own.cgroup);
    rmSync(node.dir, { recursive: true, force: true });
    node.writeClientCertificates();
    return node;
  }

  get state(): RealNodeState {
    return { netns: this.netns.names, cgroup: this.cgroup };
  }

  /** Starts containerd, imports the node's images, then the kubelet and kube-proxy; resolves when the Node is Ready. */
  async start(host: RealNodeHost, nodeReady: () => Promise<boolean>): Promise<void> {
    const started = Date.now();
    const { log } = host;
    const { bins, pause, probe } = await ensureRealNodeAssets(log, host.version);
    const prepared = Date.now();
    const file = (path: string, content: string) => {
      mkdirSync(join(this.dir, path, ".."), { recursive: true });
      writeFileSync(join(this.dir, path), content, { mode: 0o600 });
      return join(this.dir, path);
    };
    for (const [tunable, value] of Object.entries(KUBELET_TUNABLES)) file(`sysctl/${tunable}`, `${value}\n`);
    const socket = containerdSocket(join(this.dir, ".."));
    const containerdConfig = file("containerd.toml", containerdToml(this.dir, socket, pause.reference));
    file("cni/net.d/10-nextgen.conflist", cniConflist(join(this.dir, "cni", "ipam")));

    // containerd makes the namespaces the kubelet and kube-proxy join: see namespaceScript.
    const containerd = await host.spawn("containerd", "nsenter", [
      `--net=/run/netns/${this.netns.name}`,
      "unshare",
      "--mount",
      "--propagation=slave",
      "sh",
      "-ec",
      namespaceScript(this.dir, this.cgroup),
      "containerd",
      "containerd",
      `--config=${containerdConfig}`,
    ]);
    await host.waitFor(
      "containerd to answer",
      () =>
        ctr(socket, "version").then(
          () => true,
          () => false,
        ),
      30_000,
    );
    for (const image of [pause, probe, ...host.images]) await importImage(socket, image);

    // In containerd's namespaces and cgroup: their mounts (volumes, tokens) are the ones containerd sees.
    const inNode = (name: RealNodeProcess, bin: string, args: string[]) =>
      host.spawn(name, "nsenter", [
        `--target=${containerd}`,
        "--mount",
        "--net",
        "sh",
        "-ec",
        joinCgroupScript(this.cgroup),
        name,
        bin,
        ...args,
      ]);
    await inNode("kubelet", bins.kubelet, [
      `--config=${file("kubelet.yaml", kubeletConfig(this.dir, socket, this.cgroup, this.clientCA))}`,
      `--kubeconfig=${host.kubeconfigs.kubelet}`,
      `--root-dir=${join(this.dir, "kubelet")}`,
      `--cert-dir=${join(this.dir, "kubelet", "pki")}`,
      `--hostname-override=${REAL_NODE_NAME}`,
      `--node-ip=${NODE_ADDRESS}`,
      `--node-labels=${REAL_NODE_LABEL}=true`,
      "--v=2",
    ]);
    await inNode("kube-proxy", bins.kubeProxy, [
      `--config=${file("kube-proxy.yaml", kubeProxyConfig(host.kubeconfigs.proxy))}`,
      "--v=2",
    ]);
    await host.waitFor(`Node ${REAL_NODE_NAME} to be Ready`, nodeReady, 120_000);
    log(
      `real node ${REAL_NODE_NAME} Ready in ${((Date.now() - prepared) / 1000).toFixed(1)} s` +
        ` (${((prepared - started) / 1000).toFixed(1)} s more building or finding its binaries and images)`,
    );
  }

  private writeClientCertificates(): void {
    const pki = join(this.dir, "pki");
    mkdirSync(pki, { recursive: true });
    const caKey = join(pki, "client-ca.key");
    const csr = join(pki, "apiserver-client.csr");
    // node:crypto makes keys but not certificates; openssl is on every machine the control plane runs on.
    const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });
    const key = ["-newkey", "rsa:2048", "-nodes"];
    openssl(
      "req",
      "-x509",
      ...key,
      "-days",
      "365",
      "-subj",
      "/CN=nextgen-kubelet-client-ca",
      "-keyout",
      caKey,
      "-out",
      this.clientCA,
    );
    openssl(
      "req",
      ...key,
      "-subj",
      "/O=system:masters/CN=kube-apiserver-kubelet-client",
      "-keyout",
      this.apiserverClient.key,
      "-out",
      csr,
    );
    openssl(
      "x509",
      "-req",
      "-in",
      csr,
      "-CA",
      this.clientCA,
      "-CAkey",
      caKey,
      "-CAcreateserial",
      "-days",
      "365",
      "-out",
      this.apiserverClient.cert,
    );
  }

  /**
   * Removes what a node left once its processes are stopped, or what one killed with its harness left: every process
   * still in its cgroups (containerd's shims and the containers, which outlive containerd by design), then the
   * cgroups, then the network namespace with its veth pair and route. The private mount namespace, and so every mount
   * containerd and the kubelet made, goes with its last process.
   */
  static async clean(state: RealNodeState): Promise<void> {
    try {
      await killCgroups(state.cgroup);
    } finally {
      NetworkNamespace.deleteExisting(state.netns);
    }
  }
}

const PREFIX = "nextgen-node-";

/** A node's namespace and cgroup are named after the id of its folder. */
function stateOf(id: string): RealNodeState {
  return { netns: { name: `${PREFIX}${id}`, hostEnd: `ngn${id}` }, cgroup: `${PREFIX}${id}` };
}

/** The real nodes' cgroups on this machine, of running nodes or left by killed ones. */
function nodeCgroups(): string[] {
  const found = hierarchies().flatMap((h) => readdirSync(h).filter((name) => name.startsWith(PREFIX)));
  return [...new Set(found)];
}

/**
 * The cgroup hierarchies mounted here, as mount points. The kubelet's cgroupfs driver uses every v1 one and, on a
 * hybrid machine (v1 controllers beside a v2 "unified" tree holding none), runc places containers in that v2 tree
 * too: the node's cgroup is made, joined and removed in all of them.
 */
function hierarchies(): string[] {
  return readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .map((line) => line.split(" "))
    .filter((f) => f[2] === "cgroup" || f[2] === "cgroup2")
    .map((f) => f[1]!);
}

/**
 * `<root>` in every hierarchy (the kubelet's cgroupRoot: its pods go under it) and `<root>/node`, where containerd,
 * the kubelet and kube-proxy run.
 */
function makeCgroups(root: string): void {
  for (const h of hierarchies()) {
    for (const path of [root, `${root}/node`]) {
      const dir = join(h, path);
      mkdirSync(dir, { recursive: true });
      for (const f of ["cpuset.cpus", "cpuset.mems"]) {
        const [own, parent] = [join(dir, f), join(dir, "..", f)];
        // A v1 cpuset child starts empty and takes no task until given some (v2's inherits, and its root has none).
        if (existsSync(own) && existsSync(parent) && readFileSync(own, "utf8").trim() === "") {
          writeFileSync(own, readFileSync(parent));
        }
      }
    }
  }
}

async function killCgroups(root: string): Promise<void> {
  const trees = hierarchies()
    .map((h) => join(h, root))
    .filter((dir) => existsSync(dir));
  // Deepest first, so each is empty of child cgroups when removed.
  const cgroups = trees.flatMap((dir) => [
    ...readdirSync(dir, { recursive: true, withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => join(e.parentPath, e.name))
      .sort((a, b) => b.length - a.length),
    dir,
  ]);
  // A dying process leaves its cgroup only once gone, and a fork may land while we kill: until all are empty.
  for (let attempt = 0; attempt < 100; attempt++) {
    let left = 0;
    for (const cg of cgroups) {
      for (const pid of tasks(cg)) {
        left++;
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // exited meanwhile
        }
      }
    }
    if (left === 0) break;
    await delay(100);
  }
  for (const cg of cgroups) {
    try {
      rmdirSync(cg);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw new Error(`cannot remove cgroup ${cg}: ${err}`);
    }
  }
}

/** Whether containerd, the kubelet or kube-proxy of the node with this cgroup runs (its shims may outlive them). */
function daemonsRunning(cgroup: string): boolean {
  const daemons = new Set<string>(DAEMONS);
  return hierarchies().some((h) =>
    tasks(join(h, cgroup, "node")).some((pid) => {
      try {
        return daemons.has(readFileSync(`/proc/${pid}/comm`, "utf8").trim());
      } catch {
        return false; // gone meanwhile
      }
    }),
  );
}

function tasks(cgroup: string): number[] {
  try {
    return readFileSync(join(cgroup, "cgroup.procs"), "utf8").split("\n").filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Moves the shell into `<cgroup>/node` in every hierarchy, then execs its arguments. */
function joinCgroupScript(cgroup: string): string {
  const dirs = hierarchies().map((h) => join(h, cgroup, "node", "cgroup.procs"));
  return `for procs in ${dirs.join(" ")}; do echo $$ > "$procs"; done\nexec "$@"`;
}

/**
 * Run by containerd's shell, in the node's new mount namespace (a slave of the host's: nothing mounted in it reaches
 * the host) before it execs containerd:
 * - the kubelet's tunables over /proc/sys (KUBELET_TUNABLES says why);
 * - empty tmpfs over /run, /var/lib and /var/log, where containerd's shims and runc, the pod network namespaces, the
 *   CNI plugins' cache and the kubelet's /var/log/containers links live at fixed paths: they stay the node's and go
 *   with it.
 */
function namespaceScript(dir: string, cgroup: string): string {
  const binds = Object.keys(KUBELET_TUNABLES).map((t) => `mount --bind ${join(dir, "sysctl", t)} /proc/sys/${t}`);
  const tmpfs = ["/run", "/var/lib", "/var/log"].map((d) => `mount -t tmpfs -o mode=0755 nextgen-node ${d}`);
  return [...binds, ...tmpfs, joinCgroupScript(cgroup)].join("\n");
}

async function importImage(socket: string, image: BuiltImage): Promise<void> {
  await ctr(socket, "images", "import", "--snapshotter=overlayfs", image.archive);
  if (!(await ctr(socket, "images", "list", "--quiet")).split("\n").includes(image.reference)) {
    throw new Error(`containerd did not name the image it imported from ${image.archive} ${image.reference}`);
  }
}

function containerdToml(dir: string, socket: string, sandboxImage: string): string {
  return `version = 2
root = "${join(dir, "containerd", "root")}"
state = "${join(dir, "containerd", "state")}"
# Snapshotters this machine cannot run would only log errors.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "${socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "${join(dir, "containerd", "opt")}"

[plugins."io.containerd.grpc.v1.cri"]
  # Imported at start; never pulled.
  sandbox_image = "${sandboxImage}"
  # Without CAP_SYS_RESOURCE a container's oom_score_adj may not go below containerd's own.
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${join(dir, "cni", "net.d")}"
    max_conf_num = 1
`;
}

/** One bridge in the node's namespace, its gateway the pods' default route; portmap for hostPorts. */
function cniConflist(ipamDir: string): string {
  return JSON.stringify(
    {
      cniVersion: "1.0.0",
      name: "nextgen",
      plugins: [
        {
          type: "bridge",
          bridge: "cni0",
          isGateway: true,
          hairpinMode: true,
          ipam: {
            type: "host-local",
            ranges: [[{ subnet: POD_CIDR }]],
            routes: [{ dst: "0.0.0.0/0" }],
            dataDir: ipamDir,
          },
        },
        { type: "portmap", capabilities: { portMappings: true } },
      ],
    },
    null,
    2,
  );
}

function kubeletConfig(dir: string, socket: string, cgroup: string, clientCA: string): string {
  return JSON.stringify(
    {
      apiVersion: "kubelet.config.k8s.io/v1beta1",
      kind: "KubeletConfiguration",
      containerRuntimeEndpoint: `unix://${socket}`,
      cgroupDriver: "cgroupfs",
      // Pods go under the node's own cgroup, so the host's cgroups are left as they are.
      cgroupRoot: `/${cgroup}`,
      failCgroupV1: false,
      failSwapOn: false,
      protectKernelDefaults: true,
      address: NODE_ADDRESS,
      readOnlyPort: 0,
      healthzBindAddress: "127.0.0.1",
      // Requests are authenticated by the API server's client certificate or by a token (TokenReview), and authorized
      // by SubjectAccessReview: the API server's for logs and exec, a Prometheus's token for /metrics.
      authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: clientCA } },
      authorization: { mode: "Webhook" },
      podLogsDir: join(dir, "pod-logs"),
      volumePluginDir: join(dir, "volume-plugins"),
      // The host's resolv.conf names resolvers this sandbox's pods cannot reach.
      resolvConf: "",
      // The machine's disk is shared with everything else: a throwaway node neither collects images nor evicts pods
      // for what others use of it.
      imageGCHighThresholdPercent: 100,
      evictionHard: { "memory.available": "100Mi", "nodefs.available": "0%", "imagefs.available": "0%" },
      serializeImagePulls: false,
    },
    null,
    2,
  );
}

function kubeProxyConfig(kubeconfig: string): string {
  return JSON.stringify(
    {
      apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
      kind: "KubeProxyConfiguration",
      clientConnection: { kubeconfig },
      mode: "iptables",
      hostnameOverride: REAL_NODE_NAME,
      clusterCIDR: CLUSTER_CIDR,
      // NodePorts on the node's own address only, not on its loopback (which would take route_localnet).
      nodePortAddresses: ["primary"],
      metricsBindAddress: "127.0.0.1:10249",
      healthzBindAddress: "127.0.0.1:10256",
      // Zero leaves each as it is: nf_conntrack's table size and timeouts are the host's (the network namespace
      // shares them), which kube-proxy otherwise raises.
      conntrack: {
        maxPerCore: 0,
        min: 0,
        tcpEstablishedTimeout: "0s",
        tcpCloseWaitTimeout: "0s",
        udpTimeout: "0s",
        udpStreamTimeout: "0s",
      },
    },
    null,
    2,
  );
}
