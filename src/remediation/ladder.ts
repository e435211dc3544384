/**
 * The decisions of a remediation policy, as pure functions of what it knows: which brake (if any) holds an action
 * back, and where an incident's escalation ladder stands. The controller gathers the facts and carries out the
 * answer.
 */

export type Brake =
  | "Paused"
  | "MaxConcurrent"
  | "Cooldown"
  | "MaxActionsPerHour"
  | "MinAvailable"
  | "RolloutInProgress"
  | "NodeActionsNotAllowed"
  | "MaxUnschedulableNodes"
  | "NodeStorm";

export interface Brakes {
  maxConcurrent: number;
  cooldownMs: number;
  maxActionsPerHour: number;
  minAvailable: string | number;
}

export interface BrakeFacts {
  /** Pods or objects acted on and not yet verified, across the policy. */
  inFlight: number;
  /** Times of the actions taken in the last hour, across the policy. */
  actionTimes: number[];
  /** The last action on this workload. */
  lastActionOnTarget?: number;
  available: number;
  desired: number;
  /** Available pods the action would take away (restartPod of a Ready pod: 1; scale-up: 0). */
  removesAvailable: number;
}

export interface Hold {
  brake: Brake;
  message: string;
}

/** minAvailable as a count of pods: an integer, or a percentage of desired replicas rounded up (as PDBs do). */
export function minAvailableCount(minAvailable: string | number, desired: number): number {
  if (typeof minAvailable === "number") return minAvailable;
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(minAvailable);
  if (pct) return Math.ceil((Number(pct[1]) / 100) * desired);
  const n = Number(minAvailable);
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`minAvailable "${minAvailable}" is neither a count nor a percentage`);
  return n;
}

/** The brake that holds an action back, checked in the order a human would look; undefined: go. */
export function checkBrakes(b: Brakes, f: BrakeFacts, now: number): Hold | undefined {
  if (f.inFlight >= b.maxConcurrent)
    return { brake: "MaxConcurrent", message: `${f.inFlight} actions in flight, the most allowed (maxConcurrent).` };
  const lastHour = f.actionTimes.filter((t) => t > now - 3_600_000);
  if (lastHour.length >= b.maxActionsPerHour) {
    const oldest = Math.min(...lastHour);
    return {
      brake: "MaxActionsPerHour",
      message: `${lastHour.length} actions in the last hour (maxActionsPerHour); the next is possible in ${Math.ceil((oldest + 3_600_000 - now) / 1000)}s.`,
    };
  }
  if (f.lastActionOnTarget !== undefined && now - f.lastActionOnTarget < b.cooldownMs)
    return {
      brake: "Cooldown",
      message: `the last action on this workload was ${Math.round((now - f.lastActionOnTarget) / 1000)}s ago; the cooldown is ${b.cooldownMs / 1000}s.`,
    };
  const min = minAvailableCount(b.minAvailable, f.desired);
  if (f.removesAvailable > 0 && f.available - f.removesAvailable < min)
    return {
      brake: "MinAvailable",
      message: `${f.available} of ${f.desired} pods available; acting would leave ${f.available - f.removesAvailable}, below minAvailable ${min}.`,
    };
  return undefined;
}

/** How many more pods an action may take on without passing maxConcurrent. */
export function concurrencyLeft(b: Brakes, inFlight: number): number {
  return Math.max(0, b.maxConcurrent - inFlight);
}

/**
 * The pods a pod-level action takes on now: those not available anyway first, then available ones while
 * minAvailable allows (spareAvailable: available pods above it), at most `left` in all (maxConcurrent). When the
 * brakes allow none, answers the first candidate, so that checkBrakes names the brake that holds it.
 */
export function choosePods<P>(candidates: P[], ready: (p: P) => boolean, left: number, spareAvailable: number): P[] {
  const unready = candidates.filter((p) => !ready(p));
  const readyOnes = candidates.filter(ready).slice(0, Math.max(0, spareAvailable));
  const chosen = [...unready, ...readyOnes].slice(0, left);
  return chosen.length ? chosen : candidates.slice(0, 1);
}

export interface IncidentFacts {
  /** The trigger's state for the incident's workload now. */
  state: "Firing" | "Clear" | "Unknown";
  step: number;
  steps: number;
  /** When the current step first acted, if it has. */
  stepActedAt?: number;
  stepTimeoutMs: number;
}

/**
 * Where an incident goes next. An action is verified over its step's timeout: the incident resolves when the
 * trigger is clear at the end of it (a crash loop that stops for a minute after a restart and comes back has not
 * been fixed); if the trigger still fires then, the next step takes over.
 *
 * resolve: clear, and nothing acted or the step's timeout passed. wait: data is missing (never act on it), or
 * clear while the step is being verified. act: the step may (still) act. escalate: the step acted and the trigger
 * still fires after its timeout. exhausted: that happened on the last step.
 */
export type IncidentDecision = "resolve" | "wait" | "act" | "escalate" | "exhausted";

export function decideIncident(f: IncidentFacts, now: number): IncidentDecision {
  if (f.state === "Unknown") return "wait";
  const verified = f.stepActedAt === undefined || now - f.stepActedAt >= f.stepTimeoutMs;
  if (f.state === "Clear") return verified ? "resolve" : "wait";
  if (f.step >= f.steps) return "exhausted";
  if (f.stepActedAt === undefined || !verified) return "act";
  return f.step + 1 >= f.steps ? "exhausted" : "escalate";
}

/**
 * Where an incident that opens now starts, given how the last one of its workload and trigger ended: a recurrence
 * within the window resumes at the step after the one in force when it resolved (that step's fix did not last, so
 * starting over would repeat what already failed); otherwise at the first step. A step past the last means the
 * ladder has nothing left: the incident is Exhausted at once, for a human.
 */
export function startingStep(
  last: { step: number; resolvedAt: number; recurrences?: number } | undefined,
  now: number,
  windowMs: number,
): { step: number; recurrences: number } {
  if (!last || now - last.resolvedAt > windowMs) return { step: 0, recurrences: 0 };
  return { step: last.step + 1, recurrences: (last.recurrences ?? 0) + 1 };
}
