import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";

/** What names a namespace and its pair, enough to delete them later (a real node records it in state.json). */
export type NetworkNamespaceNames = {
  name: string;
  /** At most 14 bytes: the namespace's end is named after it with an "n", and interface names have at most 15. */
  hostEnd: string;
};

export type NetworkNamespaceOptions = {
  /** Default: "nextgen-chaos-" and a random suffix. */
  names?: NetworkNamespaceNames;
  /** Of the host's end of the pair, a /30 with the namespace's end; default 10.213.0.1 (and .2 inside). */
  hostAddress?: string;
  namespaceAddress?: string;
};

/**
 * A network namespace joined to this machine by a veth pair: the host end holds `hostAddress`, the namespace's end
 * `namespaceAddress`. A process started with `wrapper` runs inside it and reaches the host (the API server) only over
 * that pair, so taking the host end down partitions it from everything and bringing it up heals it. Needs root and
 * iproute2.
 */
export class NetworkNamespace {
  readonly name: string;
  readonly hostEnd: string;
  readonly hostAddress: string;
  readonly namespaceAddress: string;
  private readonly namespaceEnd: string;

  private constructor(names: NetworkNamespaceNames, hostAddress: string, namespaceAddress: string) {
    this.name = names.name;
    this.hostEnd = names.hostEnd;
    this.namespaceEnd = `${names.hostEnd}n`;
    this.hostAddress = hostAddress;
    this.namespaceAddress = namespaceAddress;
  }

  static create(opts: NetworkNamespaceOptions = {}): NetworkNamespace {
    const id = randomBytes(3).toString("hex");
    const ns = new NetworkNamespace(
      opts.names ?? { name: `nextgen-chaos-${id}`, hostEnd: `ngc${id}` },
      opts.hostAddress ?? "10.213.0.1",
      opts.namespaceAddress ?? "10.213.0.2",
    );
    try {
      ns.ip("netns", "add", ns.name);
      ns.ip("link", "add", ns.hostEnd, "type", "veth", "peer", "name", ns.namespaceEnd);
      ns.ip("link", "set", ns.namespaceEnd, "netns", ns.name);
      ns.ip("addr", "add", `${ns.hostAddress}/30`, "dev", ns.hostEnd);
      ns.ip("link", "set", ns.hostEnd, "up");
      ns.inside("ip", "addr", "add", `${ns.namespaceAddress}/30`, "dev", ns.namespaceEnd);
      ns.inside("ip", "link", "set", ns.namespaceEnd, "up");
      ns.inside("ip", "link", "set", "lo", "up");
    } catch (e) {
      ns.delete();
      throw e;
    }
    return ns;
  }

  /** Deletes a namespace and pair made earlier, perhaps by a process since killed; nothing when they are gone. */
  static deleteExisting(names: NetworkNamespaceNames): void {
    new NetworkNamespace(names, "", "").delete();
  }

  /** Runs a command inside the namespace: `ip netns exec` execs it, so a child started this way keeps its pid. */
  get wrapper(): string[] {
    return ["ip", "netns", "exec", this.name];
  }

  get names(): NetworkNamespaceNames {
    return { name: this.name, hostEnd: this.hostEnd };
  }

  /** Routes `cidr` from the host through the namespace (its end of the pair); the route goes with the pair. */
  routeThrough(cidr: string): void {
    this.ip("route", "add", cidr, "via", this.namespaceAddress, "dev", this.hostEnd);
  }

  /** The link goes down on the host's side: nothing crosses until heal(). */
  partition(): void {
    this.ip("link", "set", this.hostEnd, "down");
  }

  heal(): void {
    this.ip("link", "set", this.hostEnd, "up");
  }

  /**
   * Every TCP connection open now dies silently: its packets are dropped both ways inside the namespace, with no
   * reset and the link up, while connections opened from now on pass (marked by their SYN; conntrack picks up an
   * older connection midway and would call it new too). What a peer that vanished, a NAT that forgot a flow or a
   * firewall that dropped it looks like: only probing finds such a connection dead. Lasts as long as the namespace.
   * Needs iptables with the conntrack and connmark matches.
   */
  blackHoleOpenConnections(): void {
    for (const chain of ["PREROUTING", "OUTPUT"])
      this.inside(
        ...`iptables -t mangle -A ${chain} -p tcp --syn -m conntrack --ctstate NEW -j CONNMARK --set-mark 1`.split(" "),
      );
    for (const chain of ["INPUT", "OUTPUT"])
      this.inside(...`iptables -A ${chain} -p tcp -m connmark ! --mark 1 -j DROP`.split(" "));
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
