import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadAll } from "js-yaml";
import { describe, expect, test } from "vitest";
import { DEFAULT_RUNNER_IMAGE } from "../../src/controllers/quantumjob/batch-job.ts";
import { OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT } from "../../src/runtime/identity.ts";

// config/manager and the Dockerfile are hand-written; these checks keep the hardening from being edited away.
const ROOT = join(import.meta.dirname, "..", "..");
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");

interface Probe {
  httpGet?: { path?: string; port?: number | string };
}
interface Container {
  name: string;
  image?: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath?: string } } }[];
  ports?: { name?: string; containerPort: number }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string }[];
  securityContext?: {
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { drop?: string[] };
  };
}
interface Doc {
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: {
    template?: {
      spec: {
        serviceAccountName?: string;
        securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type?: string } };
        containers: Container[];
        volumes?: { name: string; emptyDir?: object }[];
      };
    };
  };
}

const docs = loadAll(read("config/manager/manager.yaml")) as Doc[];
const deployment = docs.find((d) => d.kind === "Deployment");
const pod = deployment?.spec?.template?.spec;
const container = pod?.containers[0];

describe("config/manager/manager.yaml", () => {
  test("a Deployment of the operator in its namespace, with one container, runs as the generated ServiceAccount", () => {
    expect(deployment?.metadata).toMatchObject({ name: "nextgen-operator", namespace: OPERATOR_NAMESPACE });
    expect(pod?.containers).toHaveLength(1);
    expect(pod?.serviceAccountName).toBe(OPERATOR_SERVICE_ACCOUNT);
  });

  test("the pod runs as non-root with the runtime's default seccomp profile", () => {
    expect(pod?.securityContext?.runAsNonRoot).toBe(true);
    expect(pod?.securityContext?.runAsUser).toBeGreaterThan(0);
    expect(pod?.securityContext?.seccompProfile?.type).toBe("RuntimeDefault");
  });

  test("the container cannot escalate, write its root filesystem, or keep any capability", () => {
    const sc = container?.securityContext;
    expect(sc?.allowPrivilegeEscalation).toBe(false);
    expect(sc?.readOnlyRootFilesystem).toBe(true);
    expect(sc?.capabilities?.drop).toEqual(["ALL"]);
    // A read-only root needs a writable /tmp, backed by an emptyDir.
    const tmp = container?.volumeMounts?.find((m) => m.mountPath === "/tmp");
    expect(pod?.volumes?.find((v) => v.name === tmp?.name)?.emptyDir).toBeDefined();
  });

  test("liveness probes /healthz and readiness /readyz on the --health-probe-bind-address port", () => {
    const probeArg = container?.args?.find((a) => a.startsWith("--health-probe-bind-address="));
    const probePort = Number(probeArg?.split(":").pop());
    const port = (p: Probe | undefined) => {
      const ref = p?.httpGet?.port;
      return typeof ref === "number" ? ref : container?.ports?.find((x) => x.name === ref)?.containerPort;
    };
    expect(container?.livenessProbe?.httpGet?.path).toBe("/healthz");
    expect(container?.readinessProbe?.httpGet?.path).toBe("/readyz");
    expect(probePort).toBe(8081);
    expect(port(container?.livenessProbe)).toBe(probePort);
    expect(port(container?.readinessProbe)).toBe(probePort);
  });

  test("elects a leader, with the pod's name as its identity", () => {
    expect(container?.args?.slice(0, 1)).toEqual(["run"]);
    expect(container?.args).toContain("--leader-elect");
    const podName = container?.env?.find((e) => e.name === "POD_NAME");
    expect(podName?.valueFrom?.fieldRef?.fieldPath).toBe("metadata.name");
  });

  test("Job-mode quantum runners default to the operator's own image", () => {
    expect(container?.env?.find((e) => e.name === "NEXTGEN_RUNNER_IMAGE")?.value).toBe(container?.image);
    expect(DEFAULT_RUNNER_IMAGE).toBe(container?.image);
  });
});

describe("Dockerfile", () => {
  // Only the last stage becomes the image: the build stages may run as root and hold dev dependencies.
  const text = read("Dockerfile");
  const finalStage = text.split(/^FROM\s/m).at(-1) ?? "";
  const instructions = finalStage.split("\n").filter((l) => /^[A-Z]+\s/.test(l));

  test("the final stage runs as a numeric non-root user", () => {
    const users = instructions.filter((l) => l.startsWith("USER "));
    expect(users.length).toBeGreaterThan(0);
    const user = users.at(-1)?.slice(5).trim() ?? "";
    // Numeric, so the kubelet can check runAsNonRoot without resolving a name.
    expect(user).toMatch(/^\d+(:\d+)?$/);
    expect(Number(user.split(":")[0])).toBeGreaterThan(0);
  });

  test("the final stage copies dist/ and starts the compiled CLI", () => {
    expect(instructions.some((l) => /^COPY\s.*\bdist\/?\s/.test(l))).toBe(true);
    expect(instructions).toContain('ENTRYPOINT ["node", "dist/cli/main.js"]');
    expect(instructions).toContain('CMD ["run"]');
  });
});
