# syntax=docker/dockerfile:1
# Damselfly image: one image for every role (scheduler, seed peer, daemon, `get`); the subcommand is
# the container's first argument, e.g. `docker run damselfly:0.1.0 scheduler --listen 0.0.0.0`.
# The TypeScript sources run through tsx at run time (tsx is a production dependency), so there is no
# compile step: the build stage only installs the production dependencies from the lockfile.
# Pin NODE_IMAGE by digest (node:20-bookworm-slim@sha256:…) for byte-for-byte reproducible builds.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no production dependency needs an install script (esbuild, under tsx, finds its
# platform binary package without its postinstall), and none should run during a build.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
# A fixed numeric uid/gid so Kubernetes can check runAsNonRoot and the manifests can match it.
RUN groupadd --system --gid 10001 damselfly \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/damselfly --shell /usr/sbin/nologin damselfly \
 && mkdir -p /var/lib/damselfly \
 && chown 10001:10001 /var/lib/damselfly
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json ./
COPY core ./core
COPY sim ./sim
COPY runtime ./runtime
COPY scenarios ./scenarios
USER 10001:10001
# 8002: scheduler; 65001: daemon API, piece uploads (and, later, the registry mirror).
EXPOSE 8002 65001
ENTRYPOINT ["node", "runtime/bin/damselfly.mjs"]
CMD ["--help"]
