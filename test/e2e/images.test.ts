import { type ChildProcess, spawn } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { afterAll, beforeAll, expect, test } from "vitest";
import { run } from "../../src/controlplane/assets.ts";
import { type BuiltImages, buildImages, commandOutput } from "../../src/controlplane/images.ts";
import { imageNodeOptions } from "../../bench/util.ts";

/**
 * The images `npm run image` builds (or finds cached), checked as a node would run them: their configuration, the
 * operator image's contents, and each archive imported into a containerd of its own (as `ctr -n k8s.io images import`
 * loads it into a kubelet's) and run there the way its pod runs it: as the image's user, read-only root filesystem.
 */

const ROOT = resolve(import.meta.dirname, "../..");
const BELL = 'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] c; h q[0]; cx q[0], q[1]; c = measure q;';

let images: BuiltImages;
let dir: string;
let containerd: ChildProcess;
let address: string;

const ctr = (...args: string[]) => commandOutput("ctr", ["--address", address, "--namespace", "k8s.io", ...args]);

/** A container of `reference` run to completion in the containerd, as its image configures it, read-only. */
const ctrRun = (reference: string, name: string, options: string[], command: string[] = []) =>
  ctr("run", "--rm", "--read-only", ...options, reference, name, ...command);

type ImageConfig = { config: { User?: string; Entrypoint?: string[]; Cmd?: string[]; Env?: string[] } };
const imageConfig = async (archive: string) =>
  JSON.parse(await commandOutput("skopeo", ["inspect", "--config", `docker-archive:${archive}`])) as ImageConfig;

beforeAll(async () => {
  images = await buildImages((line) => process.stderr.write(`${line}\n`));
  // A containerd with nothing but its own folders and socket (no CRI): what the archives are imported into.
  dir = await mkdtemp(join(tmpdir(), "nextgen-containerd-"));
  address = join(dir, "containerd.sock");
  await writeFile(join(dir, "config.toml"), 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n');
  containerd = spawn(
    "containerd",
    [
      "--config",
      join(dir, "config.toml"),
      "--root",
      join(dir, "root"),
      "--state",
      join(dir, "state"),
      "--address",
      address,
    ],
    { stdio: "ignore" },
  );
  for (
    let i = 0;
    !existsSync(address) ||
    !(await ctr("version").then(
      () => true,
      () => false,
    ));
    i++
  ) {
    if (i > 100 || containerd.exitCode !== null) throw new Error("the test's containerd did not start");
    await delay(100);
  }
  for (const image of Object.values(images)) await ctr("images", "import", image.archive);
}, 3_600_000);

afterAll(async () => {
  if (containerd) {
    const exited = new Promise((res) => containerd.once("exit", res));
    containerd.kill("SIGTERM");
    await exited;
  }
  if (dir) await rm(dir, { recursive: true, force: true });
});

test("the operator image runs node dist/cli/main.js as 65532 with the Dockerfile's environment", async () => {
  const { config } = await imageConfig(images.operator.archive);
  expect(config.User).toBe("65532:65532");
  expect(config.Entrypoint).toEqual(["node", "dist/cli/main.js"]);
  expect(config.Cmd).toEqual(["run"]);
  expect(config.Env).toContain(`NODE_OPTIONS=${imageNodeOptions()}`);
  expect(config.Env).toContain("NODE_ENV=production");
});

test("the operator image holds dist/ and production dependencies only: no dev dependency, no npm cache", async () => {
  const container = await commandOutput("buildah", ["from", "--pull-never", images.operator.reference]);
  try {
    const root = await commandOutput("buildah", ["mount", container]);
    const pkg = JSON.parse(await readFile(join(ROOT, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    for (const dep of Object.keys(pkg.dependencies))
      expect(existsSync(join(root, "app/node_modules", dep)), dep).toBe(true);
    for (const dep of Object.keys(pkg.devDependencies))
      expect(existsSync(join(root, "app/node_modules", dep)), dep).toBe(false);
    expect(existsSync(join(root, "app/dist/cli/main.js"))).toBe(true);
    for (const cache of ["root/.npm", "app/.npm", "home/node/.npm", "tmp/.npm"])
      expect(existsSync(join(root, cache)), cache).toBe(false);
    expect(existsSync(join(root, "app/src"))).toBe(false);
  } finally {
    await run("buildah", ["rm", container], ROOT, process.env, () => {});
  }
});

test("imported into containerd, the operator image answers --help as uid and gid 65532", async () => {
  expect(await ctr("images", "ls", "--quiet")).toContain(images.operator.reference);
  const help = await ctrRun(images.operator.reference, "operator-help", [], ["node", "dist/cli/main.js", "--help"]);
  expect(help).toMatch(/^Usage: nextgen-operator <command>/);
  const ids = await ctrRun(
    images.operator.reference,
    "operator-ids",
    [],
    ["node", "-p", "[process.getuid(), process.getgid()].join(':')"],
  );
  expect(ids.trim()).toBe("65532:65532");
});

test("imported into containerd, the runner image runs a Bell circuit under the runner contract", async () => {
  expect(await ctr("images", "ls", "--quiet")).toContain(images.runner.reference);
  const { config } = await imageConfig(images.runner.archive);
  expect(config.User).toBe("65532:65532");
  expect(config.Entrypoint).toEqual(["python3", "/opt/runner/runner.py"]);
  // The kubelet's termination-message file, writable by the container's user.
  const message = join(dir, "termination-log");
  await writeFile(message, "");
  await chmod(message, 0o666);
  const stdout = await ctrRun(images.runner.reference, "runner-bell", [
    "--env",
    `NEXTGEN_CIRCUIT=${BELL}`,
    "--env",
    "NEXTGEN_SHOTS=1000",
    "--mount",
    `type=bind,src=${message},dst=/dev/termination-log,options=rbind:rw`,
  ]);
  const result = JSON.parse(await readFile(message, "utf8")) as {
    shots: number;
    counts: Record<string, number>;
    device: { type: string };
  };
  expect(JSON.parse(stdout)).toEqual(result);
  expect(result.shots).toBe(1000);
  expect(Object.keys(result.counts).sort()).toEqual(["00", "11"]);
  expect(result.counts["00"]! + result.counts["11"]!).toBe(1000);
  // Both outcomes near half: 1000 fair coin flips land within 400..600 but with probability about 2.7e-10.
  expect(result.counts["00"]).toBeGreaterThan(400);
  expect(result.counts["00"]).toBeLessThan(600);
  expect(result.device.type).toBe("CPU");
});
