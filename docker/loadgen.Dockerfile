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
# The project itself with the Locust front end (the [locust] extra: Locust 2.x, gevent); its dependencies
# are bounded in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[locust]" \
 && useradd --create-home --uid 1000 rig \
 && mkdir -p /results && chown rig /results
USER 1000
# Live Prometheus metrics of a running `loadgen run` or Locust master (scraped by the prometheus service);
# Locust's web UI and its master's port for workers (the locust-master service).
EXPOSE 9400 8089 5557
ENTRYPOINT ["loadgen"]
CMD ["--help"]
