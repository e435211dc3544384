import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { generateManifests } from "../manifests/generate.ts";
import { parse } from "./args.ts";

export const manifestsHelp = `Usage: nextgen-operator manifests [--check] [--dir DIR]

Generates config/crd, config/rbac and config/argocd from the API definitions in src/crds and the RBAC each
controller declares. --check writes nothing and exits 1 when the files on disk differ from what would be generated.`;

export async function manifestsCommand(args: string[]): Promise<number> {
  const { values } = parse("manifests", args, { check: { type: "boolean" }, dir: { type: "string" } });
  if (values.help) return (console.log(manifestsHelp), 0);
  const root = values.dir ?? process.cwd();
  const stale: string[] = [];
  for (const [path, content] of generateManifests()) {
    const file = join(root, path);
    const current = await readFile(file, "utf8").catch(() => undefined);
    if (current === content) continue;
    stale.push(path);
    if (!values.check) {
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, content);
    }
  }
  if (values.check && stale.length) {
    console.error(`stale generated manifests (run npm run manifests): ${stale.join(", ")}`);
    return 1;
  }
  console.log(stale.length ? `wrote ${stale.join(", ")}` : "manifests up to date");
  return 0;
}
