import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { Alertmanager, Prometheus, type PrometheusConfig } from "../../src/controlplane/monitoring.ts";
import { waitUntil } from "./harness.ts";

// The alerting chain the operator's self-healing hangs on, with the real programs: Prometheus scrapes an exporter and
// evaluates a rule, Alertmanager turns the alert into webhook posts, firing and then resolved.

/** Alertmanager's webhook payload, version 4 (the parts looked at here). */
type WebhookPayload = {
  version: string;
  status: "firing" | "resolved";
  receiver: string;
  alerts: { status: string; labels: Record<string, string> }[];
};
type Post = { authorization: string | undefined; payload: WebhookPayload };

const RULES = `
groups:
  - name: test
    rules:
      - alert: TestValueHigh
        expr: test_value > 1
        for: 0s
`;
const WAIT = { timeoutMs: 30_000, intervalMs: 100 };

const servers: Server[] = [];
afterAll(() => Promise.all(servers.map((s) => new Promise((res) => s.close(res)))));

/** An HTTP server on a loopback port the OS chose, closed after the file's tests; answers its host:port. */
async function listen(handle: Parameters<typeof createServer>[1]): Promise<string> {
  const server = createServer(handle);
  servers.push(server);
  await once(server.listen(0, "127.0.0.1"), "listening");
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** An exporter of one gauge, test_value, which the test sets. */
async function exporter(): Promise<{ address: string; set: (v: number) => void }> {
  let value = 0;
  const address = await listen((_req, res) => {
    res.setHeader("content-type", "text/plain; version=0.0.4");
    res.end(`# TYPE test_value gauge\ntest_value ${value}\n`);
  });
  return { address, set: (v) => (value = v) };
}

describe("Prometheus and Alertmanager", () => {
  const token = randomBytes(16).toString("hex");
  const posts: Post[] = [];
  let gauge: Awaited<ReturnType<typeof exporter>>;
  let alertmanager: Alertmanager;
  let prometheus: Prometheus;
  let config: PrometheusConfig;

  // Builds Prometheus and Alertmanager on first use (minutes; `control-plane assets` does it ahead in CI).
  beforeAll(async () => {
    const log = (line: string) => process.stderr.write(`[monitoring] ${line}\n`);
    gauge = await exporter();
    const receiver = await listen(async (req, res) => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      posts.push({ authorization: req.headers.authorization, payload: JSON.parse(Buffer.concat(chunks).toString()) });
      res.end();
    });
    alertmanager = await Alertmanager.start({ webhookUrl: `http://${receiver}/alerts`, bearerToken: token }, log);
    config = { scrapeJobs: { exporter: [gauge.address] }, ruleFiles: [RULES], alertmanagerUrl: alertmanager.url };
    prometheus = await Prometheus.start(config, log);
  });
  afterAll(async () => {
    await prometheus?.stop();
    await alertmanager?.stop();
  });

  test("Prometheus scrapes the exporter", async () => {
    gauge.set(0.5);
    await waitUntil(
      "Prometheus to scrape test_value 0.5",
      async () => (await prometheus.query(`test_value{job="exporter"}`))[0]?.value === 0.5,
      WAIT,
    );
  });

  test("a firing alert is posted to the webhook with the bearer token, then its resolution", async () => {
    const postOf = (status: string) => () => posts.find((p) => p.payload.status === status);
    gauge.set(5);
    const firing = await waitUntil("Alertmanager to post the firing alert", postOf("firing"), WAIT);
    expect(firing.authorization).toBe(`Bearer ${token}`);
    expect(firing.payload).toMatchObject({ version: "4", status: "firing", receiver: "webhook" });
    expect(firing.payload.alerts).toEqual([
      expect.objectContaining({ status: "firing", labels: expect.objectContaining({ alertname: "TestValueHigh" }) }),
    ]);

    gauge.set(0);
    const resolved = await waitUntil("Alertmanager to post the resolved alert", postOf("resolved"), WAIT);
    expect(resolved.authorization).toBe(`Bearer ${token}`);
    expect(resolved.payload.alerts).toEqual([
      expect.objectContaining({ status: "resolved", labels: expect.objectContaining({ alertname: "TestValueHigh" }) }),
    ]);
  });

  test("reconfiguring adds a scrape target", async () => {
    const second = await exporter();
    second.set(7);
    await prometheus.reconfigure({ ...config, scrapeJobs: { ...config.scrapeJobs, second: [second.address] } });
    await waitUntil(
      "Prometheus to scrape the exporter added",
      async () => (await prometheus.query(`test_value{job="second"}`))[0]?.value === 7,
      WAIT,
    );
  });
});
