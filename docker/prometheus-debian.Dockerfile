# Prometheus from Debian's package: the stand-in for prom/prometheus on machines without a container registry
# (docker/cpu/standins.sh builds it as llm-serving-rig/prometheus:local; the compose CPU flavour uses it when
# RIG_PROMETHEUS_IMAGE names it). Same entrypoint, paths and user (nobody, 65534) as the official image, so the compose service's
# command, config mount, /prometheus volume and wget healthcheck are unchanged.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# Debian's prometheus follows the base release; wget is the healthcheck's client, as in the official image.
# hadolint ignore=DL3008
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus wget ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus /etc/prometheus \
 && chown 65534:65534 /prometheus
USER 65534
EXPOSE 9090
VOLUME ["/prometheus"]
WORKDIR /prometheus
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
