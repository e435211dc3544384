import { spawnSync } from "node:child_process";
import { describe, expect, test } from "vitest";
import { parseRunConfig } from "../../src/cli/run.ts";

const cli = (...args: string[]) =>
  spawnSync(process.execPath, ["src/cli/main.ts", ...args], {
    encoding: "utf8",
    env: { ...process.env, KUBECONFIG: "" },
  });

describe("the command line", () => {
  test("--help on each command says what it does and exits 0", () => {
    for (const args of [
      ["--help"],
      ["run", "--help"],
      ["manifests", "--help"],
      ["control-plane", "--help"],
      ["demo", "--help"],
      ["runner", "--help"],
    ]) {
      const r = cli(...args);
      expect(r.status, `${args.join(" ")}: ${r.stderr}`).toBe(0);
      expect(r.stdout).toMatch(/Usage: nextgen-operator/);
    }
  });

  test("unknown commands, unknown flags and bad values exit 2 with a clear message", () => {
    const cases: Array<[string[], RegExp]> = [
      [["frobnicate"], /unknown command "frobnicate"/],
      [["run", "--bogus"], /run: Unknown option '--bogus'/],
      [["run", "--log-level", "loud"], /--log-level must be one of debug, info, warn, error, got "loud"/],
      [["run", "--metrics-bind-address", "nowhere"], /--metrics-bind-address must be HOST:PORT/],
      [["run", "--concurrency", "pqkeyset=zero"], /--concurrency takes NAME=N/],
      [["manifests", "--nope"], /manifests: Unknown option '--nope'/],
    ];
    for (const [args, message] of cases) {
      const r = cli(...args);
      expect(r.status, args.join(" ")).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });

  test("the committed manifests are what the sources generate", () => {
    const r = cli("manifests", "--check");
    expect(r.status, r.stderr).toBe(0);
  });
});

describe("run configuration", () => {
  test("defaults, environment, and flags winning over environment", () => {
    const cfg = parseRunConfig([], {});
    expect(cfg).toMatchObject({
      metricsAddress: ":8443",
      metricsSecure: true,
      metricsCertDir: undefined,
      probeAddress: ":8081",
      leaderElect: false,
      namespaces: undefined,
      logLevel: "info",
    });
    const env = { NEXTGEN_NAMESPACES: "a, b", NEXTGEN_LEADER_ELECT: "true", NEXTGEN_LOG_LEVEL: "debug" };
    expect(parseRunConfig([], env)).toMatchObject({ namespaces: ["a", "b"], leaderElect: true, logLevel: "debug" });
    expect(parseRunConfig(["--namespace", "c", "--log-level", "warn"], env)).toMatchObject({
      namespaces: ["c"],
      logLevel: "warn",
    });
    expect(parseRunConfig(["--concurrency", "x=4"], {})).toMatchObject({ concurrency: { x: 4 } });
    expect(parseRunConfig(["--metrics-secure=false"], { NEXTGEN_METRICS_CERT_DIR: "/certs" })).toMatchObject({
      metricsSecure: false,
      metricsCertDir: "/certs",
    });
    expect(() => parseRunConfig(["--metrics-secure", "no"], {})).toThrow(/--metrics-secure must be true or false/);
  });

  test("allowed endpoints: none by default, from the environment, repeated or comma-separated flags", () => {
    const entries = (args: string[], env: NodeJS.ProcessEnv = {}) => {
      const cfg = parseRunConfig(args, env);
      return cfg === "help" ? cfg : cfg.allowedEndpoints.map((a) => a.entry);
    };
    expect(entries([])).toEqual([]);
    expect(entries([], { NEXTGEN_ALLOWED_ENDPOINTS: "http://a:9090, https://b" })).toEqual([
      "http://a:9090",
      "https://b",
    ]);
    expect(
      entries(["--allowed-endpoints", "http://c:*,http://d", "--allowed-endpoints=https://e/x"], {
        NEXTGEN_ALLOWED_ENDPOINTS: "http://a:9090",
      }),
    ).toEqual(["http://c:*", "http://d", "https://e/x"]);
    expect(() => parseRunConfig(["--allowed-endpoints", "prometheus:9090"], {})).toThrow(
      /--allowed-endpoints: "prometheus:9090": only http and https/,
    );
  });
});
