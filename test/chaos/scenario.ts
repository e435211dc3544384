import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as hold } from "node:timers/promises";
import { expect } from "vitest";
import { installPrerequisites } from "../../src/runtime/install.ts";
import { ControlPlane, type StartOptions } from "../../src/controlplane/control-plane.ts";
import type { NetworkNamespace } from "../../src/controlplane/netns.ts";
import { OperatorProcess } from "../../src/controlplane/operator-process.ts";
import { KubeClient } from "../../src/runtime/client.ts";
import { imageNodeOptions } from "../../bench/util.ts";
import { type Counters, type Effects, Workload, operatorCounters } from "./workload.ts";

/** Where every scenario's operator logs go, kept after the run for failures the figures do not explain. */
export const LOG_DIR = join(tmpdir(), "nextgen-chaos-logs");
/** API writes are counted over this long after the fault ends. */
const AFTER_WINDOW_MS = 60_000;
/** Generous: the machine is shared with other test runs. */
const RECOVERY_TIMEOUT_MS = 600_000;

export interface OperatorLaunch {
  kubeconfig?: string;
  wrapper?: string[];
  args?: string[];
  nodeOptions?: string;
}

export interface ScenarioContext {
  cp: ControlPlane;
  admin: KubeClient;
  workload: Workload;
  operator: OperatorProcess;
  /** Sets off the workload's effects (Workload.trigger); each fault calls it where its effects should straddle it. */
  trigger(): Promise<void>;
  /** Stops the running operator, keeping its counters, and starts another in its place. */
  replaceOperator(launch: OperatorLaunch): Promise<OperatorProcess>;
  /** Holds a fault for its duration: a plain wait, as the fault lasts that long whatever happens meanwhile. */
  hold(ms: number): Promise<void>;
}

export interface Figures {
  scenario: string;
  recoverySeconds: number;
  effects: Effects;
  writesDuringFault: number;
  writesAfterFault: number;
  throttled: number;
  operatorExits: number;
}

export interface Scenario {
  name: string;
  controlPlane?: Pick<StartOptions, "extraServingIPs">;
  /** How the first operator runs (default: the operator's kubeconfig, the image's NODE_OPTIONS). */
  operator?: (cp: ControlPlane) => OperatorLaunch;
  /** Key sets beyond the rotating ones, each to get exactly one key. */
  fleet?: number;
  /** Injects the fault and resolves when it ends (the fault's own recovery, e.g. etcd answering, included). */
  fault: (ctx: ScenarioContext) => Promise<void>;
  /** Undone whatever happens (a network namespace, say). */
  cleanup?: () => Promise<void> | void;
}

/**
 * The operator inside a network namespace, with its own identity, reaching the API server over the veth pair instead
 * of the loopback (the control plane serves on the pair's host address too: extraServingIPs).
 */
export function operatorInNamespace(netns: NetworkNamespace): (cp: ControlPlane) => OperatorLaunch {
  return (cp) => {
    const kubeconfig = join(cp.dir, "operator-netns.kubeconfig");
    const host = new URL(cp.apiserverUrl).host;
    const yaml = readFileSync(cp.operatorKubeconfig, "utf8").replace(
      cp.apiserverUrl,
      `https://${host.replace("127.0.0.1", netns.hostAddress)}`,
    );
    writeFileSync(kubeconfig, yaml, { mode: 0o600 });
    const inside = netns.namespaceAddress;
    return {
      kubeconfig,
      wrapper: netns.wrapper,
      // Served on the namespace's address so that the test reads them from the host (later flags win).
      args: ["--metrics-bind-address", `${inside}:0`, "--health-probe-bind-address", `${inside}:0`],
    };
  };
}

/**
 * Runs one fault against a control plane of its own (etcd, kube-apiserver, controller-manager, scheduler, KWOK),
 * the operator as a real process with its ServiceAccount's identity, and the workload of every kind; measures the
 * time from the fault's end until everything converged, the effects lost or duplicated, and the operator's API
 * writes and 429s; prints the figures and asserts none lost, none duplicated, no operator exit.
 */
export async function runScenario(scenario: Scenario): Promise<Figures> {
  mkdirSync(LOG_DIR, { recursive: true });
  const slug = scenario.name.replace(/[^a-z0-9]+/gi, "-").toLowerCase();
  const cp = await ControlPlane.start({
    log: (l) => process.stderr.write(`[control-plane] ${l}\n`),
    ...scenario.controlPlane,
  });
  const admin = KubeClient.load(cp.adminKubeconfig, "nextgen-chaos-admin");
  const operators: OperatorProcess[] = [];
  let unexpectedExits = 0;
  const start = async (launch: OperatorLaunch) => {
    const op = await OperatorProcess.start({
      kubeconfig: launch.kubeconfig ?? cp.operatorKubeconfig,
      metricsKubeconfig: cp.adminKubeconfig,
      args: ["--log-level", "info", ...(launch.args ?? [])],
      wrapper: launch.wrapper,
      env: { NODE_OPTIONS: launch.nodeOptions ?? imageNodeOptions() },
      logFile: join(LOG_DIR, `${slug}-operator-${operators.length}.log`),
    });
    operators.push(op);
    void op.waitExit().then((code) => {
      if (op.stopRequested) return;
      unexpectedExits++;
      console.error(`operator exited (${code ?? op.child.signalCode}):\n${op.logs.split("\n").slice(-40).join("\n")}`);
    });
    await op.waitReady(120_000);
    return op;
  };
  try {
    await installPrerequisites(admin, process.cwd());
    const workload = new Workload(admin);
    let retired = zeroCounters();
    let triggerCounters = zeroCounters();
    const ctx: ScenarioContext = {
      cp,
      admin,
      workload,
      operator: await start(scenario.operator?.(cp) ?? {}),
      trigger: async () => {
        triggerCounters = await counters();
        await workload.trigger();
      },
      replaceOperator: async (launch) => {
        retired = add(retired, await operatorCounters(ctx.operator));
        await ctx.operator.stop();
        ctx.operator = await start(launch);
        return ctx.operator;
      },
      hold: (ms) => hold(ms),
    };
    const counters = async () => add(retired, await operatorCounters(ctx.operator));
    await workload.create({ fleet: scenario.fleet });

    // Each fault starts a few seconds before rotations fall due, so that it holds up scheduled work too: the
    // schedule's time, not a condition, hence a plain wait.
    await hold(Math.max(0, (await workload.nextRotationInMs()) - 5_000));
    const beforeFault = await counters();
    const faultStarted = Date.now();
    await scenario.fault(ctx);
    const faultEnded = Date.now();
    const atFaultEnd = await counters();
    // What is still pending, each time that changes: where the recovery time goes.
    let lastPending = "";
    await workload.waitConverged(`every resource to converge after ${scenario.name}`, RECOVERY_TIMEOUT_MS, (p) => {
      const now = p.join("; ");
      if (now !== lastPending)
        console.error(`${((Date.now() - faultEnded) / 1000).toFixed(1)} s after the fault: ${now || "converged"}`);
      lastPending = now;
    });
    const recoverySeconds = (Date.now() - faultEnded) / 1000;
    // Writes after the fault are counted over a fixed window, whenever convergence came within it.
    await hold(Math.max(0, faultEnded + AFTER_WINDOW_MS - Date.now()));
    const end = await counters();
    await workload.waitConverged(`every resource to stay converged after ${scenario.name}`, RECOVERY_TIMEOUT_MS);
    const effects = await workload.effects(subtract(await counters(), triggerCounters));
    const figures: Figures = {
      scenario: scenario.name,
      recoverySeconds,
      effects,
      writesDuringFault: atFaultEnd.writes - beforeFault.writes,
      writesAfterFault: end.writes - atFaultEnd.writes,
      throttled: end.throttled - beforeFault.throttled,
      operatorExits: unexpectedExits,
    };
    console.error(
      `chaos figures: ${JSON.stringify({ ...figures, faultSeconds: (faultEnded - faultStarted) / 1000 })}\n${tableRow(figures)}`,
    );
    expect(effects.problems, "effects lost or duplicated").toEqual([]);
    expect(effects.lost).toBe(0);
    expect(effects.duplicated).toBe(0);
    expect(unexpectedExits, "operator exits").toBe(0);
    return figures;
  } finally {
    for (const op of operators) await op.stop();
    await admin.close();
    await cp.stop();
    await scenario.cleanup?.();
  }
}

/** The README's table row for these figures. */
export function tableRow(f: Figures): string {
  const e = f.effects;
  const fleet = e.fleetKeys > 0 ? ` (+ ${e.fleetKeys} fleet keys)` : "";
  const effects = `${e.rotations} rotations${fleet}, ${e.remediationActions} remediation, ${e.quantumStarts} job starts, ${e.replicaRestores} replica restore, ${e.nodesLabelled} Nodes labelled`;
  return `| ${f.scenario} | ${f.recoverySeconds.toFixed(1)} s | ${effects} | ${e.lost} | ${e.duplicated} | ${f.writesDuringFault} | ${f.writesAfterFault} | ${f.throttled} |`;
}

function zeroCounters(): Counters {
  return { quantumStarts: 0, quantumFinished: 0, writes: 0, throttled: 0 };
}

function add(a: Counters, b: Counters): Counters {
  return {
    quantumStarts: a.quantumStarts + b.quantumStarts,
    quantumFinished: a.quantumFinished + b.quantumFinished,
    writes: a.writes + b.writes,
    throttled: a.throttled + b.throttled,
  };
}

function subtract(a: Counters, b: Counters): Counters {
  return {
    quantumStarts: a.quantumStarts - b.quantumStarts,
    quantumFinished: a.quantumFinished - b.quantumFinished,
    writes: a.writes - b.writes,
    throttled: a.throttled - b.throttled,
  };
}
