# riskdesk: one image for every service, the worker and the migration job (`riskdesk <command>`).
# Build: docker build -t riskdesk .    Run: docker run riskdesk serve gateway

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/riskdesk
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the pins change.
COPY requirements.lock ./
RUN /opt/riskdesk/bin/pip install -r requirements.lock
COPY pyproject.toml ./
COPY riskdesk ./riskdesk
COPY services ./services
COPY workflows ./workflows
RUN /opt/riskdesk/bin/pip install --no-deps .

FROM python:3.11-slim AS runtime
ENV PATH=/opt/riskdesk/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    RISKDESK_DATA_DIR=/var/lib/riskdesk
RUN groupadd --system riskdesk && useradd --system --gid riskdesk --home /var/lib/riskdesk riskdesk \
    && mkdir -p /var/lib/riskdesk && chown riskdesk:riskdesk /var/lib/riskdesk
COPY --from=build /opt/riskdesk /opt/riskdesk
USER riskdesk
WORKDIR /var/lib/riskdesk
EXPOSE 8000 8001 8002 8003
ENTRYPOINT ["riskdesk"]
CMD ["--help"]
