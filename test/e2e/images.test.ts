import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { beforeAll, expect, test } from "vitest";
import { run } from "../../src/controlplane/assets.ts";
import { type BuiltImages, buildImages, commandOutput } from "../../src/controlplane/images.ts";
import { imageNodeOptions } from "../../bench/util.ts";

/**
 * The images `npm run image` builds (or finds cached): their configuration and the operator image's contents. How
 * they run is operator.test.ts's part: the real node imports both archives and runs them in pods (the operator as its
 * Deployment, both as Job-mode runners).
 */

const ROOT = resolve(import.meta.dirname, "../..");

let images: BuiltImages;

type ImageConfig = { config: { User?: string; Entrypoint?: string[]; Cmd?: string[]; Env?: string[] } };
const imageConfig = async (archive: string) =>
  JSON.parse(await commandOutput("skopeo", ["inspect", "--config", `docker-archive:${archive}`])) as ImageConfig;

beforeAll(async () => {
  images = await buildImages((line) => process.stderr.write(`${line}\n`));
}, 3_600_000);

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

test("the runner image runs the runner contract's entrypoint as 65532", async () => {
  const { config } = await imageConfig(images.runner.archive);
  expect(config.User).toBe("65532:65532");
  expect(config.Entrypoint).toEqual(["python3", "/opt/runner/runner.py"]);
});
