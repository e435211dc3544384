// `npm run lint`'s check of .github/workflows: actionlint (hack/actionlint), built from the Go module proxy on first
// use and cached like the other tools. The workflows cannot run here; this is what checks them before the forge does.
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { ensureTool } from "../src/controlplane/assets.ts";

const actionlint = await ensureTool("actionlint", (line) => process.stderr.write(`${line}\n`));
const result = spawnSync(actionlint, ["-no-color"], { cwd: resolve(import.meta.dirname, ".."), stdio: "inherit" });
process.exit(result.status ?? 1);
