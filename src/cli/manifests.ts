import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { CHART_DIR } from "../manifests/chart.ts";
import { generateManifests } from "../manifests/generate.ts";
import { parse } from "./args.ts";

export const manifestsHelp = `Usage: nextgen-operator manifests [--check] [--dir DIR]

Generates config/crd, config/rbac, config/monitoring and config/argocd from the API definitions in src/crds and the
RBAC each controller declares; the Helm chart (charts/nextgen-operator) from those and config/manager; and the API
reference (docs/api.md). --check writes nothing and exits 1 when the files on disk differ from what would be
generated (a file in the chart that is no longer generated counts).`;

export async function manifestsCommand(args: string[]): Promise<number> {
  const { values } = parse("manifests", args, { check: { type: "boolean" }, dir: { type: "string" } });
  if (values.help) return (console.log(manifestsHelp), 0);
  const root = values.dir ?? process.cwd();
  const stale: string[] = [];
  const generated = generateManifests();
  // The chart folder is wholly generated: what the generator no longer writes goes.
  const chartFiles = await readdir(join(root, CHART_DIR), { recursive: true, withFileTypes: true }).catch(() => []);
  for (const entry of chartFiles) {
    const path = relative(root, join(entry.parentPath, entry.name));
    if (!entry.isFile() || generated.has(path)) continue;
    stale.push(path);
    if (!values.check) await rm(join(root, path));
  }
  for (const [path, content] of generated) {
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
  console.log(stale.length ? `updated ${stale.join(", ")}` : "manifests up to date");
  return 0;
}
