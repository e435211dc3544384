import { describe, expect, test } from "vitest";
import { endpointAllowed, endpointProblem, parseAllowedEndpoints } from "../../src/controllers/shared/endpoints.ts";

describe("allowed endpoints", () => {
  const allowed = parseAllowedEndpoints([
    "http://prometheus.monitoring:9090",
    "https://api.electricitymaps.com",
    "http://127.0.0.1:*",
    "http://gateway.monitoring/prometheus",
  ]);

  test("a URL under an entry passes: same scheme, host, port (default or any) and path prefix", () => {
    for (const url of [
      "http://prometheus.monitoring:9090",
      "http://prometheus.monitoring:9090/",
      "http://PROMETHEUS.monitoring:9090/api/v1/query",
      "https://api.electricitymaps.com:443/v3",
      "http://127.0.0.1:41234",
      "http://gateway.monitoring/prometheus",
      "http://gateway.monitoring:80/prometheus/api/v1/query",
    ])
      expect(endpointAllowed(allowed, url), url).toBe(true);
  });

  test("look-alikes do not pass: another scheme, port, host, path, userinfo or a path escaping by ..", () => {
    for (const url of [
      "https://prometheus.monitoring:9090",
      "http://prometheus.monitoring:9091",
      "http://prometheus.monitoring",
      "http://prometheus.monitoring.evil.example:9090",
      "http://prometheus.monitoring:9090@169.254.169.254/",
      "http://user@prometheus.monitoring:9090/",
      "http://api.electricitymaps.com",
      "https://api.electricitymaps.com:8443",
      "http://127.0.0.2:41234",
      "http://gateway.monitoring/prometheus-admin",
      "http://gateway.monitoring/prometheus/../admin",
      "http://gateway.monitoring/",
      "not a url",
    ])
      expect(endpointAllowed(allowed, url), url).toBe(false);
  });

  test("entries that are not http(s) URL prefixes are refused, naming the entry", () => {
    expect(() => parseAllowedEndpoints(["prometheus:9090"])).toThrow(/"prometheus:9090": only http and https/);
    expect(() => parseAllowedEndpoints(["http://"])).toThrow(/"http:\/\/" is not a URL prefix/);
    expect(() => parseAllowedEndpoints(["http://a/?x=1"])).toThrow(/no userinfo, query or fragment/);
    expect(() => parseAllowedEndpoints(["http://u:p@a"])).toThrow(/no userinfo, query or fragment/);
  });

  test("the problem names the field, the URL and the flag with its value; nothing denied, none", () => {
    expect(endpointProblem([{ field: "spec.prometheus.url", url: "http://prometheus.monitoring:9090" }], allowed)).toBe(
      undefined,
    );
    expect(endpointProblem([], [])).toBe(undefined);
    const p = endpointProblem(
      [
        { field: "spec.prometheus.url", url: "http://prometheus.monitoring:9090" },
        { field: "spec.alertmanager.url", url: "http://169.254.169.254" },
      ],
      allowed,
    );
    expect(p?.reason).toBe("EndpointNotAllowed");
    expect(p?.message).toContain("spec.alertmanager.url http://169.254.169.254 is not among");
    expect(p?.message).toContain(
      "--allowed-endpoints=http://prometheus.monitoring:9090,https://api.electricitymaps.com,",
    );
    expect(endpointProblem([{ field: "f", url: "http://x" }], [])?.message).toContain("--allowed-endpoints=(none)");
  });
});
