# syntax=docker/dockerfile:1
#
# slipway's container image: `slipway run` (the GitOps controller), configured entirely by
# SLIPWAY_* environment variables (see the README: "Settings" and "Running slipway on ECS or EKS").
#
#   docker build -t slipway .
#   docker run --rm -e SLIPWAY_REPO=https://gitlab.example.com/platform/pipelines.git \
#              -e SLIPWAY_GIT_TOKEN=... -e AWS_REGION=eu-west-1 -p 8080:8080 slipway
#
# tests/deploy_assets.rs builds the release binary with exactly the `cargo build` command below
# (and fails if the two differ), then runs `slipway --version` and `slipway validate` with it.

# ---- build ------------------------------------------------------------------------------------
# Cargo.toml asks for Rust >= 1.94 (edition 2024); the floating `1` tag is always newer.
FROM rust:1-bookworm AS build
# git2 is built with its HTTPS (OpenSSL) and SSH (vendored libssh2 on OpenSSL) back ends.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends pkg-config libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
COPY src ./src
# The target directory and the registry are cache mounts (fast rebuilds), so the binary is
# copied out of it in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin slipway \
 && install -D -m 0755 target/release/slipway /out/slipway

# ---- run --------------------------------------------------------------------------------------
FROM debian:bookworm-slim
# libssl3: git2's HTTPS and SSH back ends (the AWS SDK uses rustls); ca-certificates: HTTPS to
# Git hosts. zlib and libgcc are already part of the base image. No git, ssh or curl: git2 speaks
# the protocols itself, and health checks use `slipway status` or the orchestrator's HTTP probe.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 slipway \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/slipway --no-create-home --shell /usr/sbin/nologin slipway \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/slipway /etc/slipway/ssh
COPY --from=build /out/slipway /usr/local/bin/slipway

# The Git checkout lives in /var/lib/slipway: mount a volume there when the root filesystem is
# read-only (ECS readonlyRootFilesystem, Kubernetes readOnlyRootFilesystem). It is a VOLUME owned
# by uid 10001 because ECS copies a VOLUME's ownership into the task's bind mount at the same
# path; without that, a Fargate volume is root-owned 0755 and not writable for a non-root user.
# SSH host keys come from the file SLIPWAY_KNOWN_HOSTS names (/etc/slipway/ssh is the place to
# mount one, as the Helm chart does from a ConfigMap) or from SLIPWAY_KNOWN_HOSTS_DATA (ECS).
ENV SLIPWAY_WORKDIR=/var/lib/slipway \
    SLIPWAY_LISTEN=0.0.0.0:8080 \
    SLIPWAY_LOG=info \
    SLIPWAY_LOG_FORMAT=json
VOLUME ["/var/lib/slipway"]
WORKDIR /var/lib/slipway
USER 10001:10001
EXPOSE 8080
# No HEALTHCHECK: orchestrators probe GET /healthz (liveness) and /readyz (readiness) themselves.
ENTRYPOINT ["slipway", "run"]
