# The load generator for the compose stack: slim, no torch, no transformers (its own dependencies only).
# Base: python:3.11-slim-bookworm, or on a machine without a registry the stand-in made from Debian packages
# (docker/cpu/standins.sh; the compose CPU flavour passes it). A venv, because Debian's own python3 refuses
# system-wide pip installs (PEP 668).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    LOADGEN_METRICS_HOST=0.0.0.0
WORKDIR /app
RUN python3 -m venv /opt/venv \
 && useradd --create-home --uid 1000 rig \
 && mkdir -p /results && chown rig /results
# Dependencies first (the build backend, the core, the [locust] extra: Locust 2.x, gevent; and the [triton] extra: the
# triton-grpc client kind's tritonclient; bounded in pyproject.toml), then the code: a code change reinstalls nothing else.
COPY pyproject.toml README.md ./
RUN --mount=type=bind,source=docker,target=/build --mount=type=secret,id=pip-cert \
    python3 -c "import tomllib; t = tomllib.load(open('pyproject.toml', 'rb')); p = t['project']; \
x = p['optional-dependencies']; print('\n'.join(t['build-system']['requires'] + p['dependencies'] + x['locust'] + x['triton']))" \
      > /tmp/requirements.txt \
 && sh /build/pip-install.sh -r /tmp/requirements.txt
COPY loadgen loadgen
# servers/ and stack/ for `loadgen selftest` (it starts servers.mock with stack.process); their heavy extras
# are not installed.
COPY servers servers
COPY stack stack
# The project itself with the Locust front end and the triton-grpc kind: pip install ".[locust,triton]" (their
# dependencies are installed above).
# hadolint ignore=DL3013
RUN pip install --no-deps --no-build-isolation ".[locust,triton]"
USER 1000
# Live Prometheus metrics of a running `loadgen run` or Locust master (scraped by the prometheus service);
# Locust's web UI and its master's port for workers (the locust-master service).
EXPOSE 9400 8089 5557
ENTRYPOINT ["loadgen"]
CMD ["--help"]
