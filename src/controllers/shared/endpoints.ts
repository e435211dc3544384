/**
 * Which URLs a namespaced object may make the operator's pod send requests to (CarbonBudget's Kepler Prometheus,
 * Carbon Aware SDK and Electricity Maps; RemediationPolicy's Prometheus and Alertmanager). The operator's network
 * identity reaches what its pod can reach (cloud metadata, in-cluster services no tenant could reach itself), so a
 * URL a tenant names is asked only when the cluster's admin listed it with `run --allowed-endpoints`: an object
 * naming another is reported (EndpointNotAllowed) and nothing is sent. Pure: the controllers give the URLs.
 *
 * An entry is a URL prefix: scheme and host as a URL writes them, a port (none: the scheme's default; `*`: any), and
 * an optional path the URL's path must lie under, segment by segment. URLs are compared parsed, never as strings:
 * userinfo (`http://allowed@elsewhere`), a look-alike host (`http://allowed.elsewhere`) or `..` in the path do not
 * pass.
 */

export const ALLOWED_ENDPOINTS_FLAG = "--allowed-endpoints";
export const ENDPOINT_NOT_ALLOWED = "EndpointNotAllowed";

export interface AllowedEndpoint {
  /** The entry as the admin wrote it, for messages. */
  entry: string;
  protocol: string;
  hostname: string;
  /** The port as URL normalises it ("" for the scheme's default), or "*" for any. */
  port: string;
  /** The path prefix, ending in "/". */
  path: string;
}

/** The entries of `--allowed-endpoints`; throws with a message naming the entry when one is not a URL prefix. */
export function parseAllowedEndpoints(entries: string[]): AllowedEndpoint[] {
  return entries.map((entry) => {
    const anyPort = /^https?:\/\/[^/?#]+:\*(?=$|\/)/.exec(entry);
    let url: URL;
    try {
      url = new URL(anyPort ? entry.replace(":*", "") : entry);
    } catch {
      throw new Error(
        `"${entry}" is not a URL prefix such as https://api.example.com or http://prometheus.monitoring:9090`,
      );
    }
    if (url.protocol !== "http:" && url.protocol !== "https:")
      throw new Error(`"${entry}": only http and https endpoints are sent requests`);
    if (url.username || url.password || url.search || url.hash)
      throw new Error(`"${entry}": a prefix has no userinfo, query or fragment`);
    return {
      entry,
      protocol: url.protocol,
      hostname: url.hostname,
      port: anyPort ? "*" : url.port,
      path: url.pathname.endsWith("/") ? url.pathname : `${url.pathname}/`,
    };
  });
}

/** Whether a URL lies under one of the entries. */
export function endpointAllowed(allowed: AllowedEndpoint[], raw: string): boolean {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return false;
  }
  if (url.username || url.password) return false;
  const path = url.pathname.endsWith("/") ? url.pathname : `${url.pathname}/`;
  return allowed.some(
    (a) =>
      a.protocol === url.protocol &&
      a.hostname === url.hostname &&
      (a.port === "*" || a.port === url.port) &&
      path.startsWith(a.path),
  );
}

/** The allow list of this process: `run --allowed-endpoints` (see cli/run.ts); empty, nothing is sent. */
export const allowedEndpoints: AllowedEndpoint[] = [];

/**
 * The first of an object's URLs (field path and value) not allowed, as a condition's reason and message, or
 * undefined when all are (or there are none).
 */
export function endpointProblem(
  urls: Array<{ field: string; url: string }>,
  allowed: AllowedEndpoint[] = allowedEndpoints,
): { reason: string; message: string } | undefined {
  const denied = urls.find((u) => !endpointAllowed(allowed, u.url));
  if (!denied) return undefined;
  const list = allowed.length ? allowed.map((a) => a.entry).join(",") : "(none)";
  return {
    reason: ENDPOINT_NOT_ALLOWED,
    message:
      `${denied.field} ${denied.url} is not among the endpoints the operator may send requests to ` +
      `(${ALLOWED_ENDPOINTS_FLAG}=${list}); nothing was sent. The cluster's admin allows it by adding it to ` +
      `${ALLOWED_ENDPOINTS_FLAG} (Helm value allowedEndpoints).`,
  };
}
