#!/usr/bin/env bash
# Local stand-ins for the public base images, for a machine that reaches Debian and PyPI but no container
# registry (make docker-images; python -m stack.compose builds with them when --offline):
#   llm-serving-rig/bookworm:local     Debian bookworm with Python 3.11 (debootstrap --variant=minbase, then
#                                      `docker import`): stands in for python:3.11-slim-bookworm
#   llm-serving-rig/prometheus:local   Debian's prometheus package on that base: stands in for prom/prometheus
# and docker/wheels/: the wheels of pip's own find-links folder (this machine's CPU torch build), which the CPU
# Dockerfiles offer pip beside PyPI. Idempotent: an image that exists is kept (FORCE=1 rebuilds).
# A machine with a registry needs none of this: the compose files default to the public images.
set -euo pipefail
cd "$(dirname "$0")/../.."

BASE=llm-serving-rig/bookworm:local
PROMETHEUS=llm-serving-rig/prometheus:local
say() { printf 'docker-images: %s\n' "$*"; }

if [ "$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; else
  echo "error: debootstrap and apt-get need root or sudo" >&2; exit 1; fi

# The Debian mirror apt uses on this machine (deb822 .sources or a one-line sources.list).
mirror() {
  local uri
  uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1 || true)
  [ -n "$uri" ] || uri=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

if [ -n "${FORCE:-}" ] || ! docker image inspect "$BASE" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null || { $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
  root=$(mktemp -d /tmp/rig-bookworm.XXXXXX)
  trap '$SUDO rm -rf "$root"' EXIT
  say "debootstrap bookworm from $(mirror) (about a minute)"
  # libpython3.11: Triton's python backend stub links the interpreter's shared library.
  $SUDO debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates,curl,wget,libpython3.11 \
    bookworm "$root/fs" "$(mirror)" >"$root/debootstrap.log" 2>&1 \
    || { tail -20 "$root/debootstrap.log" >&2; exit 1; }
  $SUDO rm -rf "$root/fs/var/cache/apt/archives/"*.deb "$root/fs/var/lib/apt/lists/"*
  $SUDO tar -C "$root/fs" -c . | docker import \
    -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' \
    -m "debootstrap --variant=minbase bookworm (llm-serving-rig stand-in for python:3.11-slim-bookworm)" \
    - "$BASE" >/dev/null
  say "built $BASE"
else
  say "$BASE is there"
fi

if [ -n "${FORCE:-}" ] || ! docker image inspect "$PROMETHEUS" >/dev/null 2>&1; then
  docker build --network host --build-arg "BASE_IMAGE=$BASE" -t "$PROMETHEUS" \
    -f docker/prometheus-debian.Dockerfile docker/cpu >/dev/null
  say "built $PROMETHEUS ($(docker run --rm --entrypoint /usr/bin/prometheus "$PROMETHEUS" --version 2>&1 | head -1))"
else
  say "$PROMETHEUS is there"
fi

# pip's find-links folders (pip config list: global.find-links, PIP_FIND_LINKS): hard links where the file
# system allows, copies elsewhere. Wheels only; what is already there is kept.
links=$(python3 -m pip config list 2>/dev/null | sed -n "s/.*find-links='\(.*\)'/\1/p" | head -1)
for dir in ${PIP_FIND_LINKS:-} $links; do
  [ -d "$dir" ] || continue
  for wheel in "$dir"/*.whl; do
    [ -e "$wheel" ] || continue
    [ -e "docker/wheels/$(basename "$wheel")" ] || ln "$wheel" docker/wheels/ 2>/dev/null || cp "$wheel" docker/wheels/
  done
done
say "docker/wheels: $(find docker/wheels -name '*.whl' | wc -l) wheel(s) offered to pip in the CPU images"
