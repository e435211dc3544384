import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildCached, cacheRoot, ensureTool, kubernetesModule, moduleSource } from "./assets.ts";

/** An OCI image archive made here, which the real node's containerd imports: nothing is ever pulled. */
export type LocalImage = { ref: string; archive: string };

const REGISTRY = "localhost/nextgen";

/**
 * The pod sandbox ("pause") image of the pinned `version`: Kubernetes' own pause.c, compiled static as its Makefile
 * does, alone in a scratch image tagged with the Makefile's TAG.
 */
export async function ensurePauseImage(log: (line: string) => void, version: string): Promise<LocalImage> {
  const source = join(await moduleSource(kubernetesModule(version), "k8s.io/kubernetes"), "build", "pause");
  const makefile = readFileSync(join(source, "Makefile"), "utf8");
  const tag = /^TAG \?= (\S+)$/m.exec(makefile)?.[1];
  if (!tag) throw new Error(`no TAG in ${source}/Makefile`);
  const pauseC = readFileSync(join(source, "linux", "pause.c"));
  const ref = `${REGISTRY}/pause:${tag}`;
  const archive = await buildImage(ref, pauseC, log, (rootfs) => {
    execFileSync(
      "gcc",
      [
        "-Os",
        "-Wall",
        "-Werror",
        "-static",
        `-DVERSION=v${tag}-k8s${version}`,
        "-o",
        join(rootfs, "pause"),
        "-x",
        "c",
        "-",
      ],
      { input: pauseC, stdio: ["pipe", "pipe", "pipe"] },
    );
    return ["/pause"];
  });
  return { ref, archive };
}

/** The real node's test image: node-probe (hack/tools/node-probe) alone in a scratch image, as its entrypoint. */
export async function ensureProbeImage(log: (line: string) => void): Promise<LocalImage> {
  const probe = await ensureTool("node-probe", log);
  const binary = readFileSync(probe);
  const ref = `${REGISTRY}/node-probe:${createHash("sha256").update(binary).digest("hex").slice(0, 12)}`;
  const archive = await buildImage(ref, binary, log, (rootfs) => {
    copyFileSync(probe, join(rootfs, "node-probe"));
    return ["/node-probe"];
  });
  return { ref, archive };
}

/**
 * An OCI image archive (an image layout in a tar, as `ctr images import` reads it) of one layer, the files `fill`
 * puts in an empty root and whose entrypoint it answers; cached by `ref` and `input`, what the files are made from.
 */
async function buildImage(
  ref: string,
  input: Buffer,
  log: (line: string) => void,
  fill: (rootfs: string) => string[],
): Promise<string> {
  const key = createHash("sha256").update(ref).update(input).digest("hex").slice(0, 12);
  const name = ref.slice(REGISTRY.length + 1).replace(":", "-");
  const dir = await buildCached(
    `image ${ref}`,
    join(cacheRoot(), "images", `${name}-${key}`),
    ["image.tar"],
    async (out) => {
      const work = mkdtempSync(join(tmpdir(), "nextgen-image-"));
      try {
        const rootfs = join(work, "rootfs");
        mkdirSync(rootfs);
        const entrypoint = fill(rootfs);
        writeFileSync(join(out, "image.tar"), ociArchive(ref, rootfs, entrypoint, join(work, "layout")));
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    },
    log,
  );
  return join(dir, "image.tar");
}

function ociArchive(ref: string, rootfs: string, entrypoint: string[], layout: string): Buffer {
  const blobs = join(layout, "blobs", "sha256");
  mkdirSync(blobs, { recursive: true });
  const blob = (content: Buffer | string, mediaType: string) => {
    const data = Buffer.from(content);
    const digest = createHash("sha256").update(data).digest("hex");
    writeFileSync(join(blobs, digest), data);
    return { mediaType, digest: `sha256:${digest}`, size: data.length };
  };
  // Reproducible: the same files make the same layer, whatever the clock or the user building it.
  const tar = (cwd: string) =>
    execFileSync("tar", ["--create", "--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "."], {
      cwd,
      maxBuffer: 1 << 30,
    });
  const layer = tar(rootfs);
  const config = blob(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      config: { Entrypoint: entrypoint, User: "65535:65535" },
      rootfs: { type: "layers", diff_ids: [`sha256:${createHash("sha256").update(layer).digest("hex")}`] },
    }),
    "application/vnd.oci.image.config.v1+json",
  );
  const manifest = blob(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config,
      layers: [blob(layer, "application/vnd.oci.image.layer.v1.tar")],
    }),
    "application/vnd.oci.image.manifest.v1+json",
  );
  writeFileSync(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(
    join(layout, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          ...manifest,
          platform: { architecture: "amd64", os: "linux" },
          // containerd names the imported image after the first; the second is the OCI layout's own (the tag).
          annotations: {
            "io.containerd.image.name": ref,
            "org.opencontainers.image.ref.name": ref.slice(ref.lastIndexOf(":") + 1),
          },
        },
      ],
    }),
  );
  return tar(layout);
}
