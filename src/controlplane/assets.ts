import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import {
  accessSync,
  chmodSync,
  closeSync,
  constants,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as delay } from "node:timers/promises";

/**
 * The binaries of one control plane. The tests, the demo and the benchmarks run a real Kubernetes: etcd,
 * kube-apiserver, kube-controller-manager and kube-scheduler, built from the Go modules pinned in hack/k8s/<minor>
 * (or taken from KUBEBUILDER_ASSETS, envtest's convention).
 */
export type AssetPaths = {
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager?: string;
  kubeScheduler?: string;
  dir: string;
  /** The Kubernetes version built, e.g. "1.37.2"; undefined for KUBEBUILDER_ASSETS. */
  version?: string;
};

type Tool = {
  /** Its Go module, under hack/. */
  module: string;
  /** The main package, as `go build` names it in that module. */
  pkg: string;
  /** Files of the module the build reads besides go.mod and go.sum. */
  sources?: string[];
  /** A Prometheus project's command, built as its release does (buildRelease). */
  release?: Release;
  /** The variable its release stamps with the version (`-X`): the version go.mod pins of `module`. */
  versionStamp?: { module: string; variable: string };
};

type Release = {
  /** The upstream module: its VERSION file is what the binary reports. */
  module: string;
  /** Folders the release generates and embeds before building, which the module the proxy serves lacks. */
  generated?: string[];
};

/**
 * Test tools that do not depend on the Kubernetes minor: from the Go module in hack/tools, KWOK; from hack/monitoring,
 * Prometheus (and its promtool) and Alertmanager, each in a module of its own (their go.mod says why); from
 * hack/argocd, Argo CD (one binary for every component), the runner of health checks in Argo CD's own code, and the
 * kustomize its repo-server runs; from hack/keda, KEDA's operator. Each is built on its own, so a test needing one never waits for the others.
 */
const TOOLS = {
  kwok: { module: "tools", pkg: "sigs.k8s.io/kwok/cmd/kwok" },
  argocd: { module: "argocd", pkg: "github.com/argoproj/argo-cd/v3/cmd" },
  "argocd-health-check": { module: "argocd", pkg: "./health-check", sources: ["health-check/main.go"] },
  kustomize: { module: "argocd/kustomize", pkg: "sigs.k8s.io/kustomize/kustomize/v5" },
  // The program of the real node's test image (src/controlplane/images.ts).
  "node-probe": { module: "tools", pkg: "./node-probe", sources: ["node-probe/main.go"] },
  prometheus: {
    module: "monitoring/prometheus",
    pkg: "github.com/prometheus/prometheus/cmd/prometheus",
    // Without the builtinassets tag of its release: the web UI that tag embeds is generated, absent from the module.
    release: { module: "github.com/prometheus/prometheus" },
  },
  // promtool checks and unit-tests the operator's rules (config/monitoring).
  promtool: {
    module: "monitoring/prometheus",
    pkg: "github.com/prometheus/prometheus/cmd/promtool",
    release: { module: "github.com/prometheus/prometheus" },
  },
  alertmanager: {
    module: "monitoring/alertmanager",
    pkg: "github.com/prometheus/alertmanager/cmd/alertmanager",
    release: { module: "github.com/prometheus/alertmanager", generated: ["ui/app/dist"] },
  },
  // Lints, renders, installs, tests and upgrades the chart (charts/nextgen-operator), as its users do.
  helm: {
    module: "helm",
    pkg: "helm.sh/helm/v4/cmd/helm",
    // As Helm's Makefile stamps a release: `helm version` and the chart's kubeVersion checks read it.
    versionStamp: { module: "helm.sh/helm/v4", variable: "helm.sh/helm/v4/internal/version.version" },
  },
  // The KEDA operator (hack/keda): owns the HPA of each ScaledObject, as the autoscaler tests need.
  "keda-operator": { module: "keda", pkg: "github.com/kedacore/keda/v2/cmd/operator" },
  // Lints .github/workflows in `npm run lint`.
  actionlint: { module: "actionlint", pkg: "github.com/rhysd/actionlint/cmd/actionlint" },
} satisfies Record<string, Tool>;
export type ToolName = keyof typeof TOOLS;
export const TOOL_NAMES = Object.keys(TOOLS) as ToolName[];

const BUILD_TIMEOUT_MS = 60 * 60_000;
const HACK = resolve(import.meta.dirname, "../../hack");
const K8S_MODULES = join(HACK, "k8s");
const RUNNERS = resolve(import.meta.dirname, "../../runners");
/** The interpreter the GPU runner's environment is made from (3.11 or newer, with venv). */
const PYTHON = process.env.NEXTGEN_PYTHON || "python3";
// Static binaries from exactly what go.sum pins, with no VCS stamp: the same binary from a clone or a tarball.
const GO_FLAGS = "-mod=readonly -buildvcs=false";

export function cacheRoot(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "nextgen-operator");
}

/** The pinned Kubernetes versions (hack/k8s/<minor>/go.mod), newest first: ["1.37.2", "1.35.4", ...]. */
export function pinnedVersions(): string[] {
  let minors;
  try {
    minors = readdirSync(K8S_MODULES, { withFileTypes: true });
  } catch {
    throw new Error(`${K8S_MODULES} not found: the control plane is built from a checkout of this repository`);
  }
  return minors
    .filter((e) => e.isDirectory() && /^1\.\d+$/.test(e.name))
    .map((e) => pinnedVersion(join(K8S_MODULES, e.name)))
    .sort((a, b) => compareVersions(b, a));
}

function pinnedVersion(moduleDir: string): string {
  return requiredVersion(moduleDir, "k8s.io/kubernetes").slice(1);
}

/** The version (e.g. "v1.35.4") of `module` that `moduleDir`'s go.mod requires. */
function requiredVersion(moduleDir: string, module: string): string {
  const line = new RegExp(`^\\s*${module.replaceAll(".", "\\.")} (v\\d+\\.\\d+\\.\\d+\\S*)`, "m");
  const match = line.exec(readFileSync(join(moduleDir, "go.mod"), "utf8"));
  if (!match) throw new Error(`${moduleDir}/go.mod does not require ${module}`);
  return match[1]!;
}

function compareVersions(a: string, b: string): number {
  const [x, y] = [a, b].map((v) => v.split(".").map(Number));
  for (let i = 0; i < 3; i++) if (x![i] !== y![i]) return x![i]! - y![i]!;
  return 0;
}

/**
 * The version to run: `requested` (a minor such as "1.35" or an exact pinned "1.35.4"), else NEXTGEN_K8S_VERSION,
 * else the newest pinned.
 */
export function selectVersion(requested = process.env.NEXTGEN_K8S_VERSION): string {
  const pinned = pinnedVersions();
  if (!requested) return pinned[0]!;
  const wanted = requested.replace(/^v/, "");
  const found = pinned.find((v) => v === wanted || v.startsWith(`${wanted}.`));
  if (!found) {
    throw new Error(
      `Kubernetes ${requested} is not pinned here; pinned: ${pinned.join(", ")} (add one with hack/k8s/pin.sh)`,
    );
  }
  return found;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function pathsIn(dir: string, version?: string): AssetPaths {
  const [cm, sched] = [join(dir, "kube-controller-manager"), join(dir, "kube-scheduler")];
  return {
    dir,
    etcd: join(dir, "etcd"),
    kubeApiserver: join(dir, "kube-apiserver"),
    ...(executable(cm) && { kubeControllerManager: cm }),
    ...(executable(sched) && { kubeScheduler: sched }),
    ...(version && { version }),
  };
}

/** The control-plane binaries: from KUBEBUILDER_ASSETS when set, else built once per pinned version and cached. */
export async function ensureAssets(log: (line: string) => void, requestedVersion?: string): Promise<AssetPaths> {
  const fromEnv = process.env.KUBEBUILDER_ASSETS;
  if (fromEnv) {
    const missing = ["etcd", "kube-apiserver"].filter((b) => !executable(join(fromEnv, b)));
    if (missing.length) throw new Error(`KUBEBUILDER_ASSETS=${fromEnv} lacks executable ${missing.join(" and ")}`);
    const ignored = requestedVersion ?? process.env.NEXTGEN_K8S_VERSION;
    if (ignored) log(`KUBEBUILDER_ASSETS is set: running its binaries, not Kubernetes ${ignored}`);
    return pathsIn(fromEnv);
  }
  const version = selectVersion(requestedVersion);
  const dir = await buildKubernetes(
    "control plane",
    "k8s",
    version,
    [
      "k8s.io/kubernetes/cmd/kube-apiserver",
      "k8s.io/kubernetes/cmd/kube-controller-manager",
      "k8s.io/kubernetes/cmd/kube-scheduler",
      "./etcd",
    ],
    log,
  );
  return pathsIn(dir, version);
}

/** The binaries of a real node (src/controlplane/real-node.ts), and the kubectl that installs onto it as users do. */
export type NodeAssetPaths = { kubelet: string; kubeProxy: string; kubectl: string; version: string };

/**
 * The kubelet, kube-proxy and kubectl of the pinned `version` (exact, as ensureAssets answered), built once and
 * cached beside the control plane's: a separate build, so a run with KWOK alone never compiles them.
 */
export async function ensureNodeAssets(log: (line: string) => void, version: string): Promise<NodeAssetPaths> {
  const dir = await buildKubernetes(
    "node",
    "k8s-node",
    version,
    ["k8s.io/kubernetes/cmd/kubelet", "k8s.io/kubernetes/cmd/kube-proxy", "k8s.io/kubernetes/cmd/kubectl"],
    log,
  );
  return {
    kubelet: join(dir, "kubelet"),
    kubeProxy: join(dir, "kube-proxy"),
    kubectl: join(dir, "kubectl"),
    version,
  };
}

/** The hack/k8s/<minor> module pinning `version`. */
export function kubernetesModule(version: string): string {
  return join(K8S_MODULES, version.split(".").slice(0, 2).join("."));
}

/**
 * Kubernetes commands (`packages` of the pinned module) stamped with `version` as its release stamps them, cached in
 * `<cache>/<folder>/v<version>-<key>`.
 */
function buildKubernetes(
  what: string,
  folder: string,
  version: string,
  packages: string[],
  log: (line: string) => void,
): Promise<string> {
  const moduleDir = kubernetesModule(version);
  const [major, minor] = version.split(".");
  // What `kubectl version` and /version report, as Kubernetes' own build stamps it (hack/lib/version.sh).
  const stamp = (pkg: string) =>
    [`gitVersion=v${version}`, `gitMajor=${major}`, `gitMinor=${minor}`, "gitTreeState=clean"].map(
      (kv) => `-X ${pkg}.${kv}`,
    );
  const ldflags = [...stamp("k8s.io/component-base/version"), ...stamp("k8s.io/client-go/pkg/version")];
  const binaries = packages.map((p) => p.split("/").pop()!);
  const sources = packages.filter((p) => p.startsWith("./")).map((p) => `${p.slice(2)}/main.go`);
  return buildCached(
    `Kubernetes ${version} ${what}`,
    join(cacheRoot(), folder, `v${version}-${buildKey(moduleDir, sources, [...packages, ...ldflags])}`),
    binaries,
    (out) => goBuild(moduleDir, `${out}/`, packages, ldflags, log),
    log,
  );
}

/** The path of a tool from hack/tools, hack/monitoring, hack/helm or hack/actionlint, built once and cached. */
export async function ensureTool(name: ToolName, log: (line: string) => void): Promise<string> {
  const tool: Tool = TOOLS[name];
  const moduleDir = join(HACK, tool.module);
  const ldflags = tool.versionStamp
    ? [`-X ${tool.versionStamp.variable}=${requiredVersion(moduleDir, tool.versionStamp.module)}`]
    : [];
  const recipe = tool.release ? [tool.pkg, JSON.stringify(tool.release)] : [tool.pkg, ...ldflags];
  const dir = await buildCached(
    name,
    join(cacheRoot(), "tools", `${name}-${buildKey(moduleDir, tool.sources ?? [], recipe)}`),
    [name],
    (out) =>
      tool.release
        ? buildRelease(moduleDir, tool.pkg, tool.release, join(out, name), log)
        : goBuild(moduleDir, join(out, name), [tool.pkg], ldflags, log),
    log,
  );
  return join(dir, name);
}

/**
 * The Python of a virtual environment holding the GPU runner's dependencies, hash-checked, built once per
 * requirements file and cached: requirements.txt (Aer on the CPU) for its tests and CPU benchmark,
 * requirements-gpu.txt (Aer's CUDA build) for the GPU benchmark on a GPU node.
 */
export async function ensureGpuRunnerPython(
  log: (line: string) => void,
  requirementsFile: "requirements.txt" | "requirements-gpu.txt" = "requirements.txt",
): Promise<string> {
  const requirements = join(RUNNERS, "gpu", requirementsFile);
  const key = createHash("sha256").update(readFileSync(requirements)).digest("hex").slice(0, 12);
  const dir = await buildCached(
    `the GPU runner's Python environment (${requirementsFile})`,
    join(cacheRoot(), "tools", `gpu-runner-${key}`),
    ["bin/python"],
    async (out) => {
      await run(PYTHON, ["-m", "venv", out], RUNNERS, process.env, () => {});
      // A venv's python finds its packages from where it is, so the folder may be renamed from .partial after.
      await run(
        join(out, "bin", "python"),
        ["-m", "pip", "install", "--quiet", "--no-deps", "--require-hashes", "-r", requirements],
        RUNNERS,
        process.env,
        () => {},
      );
    },
    log,
  );
  return join(dir, "bin", "python");
}

/**
 * `go build` of a Prometheus project's command from its module pinned in `moduleDir`, stamped with the version its
 * release (promu) stamps. The folders the release generates and embeds (web UIs) are missing from the module the
 * proxy serves, and go build may neither change nor overlay the module cache: such a command is built in a copy of
 * its module holding a stand-in in each, with the module's own go.mod and go.sum, as its release is.
 */
async function buildRelease(
  moduleDir: string,
  pkg: string,
  release: Release,
  out: string,
  log: (line: string) => void,
): Promise<void> {
  const source = await moduleSource(moduleDir, release.module);
  const ldflags = [
    `-X github.com/prometheus/common/version.Version=${readFileSync(join(source, "VERSION"), "utf8").trim()}`,
  ];
  if (!release.generated) return goBuild(moduleDir, out, [pkg], ldflags, log);
  const copy = mkdtempSync(join(tmpdir(), "nextgen-go-module-"));
  try {
    cpSync(source, copy, { recursive: true });
    // The module cache is read-only, and so is the copy: its folders must take the stand-ins and be removable after.
    for (const entry of readdirSync(copy, { recursive: true, withFileTypes: true })) {
      if (entry.isDirectory()) chmodSync(join(entry.parentPath, entry.name), 0o755);
    }
    for (const dir of release.generated) {
      mkdirSync(join(copy, dir), { recursive: true });
      writeFileSync(
        join(copy, dir, "README"),
        `Not built: ${release.module}'s module lacks what its release generates here.\n`,
      );
    }
    await goBuild(copy, out, [pkg], ldflags, log, goEnv(moduleDir));
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}

/** The folder of `module`, as `moduleDir`'s go.sum pins it, in the module cache; downloaded if need be. */
export async function moduleSource(moduleDir: string, module: string): Promise<string> {
  const output: string[] = [];
  await run("go", ["mod", "download", "-json", module], moduleDir, goEnv(moduleDir), (line) => output.push(line));
  const { Dir } = JSON.parse(output.join("\n")) as { Dir: string };
  return Dir;
}

/** A cache key that changes whenever anything the build reads or is told changes: module, sources, packages, flags. */
function buildKey(moduleDir: string, sources: string[], recipe: string[]): string {
  const hash = createHash("sha256");
  for (const file of ["go.mod", "go.sum", ...sources]) hash.update(readFileSync(join(moduleDir, file)));
  hash.update(JSON.stringify([recipe, GO_FLAGS]));
  return hash.digest("hex").slice(0, 12);
}

/**
 * Runs `build` into `<dir>.partial` and renames it to `dir` when every output is there; quiet when `dir` is complete.
 */
async function buildCached(
  what: string,
  dir: string,
  outputs: string[],
  build: (out: string) => Promise<void>,
  log: (line: string) => void,
): Promise<string> {
  // The rename makes a folder complete at once: what it holds was all written.
  const complete = () => outputs.every((o) => existsSync(join(dir, o)));
  if (complete()) return dir;
  mkdirSync(resolve(dir, ".."), { recursive: true });
  await withLock(`${dir}.lock`, `building ${what} into ${dir}`, log, async () => {
    // Another caller may have finished the build while we waited for the lock.
    if (complete()) return;
    const partial = `${dir}.partial`;
    rmSync(partial, { recursive: true, force: true });
    mkdirSync(partial, { recursive: true });
    const started = Date.now();
    log(`building ${what} into ${dir} (first run only)`);
    await build(partial);
    rmSync(dir, { recursive: true, force: true });
    renameSync(partial, dir);
    log(`built ${what} in ${Math.round((Date.now() - started) / 1000)} s`);
  });
  return dir;
}

/**
 * Runs `fn` holding the lock file `lock` (created with this process's PID; taken over when its holder is dead), so
 * that concurrent callers (test projects, a demo) do not build the same thing twice. `doing` is logged while waiting.
 */
export async function withLock<T>(
  lock: string,
  doing: string,
  log: (line: string) => void,
  fn: () => Promise<T>,
): Promise<T> {
  const deadline = Date.now() + BUILD_TIMEOUT_MS;
  let waiting = false;
  for (;;) {
    try {
      const fd = openSync(lock, "wx");
      writeSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    if (!holderAlive(lock)) {
      rmSync(lock, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for another process ${doing} (lock ${lock})`);
    if (!waiting) log(`waiting for another process ${doing}`);
    waiting = true;
    await delay(1000);
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

function holderAlive(lock: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(lock, "utf8"));
  } catch {
    return true; // the holder is between creating and writing the lock file, or just removed it
  }
  if (!pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * `go build` of `packages` in `moduleDir` into `output` (a file, or a folder ending in "/" for several packages),
 * logging progress: modules fetched, packages compiled.
 */
async function goBuild(
  moduleDir: string,
  output: string,
  packages: string[],
  ldflags: string[],
  log: (line: string) => void,
  env = goEnv(moduleDir),
): Promise<void> {
  log(`downloading the Go modules ${moduleDir}/go.sum pins`);
  await run("go", ["mod", "download"], moduleDir, env, () => {});
  let compiled = 0;
  const every = 200;
  await run(
    "go",
    ["build", "-v", "-trimpath", `-ldflags=-s -w ${ldflags.join(" ")}`, "-o", output, ...packages],
    moduleDir,
    env,
    // -v names each package as it is compiled: a count is progress enough on a build of a few thousand.
    () => {
      if (++compiled % every === 0) log(`compiled ${compiled} packages`);
    },
  );
}

/**
 * The environment of the go command in one of our modules (under hack/). A module whose code needs a newer Go than
 * the one installed names it in a `toolchain` line (hack/argocd), or in its `go` line when that is the same version
 * (go mod tidy then drops the toolchain line: hack/keda); the go command fetches it from the module proxy. `auto`
 * takes whichever go.mod names when it is newer than the installed Go, and the installed Go otherwise.
 */
function goEnv(moduleDir: string): NodeJS.ProcessEnv {
  const toolchain = /^toolchain (go\S+)$/m.exec(readFileSync(join(moduleDir, "go.mod"), "utf8"))?.[1];
  return { ...process.env, CGO_ENABLED: "0", GOFLAGS: GO_FLAGS, GOTOOLCHAIN: toolchain ?? "auto" };
}

const NOT_FOUND: Record<string, string> = {
  go:
    "the control plane, KWOK and the test tools are built with Go 1.26 or newer on PATH " +
    "(KUBEBUILDER_ASSETS, a folder holding etcd and kube-apiserver, replaces only the control plane's build)",
  [PYTHON]:
    "the GPU runner's tests need Python 3.11 or newer with venv (Debian: python3-venv); NEXTGEN_PYTHON names another",
};

/** Runs a command to completion in cwd, each output line to onLine; fails with the output's tail. */
export async function run(
  cmd: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
  onLine: (line: string) => void,
): Promise<void> {
  const child = spawn(cmd, args, { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  const tail: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on("line", (line) => {
      tail.push(line);
      if (tail.length > 30) tail.shift();
      onLine(line);
    });
  }
  const code = await new Promise<number | null>((res, rej) =>
    child
      .on("error", (err: NodeJS.ErrnoException) =>
        rej(err.code === "ENOENT" ? new Error(`${cmd} not found: ${NOT_FOUND[cmd] ?? "it must be on PATH"}`) : err),
      )
      .on("close", res),
  );
  if (code !== 0) {
    throw new Error(
      `${cmd} ${args.slice(0, 2).join(" ")} in ${cwd} failed (exit ${code}); last output:\n${tail.join("\n")}`,
    );
  }
}
