import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, test } from "vitest";
import { importCircles } from "../../hack/import-cycles.ts";

const SCRIPT = join(import.meta.dirname, "..", "..", "hack", "import-cycles.ts");

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), "import-cycles-"));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

describe("import circles", () => {
  test("a circle through a type-only import is found", () => {
    const root = tree({
      "quantum/a.ts": `import type { B } from "./b.ts";\nexport type A = B;`,
      "quantum/b.ts": `import { c } from "./c.ts";\nexport type B = typeof c;`,
      "quantum/c.ts": `export { a } from "./a.ts";\nexport const c = 1;`,
    });
    expect(importCircles(root)).toEqual(["modules import each other: quantum/a.ts ↔ quantum/b.ts ↔ quantum/c.ts"]);
  });

  test("two folders that import each other are a circle even when their modules are not", () => {
    const root = tree({
      "cli/args.ts": `export const parse = 1;`,
      "cli/main.ts": `import { up } from "../controlplane/cli.ts";\nexport const main = up;`,
      "controlplane/cli.ts": `import { parse } from "../cli/args.ts";\nexport const up = parse;`,
    });
    expect(importCircles(root)).toEqual(["folders import each other: cli/ ↔ controlplane/"]);
  });

  test("arrows that point one way, packages and dynamic imports of the tree's leaves pass", () => {
    const root = tree({
      "cli/main.ts": `import "node:fs";\nimport { run } from "../controllers/run.ts";\nawait import("../runtime/log.ts");\nexport const main = run;`,
      "controllers/run.ts": `import { log } from "../runtime/log.ts";\nimport { x } from "qsharp-lang";\nexport const run = [log, x];`,
      "runtime/log.ts": `export const log = 1;`,
    });
    expect(importCircles(root)).toEqual([]);
  });

  test("the command exits 1 and names the circle", () => {
    const root = tree({ "a.ts": `import "./b.ts";`, "b.ts": `import "./a.ts";` });
    let failure: { status: number; stderr: Buffer } | undefined;
    try {
      execFileSync(process.execPath, [SCRIPT, root], { stdio: "pipe" });
    } catch (e) {
      failure = e as { status: number; stderr: Buffer };
    }
    expect(failure?.status).toBe(1);
    expect(failure?.stderr.toString()).toContain("modules import each other: a.ts ↔ b.ts");
  });
});
