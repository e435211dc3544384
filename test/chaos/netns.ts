import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";

/**
 * A network namespace joined to this machine by a veth pair: the host end holds HOST_ADDRESS, the namespace's end
 * NAMESPACE_ADDRESS. A process started with `wrapper` runs inside it and reaches the host (the API server) only over
 * that pair, so taking the host end down partitions it from everything and bringing it up heals it. Needs root and
 * iproute2.
 */
export class NetworkNamespace {
  static readonly HOST_ADDRESS = "10.213.0.1";
  static readonly NAMESPACE_ADDRESS = "10.213.0.2";
  readonly name = `nextgen-chaos-${randomBytes(3).toString("hex")}`;
  /** Interface names are at most 15 bytes. */
  private readonly hostEnd = `ngc${randomBytes(3).toString("hex")}`;
  private readonly namespaceEnd = `${this.hostEnd}n`;

  static create(): NetworkNamespace {
    const ns = new NetworkNamespace();
    try {
      ns.ip("netns", "add", ns.name);
      ns.ip("link", "add", ns.hostEnd, "type", "veth", "peer", "name", ns.namespaceEnd);
      ns.ip("link", "set", ns.namespaceEnd, "netns", ns.name);
      ns.ip("addr", "add", `${NetworkNamespace.HOST_ADDRESS}/30`, "dev", ns.hostEnd);
      ns.ip("link", "set", ns.hostEnd, "up");
      ns.inside("ip", "addr", "add", `${NetworkNamespace.NAMESPACE_ADDRESS}/30`, "dev", ns.namespaceEnd);
      ns.inside("ip", "link", "set", ns.namespaceEnd, "up");
      ns.inside("ip", "link", "set", "lo", "up");
    } catch (e) {
      ns.delete();
      throw e;
    }
    return ns;
  }

  /** Runs a command inside the namespace: `ip netns exec` execs it, so a child started this way keeps its pid. */
  get wrapper(): string[] {
    return ["ip", "netns", "exec", this.name];
  }

  /** The link goes down on the host's side: nothing crosses until heal(). */
  partition(): void {
    this.ip("link", "set", this.hostEnd, "down");
  }

  heal(): void {
    this.ip("link", "set", this.hostEnd, "up");
  }

  /** Removes the namespace and the pair (deleting one end deletes both); safe to call on a half-made namespace. */
  delete(): void {
    for (const args of [
      ["link", "del", this.hostEnd],
      ["netns", "del", this.name],
    ]) {
      try {
        this.ip(...args);
      } catch {
        // not made, or already gone
      }
    }
  }

  private inside(...command: string[]): void {
    execFileSync("ip", ["netns", "exec", this.name, ...command], { stdio: "pipe" });
  }

  private ip(...args: string[]): void {
    execFileSync("ip", args, { stdio: "pipe" });
  }
}
