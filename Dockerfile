# actionq: the server image (default target) and the agent image (--target agent).
#   docker build -t actionq-server .
#   docker build -t actionq-agent --target agent .
# Configuration by environment (docs/contract/deployment.md): ACTIONQ_API_KEY or
# ACTIONQ_API_KEY_FILE, ACTIONQ_DATABASE or ACTIONQ_DATABASE_FILE (default: a
# SQLite file in the /data volume), ACTIONQ_ALLOWED_HOSTS, ACTIONQ_WHITELIST,
# ACTIONQ_SIGNING_KEY_FILE, ACTIONQ_LOG_FORMAT (json by default here),
# ACTIONQ_TLS_CERT and ACTIONQ_TLS_KEY (https; the health check follows, on
# loopback, where the certificate's name is not checked).

# --- build: the Python wheel (server included) and the agent, release mode ---
FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/maturin && /opt/maturin/bin/pip install --no-cache-dir "maturin>=1.16,<2"
WORKDIR /src
COPY . .
RUN cargo fetch --locked
RUN /opt/maturin/bin/maturin build --release --locked --out /dist \
 && cargo build --release --locked -p actionq-agent \
 && cp target/release/actionq-agent /dist/ \
 && rm -rf target
# Last, so a cache hit costs nothing: marks this project's images for
# `docker image prune --filter label=io.actionq.image` (mk/containers.mk).
LABEL io.actionq.image=build

# --- server: Python and the wheel, no compiler ---
FROM debian:bookworm-slim AS server
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /dist/*.whl /tmp/wheels/
RUN python3 -m venv /opt/actionq \
 && /opt/actionq/bin/pip install --no-cache-dir "$(ls /tmp/wheels/actionq-*.whl)[server]" \
 && rm -rf /tmp/wheels
RUN groupadd --system --gid 10001 actionq \
 && useradd --system --uid 10001 --gid actionq --home-dir /data --shell /usr/sbin/nologin actionq \
 && mkdir /data && chown actionq:actionq /data && chmod 0700 /data
ENV PATH=/opt/actionq/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    ACTIONQ_HOST=0.0.0.0 \
    ACTIONQ_PORT=8080 \
    ACTIONQ_DATABASE=/data/actionq.sqlite3 \
    ACTIONQ_LOG_FORMAT=json
USER actionq
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python3", "-c", "import os, ssl, sys, urllib.request; tls = bool(os.environ.get('ACTIONQ_TLS_CERT')); sys.exit(urllib.request.urlopen(f\"{'https' if tls else 'http'}://127.0.0.1:{os.environ.get('ACTIONQ_PORT', '8080')}/healthz\", timeout=2, context=ssl._create_unverified_context() if tls else None).status != 200)"]
ENTRYPOINT ["actionq-server"]
LABEL io.actionq.image=server

# --- agent: the static-enough agent binary on a plain Debian ---
FROM debian:bookworm-slim AS agent
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /dist/actionq-agent /usr/local/bin/actionq-agent
COPY agent/actionq-agent.service /usr/share/doc/actionq-agent/
ENTRYPOINT ["actionq-agent"]
CMD ["--config", "/etc/actionq-agent/config.toml"]
LABEL io.actionq.image=agent

# The server is the default target (the last stage).
FROM server
