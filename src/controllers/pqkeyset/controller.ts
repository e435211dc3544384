import { availableParallelism } from "node:os";
import { MIN_ROTATION_PERIOD, type PQKeySet, PQKeySetKind, ROTATE_ANNOTATION } from "../../crds/pqkeyset.ts";
import { parseDuration } from "../../crds/duration.ts";
import { algorithm } from "../../pq/algorithms.ts";
import type { KeygenRequest, KeygenResult } from "../../pq/rotation-keys.ts";
import { isConflict } from "../../runtime/client.ts";
import { jsonEqual } from "../../runtime/conditions.ts";
import { type ReconcileContext, defineController } from "../../runtime/controller.ts";
import { TerminalError } from "../../runtime/errors.ts";
import { ConfigMapKind, type KindRef, SecretKind } from "../../runtime/kinds.ts";
import { type KubeObject, controllerOwnerRef, isControlledBy, objectKey } from "../../runtime/objects.ts";
import { metaTime } from "../../runtime/time.ts";
import { WorkerPool, siblingModule } from "../../runtime/worker-pool.ts";
import { pqKeySetMetrics } from "./metrics.ts";
import { publicData } from "./publish.ts";
import {
  type ConfigMap,
  KEYSET_LABEL,
  type KeyState,
  type Secret,
  readKeyState,
  secretAnnotations,
  secretData,
} from "./secret-state.ts";

const FINALIZER = "nextgen.itechsmart.io/retain-children";
const CHILD_NAME_INDEX = "pqkeyset-child-names";
const MIN_ROTATION_PERIOD_MS = parseDuration(MIN_ROTATION_PERIOD);

let pool: WorkerPool<KeygenRequest, KeygenResult> | undefined;
// Two threads keep key generation off the event loop, use a second core, and let a fast key not wait behind a
// slow SLH-DSA one; more would mostly cost memory (a pod sees the node's cores, not its CPU limit). Threads exit
// when idle, and key generation allocates little, so a small young generation keeps each one's heap small.
const keygen = () =>
  (pool ??= new WorkerPool(siblingModule(import.meta.url, "../../pq/keygen-worker"), {
    size: Math.min(2, availableParallelism()),
    idleMs: 30_000,
    resourceLimits: { maxYoungGenerationSizeMb: 8 },
  }));

const names = (ks: PQKeySet) => ({
  secret: ks.spec.secretName ?? ks.metadata.name,
  configMap: ks.spec.publicKeys?.configMapName ?? `${ks.metadata.name}-public`,
});
const childKey = (kind: KindRef, namespace: string | undefined, name: string) => `${namespace}/${kind.plural}/${name}`;

/**
 * Keeps a PQKeySet's Secret holding a current, self-tested key pair (and its retained predecessors), rotates on
 * schedule or on demand, and publishes the public keys. The Secret is the source of truth: a rotation is one
 * Secret write guarded by resourceVersion, and everything else (ConfigMap, status) is derived from it.
 */
export const pqKeySetController = defineController<PQKeySet>({
  name: "pqkeyset",
  for: PQKeySetKind,
  // Secrets and ConfigMaps are watched by name rather than by owner, so that a conflicting object's removal
  // (one this key set does not own) also brings the key set back.
  watches: [SecretKind, ConfigMapKind].map((kind) => ({
    kind,
    map: (obj: KubeObject, cache) =>
      cache
        .byIndex(PQKeySetKind, CHILD_NAME_INDEX, childKey(kind, obj.metadata.namespace, obj.metadata.name))
        .map(objectKey),
  })),
  rbac: [
    { apiGroups: [""], resources: ["secrets"], verbs: ["create", "update", "patch"] },
    { apiGroups: [""], resources: ["configmaps"], verbs: ["create", "update", "patch"] },
  ],
  maxConcurrentReconciles: 4,
  setup(cache) {
    cache.informer<PQKeySet>(PQKeySetKind).addIndex(CHILD_NAME_INDEX, (ks) => {
      const n = names(ks);
      return [
        childKey(SecretKind, ks.metadata.namespace, n.secret),
        childKey(ConfigMapKind, ks.metadata.namespace, n.configMap),
      ];
    });
  },

  metrics: pqKeySetMetrics,
  async reconcile(ctx, ks) {
    if (ks.metadata.deletionTimestamp) return releaseChildren(ctx, ks);
    ks =
      ks.spec.deletionPolicy === "Retain"
        ? await ctx.addFinalizer(ks, FINALIZER)
        : await ctx.removeFinalizer(ks, FINALIZER);
    const status = ctx.status(ks);
    const periodMs = parseDuration(ks.spec.rotationPeriod);
    // The schema's rule rejects most such periods; this check covers the rest and objects stored before the rule.
    if (periodMs < MIN_ROTATION_PERIOD_MS) {
      const message = `spec.rotationPeriod ${ks.spec.rotationPeriod} is shorter than the minimum of ${MIN_ROTATION_PERIOD}.`;
      status.condition("Ready", "False", "InvalidSpec", message);
      throw new TerminalError("InvalidSpec", message);
    }
    const n = names(ks);

    const secret = ctx.cache.get<Secret>(SecretKind, ks.metadata.namespace, n.secret);
    const configMap = ctx.cache.get<ConfigMap>(ConfigMapKind, ks.metadata.namespace, n.configMap);
    for (const [kind, child] of [
      ["Secret", secret],
      ["ConfigMap", configMap],
    ] as const) {
      if (child && !isControlledBy(child, ks)) {
        const message = `${kind} ${child.metadata.name} exists and is not owned by this PQKeySet; it is left untouched. Delete it or choose another name.`;
        status.condition("Ready", "False", "SecretConflict", message);
        ctx.events.warning(ks, "SecretConflict", message);
        return;
      }
    }

    let state: KeyState | undefined;
    if (secret) {
      try {
        state = readKeyState(secret);
      } catch (e) {
        const message = `Secret ${n.secret} does not hold a readable key set (${(e as Error).message}); it is left untouched.`;
        status.condition("Ready", "False", "InvalidSecret", message);
        throw new TerminalError("InvalidSecret", message);
      }
    }

    const due = state ? rotationDue(ks, state, periodMs, ctx.now) : "Initial";
    if (ks.spec.suspend) {
      status.condition(
        "Ready",
        state ? "True" : "False",
        "Suspended",
        state ? "Rotation is suspended; the current key stays published." : "Suspended before any key was generated.",
      );
    }
    if (due && !ks.spec.suspend) state = await rotate(ctx, ks, secret, state, due);
    else if (state) await syncSecret(ctx, ks, secret as Secret, state);
    if (!state) return;

    await ctx.apply<ConfigMap>(
      ConfigMapKind,
      {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: n.configMap, namespace: ks.metadata.namespace, labels: { [KEYSET_LABEL]: ks.metadata.name } },
        data: publicData(state),
      },
      { owner: ks },
    );

    const current = state.keys[0] as KeyState["keys"][number];
    const nextRotation = new Date(Date.parse(current.createdAt) + periodMs);
    status.set({
      currentKeyId: current.keyId,
      shortKeyId: current.keyId.slice(0, 12),
      revision: state.revision,
      keys: state.keys.map((k, i) => ({
        keyId: k.keyId,
        state: i === 0 ? "Active" : "Retained",
        createdAt: k.createdAt,
      })),
      lastRotationTime: current.createdAt,
      nextRotationTime: ks.spec.suspend ? undefined : metaTime(nextRotation),
      failedAttempts: 0,
    });
    if (!ks.spec.suspend) {
      status.condition(
        "Ready",
        "True",
        "KeysCurrent",
        `Key ${current.keyId} (${state.algorithm}) is current and published in ConfigMap ${n.configMap}.`,
      );
      pqKeySetMetrics(ctx.registry).nextRotation.set(
        { namespace: ks.metadata.namespace as string, name: ks.metadata.name },
        nextRotation.getTime() / 1000,
      );
      return { requeueAfterMs: Math.max(1000, nextRotation.getTime() - Date.now()) };
    }
  },
});

/** Why the key set must rotate now, or undefined. */
function rotationDue(ks: PQKeySet, state: KeyState, periodMs: number, now: Date): string | undefined {
  const forced = ks.metadata.annotations?.[ROTATE_ANNOTATION];
  if (state.algorithm !== ks.spec.algorithm) return "AlgorithmChanged";
  if (forced !== undefined && forced !== state.rotateHandled) return "Forced";
  if (now.getTime() >= Date.parse((state.keys[0] as KeyState["keys"][number]).createdAt) + periodMs) return "Scheduled";
  return undefined;
}

/** Generates the next key off the event loop and commits it with one Secret write guarded by resourceVersion. */
async function rotate(
  ctx: ReconcileContext,
  ks: PQKeySet,
  secret: Secret | undefined,
  state: KeyState | undefined,
  reason: string,
): Promise<KeyState> {
  const metrics = pqKeySetMetrics(ctx.registry);
  const status = ctx.status(ks);
  const createdAt = metaTime(ctx.now);
  const previous = state?.keys[0];
  const signs = algorithm(ks.spec.algorithm).use === "sig" && previous?.algorithm === ks.spec.algorithm;
  let generated: KeygenResult;
  try {
    generated = await keygen().run({
      algorithm: ks.spec.algorithm,
      createdAt,
      signedBy: signs && previous ? { keyId: previous.keyId, privatePem: previous.privatePem } : undefined,
    });
  } catch (e) {
    const failed = (ks.status?.failedAttempts ?? 0) + 1;
    const message = `Generating a ${ks.spec.algorithm} key failed (attempt ${failed}): ${(e as Error).message}`;
    status.set({ failedAttempts: failed }).condition("Ready", "False", "KeyGenerationFailed", message);
    ctx.events.warning(ks, "KeyGenerationFailed", message);
    throw new Error(message);
  }
  metrics.keygenSeconds.observe({ algorithm: ks.spec.algorithm }, generated.seconds);

  const keys = [{ ...generated.pair, createdAt }, ...(state?.keys ?? [])].slice(0, 1 + ks.spec.retainPrevious);
  const next: KeyState = {
    algorithm: ks.spec.algorithm,
    revision: (state?.revision ?? 0) + 1,
    rotateHandled: ks.metadata.annotations?.[ROTATE_ANNOTATION] ?? state?.rotateHandled ?? "",
    keys,
    succession: keptSuccession(
      [...(generated.succession ? [generated.succession] : []), ...(state?.succession ?? [])],
      keys,
    ),
  };
  await writeSecret(ctx, ks, secret, next);
  metrics.rotations.inc({ algorithm: ks.spec.algorithm, reason });
  ctx.events.normal(ks, "Rotated", `Rotated (${reason}) to key ${generated.pair.keyId}; revision ${next.revision}.`);
  ctx.log.info("rotated", {
    reason,
    keyId: generated.pair.keyId,
    revision: next.revision,
    algorithm: ks.spec.algorithm,
  });
  return next;
}

/** Prunes keys beyond retainPrevious and keeps the Secret's labels and annotations as the template says. */
async function syncSecret(ctx: ReconcileContext, ks: PQKeySet, secret: Secret, state: KeyState): Promise<void> {
  const keys = state.keys.slice(0, 1 + ks.spec.retainPrevious);
  const pruned: KeyState = { ...state, keys, succession: keptSuccession(state.succession, keys) };
  const desired = secretObject(ks, secret, pruned);
  const same =
    jsonEqual(desired.data, secret.data) &&
    jsonEqual(desired.metadata.labels, secret.metadata.labels) &&
    jsonEqual(desired.metadata.annotations, secret.metadata.annotations);
  if (same) return;
  await writeSecret(ctx, ks, secret, pruned);
  Object.assign(state, pruned);
}

/** Succession statements about keys still published. */
function keptSuccession(statements: KeyState["succession"], keys: KeyState["keys"]): KeyState["succession"] {
  const published = new Set(keys.map((k) => k.keyId));
  return statements.filter((s) => published.has(JSON.parse(s.statement).keyId));
}

function secretObject(ks: PQKeySet, existing: Secret | undefined, state: KeyState): Secret {
  const template = ks.spec.secretTemplate ?? {};
  return {
    apiVersion: "v1",
    kind: "Secret",
    type: "Opaque",
    metadata: {
      ...(existing?.metadata ?? {}),
      managedFields: undefined,
      name: names(ks).secret,
      namespace: ks.metadata.namespace,
      labels: { ...existing?.metadata.labels, ...template.labels, [KEYSET_LABEL]: ks.metadata.name },
      annotations: { ...existing?.metadata.annotations, ...template.annotations, ...secretAnnotations(state) },
      ownerReferences: [controllerOwnerRef(PQKeySetKind, ks)],
    },
    data: secretData(state),
  };
}

/** Creates the Secret, or replaces it guarded by the resourceVersion the decision was made on. */
async function writeSecret(
  ctx: ReconcileContext,
  ks: PQKeySet,
  existing: Secret | undefined,
  state: KeyState,
): Promise<void> {
  const obj = secretObject(ks, existing, state);
  try {
    if (existing) await ctx.client.update(SecretKind, obj);
    else await ctx.client.create(SecretKind, obj);
  } catch (e) {
    // Someone wrote the Secret since the cache was read: decide again on what is there now.
    if (isConflict(e)) throw new Error(`Secret ${obj.metadata.name} changed meanwhile; retrying on its new content`);
    throw e;
  }
}

/** deletionPolicy Retain: the Secret and ConfigMap lose their owner reference, then the finalizer goes. */
async function releaseChildren(ctx: ReconcileContext, ks: PQKeySet): Promise<void> {
  if (!ks.metadata.finalizers?.includes(FINALIZER)) return;
  const n = names(ks);
  for (const [kind, name] of [
    [SecretKind, n.secret],
    [ConfigMapKind, n.configMap],
  ] as const) {
    const child = ctx.cache.get(kind, ks.metadata.namespace, name);
    if (!child || !isControlledBy(child, ks)) continue;
    const ownerReferences = (child.metadata.ownerReferences ?? []).filter((r) => r.uid !== ks.metadata.uid);
    await ctx.client.patch(kind, ks.metadata.namespace, name, "merge", {
      metadata: {
        resourceVersion: child.metadata.resourceVersion,
        ownerReferences: ownerReferences.length ? ownerReferences : null,
      },
    });
  }
  await ctx.removeFinalizer(ks, FINALIZER);
  ctx.log.info("released the Secret and ConfigMap (deletionPolicy Retain)");
}
