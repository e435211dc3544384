/**
 * The operator's kubeconfig loader against @kubernetes/client-node's KubeConfig (2.0.1, a devDependency only):
 * every kubeconfig of the corpus is loaded by both, and each gives the same server, CA, TLS settings, client
 * certificate and key, and Authorization header, or, where they differ on purpose, ours refuses the file with a
 * message naming the field while the test records what client-node does with it instead. README, "Kubeconfig
 * loading", lists each difference.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeConfig as ClientNodeKubeConfig } from "@kubernetes/client-node";
import { dump } from "js-yaml";
import { afterEach, describe, expect, test, vi } from "vitest";
import { SERVICE_ACCOUNT_DIR, fromFiles, inClusterConfig } from "../../src/runtime/kubeconfig.ts";
import { kubeconfigYaml } from "../fixtures/kubeconfig.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");

/** What a loader resolved: everything that decides where requests go and who they say they are from. */
interface Resolved {
  server?: string;
  ca?: string;
  rejectUnauthorized: boolean;
  servername?: string;
  cert?: string;
  key?: string;
  authorization?: string;
}

async function ours(files: string[]): Promise<Resolved> {
  const kc = fromFiles(files, {});
  const c = await kc.credentials();
  return {
    server: kc.server,
    ca: kc.tls.ca?.toString(),
    rejectUnauthorized: kc.tls.rejectUnauthorized,
    servername: kc.tls.servername,
    cert: c.cert?.toString(),
    key: c.key?.toString(),
    authorization: c.headers.authorization,
  };
}

/** client-node's view, loaded as its loadFromDefault loads $KUBECONFIG: the first file, then each other merged. */
async function theirs(files: string[], load?: (kc: ClientNodeKubeConfig) => void): Promise<Resolved> {
  const kc = new ClientNodeKubeConfig();
  if (load) load(kc);
  else {
    kc.loadFromFile(files[0] as string);
    for (const f of files.slice(1)) {
      const more = new ClientNodeKubeConfig();
      more.loadFromFile(f);
      kc.mergeConfig(more);
    }
  }
  const opts: { ca?: Buffer; cert?: Buffer | string; key?: Buffer | string; rejectUnauthorized?: boolean } & {
    servername?: string;
    auth?: string;
    headers?: Record<string, string>;
  } = {};
  await kc.applyToHTTPSOptions(opts);
  return {
    server: kc.getCurrentCluster()?.server,
    ca: opts.ca?.toString(),
    rejectUnauthorized: opts.rejectUnauthorized !== false,
    servername: opts.servername,
    cert: opts.cert?.toString(),
    key: opts.key?.toString(),
    authorization: opts.headers?.Authorization ?? (opts.auth ? `Basic ${b64(opts.auth)}` : undefined),
  };
}

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "kubeconfig-diff-"));
  dirs.push(d);
  return d;
}
function write(dir: string, name: string, text: string, mode = 0o600): string {
  const path = join(dir, name);
  writeFileSync(path, text, { mode });
  return path;
}
/** A kubeconfig file of one context joining cluster "c" and user "u". */
function kubeconfig(dir: string, cluster: Record<string, unknown>, user?: Record<string, unknown>): string {
  return write(dir, "config", kubeconfigYaml(cluster, user));
}
/** An exec plugin printing an ExecCredential of the apiVersion asked for, with `status`. */
function plugin(dir: string, apiVersion: string, status: Record<string, unknown>): Record<string, unknown> {
  const script = write(
    dir,
    "plugin.sh",
    `#!/bin/sh\necho '${JSON.stringify({ apiVersion, kind: "ExecCredential", status })}'\n`,
    0o700,
  );
  return { apiVersion, command: script };
}

const CA = { "certificate-authority-data": b64("CA") };
const SERVER = "https://api.example:6443";
afterEach(() => vi.unstubAllEnvs());

describe("the same resolution as client-node", () => {
  const same: Array<[string, (dir: string) => string[]]> = [
    [
      "a token, an inline CA, a TLS server name",
      (d) => [kubeconfig(d, { server: SERVER, ...CA, "tls-server-name": "kubernetes" }, { token: "t0k3n" })],
    ],
    [
      "a client certificate and key as data",
      (d) => [
        kubeconfig(
          d,
          { server: SERVER, ...CA },
          { "client-certificate-data": b64("CERT"), "client-key-data": b64("KEY") },
        ),
      ],
    ],
    [
      "a client certificate, key and CA as files relative to the kubeconfig",
      (d) => {
        write(d, "ca.pem", "CA-FILE");
        write(d, "cert.pem", "CERT-FILE");
        write(d, "key.pem", "KEY-FILE");
        return [
          kubeconfig(
            d,
            { server: SERVER, "certificate-authority": "ca.pem" },
            { "client-certificate": "cert.pem", "client-key": "key.pem" },
          ),
        ];
      },
    ],
    ["username and password", (d) => [kubeconfig(d, { server: SERVER, ...CA }, { username: "admin", password: "pw" })]],
    [
      "insecure-skip-tls-verify without a CA",
      (d) => [kubeconfig(d, { server: SERVER, "insecure-skip-tls-verify": true }, { token: "t" })],
    ],
    [
      "an http:// server with verification explicitly skipped",
      (d) => [kubeconfig(d, { server: "http://127.0.0.1:8080", "insecure-skip-tls-verify": true }, { token: "t" })],
    ],
    [
      "an exec plugin, v1, token",
      (d) => [
        kubeconfig(
          d,
          { server: SERVER, ...CA },
          {
            exec: {
              ...plugin(d, "client.authentication.k8s.io/v1", { token: "exec-token" }),
              interactiveMode: "Never",
            },
          },
        ),
      ],
    ],
    [
      "an exec plugin, v1beta1, client certificate",
      (d) => [
        kubeconfig(
          d,
          { server: SERVER, ...CA },
          {
            exec: plugin(d, "client.authentication.k8s.io/v1beta1", {
              clientCertificateData: "EXEC-CERT",
              clientKeyData: "EXEC-KEY",
            }),
          },
        ),
      ],
    ],
    [
      "several files merged as $KUBECONFIG merges them",
      (d) => {
        const a = write(
          d,
          "a",
          dump({ "current-context": "ctx", contexts: [{ name: "ctx", context: { cluster: "c", user: "u" } }] }),
        );
        const b = write(d, "b", dump({ clusters: [{ name: "c", cluster: { server: SERVER, ...CA } }] }));
        const c = write(d, "c", dump({ users: [{ name: "u", user: { token: "merged" } }] }));
        return [a, b, c];
      },
    ],
  ];
  test.each(same)("%s", async (_name, make) => {
    const files = make(tempDir());
    const mine = await ours(files);
    expect(mine.server).toBeDefined();
    expect(mine).toEqual(await theirs(files));
  });

  test("in-cluster: the service account's token and CA", async () => {
    const root = tempDir();
    const dir = join(root, SERVICE_ACCOUNT_DIR);
    mkdirSync(dir, { recursive: true });
    write(dir, "token", "sa-token");
    write(dir, "ca.crt", "SA-CA");
    write(dir, "namespace", "ns");
    vi.stubEnv("KUBERNETES_SERVICE_HOST", "10.96.0.1");
    vi.stubEnv("KUBERNETES_SERVICE_PORT", "443");
    const kc = inClusterConfig(process.env, dir);
    const c = await kc.credentials();
    const mine: Resolved = {
      server: kc.server,
      ca: kc.tls.ca?.toString(),
      rejectUnauthorized: kc.tls.rejectUnauthorized,
      servername: kc.tls.servername,
      cert: undefined,
      key: undefined,
      authorization: c.headers.authorization,
    };
    expect(mine).toEqual(await theirs([], (k) => k.loadFromCluster(root)));
    expect(mine.authorization).toBe("Bearer sa-token");
  });
});

describe("refused by both", () => {
  test("a token for an http:// server, in clear text", async () => {
    const files = [kubeconfig(tempDir(), { server: "http://127.0.0.1:8080" }, { token: "t" })];
    await expect(ours(files)).rejects.toThrow(/would send credentials in clear text to http:\/\/127.0.0.1:8080/);
    await expect(theirs(files)).rejects.toThrow(/HTTP protocol is not allowed/);
  });
});

/**
 * Each deliberate difference: ours refuses (message matched), and what client-node does instead. The refusals
 * follow client-go (clientcmd/validation.go, transport/transport.go at v0.37.2) unless said otherwise.
 */
describe("refused by ours, where client-node goes on", () => {
  const cases: Array<{
    name: string;
    make: (dir: string) => string[];
    refusal: RegExp;
    clientNode: (r: Resolved) => void;
  }> = [
    {
      name: "impersonation (as): client-node sends Impersonate-User",
      make: (d) => [kubeconfig(d, { server: SERVER, ...CA }, { token: "t", as: "admin" })],
      refusal: /user u sets as: impersonation is not supported/,
      clientNode: (r) => expect(r.authorization).toBe("Bearer t"),
    },
    ...["as-groups", "as-uid", "as-user-extra"].map((field) => ({
      name: `${field}: client-node drops it and runs as the plain user`,
      make: (d: string) => [
        kubeconfig(
          d,
          { server: SERVER, ...CA },
          {
            token: "t",
            [field]: field === "as-groups" ? ["system:masters"] : field === "as-uid" ? "0" : { scopes: ["x"] },
          },
        ),
      ],
      refusal: new RegExp(`user u sets ${field}: impersonation is not supported`),
      clientNode: (r: Resolved) => expect(r.authorization).toBe("Bearer t"),
    })),
    {
      name: "an exec plugin that must be interactive: client-node runs it without a terminal",
      make: (d) => [
        kubeconfig(
          d,
          { server: SERVER, ...CA },
          {
            exec: { ...plugin(d, "client.authentication.k8s.io/v1", { token: "x" }), interactiveMode: "Always" },
          },
        ),
      ],
      refusal: /exec plugin sets interactiveMode Always, but the operator has no terminal/,
      clientNode: (r) => expect(r.authorization).toBe("Bearer x"),
    },
    {
      name: "a v1 exec plugin without interactiveMode (client-go requires it): client-node runs it",
      make: (d) => [
        kubeconfig(
          d,
          { server: SERVER, ...CA },
          { exec: plugin(d, "client.authentication.k8s.io/v1", { token: "x" }) },
        ),
      ],
      refusal: /exec plugin sets no interactiveMode/,
      clientNode: (r) => expect(r.authorization).toBe("Bearer x"),
    },
    {
      name: "a CA with insecure-skip-tls-verify: client-node skips verification with the CA set",
      make: (d) => [kubeconfig(d, { server: SERVER, ...CA, "insecure-skip-tls-verify": true }, { token: "t" })],
      refusal: /cluster c sets both a certificate-authority and insecure-skip-tls-verify/,
      clientNode: (r) => expect([r.ca, r.rejectUnauthorized]).toEqual(["CA", false]),
    },
    {
      name: "a CA as both file and data: client-node takes the file (client-go the data)",
      make: (d) => {
        write(d, "ca.pem", "CA-FILE");
        return [kubeconfig(d, { server: SERVER, ...CA, "certificate-authority": "ca.pem" }, { token: "t" })];
      },
      refusal: /sets both certificate-authority and certificate-authority-data/,
      clientNode: (r) => expect(r.ca).toBe("CA-FILE"),
    },
    {
      name: "a client certificate without its key: client-node presents the certificate alone",
      make: (d) => [kubeconfig(d, { server: SERVER, ...CA }, { "client-certificate-data": b64("CERT") })],
      refusal: /user u has a client-certificate or client-key without the other/,
      clientNode: (r) => expect([r.cert, r.key]).toEqual(["CERT", undefined]),
    },
    {
      name: "a token and a password: client-node sends the token and basic credentials both",
      make: (d) => [kubeconfig(d, { server: SERVER, ...CA }, { token: "t", username: "u", password: "p" })],
      refusal: /user u sets token and username\/password; only one way to authenticate/,
      clientNode: (r) => expect(r.authorization).toBe("Bearer t"),
    },
    {
      name: "proxy-url: client-node sends through the proxy",
      make: (d) => [kubeconfig(d, { server: SERVER, ...CA, "proxy-url": "http://proxy:3128" }, { token: "t" })],
      refusal: /cluster c sets proxy-url, which is not supported/,
      clientNode: (r) => expect(r.server).toBe(SERVER),
    },
    {
      name: "a misspelt field (tokenfile): client-node drops it and sends nothing",
      make: (d) => [kubeconfig(d, { server: SERVER, ...CA }, { tokenfile: write(d, "token", "t") })],
      refusal: /user u sets tokenfile, not a kubeconfig field/,
      clientNode: (r) => expect(r.authorization).toBeUndefined(),
    },
    {
      name: "token-file, client-node's own field (client-go ignores it): client-node reads it",
      make: (d) => [kubeconfig(d, { server: SERVER, ...CA }, { "token-file": write(d, "token", "from-file") })],
      refusal: /user u sets token-file, not a kubeconfig field/,
      clientNode: (r) => expect(r.authorization).toBe("Bearer from-file"),
    },
    {
      name: "auth-provider (removed from client-go): client-node's gcp provider sends the cached access token",
      make: (d) => [
        kubeconfig(
          d,
          { server: SERVER, ...CA },
          {
            "auth-provider": { name: "gcp", config: { "access-token": "gcp-token", expiry: "2999-01-01T00:00:00Z" } },
          },
        ),
      ],
      refusal: /user u sets auth-provider: the in-tree auth providers were removed/,
      clientNode: (r) => expect(r.authorization).toBe("Bearer gcp-token"),
    },
  ];
  test.each(cases)("$name", async ({ make, refusal, clientNode }) => {
    const files = make(tempDir());
    await expect(ours(files)).rejects.toThrow(refusal);
    clientNode(await theirs(files));
  });
});

describe("resolved differently on purpose", () => {
  test("tokenFile, client-go's field: ours reads it, client-node ignores it and sends no token", async () => {
    const d = tempDir();
    const files = [kubeconfig(d, { server: SERVER, ...CA }, { tokenFile: write(d, "token", "file-token\n") })];
    expect((await ours(files)).authorization).toBe("Bearer file-token");
    expect((await theirs(files)).authorization).toBeUndefined();
  });

  test("merged files: the first current-context and the first of each name win (kubectl); client-node takes the last current-context and throws on a repeated name", async () => {
    const d = tempDir();
    const entry = (server: string) => ({
      clusters: [{ name: "c", cluster: { server, ...CA } }],
      users: [{ name: "u", user: { token: "t" } }],
    });
    const a = write(
      d,
      "a",
      dump({
        "current-context": "first",
        contexts: [{ name: "first", context: { cluster: "c", user: "u" } }],
        ...entry(SERVER),
      }),
    );
    const b = write(
      d,
      "b",
      dump({ "current-context": "second", contexts: [{ name: "second", context: { cluster: "c", user: "u" } }] }),
    );
    expect((await ours([a, b])).server).toBe(SERVER);
    const theirsKc = new ClientNodeKubeConfig();
    theirsKc.loadFromFile(a);
    const more = new ClientNodeKubeConfig();
    more.loadFromFile(b);
    theirsKc.mergeConfig(more);
    expect(theirsKc.getCurrentContext()).toBe("second");
    const c = write(d, "c", dump(entry("https://other:6443")));
    expect((await ours([a, c])).server).toBe(SERVER);
    await expect(theirs([a, c])).rejects.toThrow(/Duplicate cluster: c/);
  });

  test("a context without a user: ours still verifies the server with the CA, client-node applies no TLS settings", async () => {
    const files = [kubeconfig(tempDir(), { server: SERVER, ...CA, "tls-server-name": "kubernetes" })];
    const mine = await ours(files);
    expect([mine.ca, mine.servername, mine.authorization]).toEqual(["CA", "kubernetes", undefined]);
    const them = await theirs(files);
    expect([them.ca, them.servername]).toEqual([undefined, undefined]);
  });
});
