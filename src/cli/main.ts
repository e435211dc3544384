#!/usr/bin/env node
import { controlPlaneCommand } from "./control-plane.ts";
import { UsageError } from "./args.ts";
import { demoCommand } from "./demo.ts";
import { imageCommand } from "./image.ts";
import { manifestsCommand } from "./manifests.ts";
import { runCommand } from "./run.ts";
import { runnerCommand } from "./runner.ts";

const help = `Usage: nextgen-operator <command> [flags]

A Kubernetes operator for post-quantum key sets, quantum workload placement, edge sites, self-healing and carbon
budgets (API group nextgen.itechsmart.io/v1alpha1).

Commands:
  run             run the operator's manager (controllers, leader election, metrics, probes)
  manifests       generate config/crd, config/rbac and config/argocd from the sources
  control-plane   up | down | env: a local kube-apiserver, etcd, controller-manager and scheduler
  demo            bring up a local control plane, install, run the operator and watch the samples converge
  runner          run one OpenQASM circuit on the embedded simulator and write its counts (a Job-mode backend's container)
  image           build the operator's and the GPU runner's images with buildah, without Docker, and write archives

Run 'nextgen-operator <command> --help' for a command's flags.`;

const commands: Record<string, (args: string[]) => Promise<number>> = {
  run: runCommand,
  manifests: manifestsCommand,
  "control-plane": controlPlaneCommand,
  demo: demoCommand,
  runner: runnerCommand,
  image: imageCommand,
};

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    console.log(help);
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (!command) throw new UsageError(`unknown command "${name}"; commands: ${Object.keys(commands).join(", ")}`);
  return command(args);
}

// Exit explicitly once the command is done: the manager has drained and released everything it must, and
// nothing left (a keep-alive socket, an idle worker thread) should hold the process past its shutdown.
const exit = (code: number) => process.stdout.write("", () => process.exit(code));

main(process.argv.slice(2)).then(
  (code) => exit(code),
  (e: unknown) => {
    if (e instanceof UsageError) {
      console.error(`error: ${e.message}\nRun 'nextgen-operator --help' for usage.`);
      exit(2);
    } else {
      console.error(e instanceof Error ? (e.stack ?? e.message) : String(e));
      exit(1);
    }
  },
);
