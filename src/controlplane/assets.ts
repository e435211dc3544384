import { spawn } from "node:child_process";
import { accessSync, constants, mkdirSync, openSync, closeSync, readFileSync, rmSync, writeSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as delay } from "node:timers/promises";

export type AssetPaths = {
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager?: string;
  kubeScheduler?: string;
  dir: string;
};

const BUILD_TIMEOUT_MS = 60 * 60_000;

export function cacheRoot(): string {
  return join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "nextgen-operator");
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function pathsIn(dir: string): AssetPaths {
  const [cm, sched] = [join(dir, "kube-controller-manager"), join(dir, "kube-scheduler")];
  return {
    dir,
    etcd: join(dir, "etcd"),
    kubeApiserver: join(dir, "kube-apiserver"),
    ...(executable(cm) && { kubeControllerManager: cm }),
    ...(executable(sched) && { kubeScheduler: sched }),
  };
}

export async function ensureAssets(log: (line: string) => void): Promise<AssetPaths> {
  const fromEnv = process.env.KUBEBUILDER_ASSETS;
  if (fromEnv) {
    const missing = ["etcd", "kube-apiserver"].filter((b) => !executable(join(fromEnv, b)));
    if (missing.length) throw new Error(`KUBEBUILDER_ASSETS=${fromEnv} lacks executable ${missing.join(" and ")}`);
    return pathsIn(fromEnv);
  }
  const dir = join(cacheRoot(), "k8s-1.20.2");
  const complete = () =>
    ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"].every((b) => executable(join(dir, b)));
  if (complete()) return pathsIn(dir);

  mkdirSync(cacheRoot(), { recursive: true });
  const lock = `${dir}.lock`;
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
    if (Date.now() > deadline) throw new Error(`timed out waiting for another build of ${dir} (lock ${lock})`);
    if (!waiting) log(`waiting for another process building ${dir} (lock ${lock})`);
    waiting = true;
    await delay(1000);
  }
  try {
    // Another caller may have finished the build while we waited for the lock.
    if (!complete()) await runBuild(dir, log);
  } finally {
    rmSync(lock, { force: true });
  }
  return pathsIn(dir);
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

async function runBuild(dir: string, log: (line: string) => void): Promise<void> {
  const script = resolve(import.meta.dirname, "../../scripts/build-k8s-assets.sh");
  log(`building control-plane binaries into ${dir} with ${script} (first run only; takes several minutes)`);
  const child = spawn("bash", [script, dir], { stdio: ["ignore", "pipe", "pipe"] });
  const tail: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on("line", (line) => {
      tail.push(line);
      if (tail.length > 30) tail.shift();
      log(line);
    });
  }
  const code = await new Promise<number | null>((res, rej) => child.on("error", rej).on("close", res));
  if (code !== 0) {
    throw new Error(
      `${script} failed (exit ${code}); set KUBEBUILDER_ASSETS to a folder with etcd and kube-apiserver to skip the build. Last output:\n${tail.join("\n")}`,
    );
  }
}
