/**
 * The API client's connections: the hybrid post-quantum key exchange with the real kube-apiserver, and, against a
 * TLS server of the test's own that asks for client certificates, rotated certificate files presented on a new
 * connection while the old one is closed, and the User-Agent.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TLSSocket } from "node:tls";
import { dump } from "js-yaml";
import { expect, test } from "vitest";
import { KubeClient, USER_AGENT } from "../../src/runtime/client.ts";
import { NamespaceKind } from "../../src/runtime/kinds.ts";
import { cluster, waitUntil } from "./harness.ts";

const { adminKubeconfig } = cluster();

test("connections to the real API server negotiate TLS 1.3 with the hybrid X25519MLKEM768 group", async () => {
  const client = KubeClient.load(adminKubeconfig, "nextgen-tls-test");
  const handshakes: Array<[string, string]> = [];
  client.handshakeObserver = (group, protocol) => handshakes.push([group, protocol]);
  try {
    await client.list(NamespaceKind);
    expect(handshakes).toEqual([["X25519MLKEM768", "TLSv1.3"]]);
  } finally {
    await client.close();
  }
});

/** A self-signed certificate and key (node:crypto makes keys but not certificates). */
function selfSigned(dir: string, name: string, san?: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const key = join(dir, `${name}.key`);
  execFileSync(
    "openssl",
    ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"].concat(
      ["-subj", `/CN=${name}`, ...(san ? ["-addext", `subjectAltName=${san}`] : [])],
      ["-keyout", key, "-out", cert],
    ),
    { stdio: "pipe" },
  );
  return { cert, key };
}

test("a rotated client certificate file is presented on a new connection and the old one is closed; requests say who they are", async () => {
  const dir = mkdtempSync(join(tmpdir(), "client-tls-"));
  const server = selfSigned(dir, "server", "IP:127.0.0.1");
  const first = selfSigned(dir, "first-client");
  const second = selfSigned(dir, "second-client");
  const seen: Array<{ cn: string; userAgent: string | undefined; socket: Socket }> = [];
  const closed = new Set<Socket>();
  const https = createServer(
    {
      cert: readFileSync(server.cert),
      key: readFileSync(server.key),
      requestCert: true,
      rejectUnauthorized: false,
    },
    (req, res) => {
      const socket = req.socket as TLSSocket;
      socket.once("close", () => closed.add(socket));
      seen.push({ cn: String(socket.getPeerCertificate().subject?.CN), userAgent: req.headers["user-agent"], socket });
      res.setHeader("content-type", "application/json");
      res.end(
        JSON.stringify({ apiVersion: "v1", kind: "NamespaceList", metadata: { resourceVersion: "1" }, items: [] }),
      );
    },
  );
  await new Promise<void>((resolve) => https.listen(0, "127.0.0.1", resolve));
  const clientCert = join(dir, "client.crt");
  const clientKey = join(dir, "client.key");
  const install = (pair: { cert: string; key: string }) => {
    writeFileSync(clientCert, readFileSync(pair.cert));
    writeFileSync(clientKey, readFileSync(pair.key));
  };
  install(first);
  const kubeconfig = join(dir, "kubeconfig");
  writeFileSync(
    kubeconfig,
    dump({
      "current-context": "ctx",
      clusters: [
        {
          name: "c",
          cluster: {
            server: `https://127.0.0.1:${(https.address() as AddressInfo).port}`,
            "certificate-authority": server.cert,
          },
        },
      ],
      users: [{ name: "u", user: { "client-certificate": clientCert, "client-key": clientKey } }],
      contexts: [{ name: "ctx", context: { cluster: "c", user: "u" } }],
    }),
  );
  const client = KubeClient.load(kubeconfig, "nextgen-tls-test");
  try {
    await client.list(NamespaceKind);
    const before = seen[0];
    expect(before?.cn).toBe("first-client");
    expect(before?.userAgent).toBe(USER_AGENT);
    expect(USER_AGENT).toMatch(/^nextgen-operator\/\d+\.\d+\.\d+/);
    install(second);
    // Credentials are worked out anew every few seconds: ask until the new certificate is presented.
    await waitUntil(
      "the rotated certificate to be presented",
      async () => (await client.list(NamespaceKind), seen.at(-1)?.cn === "second-client"),
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    expect(seen.at(-1)?.socket).not.toBe(before?.socket);
    await waitUntil("the old connection to be closed", async () => closed.has(before?.socket as Socket), {
      timeoutMs: 10_000,
      intervalMs: 100,
    });
  } finally {
    await client.close();
    https.closeAllConnections();
    https.close();
  }
});
