/**
 * The operator's /metrics behind the API server's authentication and authorization, as kubebuilder scaffolds it:
 * refused without a token (401) and to an identity without the metrics-reader ClusterRole (403), read by one bound
 * to it, and scraped by the real Prometheus with such a token over TLS, whose handshake negotiates the hybrid
 * post-quantum group.
 */
import { afterAll, beforeAll, expect, test } from "vitest";
import { Prometheus } from "../../src/controlplane/monitoring.ts";
import type { OperatorProcess } from "../../src/controlplane/operator-process.ts";
import { serviceAccountToken } from "../../src/controlplane/service-account.ts";
import { METRICS_READER_ROLE } from "../../src/manifests/generate.ts";
import { cluster, createNamespace, startOperator, waitUntil } from "./harness.ts";

const { admin, operatorKubeconfig } = cluster();
let ns: string;
let operator: OperatorProcess;
let prometheus: Prometheus | undefined;
const tokens: Record<"reader" | "stranger", string> = { reader: "", stranger: "" };

beforeAll(async () => {
  ns = await createNamespace(admin, "metrics-auth");
  operator = await startOperator(operatorKubeconfig);
  // Bound as a user binds Prometheus' ServiceAccount to the generated ClusterRole.
  tokens.reader = await serviceAccountToken(admin, ns, "reader", METRICS_READER_ROLE);
  tokens.stranger = await serviceAccountToken(admin, ns, "stranger");
});

afterAll(async () => {
  await prometheus?.stop();
  await admin.request("DELETE", `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${ns}-reader`);
});

test("without a token: 401; with a token the API server does not know: 401", async () => {
  expect(await operator.scrape("")).toEqual({ status: 401, body: "Unauthorized\n" });
  expect((await operator.scrape("not-a-token")).status).toBe(401);
});

test("a token of an identity without the metrics-reader role: 403, naming it", async () => {
  expect(await operator.scrape(tokens.stranger)).toEqual({
    status: 403,
    body: `Authorization denied for user system:serviceaccount:${ns}:stranger\n`,
  });
});

test("an identity bound to metrics-reader reads them; other paths are not served", async () => {
  const { status, body } = await operator.scrape(tokens.reader);
  expect(status).toBe(200);
  expect(body).toContain("controller_runtime_reconcile_total");
  // The operator's own connections to the API server negotiated the hybrid group.
  expect(body).toMatch(
    /nextgen_tls_handshakes_total\{peer="kube-apiserver",group="X25519MLKEM768",protocol="TLSv1.3"\} [1-9]/,
  );
});

test("nothing is served in clear text on the metrics port", async () => {
  await expect(fetch(`http://${operator.addresses.metrics}/metrics`)).rejects.toThrow();
});

test("the real Prometheus scrapes with the reader's token over TLS 1.3 with X25519MLKEM768; the stranger's scrape fails", async () => {
  const target = [operator.addresses.metrics as string];
  prometheus = await Prometheus.start(
    {
      scrapeJobs: {
        reader: { targets: target, bearerToken: tokens.reader },
        stranger: { targets: target, bearerToken: tokens.stranger },
      },
    },
    (line) => process.stderr.write(`[prometheus] ${line}\n`),
  );
  const p = prometheus;
  const up = async (job: string) => (await p.query(`up{job="${job}"}`))[0]?.value;
  await waitUntil("Prometheus to scrape with the reader's token", async () => (await up("reader")) === 1, {
    timeoutMs: 60_000,
    intervalMs: 500,
  });
  // Each job is scraped on its own schedule: the stranger's first scrape may come after the reader's.
  const stranger = await waitUntil(
    "Prometheus to have scraped with the stranger's token",
    async () => {
      const value = await up("stranger");
      return value === undefined ? undefined : { value };
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
  expect(stranger.value).toBe(0);
  // Seen from the operator's side: every connection of its metrics clients, Prometheus' among them.
  const scraped = await p.query('nextgen_tls_handshakes_total{job="reader",peer="metrics client"}');
  expect(Object.fromEntries(scraped.map((s) => [`${s.labels.group} ${s.labels.protocol}`, s.value > 0]))).toEqual({
    "X25519MLKEM768 TLSv1.3": true,
  });
});
