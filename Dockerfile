# syntax=docker/dockerfile:1
# The operator image: compiled JavaScript on the official Node 24 image. The major is pinned so a rebuild never
# moves the runtime to another Node major behind our back; override NODE_IMAGE to pin a digest.
ARG NODE_IMAGE=node:24-bookworm-slim

# --- build: every dependency (TypeScript included), then tsc → dist/ ---
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# onnxruntime-node's postinstall downloads CUDA binaries unless told to skip; the CPU runtime ships in the package.
ENV ONNXRUNTIME_NODE_INSTALL=skip
# Manifests first, so the npm ci layer is reused until the lockfile changes.
COPY package.json package-lock.json .npmrc ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- prod-deps: production dependencies only, in their own stage so npm's cache never reaches the final image ---
FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc ./
# --omit=dev also leaves out the `node` devDependency (a second Node binary from npm): the image's own node runs us.
RUN npm ci --omit=dev

# --- final: dist/, production node_modules and package.json (its "type": "module" makes dist/*.js ES modules) ---
FROM ${NODE_IMAGE}
WORKDIR /app
ENV NODE_ENV=production
# A small young generation: the operator allocates many short-lived objects (watch events, JSON), and V8's default
# semi-spaces would let the RSS grow by well over 100 MB of garbage. A bounded old generation: V8 sizes it from
# the memory it sees (the container's limit, else the host's), and with a large host's it lets the heap grow to
# four times what is live before collecting (10 000 Nodes: 53 MB live, 183 MB of heap pages); bounded at 256 MB,
# what the Deployment's 384Mi limit would give it, by 1.3 times. Set here, it is the same on any host, and the
# benchmarks measure what the pod runs. Raise it with the memory limit (README, Sizing). npm run bench runs the
# operator with these.
ENV NODE_OPTIONS="--max-semi-space-size=2 --max-old-space-size=256"
# glibc gives threads their own malloc arenas (up to eight per core), each keeping what was freed in it; the
# operator's threads (libuv's pool, V8's compiler and GC helpers, key generation) do well with two.
ENV MALLOC_ARENA_MAX=2
# Root-owned and read-only to the runtime user: the process cannot rewrite its own code.
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# 65532 is the conventional "nonroot" id (distroless, kubebuilder); numeric so runAsNonRoot can verify it.
USER 65532:65532
# 8080: /metrics; 8081: /healthz and /readyz; 8082: Alertmanager's webhook, when a token file is given.
EXPOSE 8080 8081 8082
ENTRYPOINT ["node", "dist/cli/main.js"]
CMD ["run"]
