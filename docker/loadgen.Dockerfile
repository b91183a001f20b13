# The load generator for the compose stack: slim, no torch, no transformers (its own dependencies only).
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    LOADGEN_METRICS_HOST=0.0.0.0
WORKDIR /app
COPY pyproject.toml README.md ./
COPY loadgen loadgen
# servers/ and stack/ for `loadgen selftest` (it starts servers.mock with stack.process); their heavy extras
# are not installed.
COPY servers servers
COPY stack stack
# The project itself; its base dependencies are bounded in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir . \
 && useradd --create-home --uid 1000 rig \
 && mkdir -p /results && chown rig /results
USER 1000
# Live Prometheus metrics of a running `loadgen run` (scraped by the prometheus service).
EXPOSE 9400
ENTRYPOINT ["loadgen"]
CMD ["--help"]
