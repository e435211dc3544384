import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dump } from "js-yaml";
import { describe, expect, test } from "vitest";
import { fromFiles, inClusterConfig, loadKubeConfig } from "../../src/runtime/kubeconfig.ts";
import { kubeconfigYaml } from "../fixtures/kubeconfig.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "kubeconfig-test-"));
}

function write(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe("kubeconfig files", () => {
  test("server, inline CA and client certificate, insecure-skip-tls-verify off, tls-server-name", async () => {
    const dir = tempDir();
    const file = write(
      dir,
      "config",
      kubeconfigYaml(
        { server: "https://10.0.0.1:6443/", "certificate-authority-data": b64("CA"), "tls-server-name": "api.local" },
        { "client-certificate-data": b64("CERT"), "client-key-data": b64("KEY") },
      ),
    );
    const kc = fromFiles([file]);
    expect(kc.server).toBe("https://10.0.0.1:6443");
    expect(kc.tls.ca?.toString()).toBe("CA");
    expect(kc.tls.rejectUnauthorized).toBe(true);
    expect(kc.tls.servername).toBe("api.local");
    const creds = await kc.credentials();
    expect(creds.headers).toEqual({});
    expect(creds.cert?.toString()).toBe("CERT");
    expect(creds.key?.toString()).toBe("KEY");
    expect(kc.source).toContain(`kubeconfig ${file}, context ctx`);
  });

  test("certificate and key files are read relative to the kubeconfig's directory; a token becomes a bearer", async () => {
    const dir = tempDir();
    write(dir, "ca.pem", "CA-FILE");
    write(dir, "cert.pem", "CERT-FILE");
    write(dir, "key.pem", "KEY-FILE");
    const file = write(
      dir,
      "config",
      kubeconfigYaml(
        { server: "https://h:6443", "certificate-authority": "ca.pem" },
        { "client-certificate": "cert.pem", "client-key": join(dir, "key.pem"), token: "abc" },
      ),
    );
    const kc = fromFiles([file]);
    expect(kc.tls.ca?.toString()).toBe("CA-FILE");
    const creds = await kc.credentials();
    expect(creds.headers).toEqual({ authorization: "Bearer abc" });
    expect(creds.cert?.toString()).toBe("CERT-FILE");
    expect(creds.key?.toString()).toBe("KEY-FILE");
    // Rotated in place (cert-manager's csi-driver, a kubelet's client certificate): the next call reads the new pair.
    write(dir, "cert.pem", "CERT-ROTATED");
    write(dir, "key.pem", "KEY-ROTATED");
    const rotated = await kc.credentials();
    expect(rotated.cert?.toString()).toBe("CERT-ROTATED");
    expect(rotated.key?.toString()).toBe("KEY-ROTATED");
  });

  test("username and password are sent as basic authentication", async () => {
    const dir = tempDir();
    const file = write(
      dir,
      "config",
      kubeconfigYaml({ server: "https://h" }, { username: "admin", password: "s3cret" }),
    );
    expect((await fromFiles([file]).credentials()).headers).toEqual({
      authorization: `Basic ${b64("admin:s3cret")}`,
    });
  });

  test("a tokenFile is read again on every call, so a rotated token is picked up", async () => {
    const dir = tempDir();
    const token = write(dir, "token", "first\n");
    const kc = fromFiles([write(dir, "config", kubeconfigYaml({ server: "https://h" }, { tokenFile: token }))]);
    expect((await kc.credentials()).headers.authorization).toBe("Bearer first");
    writeFileSync(token, "second");
    expect((await kc.credentials()).headers.authorization).toBe("Bearer second");
  });

  test("$KUBECONFIG files merge as kubectl merges them: the first to name an entry wins, missing files are skipped", () => {
    const dir = tempDir();
    const first = write(
      dir,
      "a",
      dump({
        "current-context": "second-ctx",
        clusters: [{ name: "shared", cluster: { server: "https://from-a" } }],
      }),
    );
    const second = write(
      dir,
      "b",
      dump({
        "current-context": "ignored",
        clusters: [
          { name: "shared", cluster: { server: "https://from-b" } },
          { name: "other", cluster: { server: "https://other" } },
        ],
        contexts: [{ name: "second-ctx", context: { cluster: "shared" } }],
      }),
    );
    const kc = loadKubeConfig(undefined, { KUBECONFIG: [first, join(dir, "missing"), second].join(":") }, dir);
    expect(kc.server).toBe("https://from-a");
  });

  test("errors name what is missing", () => {
    const dir = tempDir();
    const noContext = write(dir, "a", dump({ clusters: [{ name: "c", cluster: { server: "https://h" } }] }));
    expect(() => fromFiles([noContext])).toThrow(/sets no current-context/);
    const noServer = write(dir, "b", kubeconfigYaml({}));
    expect(() => fromFiles([noServer])).toThrow(/cluster c has no server/);
    const unknownUser = write(
      dir,
      "c",
      dump({
        "current-context": "ctx",
        clusters: [{ name: "c", cluster: { server: "https://h" } }],
        contexts: [{ name: "ctx", context: { cluster: "c", user: "nobody" } }],
      }),
    );
    expect(() => fromFiles([unknownUser])).toThrow(/names user nobody, not defined/);
    const authProvider = write(dir, "d", kubeconfigYaml({ server: "https://h" }, { "auth-provider": { name: "gcp" } }));
    expect(() => fromFiles([authProvider])).toThrow(/user u sets auth-provider: .*use an exec plugin/);
    const missingCa = write(dir, "e", kubeconfigYaml({ server: "https://h", "certificate-authority": "nope.pem" }));
    expect(() => fromFiles([missingCa])).toThrow(/certificate-authority .*nope\.pem/);
    expect(() => fromFiles([join(dir, "absent")])).toThrow(/kubeconfig .*absent/);
  });
});

describe("resolution order", () => {
  const inCluster = () => {
    const sa = tempDir();
    write(sa, "token", "sa-token");
    write(sa, "ca.crt", "SA-CA");
    return sa;
  };
  const env = { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" };

  test("an explicit path first, then $KUBECONFIG, then ~/.kube/config, then the service account", () => {
    const home = tempDir();
    const sa = inCluster();
    const explicit = write(tempDir(), "config", kubeconfigYaml({ server: "https://explicit" }));
    const fromEnv = write(tempDir(), "config", kubeconfigYaml({ server: "https://env" }));
    const all = { ...env, KUBECONFIG: fromEnv };
    expect(loadKubeConfig(explicit, all, home, sa).server).toBe("https://explicit");
    expect(loadKubeConfig(undefined, all, home, sa).server).toBe("https://env");
    expect(loadKubeConfig(undefined, env, home, sa).server).toBe("https://10.96.0.1:443");
    const kube = join(home, ".kube");
    mkdirSync(kube);
    write(kube, "config", kubeconfigYaml({ server: "https://home" }));
    expect(loadKubeConfig(undefined, env, home, sa).server).toBe("https://home");
  });

  test("nothing to go on is an error that says where it looked", () => {
    expect(() => loadKubeConfig(undefined, {}, tempDir())).toThrow(/no kubeconfig: .*KUBERNETES_SERVICE_HOST/);
  });

  test("in cluster: the CA from ca.crt, an IPv6 host in brackets, the token re-read as the kubelet rotates it", async () => {
    const sa = inCluster();
    const kc = inClusterConfig({ KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "443" }, sa);
    expect(kc.server).toBe("https://[fd00::1]:443");
    expect(kc.tls.ca?.toString()).toBe("SA-CA");
    expect((await kc.credentials()).headers).toEqual({ authorization: "Bearer sa-token" });
    writeFileSync(join(sa, "token"), "rotated");
    expect((await kc.credentials()).headers).toEqual({ authorization: "Bearer rotated" });
  });

  test("in cluster without the token file names it", () => {
    const sa = tempDir();
    write(sa, "ca.crt", "CA");
    expect(() => inClusterConfig(env, sa)).toThrow(`${join(sa, "token")} is missing`);
  });
});

describe("exec plugins", () => {
  /**
   * A plugin that counts its runs in a file, records the KUBERNETES_EXEC_INFO and env it was given, and prints an
   * ExecCredential of the apiVersion asked for, expiring expiresInMs from now (none if negative).
   */
  function plugin(dir: string, status: Record<string, unknown>, expiresInMs: number): string {
    return write(
      dir,
      "plugin.mjs",
      `import { appendFileSync, writeFileSync } from "node:fs";
const info = JSON.parse(process.env.KUBERNETES_EXEC_INFO);
appendFileSync(${JSON.stringify(join(dir, "runs"))}, "x");
writeFileSync(${JSON.stringify(join(dir, "seen.json"))}, JSON.stringify({ info, extra: process.env.EXTRA, args: process.argv.slice(2) }));
const status = ${JSON.stringify(status)};
if (${expiresInMs} >= 0) status.expirationTimestamp = new Date(Date.now() + ${expiresInMs}).toISOString();
console.log(JSON.stringify({ apiVersion: info.apiVersion, kind: "ExecCredential", status }));
`,
    );
  }
  const runs = (dir: string) => readFileSync(join(dir, "runs"), "utf8").length;

  function execConfig(dir: string, script: string, apiVersion: string, extra: Record<string, unknown> = {}) {
    return write(
      dir,
      "config",
      kubeconfigYaml(
        {
          server: "https://h",
          "certificate-authority-data": b64("CA"),
          extensions: [{ name: "client.authentication.k8s.io/exec", extension: { audience: "aud" } }],
        },
        {
          exec: {
            apiVersion,
            command: process.execPath,
            args: [script, "--flag"],
            env: [{ name: "EXTRA", value: "yes" }],
            ...(apiVersion.endsWith("/v1") && { interactiveMode: "Never" }),
            ...extra,
          },
        },
      ),
    );
  }

  test("v1: runs the command with its args, env and KUBERNETES_EXEC_INFO, caching the token until it expires", async () => {
    const dir = tempDir();
    const kc = fromFiles([
      execConfig(dir, plugin(dir, { token: "t1" }, 60 * 60_000), "client.authentication.k8s.io/v1", {
        provideClusterInfo: true,
      }),
    ]);
    const [a, b] = await Promise.all([kc.credentials(), kc.credentials()]);
    expect(a.headers).toEqual({ authorization: "Bearer t1" });
    expect(b.headers).toEqual({ authorization: "Bearer t1" });
    await kc.credentials();
    expect(runs(dir)).toBe(1);
    const seen = JSON.parse(readFileSync(join(dir, "seen.json"), "utf8"));
    expect(seen.args).toEqual(["--flag"]);
    expect(seen.extra).toBe("yes");
    expect(seen.info).toEqual({
      apiVersion: "client.authentication.k8s.io/v1",
      kind: "ExecCredential",
      spec: {
        interactive: false,
        cluster: { server: "https://h", "certificate-authority-data": b64("CA"), config: { audience: "aud" } },
      },
    });
    // The server refused it: the plugin runs again.
    kc.expireCredentials();
    await kc.credentials();
    expect(runs(dir)).toBe(2);
  });

  test("v1beta1: an expired credential runs the plugin again; client certificates come through", async () => {
    const dir = tempDir();
    const status = { clientCertificateData: "CERT", clientKeyData: "KEY" };
    const kc = fromFiles([execConfig(dir, plugin(dir, status, 0), "client.authentication.k8s.io/v1beta1")]);
    const first = await kc.credentials();
    expect(first.headers).toEqual({});
    expect(first.cert?.toString()).toBe("CERT");
    expect(first.key?.toString()).toBe("KEY");
    await kc.credentials();
    expect(runs(dir)).toBe(2);
    const seen = JSON.parse(readFileSync(join(dir, "seen.json"), "utf8"));
    expect(seen.info.spec).toEqual({ interactive: false });
  });

  test("a failing plugin's stderr is in the error, and the next call tries again", async () => {
    const dir = tempDir();
    const script = write(dir, "fail.mjs", `console.error("please log in"); process.exit(1);`);
    const kc = fromFiles([execConfig(dir, script, "client.authentication.k8s.io/v1")]);
    await expect(kc.credentials()).rejects.toThrow(/user u's exec plugin .*failed: please log in/);
    await expect(kc.credentials()).rejects.toThrow(/please log in/);
  });

  test("an unsupported apiVersion is refused when the kubeconfig is read", () => {
    const dir = tempDir();
    expect(() =>
      fromFiles([execConfig(dir, plugin(dir, { token: "t" }, -1), "client.authentication.k8s.io/v1alpha1")]),
    ).toThrow(/apiVersion client.authentication.k8s.io\/v1alpha1; supported/);
  });
});
