import { INVALID_SPEC, type QuantumBackend } from "../../crds/quantumbackend.ts";
import { OPERATOR_NAMESPACE } from "../../runtime/identity.ts";
import { type QpuProvider, providers } from "../../quantum/providers/index.ts";
import type { Cache } from "../../runtime/cache.ts";
import { SecretKind } from "../../runtime/kinds.ts";
import type { KubeObject } from "../../runtime/objects.ts";

type Secret = KubeObject & { data?: Record<string, string> };

export type RemoteAccess = { provider: QpuProvider } | { reason: string; message: string };

/**
 * Providers by backend, rebuilt only when the backend's spec or its credentials change, so a provider's cached
 * bearer token serves every call in between.
 */
const built = new Map<string, { fingerprint: string; provider: QpuProvider }>();

export const INCOMPLETE_REMOTE_SPEC = { reason: "InvalidSpec", message: INVALID_SPEC.remoteIncomplete };

export function credentialsRef(backend: QuantumBackend): { namespace: string; name: string } | undefined {
  const ref = backend.spec.execution?.credentialsSecretRef;
  return ref && { namespace: ref.namespace ?? OPERATOR_NAMESPACE, name: ref.name };
}

/** The provider client of a Remote backend, or why there is none (a reason and a message a human can act on). */
export function remoteAccess(backend: QuantumBackend, cache: Cache): RemoteAccess {
  const exec = backend.spec.execution;
  const factory = exec.provider ? providers[exec.provider] : undefined;
  const ref = credentialsRef(backend);
  if (!factory || !ref) return INCOMPLETE_REMOTE_SPEC;
  const secret = cache.get<Secret>(SecretKind, ref.namespace, ref.name);
  if (!secret)
    return {
      reason: "MissingCredentials",
      message: `Secret ${ref.namespace}/${ref.name} does not exist; create it with the keys ${factory.requiredCredentials.join(", ")}.`,
    };
  const missing = factory.requiredCredentials.filter((k) => !secret.data?.[k]);
  if (missing.length)
    return {
      reason: "MissingCredentials",
      message: `Secret ${ref.namespace}/${ref.name} lacks the keys ${missing.join(", ")}.`,
    };
  // The uid too: a backend deleted and made again under the same name may point at another device.
  const fingerprint = `${backend.metadata.uid}/${backend.metadata.generation}/${secret.metadata.resourceVersion}`;
  const name = backend.metadata.name;
  const cached = built.get(name);
  if (cached?.fingerprint === fingerprint) return { provider: cached.provider };
  const credentials = Object.fromEntries(
    Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8").trim()]),
  );
  const provider = factory.create({
    endpoint: exec.endpoint,
    authEndpoint: exec.authEndpoint,
    backend: exec.device ?? name,
    credentials,
  });
  built.set(name, { fingerprint, provider });
  return { provider };
}

export function forgetRemote(backend: string): void {
  built.delete(backend);
}
