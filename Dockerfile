# syntax=docker/dockerfile:1
# One image for every role: ROLE picks what `microbank serve` boots (users, accounts, transactions,
# notifications, notifier, ui, all). Three stages: the UI, the wheels, and a slim runtime that holds
# only a virtualenv of wheels, the built UI and no compiler.
#
#   docker build -t microbank .
#   docker run --rm -e ROLE=all -p 8000:8000 microbank
#
# BASE_IMAGE and NODE_IMAGE name the Python and Node.js bases; deploy/image-smoke.sh points them at
# locally bootstrapped ones where no registry is reachable. Package mirrors reach the build through
# the standard variables (PIP_INDEX_URL, PIP_CERT, NPM_CONFIG_REGISTRY, ...) passed as --build-arg.
# checkov:skip=CKV_DOCKER_7: both bases are build arguments whose defaults carry a version tag
ARG BASE_IMAGE=python:3.12-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS ui
ARG NPM_CONFIG_REGISTRY
ARG NPM_CONFIG_CAFILE
WORKDIR /ui
# `ui*` copies ui/ when it exists and nothing when it does not; pyproject.toml only keeps COPY
# from failing on an empty match. The build runs only if there is an app to build.
COPY pyproject.toml ui* ./
RUN if [ -f package.json ]; then npm ci --no-audit --no-fund && npm run build; else mkdir -p dist; fi

FROM ${BASE_IMAGE} AS wheels
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_CERT
ARG PIP_DEFAULT_TIMEOUT=60
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY microbank ./microbank
COPY migrations ./migrations
# The runtime virtualenv, built here so the runtime stage needs neither pip's caches nor a compiler.
RUN python3 -m venv /opt/microbank \
    && /opt/microbank/bin/pip wheel --wheel-dir /wheels . \
    && /opt/microbank/bin/pip install --no-index --find-links /wheels microbank \
    && /opt/microbank/bin/pip uninstall --yes pip

FROM ${BASE_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG SOURCE=""
LABEL org.opencontainers.image.title="microbank" \
      org.opencontainers.image.description="A reference bank built as microservices: one image, booted by ROLE." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE}"
COPY --from=wheels /opt/microbank /opt/microbank
COPY --from=ui /ui/dist /opt/microbank/ui
ENV PATH=/opt/microbank/bin:$PATH \
    UI_DIST_DIR=/opt/microbank/ui \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    DATA_DIR=/tmp/microbank
# A numeric user, so that Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER 10001:10001
WORKDIR /tmp
EXPOSE 8000 8001 8002 8003 8004 8005 8080
# Kubernetes probes /healthz and /readyz; an image HEALTHCHECK would only duplicate them.
# checkov:skip=CKV_DOCKER_2: liveness and readiness are the orchestrator's probes (/healthz, /readyz)
ENTRYPOINT ["microbank"]
CMD ["serve"]
