# syntax=docker/dockerfile:1
# The operator image: the Python package with its console scripts (pyproject.toml):
#   modeldeploy-operator   the kopf operator (the Helm chart's Deployment; the default CMD)
#   kubectl-modeldeploy    the kubectl plugin (also installed on users' machines with pip)
# The traffic sidecar is the Rust binary in its own image (sidecar/Dockerfile), and the model is
# a separate image built by `bentoml containerize` (docs/packaging.md).
#
#   docker build -t ghcr.io/modeldeploy/modeldeploy:0.1.0 .
#
# Runs as the numeric non-root user 65532 with a read-only root filesystem (writes only to the
# /tmp emptyDir the chart and the planner mount).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/modeldeploy
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY contract/modeldeploy/ contract/modeldeploy/
COPY operator/ operator/
RUN /opt/modeldeploy/bin/pip install . \
 && /opt/modeldeploy/bin/modeldeploy-operator --help >/dev/null \
 && /opt/modeldeploy/bin/kubectl-modeldeploy --help >/dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="modeldeploy" \
      org.opencontainers.image.description="modeldeploy operator (entry points: modeldeploy-operator, kubectl-modeldeploy)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/modeldeploy/modeldeploy"
RUN groupadd --system --gid 65532 modeldeploy \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin modeldeploy
COPY --from=build /opt/modeldeploy /opt/modeldeploy
ENV PATH=/opt/modeldeploy/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# 8000: operator /metrics, 8080: operator /healthz
EXPOSE 8000 8080
USER 65532:65532
CMD ["modeldeploy-operator"]
