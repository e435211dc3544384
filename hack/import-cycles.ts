/**
 * Import circles in a source tree: `node hack/import-cycles.ts src` prints each circle and exits 1 when there is one.
 * `npm run lint` runs it so that a circle cannot come back.
 *
 * Two levels are checked. Modules: no two modules import each other, directly or round about. Folders: no two of the
 * tree's top folders do either (cli/ → controllers/ → runtime/ and the domain folders; arrows point one way), so a
 * helper that two folders share lives in a folder below both instead of in one of them.
 *
 * Type-only imports count: a circle of types still ties two modules together (and says a shared type lives in the
 * wrong one). Imports are read by TypeScript's own pre-processor (static, re-export and dynamic imports alike);
 * only relative specifiers are followed, so packages and node: built-ins are leaves.
 */
import { readFileSync, readdirSync } from "node:fs";
import { dirname, relative, resolve, sep } from "node:path";
import ts from "typescript";

type Graph = Map<string, Set<string>>;

/** Module → the modules of the tree it imports, as paths relative to root. */
export function importGraph(root: string): Graph {
  const files = readdirSync(root, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && /\.m?ts$/.test(e.name) && !e.name.endsWith(".d.ts"))
    .map((e) => relative(root, resolve(e.parentPath, e.name)));
  const modules = new Set(files);
  const graph: Graph = new Map();
  for (const file of files) {
    const { importedFiles } = ts.preProcessFile(readFileSync(resolve(root, file), "utf8"), true, true);
    const targets = importedFiles
      .map((f) => f.fileName)
      .filter((name) => name.startsWith("./") || name.startsWith("../"))
      .map((name) => relative(root, resolve(root, dirname(file), name)))
      .filter((target) => modules.has(target));
    graph.set(file, new Set(targets));
  }
  return graph;
}

/** The same graph between top folders (a file directly under root is its own node); imports inside one are dropped. */
export function folderGraph(modules: Graph): Graph {
  const top = (path: string) => path.split(sep)[0]!;
  const graph: Graph = new Map();
  for (const [from, targets] of modules) {
    const edges = graph.get(top(from)) ?? new Set<string>();
    for (const to of targets) if (top(to) !== top(from)) edges.add(top(to));
    graph.set(top(from), edges);
  }
  return graph;
}

/**
 * Every group of nodes that reach each other (Tarjan's strongly connected components of more than one node, or one
 * that imports itself), each sorted.
 */
export function circles(graph: Graph): string[][] {
  const index = new Map<string, number>();
  const lowLink = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string) => {
    index.set(v, index.size);
    lowLink.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        lowLink.set(v, Math.min(lowLink.get(v)!, lowLink.get(w)!));
      } else if (onStack.has(w)) lowLink.set(v, Math.min(lowLink.get(v)!, index.get(w)!));
    }
    if (lowLink.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || graph.get(v)?.has(v)) found.push(component.sort());
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

/** Lines describing every module and folder circle under root; empty when there is none. */
export function importCircles(root: string): string[] {
  const modules = importGraph(root);
  return [
    ...circles(modules).map((c) => `modules import each other: ${c.join(" ↔ ")}`),
    ...circles(folderGraph(modules)).map((c) => `folders import each other: ${c.map((f) => `${f}/`).join(" ↔ ")}`),
  ];
}

if (import.meta.main) {
  const root = process.argv[2] ?? "src";
  const found = importCircles(resolve(root));
  for (const line of found) console.error(`${root}: ${line}`);
  process.exitCode = found.length > 0 ? 1 : 0;
}
